"""Entities out, in the formats other tools read: CoNLL (one ``token TAG`` line per token, BIO) for training other
taggers, and Label Studio tasks (pre-annotations to review and correct). ``padellm extract --format`` writes them.

CoNLL: the text is tokenised as ``padellm.data.bio.tokenize`` does (words, single punctuation marks, CJK
characters one by one), and a token that an entity starts or ends inside is split there, so every entity covers
whole tokens and the tokens, concatenated with the text's own whitespace, give the text back. BIO cannot nest: of
overlapping entities the longest (then the earliest) is kept, and the caller is told how many were left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from padellm.data.bio import spans_to_tags, tokenize
from padellm.types import Entity

EXPORT_FORMATS = ("jsonl", "conll", "labelstudio")


def entity_tokens(text: str, entities: Sequence[Entity]) -> tuple[list[str], list[tuple[int, int]]]:
    """``tokenize(text)``, with every token that an entity boundary falls inside split at that boundary."""
    cuts = {offset for e in entities for offset in (e.start, e.end)}
    tokens, spans = [], []
    for start, end in tokenize(text)[1]:
        inside = sorted(c for c in cuts if start < c < end)
        for a, b in zip([start, *inside], [*inside, end]):
            tokens.append(text[a:b])
            spans.append((a, b))
    return tokens, spans


def flat(entities: Sequence[Entity]) -> tuple[list[Entity], int]:
    """The entities BIO can hold: of overlapping ones the longest, then the earliest; and how many were left out."""
    kept: list[Entity] = []
    for entity in sorted(entities, key=lambda e: (-(e.end - e.start), e.start, e.label)):
        if all(entity.end <= k.start or k.end <= entity.start for k in kept):
            kept.append(entity)
    return sorted(kept), len(entities) - len(kept)


def conll_lines(text: str, entities: Sequence[Entity]) -> tuple[list[str], int]:
    """One ``token TAG`` line per token of ``text`` (IOB2), and how many entities nesting left out."""
    kept, dropped = flat(entities)
    tokens, spans = entity_tokens(text, kept)
    starts = {start: i for i, (start, _) in enumerate(spans)}
    ends = {end: i + 1 for i, (_, end) in enumerate(spans)}
    token_spans = [(starts[e.start], ends[e.end], e.label) for e in kept if e.start in starts and e.end in ends]
    dropped += len(kept) - len(token_spans)  # an entity of whitespace only covers no token
    tags = spans_to_tags(len(tokens), token_spans)
    return [f"{token} {tag}" for token, tag in zip(tokens, tags)], dropped


def labelstudio_task(text: str, entities: Sequence[dict], model_version: str) -> dict:
    """A Label Studio task with ``entities`` (padellm's entity records: start, end, label, text and, where the
    decoder gives one, probability) as one prediction, for a labelling config whose ``<Labels name="label"
    toName="text">`` tags a ``<Text name="text" value="$text">``."""
    result = []
    for index, entity in enumerate(entities):
        region = {"id": f"e{index}", "from_name": "label", "to_name": "text", "type": "labels",
                  "value": {"start": entity["start"], "end": entity["end"], "text": entity["text"],
                            "labels": [entity["label"]]}}
        if entity.get("probability") is not None:
            region["score"] = entity["probability"]
        result.append(region)
    scores = [r["score"] for r in result if "score" in r]
    prediction = {"model_version": model_version, "result": result}
    if scores:
        prediction["score"] = round(sum(scores) / len(scores), 6)
    return {"data": {"text": text}, "predictions": [prediction]}


def labelstudio_config(labels: Sequence[str]) -> str:
    """The labelling config that the tasks of ``labelstudio_task`` fit."""
    tags = "\n".join(f'    <Label value="{label}"/>' for label in labels)
    return f'<View>\n  <Labels name="label" toName="text">\n{tags}\n  </Labels>\n  <Text name="text" value="$text"/>\n</View>'
