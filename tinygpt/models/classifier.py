"""SequenceClassifier: a language model's body read out into one label per sequence, for fine-tuning.

The body (a GPT or an LSTMLanguageModel) turns idx (B, T) into hidden states (B, T, C); pooling
reduces them to (B, C) — the last real token's state, or the mean over real tokens — and a Linear
head scores the classes. Sequences are right-padded; `lengths` says where each one really ends.
Not here: tokenisation or padding (tinygpt.data.pad_sequences with padding='post').
"""

import numpy as np

from tinygpt import functional as F
from tinygpt.nn import Linear, Module, as_rng

POOLINGS = ("last", "mean")


class SequenceClassifier(Module):
    """idx: (B, T), labels: (B,) or None, lengths: (B,) or None -> (logits (B, n_classes), loss or None).

    NOTE: the body's own lm_head stays (so a pretrained state dict loads as it is) but is unused:
    a GPT's is the tied embedding anyway; an LSTM LM's gets no gradient and is skipped by optimizers."""

    def __init__(self, body, n_classes, pooling="last", seed=0):
        super().__init__()
        if not (hasattr(body, "features") and hasattr(body, "feature_size")):
            raise TypeError(f"SequenceClassifier needs a body with features(idx) and feature_size "
                            f"(GPT or LSTMLanguageModel), got {type(body).__name__}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        self.body = body
        self.pooling, self.n_classes = pooling, n_classes
        self.head = Linear(body.feature_size, n_classes, rng=as_rng(seed))

    def pool(self, x, lengths=None):
        """x: (B, T, C), lengths: (B,) real tokens per row or None (all T) -> (B, C)"""
        B, T, _ = x.shape
        if lengths is None:
            return x[:, -1] if self.pooling == "last" else x.mean(axis=1)
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or lengths.dtype.kind not in "iu" or lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths must be {B} integers in 1..{T} (one per row of idx), "
                             f"got {lengths!r}")
        if self.pooling == "last":
            # the state at the last real token has read the whole sequence and no padding (causal)
            return x[np.arange(B), lengths - 1]  # (B, T, C) -> (B, C)
        real = (np.arange(T)[None, :] < lengths[:, None]).astype(x.dtype)[..., None]  # (B, T, 1)
        return (x * real).sum(axis=1) / lengths[:, None].astype(x.dtype)  # (B, C), pads excluded

    def forward(self, idx, labels=None, lengths=None):
        x = self.body.features(idx)  # (B, T) -> (B, T, C)
        logits = self.head(self.pool(x, lengths))  # (B, C) -> (B, n_classes)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return logits, loss

    def extra_repr(self):
        return f"n_classes={self.n_classes}, pooling={self.pooling!r}"
