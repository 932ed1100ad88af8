"""An LSTM language model: token embedding -> nn.LSTM (num_layers) -> Linear head over the vocabulary.

The recurrent state (h, c) is what lets it read a sequence of any length: pass the state returned
by one call into the next to continue where it stopped (generation, or truncated BPTT).
Not here: the LSTM cell (tinygpt/ops/lstm.py) or sampling (generate.py).
"""

from dataclasses import asdict, dataclass

import numpy as np

from tinygpt import functional as F
from tinygpt.models.gpt import check_dropout, check_idx, check_positive_ints
from tinygpt.nn import LSTM, Dropout, Embedding, Linear, Module, as_rng


@dataclass
class LSTMConfig:
    vocab_size: int
    n_embd: int = 128  # embedding size, the LSTM's input size
    hidden_size: int = 256  # D, the LSTM's state size
    n_layer: int = 2
    dropout: float = 0.0  # on the embeddings, between LSTM layers, and before the head

    def __post_init__(self):
        check_positive_ints(self, ("vocab_size", "n_embd", "hidden_size", "n_layer"))
        check_dropout(self)

    def to_dict(self):
        return asdict(self)


class LSTMLanguageModel(Module):
    """idx: (B, T) token ids -> (logits (B, T, V), loss or None); state (h, c) each (n_layer, B, D)."""

    def __init__(self, config, seed=0):
        super().__init__()
        if not isinstance(config, LSTMConfig):
            raise TypeError(f"LSTMLanguageModel needs an LSTMConfig, got {type(config).__name__}")
        rng = as_rng(seed)
        self.config = config
        self.wte = Embedding(config.vocab_size, config.n_embd, rng=rng)
        self.drop = Dropout(config.dropout, rng=rng.spawn(1)[0])
        self.lstm = LSTM(config.n_embd, config.hidden_size, config.n_layer, batch_first=True,
                         dropout=config.dropout, rng=rng)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, rng=rng)
        # as in PyTorch's word_language_model example: small uniform embedding and head, zero bias
        self.wte.weight.data[...] = rng.uniform(-0.1, 0.1, self.wte.weight.shape)
        self.lm_head.weight.data[...] = rng.uniform(-0.1, 0.1, self.lm_head.weight.shape)
        self.lm_head.bias.data[...] = 0.0

    def features(self, idx, state=None, return_state=False):
        """idx: (B, T) -> hidden states of the top layer (B, T, D) [, (h_n, c_n)]"""
        idx = check_idx(idx)
        x = self.drop(self.wte(idx))  # (B, T) -> (B, T, n_embd)
        x, state = self.lstm(x, state)  # (B, T, n_embd) -> (B, T, D)
        x = self.drop(x)
        return (x, state) if return_state else x

    def forward(self, idx, targets=None, state=None, return_state=False):
        """idx: (B, T), targets: (B, T) or None, state: (h, c) or None (zeros)
        -> logits (B, T, V), loss or None [, the new state (h, c) when return_state=True]."""
        x, state = self.features(idx, state, return_state=True)
        logits = self.lm_head(x)  # (B, T, D) -> (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits, targets, ignore_index=-100)
        return (logits, loss, state) if return_state else (logits, loss)

    def initial_state(self, batch_size):
        """Zeros (h0, c0), each (n_layer, B, D): what forward uses when state is None."""
        shape = (self.config.n_layer, batch_size, self.config.hidden_size)
        dtype = self.lm_head.weight.dtype
        return np.zeros(shape, dtype), np.zeros(shape, dtype)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None):
        """idx: (B, T) -> (B, T + max_new_tokens), carrying the (h, c) state (tinygpt/generate.py)."""
        from tinygpt.generate import generate  # generate.py imports the models: import on use
        return generate(self, idx, max_new_tokens, temperature, top_k, top_p, seed)

    @property
    def feature_size(self):
        return self.config.hidden_size

    def extra_repr(self):
        c = self.config
        return f"vocab_size={c.vocab_size}, n_embd={c.n_embd}, hidden_size={c.hidden_size}, n_layer={c.n_layer}"
