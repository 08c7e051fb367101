"""Fast-NER baselines from the literature, compared against PaDeLLM. Shared by every model family: the encoder run
layer by layer (``encoder``), early-exit criteria (``exit_criteria``) and word-span decoding (``spans``). FastNER
(a multi-exit BERT biaffine model): ``fastner`` (the model), ``fastner_data`` (encoding and batches),
``fastner_inference`` (prediction and its measurement)."""
