"""Fine-tuning: config dataclasses and their YAML files (``config``, ``fastner_config``, ``config_files``),
batching, one step loop (``loop``) and one checkpoint format
(``checkpoints``) shared by every trainer, the trainers (``lora`` for PaDeLLM and the autoregressive baseline,
``fastner``), and dev scoring (``dev_scoring``)."""
