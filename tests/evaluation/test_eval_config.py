import pytest

from padellm.baselines.exit_criteria import ExitConfig
from padellm.errors import ConfigError
from padellm.evaluation.config import EXIT_ALIASES, EvalConfig, parse_exit, split_list


def test_exit_specs():
    assert parse_exit("none") == ExitConfig()
    assert parse_exit("patience:2", min_layer=2) == ExitConfig("patience", patience=2, min_layer=2)
    assert parse_exit("stable:1") == ExitConfig("stable", patience=1)
    assert parse_exit("entropy:0.2") == ExitConfig("entropy", 0.2, "max")
    assert parse_exit("confidence:0.9:mean") == ExitConfig("confidence", 0.9, "mean")
    assert parse_exit("gate:0.8", min_layer=2) == ExitConfig("gate", 0.8, min_layer=2)
    assert parse_exit("gate:0.8").name == "gate 0.8"


@pytest.mark.parametrize("spec, message", [
    ("bert", "the criterion must be one of none, entropy, confidence, patience"),
    ("none:1", "'none' takes no value"), ("patience", "expected patience:N"),
    ("patience:1:max", "expected patience:N"), ("stable:0.5", "'0.5' is not a whole number"), ("entropy:x", "'x' is not a number"),
    ("entropy:1.5", "threshold must be in [0, 1]"), ("confidence:0.9:median", "pooling must be one of max, mean"),
    ("patience:0", "patience must be >= 1"), ("gate:0.9:max", "expected gate:THRESHOLD"),
    ("gate:2", "threshold must be in [0, 1] for gate"),
])
def test_bad_exit_specs_name_the_spec(spec, message):
    with pytest.raises(ConfigError, match=r"fastner_exits: '" + spec.replace(".", r"\.") + "'") as err:
        parse_exit(spec)
    assert message in str(err.value)


def test_config_lists_every_problem():
    with pytest.raises(ConfigError) as err:
        EvalConfig(systems="parallel,fastner,parallel", sample=-1, warmup=-2, backend="tgi", fastner_batch_size=0,
                   settle_ms=-5)
    problems = err.value.problems
    assert "systems lists a system twice: 'parallel,fastner,parallel'" in problems
    assert "sample must be >= 0; got -1" in problems and "warmup must be >= 0; got -2" in problems
    assert "backend must be one of vllm, transformers; got 'tgi'" in problems
    assert "fastner_batch_size must be >= 1; got 0" in problems and "settle_ms must be >= 0; got -5" in problems
    assert any(p.startswith("fastner: a FastNER model folder is needed") for p in problems)


def test_systems_and_exits_parse():
    config = EvalConfig(systems=" parallel , fastner", fastner="m", fastner_exits="none,patience:1")
    assert config.system_names == ("parallel", "fastner")
    assert [c.name for c in config.exit_configs] == ["full model", "patience 1"]
    assert split_list(",a,,b ,") == ("a", "b")
    with pytest.raises(ConfigError, match="subset of parallel, autoregressive, structured, fastner, earlyexit, "
                                          "distilled; got ''"):
        EvalConfig(systems="")
    EvalConfig(systems="parallel", fastner_exits="nonsense")  # exits only matter when fastner is evaluated
    tagger = EvalConfig(systems="earlyexit", earlyexit="m", earlyexit_exits="none, sentence:0.2:mean, token:0.1:2")
    assert [(c.mode, c.threshold, c.window, c.pooling) for c in tagger.token_exit_configs] == [
        ("none", 0.0, 1, "max"), ("sentence", 0.2, 1, "mean"), ("token", 0.1, 2, "max")]
    with pytest.raises(ConfigError, match="earlyexit: a tagger model folder is needed"):
        EvalConfig(systems="earlyexit")


def test_the_papers_exit_names_point_to_earlyexit():
    with pytest.raises(ConfigError) as err:
        EvalConfig(systems="parallel,sentee,tokee")
    problems = err.value.problems
    assert problems[0].startswith("systems must be a comma-separated subset")
    assert ("systems: sentee is an operating point of the earlyexit system: --systems earlyexit --earlyexit DIR "
            "--earlyexit-exits sentence:0.2") in problems
    assert any(p.startswith("systems: tokee is an operating point") and p.endswith("token:0.1:1") for p in problems)
    # each alias's example operating point parses as the earlyexit system's own
    EvalConfig(systems="earlyexit", earlyexit="m", earlyexit_exits=",".join(EXIT_ALIASES.values()))
