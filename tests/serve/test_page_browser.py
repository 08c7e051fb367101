"""``GET /`` in a real headless browser (Chromium, driven by Selenium): type a sentence, submit, find the
highlighted entities in the DOM. Slow (the shipped parallel adapter on the transformers backend); skipped where
Chromium, its driver or Selenium is absent (Debian: apt-get install chromium chromium-driver; pip install
selenium). ``PADELLM_SCREENSHOT=FILE`` also saves a screenshot (the README's)."""

import os
import shutil
import threading
import time

import pytest

from padellm.adapters import shipped_adapter
from padellm_serve.app import create_app
from padellm_serve.config import ServerConfig
from padellm_serve.http_server import build_server
from padellm_serve.process import free_port
from padellm_serve.service import NERService

from threaded_backend import transformers_loader

pytestmark = pytest.mark.slow
webdriver = pytest.importorskip("selenium.webdriver")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip("Chromium and chromedriver are not installed", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server():
    config = ServerConfig(port=free_port(), warmup=False, log_level="warning")
    service = NERService([shipped_adapter("parallel")], config, loader=transformers_loader)
    server = build_server(create_app(service), service, config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while not (server.started and service.status == "ok"):
        assert time.monotonic() < deadline and thread.is_alive() and service.status != "failed", service.detail
        time.sleep(0.2)
    yield f"http://127.0.0.1:{config.port}"
    server.should_exit = True
    thread.join(60)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1000,620"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def highlighted(browser, seconds=180):
    marks = WebDriverWait(browser, seconds).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#result mark.entity") or
        (d.find_element(By.ID, "timings").text.startswith("no entities") and []))
    return {(m.get_attribute("textContent"), m.get_attribute("data-label")): m.get_attribute("title") for m in marks}


def test_type_a_sentence_and_see_its_entities(server, browser):
    browser.get(server)
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".label-toggle")) == 4)
    browser.find_element(By.ID, "text").send_keys("Peter Blackburn went to Brussels .")
    browser.find_element(By.ID, "run").click()
    found = highlighted(browser)
    assert ("Peter Blackburn", "PER") in found and ("Brussels", "LOC") in found
    assert found[("Peter Blackburn", "PER")].startswith("PER \u00b7 p = 0.")  # label and probability on hover
    assert "branches" in browser.find_element(By.ID, "timings").text  # the per-stage timings
    assert browser.find_element(By.ID, "result").text.replace("PER", "").replace("LOC", "").split() == \
        "Peter Blackburn went to Brussels .".split()  # the text itself, unchanged around the marks
    if os.environ.get("PADELLM_SCREENSHOT"):
        browser.save_screenshot(os.environ["PADELLM_SCREENSHOT"])

    browser.find_element(By.CSS_SELECTOR, ".label-toggle[value='PER']").click()  # decode without PER
    browser.execute_script("document.getElementById('result').replaceChildren()")
    browser.find_element(By.ID, "run").click()
    assert {label for _, label in highlighted(browser)} == {"LOC"}
