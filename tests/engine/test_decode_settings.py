"""An adapter's tuned decoding settings (decode.yaml): read, checked, and used by padellm.load unless overridden."""

import shutil

import pytest

from padellm.engine.decode_settings import (DECODE_FILE, adapter_decode_config, read_decode_settings,
                                            resolve_decode_config, write_decode_settings)
from padellm.engine.decoding import DecodeConfig
from padellm.errors import ConfigError


def test_settings_round_trip_under_a_comment(tmp_path):
    path = write_decode_settings(tmp_path, {"count_rule": "quantile", "count_quantile": 0.6}, "chosen by a test\nline 2")
    text = path.read_text()
    assert text.startswith("# chosen by a test\n# line 2\n")
    assert read_decode_settings(tmp_path) == {"count_rule": "quantile", "count_quantile": 0.6}
    assert adapter_decode_config(tmp_path) == DecodeConfig(count_rule="quantile", count_quantile=0.6)
    # a field the user sets wins; the others stay the adapter's
    assert adapter_decode_config(tmp_path, {"count_quantile": 0.7}) == DecodeConfig(count_rule="quantile",
                                                                                    count_quantile=0.7)
    # a DecodeConfig is taken as it is, the file ignored
    assert resolve_decode_config(tmp_path, DecodeConfig()) == DecodeConfig()
    assert resolve_decode_config(tmp_path, None) == adapter_decode_config(tmp_path)
    assert read_decode_settings(tmp_path / "missing") == {}
    assert adapter_decode_config(tmp_path / "missing") == DecodeConfig()


def test_bad_files_name_the_file_and_the_field(tmp_path):
    (tmp_path / DECODE_FILE).write_text("count_rule: quantile\ncount_quantiel: 0.6\n")
    with pytest.raises(ConfigError, match=f"{DECODE_FILE}: unknown field\\(s\\) count_quantiel; DecodeConfig has"):
        read_decode_settings(tmp_path)
    (tmp_path / DECODE_FILE).write_text("count_rule: quantile\ncount_quantile: 1.5\n")
    with pytest.raises(ConfigError, match=f"{DECODE_FILE}: .*count_quantile must be in \\(0, 1\\); got 1.5"):
        read_decode_settings(tmp_path)
    (tmp_path / DECODE_FILE).write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping of DecodeConfig fields; got list"):
        read_decode_settings(tmp_path)
    (tmp_path / DECODE_FILE).write_text("count_rule: [unclosed\n")
    with pytest.raises(ConfigError, match="not a YAML file"):
        read_decode_settings(tmp_path)
    with pytest.raises(ConfigError, match="unknown field\\(s\\) bogus"):
        adapter_decode_config(tmp_path / "missing", {"bogus": 1})
    with pytest.raises(ConfigError, match="count_rule must be one of"):
        write_decode_settings(tmp_path, {"count_rule": "mode"}, "")


def test_load_decodes_with_the_adapters_settings_unless_overridden(tiny_adapters, tmp_path):
    from padellm.ner import load

    adapter = tmp_path / "parallel"
    shutil.copytree(tiny_adapters["parallel"], adapter)
    assert load(adapter, "transformers").decode_config == DecodeConfig()
    write_decode_settings(adapter, {"count_rule": "quantile", "count_quantile": 0.7, "max_count": 5}, "test")
    assert load(adapter, "transformers").decode_config == DecodeConfig(count_rule="quantile", count_quantile=0.7,
                                                                        max_count=5)
    assert load(adapter, "transformers", decode_config={"max_count": 3}).decode_config == DecodeConfig(
        count_rule="quantile", count_quantile=0.7, max_count=3)
    assert load(adapter, "transformers", decode_config=DecodeConfig()).decode_config == DecodeConfig()
