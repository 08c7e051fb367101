"""Decoding: PaDeLLM's count -> branches -> dedup -> align stages, and the autoregressive baseline."""
