"""Corpora in, ``Example``s out: BIO tags <-> character spans (``bio``), readers and writers for CoNLL, span-JSON
and JSONL (``corpus``), named datasets and their splits (``datasets``), per-split statistics (``stats``)."""
