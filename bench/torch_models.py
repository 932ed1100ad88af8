"""The PyTorch models tinygpt is measured against: a GPT-2 (nanoGPT's layout) and the seed's
Keras LSTM, written plainly in torch so that both sides do the same arithmetic.

Imported only by bench/ scripts, and only when torch is installed. Not a tinygpt dependency.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as TF


class TorchBlock(nn.Module):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.mlp_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)

    def attention(self, x, kv=None):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        if kv is not None:  # generation: append to the cached keys and values
            if kv[0] is not None:
                k, v = torch.cat([kv[0], k], dim=2), torch.cat([kv[1], v], dim=2)
            kv[0], kv[1] = k, v
        causal = kv is None or t > 1
        y = TF.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))

    def forward(self, x, kv=None):
        x = x + self.attention(self.ln_1(x), kv)
        return x + self.mlp_proj(TF.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class TorchGPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(TorchBlock(n_embd, n_head, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as in GPT-2
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets=None, kv_cache=None, start=0):
        t = idx.shape[1]
        pos = torch.arange(start, start + t, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for i, block in enumerate(self.h):
            x = block(x, None if kv_cache is None else kv_cache[i])
        x = self.ln_f(x)
        if targets is None:  # inference, as in nanoGPT: score only the last position
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        return logits, TF.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, use_cache=True):
        """Greedy decoding, batch 1; with use_cache the keys and values of past tokens are kept."""
        if not use_cache:
            for _ in range(max_new_tokens):
                logits, _ = self(idx[:, -self.wpe.num_embeddings:])
                idx = torch.cat([idx, logits[:, -1:].argmax(-1)], dim=1)
            return idx
        cache = [[None, None] for _ in self.h]
        logits, _ = self(idx, kv_cache=cache)
        for _ in range(max_new_tokens):
            nxt = logits[:, -1:].argmax(-1)
            idx = torch.cat([idx, nxt], dim=1)
            logits, _ = self(nxt, kv_cache=cache, start=idx.shape[1] - 1)
        return idx


class TorchKerasLSTM(nn.Module):
    """The seed's model: Embedding(1000, 64) -> LSTM(128, sequences) -> LSTM(128) -> Dense(1000, softmax)."""

    def __init__(self, vocab_size=1000, embedding_dim=64, units=128):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, units, num_layers=2, batch_first=True)
        self.dense = nn.Linear(units, vocab_size)

    def forward(self, idx):
        out, _ = self.lstm(self.embedding(idx))
        return self.dense(out[:, -1])  # logits; softmax is folded into the loss


class TorchKerasGRU(TorchKerasLSTM):
    """The seed's model with GRU layers: Embedding(1000, 64) -> GRU(128, sequences) -> GRU(128) -> Dense."""

    def __init__(self, vocab_size=1000, embedding_dim=64, units=128):
        super().__init__(vocab_size, embedding_dim, units)
        del self.lstm
        self.gru = nn.GRU(embedding_dim, units, num_layers=2, batch_first=True)

    def forward(self, idx):
        out, _ = self.gru(self.embedding(idx))
        return self.dense(out[:, -1])


# ----- the same initial weights on both sides ---------------------------------------------------

def _t(array):
    return torch.from_numpy(array.copy())


@torch.no_grad()
def load_tinygpt_gpt(model, tg_params):
    """Copy a tinygpt GPT's parameters ({name: array} from named_parameters) into a TorchGPT.
    tinygpt Linear weights are (in, out), torch's (out, in): they load transposed."""
    p = {name: a for name, a in tg_params.items()}
    model.wte.weight.copy_(_t(p["transformer.wte.weight"]))  # also the tied lm_head
    model.wpe.weight.copy_(_t(p["transformer.wpe.weight"]))
    names = {"ln_1": "ln_1", "attn.c_attn": "c_attn", "attn.c_proj": "c_proj", "ln_2": "ln_2",
             "mlp.c_fc": "c_fc", "mlp.c_proj": "mlp_proj"}
    for i, block in enumerate(model.h):
        for ours, theirs in names.items():
            layer = getattr(block, theirs)
            w = p[f"transformer.h.{i}.{ours}.weight"]
            layer.weight.copy_(_t(w.T if w.ndim == 2 else w))
            if layer.bias is not None:
                layer.bias.copy_(_t(p[f"transformer.h.{i}.{ours}.bias"]))
    model.ln_f.weight.copy_(_t(p["transformer.ln_f.weight"]))
    if model.ln_f.bias is not None:
        model.ln_f.bias.copy_(_t(p["transformer.ln_f.bias"]))


@torch.no_grad()
def load_tinygpt_lstm(model, embedding, lstm_params, dense_w, dense_b):
    """Copy tinygpt's Embedding weight, nn.LSTM parameters ({name: array}) and Dense/Linear
    (w (in, out), b) into a TorchKerasLSTM. tinygpt keeps one LSTM bias per layer (PyTorch's
    bias_ih + bias_hh): it goes to bias_ih and bias_hh is zeroed."""
    model.embedding.weight.copy_(_t(embedding))
    for k in range(model.lstm.num_layers):
        getattr(model.lstm, f"weight_ih_l{k}").copy_(_t(lstm_params[f"weight_ih_l{k}"].T))
        getattr(model.lstm, f"weight_hh_l{k}").copy_(_t(lstm_params[f"weight_hh_l{k}"].T))
        getattr(model.lstm, f"bias_ih_l{k}").copy_(_t(lstm_params[f"bias_l{k}"]))
        getattr(model.lstm, f"bias_hh_l{k}").zero_()
    model.dense.weight.copy_(_t(dense_w.T))
    model.dense.bias.copy_(_t(dense_b))


@torch.no_grad()
def load_tinygpt_gru(model, embedding, gru_params, dense_w, dense_b):
    """Copy tinygpt's Embedding weight, nn.GRU parameters ({name: array}, PyTorch's names and gate
    order, weights (in, out)) and Dense/Linear (w (in, out), b) into a TorchKerasGRU."""
    model.embedding.weight.copy_(_t(embedding))
    for name, value in gru_params.items():
        getattr(model.gru, name).copy_(_t(value.T if value.ndim == 2 else value))
    model.dense.weight.copy_(_t(dense_w.T))
    model.dense.bias.copy_(_t(dense_b))
