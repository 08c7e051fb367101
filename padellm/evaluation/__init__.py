"""``padellm eval``: PaDeLLM parallel decoding, the autoregressive baseline and FastNER measured side by side.

``config`` (what is compared), ``systems`` (one interface over the trained artifacts), ``runner`` (warm-up,
interleaved single requests, batch mode), ``summary`` (figures, count-stage accuracy), ``report`` (Markdown), ``environment`` (the
machine), ``command`` (the whole run and its output folder).
"""
