"""padellm as a spaCy pipeline component:

    nlp = spacy.blank("en")
    nlp.add_pipe("padellm", config={"adapter": "adapters/conll2003-parallel"})
    doc = nlp("Peter Blackburn went to Brussels.")
    [(ent.text, ent.label_) for ent in doc.ents]

The factory is registered through the ``spacy_factories`` entry point, so ``add_pipe("padellm")`` works once
padellm is installed (``pip install padellm[spacy]``), on ``spacy.blank(...)`` or any pipeline. The component sets
``doc.ents`` from padellm's character spans: a span that does not fall on spaCy's token boundaries is widened to the
tokens it touches (``doc.user_data["padellm_widened"]`` counts them), and of overlapping mentions, which ``doc.ents``
cannot hold, the longest is kept there; all of them, nesting included (GENIA), are in ``doc.spans["padellm"]``.
``nlp.pipe`` decodes each batch of texts in one ``ner.batch`` call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from spacy.language import Language

from padellm.data.export import flat
from padellm.types import Entity

SPANS_KEY = "padellm"


def token_span(doc, entity: Entity):
    """The spaCy span of ``entity``'s characters, widened to whole tokens (``alignment_mode="expand"``), and
    whether it had to be widened; None for a span of whitespace only."""
    exact = doc.char_span(entity.start, entity.end, label=entity.label)
    if exact is not None:
        return exact, False
    return doc.char_span(entity.start, entity.end, label=entity.label, alignment_mode="expand"), True


def annotate(doc, entities: list[Entity]):
    """Set ``doc.ents`` (flat: the longest of overlapping mentions) and ``doc.spans["padellm"]`` (all of them)."""
    spans, widened = [], 0
    for entity in entities:
        span, wider = token_span(doc, entity)
        if span is None:
            continue
        spans.append(span)
        widened += wider
    doc.spans[SPANS_KEY] = spans
    kept, _ = flat([Entity(s.start_char, s.end_char, s.label_) for s in spans])
    by_chars = {(s.start_char, s.end_char, s.label_): s for s in spans}
    doc.ents = [by_chars[(e.start, e.end, e.label)] for e in kept]
    doc.user_data["padellm_widened"] = widened
    return doc


class PadellmComponent:
    """The pipeline component: one ``padellm.load`` extractor, decoding each doc's text (a batch at a time in
    ``pipe``)."""

    def __init__(self, nlp, name: str, adapter: str, backend: str, batch_size: int, decode: dict, engine: dict):
        from padellm.engine.vllm_config import VLLMConfig
        from padellm.errors import ConfigError
        from padellm.ner import load

        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
        self.name, self.batch_size = name, batch_size
        self.ner = load(adapter, backend, decode_config=dict(decode) or None,
                        vllm_config=VLLMConfig(**engine) if backend == "vllm" else None)

    def __call__(self, doc):
        return annotate(doc, self.ner.batch([doc.text])[0])

    def pipe(self, docs: Iterable, batch_size: int | None = None) -> Iterator:
        """Docs in, annotated docs out, in order; one decoding call per ``batch_size`` docs (``nlp.pipe``'s), at
        most the component's own ``batch_size``."""
        size = min(batch_size or self.batch_size, self.batch_size)
        batch = []
        for doc in docs:
            batch.append(doc)
            if len(batch) == size:
                yield from self._decode(batch)
                batch = []
        if batch:
            yield from self._decode(batch)

    def _decode(self, docs: list) -> list:
        found = self.ner.batch([doc.text for doc in docs])
        return [annotate(doc, entities) for doc, entities in zip(docs, found)]

    def close(self) -> None:
        """Stop the engine behind the component now (it also stops when the process exits)."""
        self.ner.close()


@Language.factory("padellm", default_config={"backend": "vllm", "batch_size": 64, "decode": {}, "engine": {}})
def make_padellm(nlp, name: str, adapter: str, backend: str, batch_size: int, decode: dict,
                 engine: dict) -> PadellmComponent:
    """The ``padellm`` factory: ``adapter`` (an adapter folder), ``backend`` (vllm or transformers),
    ``batch_size`` (the most docs per decoding call in ``nlp.pipe``), ``decode`` (``DecodeConfig`` fields over the adapter's
    decode.yaml) and ``engine`` (``VLLMConfig`` fields)."""
    return PadellmComponent(nlp, name, adapter, backend, batch_size, decode, engine)
