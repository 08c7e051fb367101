"""``GET /`` in a real headless browser (Chromium, driven by Selenium) on a server with an API key: the page asks
for the key, a text submitted without it is refused, and with it the entities appear highlighted in the DOM.

The server decodes with the tiny test adapter's real decoding path (template, count stage, branches, alignment,
dedup) on a scripted backend, so that the entities are known. Chromium and its driver come from Debian
(``apt-get install chromium chromium-driver``; ``.ci/run`` installs them); where they are missing the test is
skipped, and in CI it fails. ``PADELLM_SCREENSHOT=FILE`` also saves a screenshot."""

import os
import shutil

import pytest

from conftest import missing, require
from live_server import live_server
from threaded_backend import SENTENCE, scripted_loader

KEY = "browser-test-key-0123456789"


@pytest.fixture(scope="module")
def webdriver():
    module = require("selenium.webdriver")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        missing("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    return module


@pytest.fixture(scope="module")
def server(tiny_adapters):
    with live_server([tiny_adapters["parallel"]], scripted_loader, keys=[KEY]) as (url, _, _):
        yield url


@pytest.fixture(scope="module")
def browser(webdriver):
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1000,620"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def test_the_page_asks_for_the_key_then_highlights_the_entities(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def highlighted():
        marks = WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#result mark.entity"))
        return {(m.get_attribute("textContent"), m.get_attribute("data-label")): m.get_attribute("title")
                for m in marks}

    browser.get(server)
    key_form = browser.find_element(By.ID, "key")
    WebDriverWait(browser, 30).until(lambda d: key_form.is_displayed())  # /v1/models answered 401
    assert "API key" in browser.find_element(By.ID, "error").text

    browser.find_element(By.ID, "text").send_keys(SENTENCE)
    browser.find_element(By.ID, "run").click()  # without the key: refused, nothing highlighted
    WebDriverWait(browser, 30).until(lambda d: not d.find_element(By.ID, "run").get_attribute("disabled"))
    assert "API key" in browser.find_element(By.ID, "error").text
    assert not browser.find_elements(By.CSS_SELECTOR, "#result mark.entity")

    browser.find_element(By.ID, "key-input").send_keys(KEY)
    browser.find_element(By.ID, "use-key").click()
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".label-toggle")) == 4)
    assert not key_form.is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('padellm-api-key')") == KEY
    browser.find_element(By.ID, "run").click()
    found = highlighted()
    assert set(found) == {("Peter Blackburn", "PER"), ("Brussels", "LOC")}
    assert found[("Peter Blackburn", "PER")] == "PER \u00b7 p = 0.951"  # label and exp(-0.05) on hover
    assert "branches" in browser.find_element(By.ID, "timings").text  # the per-stage timings
    assert browser.find_element(By.ID, "result").text.replace("PER", "").replace("LOC", "").split() == \
        SENTENCE.split()  # the text itself, unchanged around the marks
    if os.environ.get("PADELLM_SCREENSHOT"):
        browser.save_screenshot(os.environ["PADELLM_SCREENSHOT"])

    browser.find_element(By.CSS_SELECTOR, ".label-toggle[value='PER']").click()  # decode without PER
    browser.execute_script("document.getElementById('result').replaceChildren()")
    browser.find_element(By.ID, "run").click()
    assert set(highlighted()) == {("Brussels", "LOC")}


def test_the_docs_render_offline_with_the_key_of_the_tab(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/docs")  # the same tab: the key given to the page above is in its sessionStorage
    operations = WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    assert "/v1/ner" in {element.get_attribute("data-path") or element.text for element in operations}
    scripts = browser.execute_script("return [...document.scripts].map(s => s.src).concat("
                                     "[...document.styleSheets].map(s => s.href)).filter(Boolean)")
    assert scripts and all(src.startswith(server) for src in scripts), scripts  # nothing from another host
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "key").is_displayed())  # asks for the key
