"""The registry: every template and every shipped adapter resolves to its format by the name its prompt.yaml saves,
old prompt.yaml files (saved before the name was) load unchanged, and nothing else is accepted."""

from pathlib import Path

import pytest
import yaml

from padellm.errors import ConfigError
from padellm.formats import FORMATS, format_named, format_of
from padellm.formats.base import DecodingFormat
from padellm.prompts.templates import load_prompt, load_template, save_prompt
from padellm.prompts.labels import LabelSet, prompts_dir

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {"padellm-en-v1": "counted", "padellm-zh-v1": "counted", "padellm-en-aligned-v1": "counted",
            "padellm-en-branches-v1": "count-free", "padellm-zh-branches-v1": "count-free",
            "padellm-en-labelwise-v1": "labelwise", "padellm-zh-labelwise-v1": "labelwise",
            "autoregressive-en-v1": "lines", "autoregressive-zh-v1": "lines", "autoregressive-struct-en-v1": "structured"}


def test_every_shipped_template_names_its_format():
    assert sorted(p.stem for p in prompts_dir().glob("*.yaml")) == sorted(EXPECTED)
    for name, expected in EXPECTED.items():
        template = load_template(name)
        assert template.format == expected and format_of(template) is FORMATS[expected]


def test_formats_are_registered_under_their_own_names_and_answer_the_whole_interface():
    assert sorted(FORMATS) == ["count-free", "counted", "labelwise", "lines", "structured"]
    for name, form in FORMATS.items():
        assert isinstance(form, DecodingFormat) and form.name == name
        assert form.system in ("parallel", "autoregressive", "structured")
        assert set(form.biases) <= {"none_bias", "end_bias"}
    assert [n for n, f in FORMATS.items() if f.count_stage] == ["counted"]
    with pytest.raises(ConfigError, match="format must be one of counted, count-free, labelwise, lines, structured; "
                                          "got 'pointer'"):
        format_named("pointer")


@pytest.mark.parametrize("folder", sorted(p.parent for p in (ROOT / "adapters").glob("*/prompt.yaml")),
                         ids=lambda p: p.name)
def test_each_shipped_adapters_prompt_yaml_loads_unchanged(folder):
    """The shipped adapters were saved before templates recorded their format: it follows from their fields."""
    template, _ = load_prompt(folder)
    saved = yaml.safe_load((folder / "prompt.yaml").read_text(encoding="utf-8"))
    assert {k: v for k, v in vars(template).items() if k in saved} == saved
    assert format_of(template).system == folder.name.split("-", 1)[1]


def test_a_saved_template_records_its_format_and_loads_back(tmp_path):
    labels = LabelSet.for_labels(["PER"])
    for name in ("padellm-en-labelwise-v1", "padellm-en-branches-v1", "autoregressive-struct-en-v1"):
        save_prompt(tmp_path, load_template(name), labels)
        assert yaml.safe_load((tmp_path / "prompt.yaml").read_text())["format"] == EXPECTED[name]
        assert load_prompt(tmp_path)[0] == load_template(name)
    data = yaml.safe_load((prompts_dir() / "padellm-en-v1.yaml").read_text())
    (tmp_path / "prompt.yaml").write_text(yaml.safe_dump({**data, "format": "labelwise"}))
    with pytest.raises(ConfigError, match="format 'labelwise' does not match the template's fields, which make it "
                                          "'counted'"):
        load_prompt(tmp_path)
    (tmp_path / "prompt.yaml").write_text(yaml.safe_dump({**data, "mode": "autoregressive", "format": "pointer"}))
    with pytest.raises(ConfigError, match="'format' one of lines, structured; got mode 'autoregressive' format "
                                          "'pointer'"):
        load_prompt(tmp_path)
