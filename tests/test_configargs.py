import argparse
from dataclasses import dataclass

import pytest

from padellm.configargs import add_dataclass_arguments, dataclass_from_args, dataclass_to_argv, field_docs
from padellm.data.corpus import ReadOptions
from padellm.errors import ConfigError


@dataclass(frozen=True)
class Toy:
    rank: int = 8
    """LoRA rank."""
    alpha: float = 16.0
    name: str = "x"
    """A name
    over two lines."""
    packed: bool = False

    def __post_init__(self):
        if self.rank <= 0:
            raise ConfigError(f"rank must be > 0; got {self.rank}")


def parse(argv):
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Toy)
    return dataclass_from_args(Toy, parser.parse_args(argv)), parser


def test_flags_come_from_fields_with_their_docstrings():
    assert field_docs(Toy) == {"rank": "LoRA rank.", "name": "A name over two lines."}
    config, parser = parse([])
    assert config == Toy()
    assert "LoRA rank. (default: 8)" in parser.format_help()
    config, _ = parse(["--rank", "4", "--alpha", "0.5", "--name", "y", "--packed"])
    assert config == Toy(4, 0.5, "y", True)
    assert parse(["--no-packed"])[0].packed is False


@pytest.mark.parametrize("config", [Toy(), Toy(4, 0.5, "y z", True), Toy(name="")])
def test_to_argv_round_trips(config):
    assert parse(dataclass_to_argv(config))[0] == config
    assert dataclass_to_argv(Toy(rank=3)) == ["--rank", "3"]


def test_values_are_validated_by_the_class():
    with pytest.raises(ConfigError, match="rank must be > 0; got 0"):
        parse(["--rank", "0"])
    with pytest.raises(SystemExit):
        parse(["--rank", "four"])


def test_read_options_flags():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, ReadOptions)
    options = dataclass_from_args(ReadOptions, parser.parse_args(["--format", "conll", "--lenient"]))
    assert options == ReadOptions(format="conll", lenient=True)
    assert "iob2, iob1 (normalised to IOB2), or auto" in " ".join(parser.format_help().split())


def test_fields_whose_defaults_come_from_elsewhere_are_absent_unless_given():
    from padellm.configargs import given_fields
    from padellm.engine.decoding import DecodeConfig

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, DecodeConfig, default_from="the adapter's decode.yaml")
    assert given_fields(DecodeConfig, parser.parse_args([])) == {}
    given = given_fields(DecodeConfig, parser.parse_args(["--count-quantile", "0.7", "--max-count", "4"]))
    assert given == {"count_quantile": 0.7, "max_count": 4}
    assert "(default: the adapter's decode.yaml, else argmax)" in " ".join(parser.format_help().split())
