"""The PaDeLLM-NER paper's structured autoregressive baseline (AutoReg_Struct): one target per text that lists every
label in order, each with its mentions in text order or ``(NULL)``, e.g.
``((PER): (Cuttitta), (MISC): (1995 World Cup), (LOC): (Italy), (ORG): (NULL))``. The template renders and parses
it (``padellm.prompts.templates.StructuredTemplate``); training and decoding are the compact format's. Template:
``autoregressive-struct-en-v1``.
"""

from __future__ import annotations

from typing import ClassVar

from padellm.formats.lines import Lines


class Structured(Lines):
    """Every label listed, with its mentions or none, in one sequence."""

    name: ClassVar[str] = "structured"
    system: ClassVar[str] = "structured"
