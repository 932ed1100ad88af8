"""PyTorch as an extra oracle: GPT and LSTM LM logits, losses and every parameter gradient match
equivalent torch.nn models given the same weights; SGD/Adam/AdamW steps, clip_grad_norm_ and the
cosine schedule match torch.optim. Skipped when torch is not installed."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tnn = torch.nn
TF = torch.nn.functional

from tinygpt import Tensor  # noqa: E402
from tinygpt import nn  # noqa: E402
from tinygpt.models import GPT, GPTConfig, LSTMConfig, LSTMLanguageModel  # noqa: E402
from tinygpt.optim import SGD, Adam, AdamW, RMSprop, WarmupCosine, clip_grad_norm_  # noqa: E402

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


def close(ours, theirs, dtype, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    np.testing.assert_allclose(ours, theirs, err_msg=what, **TOL[dtype])


# --- GPT ------------------------------------------------------------------------------------------


class TorchAttention(tnn.Module):
    def __init__(self, C, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn, self.c_proj = tnn.Linear(C, 3 * C), tnn.Linear(C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v))
        y = TF.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class TorchMLP(tnn.Module):
    def __init__(self, C):
        super().__init__()
        self.c_fc, self.c_proj = tnn.Linear(C, 4 * C), tnn.Linear(4 * C, C)

    def forward(self, x):
        return self.c_proj(TF.gelu(self.c_fc(x), approximate="tanh"))


class TorchBlock(tnn.Module):
    def __init__(self, C, n_head):
        super().__init__()
        self.ln_1, self.attn = tnn.LayerNorm(C), TorchAttention(C, n_head)
        self.ln_2, self.mlp = tnn.LayerNorm(C), TorchMLP(C)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(tnn.Module):
    """nanoGPT's model, with the same parameter names as tinygpt's GPT."""

    def __init__(self, c):
        super().__init__()
        self.transformer = tnn.ModuleDict(dict(
            wte=tnn.Embedding(c.vocab_size, c.n_embd), wpe=tnn.Embedding(c.block_size, c.n_embd),
            h=tnn.ModuleList([TorchBlock(c.n_embd, c.n_head) for _ in range(c.n_layer)]),
            ln_f=tnn.LayerNorm(c.n_embd)))

    def forward(self, idx, targets):
        T = idx.shape[1]
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(T))
        for block in tr.h:
            x = block(x)
        logits = tr.ln_f(x) @ tr.wte.weight.T  # the tied head
        return logits, TF.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


def is_linear_weight(name, array):
    """tinygpt stores Linear weights (in, out); torch.nn.Linear stores (out, in)."""
    return array.ndim == 2 and name.endswith(".weight") and "wte" not in name and "wpe" not in name


def to_torch_state(state, dtype):
    return {name: torch.tensor(a.T if is_linear_weight(name, a) else a).to(dtype) for name, a in state.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpt_logits_loss_and_every_gradient_match_pytorch(dtype):
    config = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8)
    ours = GPT(config, seed=0).to(dtype)
    for p in ours.parameters():  # perturb biases and gains away from 0 and 1
        p.data += np.random.default_rng(p.size).normal(0, 0.05, p.shape).astype(dtype)
    theirs = TorchGPT(config).to(torch.float32 if dtype == np.float32 else torch.float64)
    theirs.load_state_dict(to_torch_state(ours.state_dict(), theirs.transformer.wte.weight.dtype))
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 13, (3, 8)), rng.integers(0, 13, (3, 8))
    targets[0, :3] = -100

    logits, loss = ours(idx, targets)
    loss.backward()
    t_logits, t_loss = theirs(torch.tensor(idx), torch.tensor(targets))
    t_loss.backward()
    close(logits.data, t_logits, dtype, "logits")
    close(loss.data, t_loss, dtype, "loss")
    t_params = dict(theirs.named_parameters())
    assert set(t_params) == {n for n, _ in ours.named_parameters()}
    for name, p in ours.named_parameters():
        t_grad = t_params[name].grad.numpy()
        close(p.grad, t_grad.T if is_linear_weight(name, p.data) else t_grad, dtype, f"gradient of {name}")


# --- LSTM language model ----------------------------------------------------------------------------


class TorchLSTMLM(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = tnn.Embedding(c.vocab_size, c.n_embd)
        self.lstm = tnn.LSTM(c.n_embd, c.hidden_size, c.n_layer, batch_first=True)
        self.lm_head = tnn.Linear(c.hidden_size, c.vocab_size)

    def forward(self, idx, targets, state):
        out, state = self.lstm(self.wte(idx), state)
        logits = self.lm_head(out)
        return logits, TF.cross_entropy(logits.flatten(0, 1), targets.flatten()), state


def lstm_to_torch(state, n_layer, dtype):
    """tinygpt -> torch names: weights transposed, our one bias = bias_ih, bias_hh = 0."""
    out = {}
    for name, a in state.items():
        if name.startswith("lstm.bias_l"):
            k = name[len("lstm.bias_l"):]
            out[f"lstm.bias_ih_l{k}"], out[f"lstm.bias_hh_l{k}"] = a, np.zeros_like(a)
        else:
            out[name] = a.T if name.startswith("lstm.weight") or name == "lm_head.weight" else a
    return {k: torch.tensor(v).to(dtype) for k, v in out.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_lm_logits_state_and_every_gradient_match_pytorch(dtype):
    config = LSTMConfig(vocab_size=11, n_embd=6, hidden_size=5, n_layer=2)
    ours = LSTMLanguageModel(config, seed=0).to(dtype)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    theirs = TorchLSTMLM(config).to(tdtype)
    theirs.load_state_dict(lstm_to_torch(ours.state_dict(), 2, tdtype))
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 11, (3, 7)), rng.integers(0, 11, (3, 7))
    h0, c0 = (rng.standard_normal((2, 3, 5)).astype(dtype) * 0.5 for _ in range(2))

    th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (h0, c0))
    t_logits, t_loss, (t_h, t_c) = theirs(torch.tensor(idx), torch.tensor(targets), (th0, tc0))
    (t_loss + (t_h * 0.3).sum() + (t_c * 0.2).sum()).backward()
    oh0, oc0 = Tensor(h0, requires_grad=True), Tensor(c0, requires_grad=True)
    logits, loss, (h, c) = ours(idx, targets, state=(oh0, oc0), return_state=True)
    (loss + (h * 0.3).sum() + (c * 0.2).sum()).backward()

    close(logits.data, t_logits, dtype, "logits")
    close(h.data, t_h, dtype, "h_n")
    close(c.data, t_c, dtype, "c_n")
    close(oh0.grad, th0.grad, dtype, "gradient of h0")
    close(oc0.grad, tc0.grad, dtype, "gradient of c0")
    t = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        if name.startswith("lstm.bias_l"):
            k = name[len("lstm.bias_l"):]
            close(p.grad, t[f"lstm.bias_ih_l{k}"].grad, dtype, name)  # d/db_ih = d/db_hh = d/db
            close(p.grad, t[f"lstm.bias_hh_l{k}"].grad, dtype, name)
        else:
            g = t[name].grad.numpy()
            close(p.grad, g.T if g.ndim == 2 and name != "wte.weight" else g, dtype, f"gradient of {name}")


# --- optimizers, clipping, schedule ------------------------------------------------------------------


def paired_params(dtype=np.float64):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in ((4, 3), (3,), (2, 2))]
    return [nn.Parameter(a.copy()) for a in arrays], [torch.tensor(a.copy(), requires_grad=True) for a in arrays]


def step_both(ours, theirs, opt, t_opt, steps=6):
    for step in range(steps):
        rng = np.random.default_rng(step)
        for p, tp in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(p.dtype)
            p.grad, tp.grad = g.copy(), torch.tensor(g.copy())
        opt.step()
        t_opt.step()


OPTIMIZERS = {
    "sgd": (lambda ps: SGD(ps, lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "sgd_momentum": (lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
                     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)),
    "sgd_nesterov": (lambda ps: SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
                     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    "adam": (lambda ps: Adam(ps, lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
             lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    # AdamW's default: decay the 2-D parameters only, which torch expresses as two groups
    "adamw": (lambda ps: AdamW(ps, lr=1e-2, weight_decay=0.1),
              lambda ps: torch.optim.AdamW([{"params": [ps[0], ps[2]], "weight_decay": 0.1},
                                            {"params": [ps[1]], "weight_decay": 0.0}], lr=1e-2)),
    "rmsprop": (lambda ps: RMSprop(ps), lambda ps: torch.optim.RMSprop(ps)),
    "rmsprop_centered_momentum": (
        lambda ps: RMSprop(ps, lr=1e-3, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.8, centered=True),
        lambda ps: torch.optim.RMSprop(ps, lr=1e-3, alpha=0.9, eps=1e-6, weight_decay=0.1,
                                       momentum=0.8, centered=True)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_match_torch_optim(name, dtype):
    make, make_torch = OPTIMIZERS[name]
    ours, theirs = paired_params(dtype)
    step_both(ours, theirs, make(ours), make_torch(theirs))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), err_msg=name, **tol)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    ours, theirs = paired_params()
    for p, tp in zip(ours, theirs):
        g = np.random.default_rng(p.size).standard_normal(p.shape)
        p.grad, tp.grad = g.copy(), torch.tensor(g)
    total = clip_grad_norm_(ours, max_norm)
    t_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert total == pytest.approx(t_total.item(), rel=1e-12)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)


def test_cosine_schedule_matches_torch_cosine_annealing():
    p = torch.zeros(1, requires_grad=True)
    t_opt = torch.optim.SGD([p], lr=1.0)
    t_sched = torch.optim.lr_scheduler.CosineAnnealingLR(t_opt, T_max=20, eta_min=0.1)
    ours = WarmupCosine(max_lr=1.0, min_lr=0.1, warmup_steps=0, max_steps=20)
    for step in range(20):
        assert ours(step) == pytest.approx(t_opt.param_groups[0]["lr"], rel=1e-9), step
        t_opt.step()
        t_sched.step()
    assert math.isclose(ours(20), 0.1)
