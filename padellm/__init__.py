"""padellm: fast named entity recognition with large language models.

    import padellm
    ner = padellm.load("adapters/conll2003-parallel")      # vLLM backend, LoRA adapter
    ner("EU rejects German call to boycott British lamb.")  # -> [Entity(0, 2, 'ORG'), ...]
"""

__version__ = "0.1.0"


def load(adapter, backend: str = "vllm", **kwargs):
    """An ``NER`` extractor for an adapter folder; see ``padellm.ner.load`` (imported lazily: ``import padellm``
    stays light)."""
    from padellm.ner import load as _load

    return _load(adapter, backend, **kwargs)
