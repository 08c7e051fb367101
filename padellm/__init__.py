"""padellm: fast named entity recognition with large language models."""

__version__ = "0.1.0"
