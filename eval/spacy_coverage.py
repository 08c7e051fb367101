"""How many of padellm's own spans a spaCy pipeline shows as ``doc.ents``: seeded corpus sentences through
``nlp.pipe`` with the ``padellm`` component on ``spacy.blank(LANG)``, against the same extractor's ``batch`` on the
same texts. Prints one JSON object: spans found, those in ``doc.ents`` exactly, those widened to token boundaries,
those only in ``doc.spans["padellm"]`` (overlapping ones ``doc.ents`` cannot hold), and the share in ``doc.ents``.

    python eval/spacy_coverage.py --adapter adapters/conll2003-parallel --dataset conll2003 --sample 200
"""

from __future__ import annotations

import argparse
import json
import sys


def coverage(docs, found) -> dict:
    """Where each of the extractor's spans ended up in its spaCy doc: in ``doc.ents`` as it is, widened to token
    boundaries, or only in ``doc.spans`` (overlapping another that ``doc.ents`` kept)."""
    from padellm.integrations.spacy import token_span

    total = exact = widened = spans_only = 0
    for doc, entities in zip(docs, found):
        ents = {(e.start_char, e.end_char, e.label_) for e in doc.ents}
        for entity in entities:
            total += 1
            span, wider = token_span(doc, entity)
            if span is not None and (span.start_char, span.end_char, span.label_) in ents:
                widened += wider
                exact += not wider
            else:
                spans_only += 1
    return {"spans": total, "in_ents_exactly": exact, "in_ents_widened": widened, "only_in_doc_spans": spans_only,
            "share_in_ents": round(100 * (exact + widened) / total, 2) if total else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", default="adapters/conll2003-parallel")
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lang", default="en", help="spacy.blank's language (its tokenizer)")
    parser.add_argument("--backend", choices=("vllm", "transformers"), default="vllm")
    args = parser.parse_args(argv)

    import spacy

    from padellm.data.datasets import load_dataset
    from padellm.errors import PadellmError
    from padellm.evaluation.command import sample_indices
    from padellm.terminal.stdio import data_stdout, quiet_libraries

    quiet_libraries()
    try:
        with data_stdout() as stdout:
            split = load_dataset(args.dataset, [args.split]).split(args.split)
            texts = [split[i].text for i in sample_indices(len(split), args.sample, args.seed)]
            nlp = spacy.blank(args.lang)
            component = nlp.add_pipe("padellm", config={"adapter": args.adapter, "backend": args.backend})
            docs = list(nlp.pipe(texts))
            own = component.ner.batch(texts)  # the same extractor, called directly
            component.close()
            print(json.dumps({"adapter": args.adapter, "sentences": len(texts), **coverage(docs, own)}), file=stdout)
    except PadellmError as err:
        print(f"spacy_coverage: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # vLLM starts its engine processes with spawn, which re-imports this module
    sys.exit(main())
