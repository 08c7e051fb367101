"""Fast-NER baselines from the literature, compared against PaDeLLM: FastNER (a multi-exit BERT biaffine model
with early exiting)."""
