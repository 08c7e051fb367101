"""The decoding formats, one module each, behind a registry keyed by the name an adapter's ``prompt.yaml`` saves as
``format`` (the way vLLM's model registry maps an architecture name to its class):

- ``counted`` (``counted.py``): the paper's count stage, then one branch per stated mention;
- ``count-free`` (``count_free.py``): branch k writes the k-th mention or none, in rounds;
- ``labelwise`` (``labelwise.py``): one branch per label writes all its mentions (the shipped parallel adapters);
- ``lines`` (``lines.py``): the autoregressive baseline, one ``label: mention`` line per entity;
- ``structured`` (``structured.py``): the paper's AutoReg_Struct baseline, every label listed.

Adding a format is one module with a ``DecodingFormat`` subclass, its entry in ``FORMATS``, a template whose
``format`` names it, and its tests.
"""

from __future__ import annotations

from padellm.engine.backend import GenerationBackend
from padellm.engine.decoding import DecodeConfig, DecodeResult, DecodeSteps, run_steps
from padellm.errors import ConfigError, one_of_problem
from padellm.formats.base import DecodingFormat
from padellm.formats.count_free import CountFree
from padellm.formats.counted import Counted
from padellm.formats.labelwise import Labelwise
from padellm.formats.lines import Lines
from padellm.formats.structured import Structured
from padellm.prompts.encoding import PromptEncoder

FORMATS: dict[str, DecodingFormat] = {f.name: f for f in (Counted(), CountFree(), Labelwise(), Lines(), Structured())}


def format_named(name: str) -> DecodingFormat:
    if name not in FORMATS:
        raise ConfigError(one_of_problem("format", tuple(FORMATS), name))
    return FORMATS[name]


def format_of(template) -> DecodingFormat:
    """The format a template (and so an adapter trained with it) decodes in."""
    return format_named(template.format)


def decode_steps(texts: list[str], encoder: PromptEncoder, config: DecodeConfig = DecodeConfig(),
                 labels: tuple[str, ...] | None = None, counts: list[dict[str, int]] | None = None) -> DecodeSteps:
    """The decoder the encoder's template was trained for (``counts``: formats with a count stage only, see
    ``padellm.formats.counted.parallel_steps``)."""
    return format_of(encoder.template).steps(list(texts), encoder, config, labels, counts)


def decode(texts: list[str], encoder: PromptEncoder, backend: GenerationBackend,
           config: DecodeConfig = DecodeConfig(), labels: tuple[str, ...] | None = None) -> DecodeResult:
    """Decode with the format the encoder's template was trained for."""
    return run_steps(decode_steps(texts, encoder, config, labels), backend)


__all__ = ["FORMATS", "DecodingFormat", "decode", "decode_steps", "format_named", "format_of"]
