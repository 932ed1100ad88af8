"""tinygpt: a from-scratch deep-learning engine for GPT-style language models."""

__version__ = "0.1.0"
