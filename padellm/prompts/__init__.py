"""The prompt layer shared by training and inference: versioned templates and label names (``templates``) and
their token-exact encoding with a model's tokenizer (``encoding``)."""
