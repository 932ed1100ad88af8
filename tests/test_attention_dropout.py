"""Attention dropout and the key-padding mask: one splitmix64 mask in NumPy, Numba and C; finite
differences at a fixed seed; F.scaled_dot_product_attention's signature and masks against torch;
GPT's dropouts at GPT-2's three places (embd_pdrop, attn_pdrop, resid_pdrop), seeded, off in eval,
read from and written to Hugging Face config.json."""

import json
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from strategies import check_op
from tinygpt import Tensor, backend, no_grad
from tinygpt import functional as F
from tinygpt.models import GPT, GPTConfig
from tinygpt.ops import attention as A

TINY = dict(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=8)


def _attention_kernels():
    """[(name, attention_forward, attention_backward)] for the reference and every fast backend here."""
    found = [("numpy", A.attention_forward.reference, A.attention_backward.reference)]
    for name in ("numba", "c"):
        module = backend._module(name)
        if not isinstance(module, str):
            found.append((name, module.attention_forward, module.attention_backward))
    return found


# --- the mask: one hash, three implementations --------------------------------------------------


def test_dropout_hash_is_splitmix64():
    """Seeded with 0, splitmix64's first two outputs are published (Vigna's splitmix64.c):
    counters 0 and 1 must be kept exactly when their top 24 bits reach the threshold."""
    for counter, output in enumerate((0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4)):
        top = output >> 40
        c = np.array([counter], np.uint64)
        assert A.dropout_keep(0, c, top)[0] and not A.dropout_keep(0, c, top + 1)[0]
    assert A.dropout_threshold(0.0) == 0 and A.dropout_threshold(0.5) == 2 ** 23


def test_dropout_hash_is_the_same_in_numba():
    numba_attention = pytest.importorskip("tinygpt.kernels.numba_attention")
    rng = np.random.default_rng(0)
    for seed in (0, 1, 2 ** 64 - 1, int(rng.integers(0, 2 ** 63))):
        counters = rng.integers(0, 2 ** 40, size=200).astype(np.uint64)
        threshold = A.dropout_threshold(0.37)
        want = A.dropout_keep(seed, counters, threshold)
        got = [numba_attention._keep(np.uint64(seed), c, np.uint64(threshold)) for c in counters]
        np.testing.assert_array_equal(got, want)


def _mask_seen_through_one_hot_values(fwd, b, nh, tq, tk, causal, p, seed, key_mask=None):
    """q = k = 0 makes every visible probability positive, and V = I makes out[i, j] = P[i, j] *
    keep[i, j] / (1 - p): out != 0 is then exactly the kept-and-visible pattern of the mask."""
    q = np.zeros((b, nh, tq, tk), np.float32)
    k = np.zeros((b, nh, tk, tk), np.float32)
    v = np.broadcast_to(np.eye(tk, dtype=np.float32), (b, nh, tk, tk)).copy()
    out, _ = fwd(q, k, v, causal, None, key_mask, p, seed)
    assert out is not NotImplemented
    return out != 0


@pytest.mark.parametrize("b, nh, tq, tk, causal", [(2, 3, 70, 70, True), (1, 2, 5, 130, True),
                                                   (2, 1, 9, 67, False)])
def test_every_kernel_draws_the_same_dropout_mask(b, nh, tq, tk, causal):
    p, seed = 0.3, 2 ** 64 - 12345
    key_mask = np.random.default_rng(1).random((b, tk)) < 0.8
    for mask in (None, key_mask):
        masks = {name: _mask_seen_through_one_hot_values(fwd, b, nh, tq, tk, causal, p, seed, mask)
                 for name, fwd, _ in _attention_kernels()}
        for name, got in masks.items():
            np.testing.assert_array_equal(got, masks["numpy"], err_msg=f"{name}'s dropout mask, key_mask={mask is not None}")
        # the pattern is the hash's: visible positions kept where dropout_keep says so
        counters = np.arange(b * nh * tq * tk, dtype=np.uint64).reshape(b, nh, tq, tk)
        keep = A.dropout_keep(seed, counters, A.dropout_threshold(p))
        visible = np.ones((tq, tk), bool) if not causal else ~np.triu(np.ones((tq, tk), bool), k=tk - tq + 1)
        visible = visible & (True if mask is None else mask[:, None, None, :])
        np.testing.assert_array_equal(masks["numpy"], keep & visible)


def test_kept_fraction_is_one_minus_p_and_the_seed_decides():
    for name, fwd, _ in _attention_kernels():
        for p in (0.1, 0.5):
            kept = _mask_seen_through_one_hot_values(fwd, 2, 2, 128, 128, False, p, 7)
            n = kept.size
            # binomial: the kept fraction is within 5 standard deviations of 1 - p
            assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n), (name, p, kept.mean())
        a = _mask_seen_through_one_hot_values(fwd, 1, 1, 64, 64, False, 0.5, 7)
        b = _mask_seen_through_one_hot_values(fwd, 1, 1, 64, 64, False, 0.5, 8)
        assert (a != b).mean() > 0.3, f"{name}: seeds 7 and 8 give nearly the same mask"


def test_kept_probabilities_are_scaled_by_one_over_one_minus_p():
    # non-causal, q = k = 0: every probability is 1 / Tk, a kept one is 1 / (Tk (1 - p))
    for name, fwd, _ in _attention_kernels():
        tk, p = 32, 0.25
        q, k = np.zeros((1, 1, 4, tk), np.float32), np.zeros((1, 1, tk, tk), np.float32)
        v = np.eye(tk, dtype=np.float32)[None, None]
        out, _ = fwd(q, k, v, False, None, None, p, 3)
        kept = out[out != 0]
        np.testing.assert_allclose(kept, 1 / (tk * (1 - p)), rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", ["numba", "c"])
def test_kernel_backward_with_dropout_and_key_mask_matches_the_reference(name):
    kernels = {n: (f, b) for n, f, b in _attention_kernels()}
    if name not in kernels:
        pytest.skip(f"backend {name!r} is not available")
    fwd, bwd = kernels[name]
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 3, 70, 16)).astype(np.float32) for _ in range(3))
    key_mask = np.arange(70)[None, :] >= np.array([[0], [40]])  # row 1: 40 pads on the left
    args = dict(causal=True, scale=None, key_mask=key_mask, dropout_p=0.2, seed=99)
    want_out, want_cache = A.attention_forward.reference(q, k, v, **args)
    out, cache = fwd(q, k, v, **args)
    np.testing.assert_allclose(out, want_out, atol=2e-6)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    for got, want, what in zip(bwd(dout, cache), A.attention_backward.reference(dout, want_cache), "qkv"):
        np.testing.assert_allclose(got, want, atol=2e-5, err_msg=f"{name} d{what}")


# --- finite differences at a fixed seed ---------------------------------------------------------


def _numpy_dropout_attention(q, k, v, causal, p, seed, key_mask=None):
    """softmax(Q Kᵀ/√hs + masks) * keep / (1 - p) @ V with the mask of dropout_keep, in plain NumPy."""
    tq, tk = q.shape[2], k.shape[2]
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    visible = np.ones((tq, tk), bool)
    if causal:
        visible = ~np.triu(visible, k=tk - tq + 1)
    visible = visible & (True if key_mask is None else key_mask[:, None, None, :])
    s = np.where(visible, s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    prob = e / e.sum(-1, keepdims=True)
    counters = np.arange(prob.size, dtype=np.uint64).reshape(prob.shape)
    keep = A.dropout_keep(seed, counters, A.dropout_threshold(p))
    return (prob * np.where(keep, np.float32(1 / (1 - p)), 0.0)) @ v


@settings(max_examples=20, deadline=None)
@given(b=st.integers(1, 2), nh=st.integers(1, 2), t=st.integers(1, 6), hs=st.integers(1, 3),
       p=st.sampled_from([0.1, 0.5, 0.9]), seed=st.integers(0, 2 ** 64 - 1), causal=st.booleans())
@example(b=1, nh=1, t=1, hs=1, p=0.5, seed=0, causal=True)
def test_attention_dropout_matches_numpy_and_finite_differences(b, nh, t, hs, p, seed, causal):
    rng = np.random.default_rng(seed % 1000)
    q, k, v = (rng.normal(size=(b, nh, t, hs)) for _ in range(3))
    check_op(lambda *x: F.scaled_dot_product_attention(*x, dropout_p=p, is_causal=causal, rng=seed),
             lambda *a: _numpy_dropout_attention(*a, causal, p, seed), [q, k, v])


def test_attention_dropout_with_key_mask_matches_numpy_and_finite_differences():
    rng = np.random.default_rng(2)
    q, k, v = (rng.normal(size=(2, 2, 5, 3)) for _ in range(3))
    key_mask = np.array([[False, False, True, True, True], [True] * 5])
    attn_mask = key_mask[:, None, None, :]
    check_op(lambda *x: F.scaled_dot_product_attention(*x, attn_mask, 0.4, False, rng=11),
             lambda *a: _numpy_dropout_attention(*a, False, 0.4, 11, key_mask), [q, k, v])


def test_causal_self_attention_with_dropout_matches_the_composed_ops():
    rng = np.random.default_rng(3)
    B, T, nh, hs = 2, 5, 2, 3
    qkv = rng.normal(size=(B, T, 3 * nh * hs))

    def composed(x):
        q, k, v = (a.reshape(B, T, nh, hs).transpose(0, 2, 1, 3) for a in np.split(x, 3, axis=-1))
        y = _numpy_dropout_attention(q, k, v, True, 0.3, 5)
        return y.transpose(0, 2, 1, 3).reshape(B, T, nh * hs)
    check_op(lambda x: F.causal_self_attention(x, nh, 0.3, rng=5), composed, [qkv])


def test_dropout_p_zero_runs_the_plain_op():
    rng = np.random.default_rng(0)
    q, k, v = (Tensor(rng.standard_normal((1, 2, 6, 4)).astype(np.float32)) for _ in range(3))
    plain = F.scaled_dot_product_attention(q, k, v, is_causal=True).data
    np.testing.assert_array_equal(F.scaled_dot_product_attention(q, k, v, None, 0.0, True, rng=3).data, plain)
    _, cache = A.attention_forward(q.data, k.data, v.data, True)
    assert cache[7:] == (None, 0.0, 0)  # no mask, no dropout: the kernels take their plain loops


def test_attention_dropout_errors_name_the_argument():
    x = Tensor(np.ones((1, 1, 3, 2)))
    with pytest.raises(ValueError, match="dropout_p=0.5 needs rng="):
        F.scaled_dot_product_attention(x, x, x, dropout_p=0.5)
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\), got 1.0"):
        F.scaled_dot_product_attention(x, x, x, dropout_p=1.0)
    with pytest.raises(TypeError, match="rng must be an int seed"):
        F.causal_self_attention(Tensor(np.ones((1, 3, 6))), 1, 0.5, rng="seven")
    with pytest.raises(NotImplementedError, match=r"boolean key-padding mask of shape \(B, 1, 1, Tk\)"):
        F.scaled_dot_product_attention(x, x, x, attn_mask=np.zeros((3, 3)))
    with pytest.raises(NotImplementedError, match="enable_gqa"):
        F.scaled_dot_product_attention(x, x, x, enable_gqa=True)
    with pytest.raises(ValueError, match=r"key_mask has shape \(1, 2\), expected \(B, Tk\) = \(1, 3\)"):
        A.attention_forward(x.data, x.data, x.data, True, key_mask=np.ones((1, 2), bool))


# --- against torch ------------------------------------------------------------------------------


def test_scaled_dot_product_attention_signature_matches_torch():
    """torch's is a builtin without an introspectable signature: its docstring's first line has it."""
    import ast
    import inspect
    torch = pytest.importorskip("torch")
    doc = torch.nn.functional.scaled_dot_product_attention.__doc__
    header = doc[:doc.index(") -> Tensor") + 1]
    theirs = ast.parse(f"def {header}: pass").body[0].args
    defaults = [None] * (len(theirs.args) - len(theirs.defaults)) + [ast.literal_eval(d) for d in theirs.defaults]
    ours = inspect.signature(F.scaled_dot_product_attention).parameters
    positional = [(n, p.default) for n, p in ours.items() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert [n for n, _ in positional] == [a.arg for a in theirs.args]
    assert [d for _, d in positional][3:] == defaults[3:]  # query, key, value have no default
    extras = [n for n in ours if n not in {a.arg for a in theirs.args}]
    assert extras == ["rng"] and ours["rng"].kind == inspect.Parameter.KEYWORD_ONLY


def test_key_padding_mask_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    key_mask = np.array([[False, True, True, True, True], [False, False, False, True, True]])
    for causal in (False, True):
        # torch's is_causal cannot be combined with attn_mask: give it the causal part in the mask
        visible = key_mask[:, None, None, :] & (~np.triu(np.ones((5, 5), bool), k=1) if causal else True)
        want = torch.nn.functional.scaled_dot_product_attention(
            *(torch.tensor(a) for a in (q, k, v)), attn_mask=torch.tensor(visible)).numpy()
        got = F.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), key_mask[:, None, None, :],
                                             is_causal=causal).data
        rows = visible.any(-1)[:, :, :, None] & np.ones_like(got, bool)  # torch gives nan where none
        np.testing.assert_allclose(got[rows], want[rows], rtol=1e-10, atol=1e-12)
        assert (got[~rows] == 0).all()


# --- GPT's three dropouts -----------------------------------------------------------------------


def tokens(seed=0, shape=(3, 12)):
    return np.random.default_rng(seed).integers(0, TINY["vocab_size"], shape)


def test_config_pdrops_default_to_dropout_and_old_configs_load():
    c = GPTConfig(**TINY, dropout=0.2, attn_pdrop=0.0)
    assert (c.pdrop("embd"), c.pdrop("attn"), c.pdrop("resid")) == (0.2, 0.0, 0.2)
    saved = json.loads(json.dumps(c.to_dict()))
    assert GPTConfig(**saved) == c and saved["embd_pdrop"] is None
    old = {**TINY, "dropout": 0.1, "bias": True}  # a run's config.json from before the three fields
    assert GPTConfig(**old).pdrop("attn") == 0.1
    with pytest.raises(ValueError, match=r"GPTConfig.resid_pdrop must be in \[0, 1\), got 1.5"):
        GPTConfig(**TINY, resid_pdrop=1.5)


def test_gpt_dropouts_sit_at_gpt2s_three_places():
    model = GPT(GPTConfig(**TINY, embd_pdrop=0.1, attn_pdrop=0.2, resid_pdrop=0.3))
    ps = {name: m.p for name, m in model.named_modules() if type(m).__name__ == "Dropout"}
    want = {"transformer.drop": 0.1}
    for i in range(TINY["n_layer"]):
        want.update({f"transformer.h.{i}.attn.attn_dropout": 0.2, f"transformer.h.{i}.attn.resid_dropout": 0.3,
                     f"transformer.h.{i}.mlp.dropout": 0.3})
    assert ps == want


def test_gpt_with_zero_dropout_is_the_same_in_train_and_eval():
    model = GPT(GPTConfig(**TINY), seed=1)
    x, y = tokens(), tokens(1)
    train_logits, train_loss = model(x, y)
    train_loss.backward()
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model.eval()
    eval_logits, eval_loss = model(x, y)
    eval_loss.backward()
    np.testing.assert_array_equal(train_logits.data, eval_logits.data)
    assert float(train_loss.data) == float(eval_loss.data)
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(g, p.grad)


@pytest.mark.parametrize("where", ["embd", "attn", "resid"])
def test_gpt_dropout_is_seeded_in_train_mode_and_off_in_eval(where):
    config = GPTConfig(**TINY, dropout=0.0, **{f"{where}_pdrop": 0.3})
    x, y = tokens(), tokens(1)
    losses = [float(GPT(config, seed=s)(x, y)[1].data) for s in (5, 5, 6)]
    assert losses[0] == losses[1], "the same seed must give the same dropout masks and loss"
    plain = GPT(GPTConfig(**TINY), seed=5)
    dropped = GPT(config, seed=5)
    assert float(dropped(x, y)[1].data) != float(plain(x, y)[1].data)
    assert float(dropped(x, y)[1].data) != float(dropped(x, y)[1].data)  # a new mask every step
    dropped.eval()
    plain.eval()
    np.testing.assert_array_equal(dropped(x)[0].data, plain(x)[0].data)


def test_attn_pdrop_changes_only_the_attention():
    """With attn_pdrop alone, train mode differs from eval inside attention and nowhere else; the
    kept fraction of the probabilities is 1 - p."""
    model = GPT(GPTConfig(**TINY, dropout=0.0, attn_pdrop=0.5), seed=2)
    block = model.transformer.h[0]
    x = Tensor(np.random.default_rng(3).standard_normal((2, 16, 8)).astype(np.float32))
    with no_grad():
        assert np.array_equal(model.transformer.drop(x).data, x.data)
        train = block.attn(block.ln_1(x)).data, block.mlp(x).data
        model.eval()
        evals = block.attn(block.ln_1(x)).data, block.mlp(x).data
    assert not np.allclose(train[0], evals[0]), "attention must drop probabilities in train mode"
    np.testing.assert_array_equal(train[1], evals[1])  # the MLP has no dropout here
    # the same dropout as the op itself: the one-hot trick sees the kept fraction
    kept = _mask_seen_through_one_hot_values(A.attention_forward, 2, 2, 128, 128, True, 0.5, 1)
    visible = np.tril(np.ones((128, 128), bool))
    assert abs(kept[..., visible].mean() - 0.5) < 0.01


def test_resid_pdrop_zeroes_a_fraction_p_of_the_mlp_output():
    model = GPT(GPTConfig(**TINY, dropout=0.0, resid_pdrop=0.25), seed=0)
    x = Tensor(np.random.default_rng(0).standard_normal((8, 16, 8)).astype(np.float32))
    with no_grad():
        zeros = (model.transformer.h[1].mlp(x).data == 0).mean()
    assert abs(zeros - 0.25) < 5 * math.sqrt(0.25 * 0.75 / (8 * 16 * 8))


def test_hf_config_dropouts_load_and_save(tmp_path):
    from tinygpt.models.hf_gpt2 import config_from_hf, config_to_hf
    c = config_from_hf({"n_embd": 8, "n_head": 2, "n_layer": 1, "vocab_size": 11, "n_positions": 8,
                        "embd_pdrop": 0.05, "attn_pdrop": 0.2, "resid_pdrop": 0.15})
    assert (c.pdrop("embd"), c.pdrop("attn"), c.pdrop("resid"), c.dropout) == (0.05, 0.2, 0.15, 0.15)
    hf = config_to_hf(c)
    assert (hf["embd_pdrop"], hf["attn_pdrop"], hf["resid_pdrop"]) == (0.05, 0.2, 0.15)
    # a config.json without them means GPT2Config's defaults, 0.1 each
    c = config_from_hf({"n_embd": 8, "n_head": 2, "n_layer": 1, "vocab_size": 11, "n_positions": 8})
    assert (c.pdrop("embd"), c.pdrop("attn"), c.pdrop("resid")) == (0.1, 0.1, 0.1)


def test_hf_gpt2_has_its_dropouts_where_transformers_has_them(tmp_path):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                                        embd_pdrop=0.05, attn_pdrop=0.2, resid_pdrop=0.15)
    hf = transformers.GPT2LMHeadModel(hf_config)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    theirs = {name: m.p for name, m in hf.named_modules() if type(m).__name__ == "Dropout"}
    mine = {name: m.p for name, m in ours.named_modules() if type(m).__name__ == "Dropout"}
    assert mine == theirs
    ours.save_pretrained(tmp_path / "back")
    again = transformers.GPT2Config.from_pretrained(tmp_path / "back")
    assert (again.embd_pdrop, again.attn_pdrop, again.resid_pdrop) == (0.05, 0.2, 0.15)
    # eval: exactly HF's loss; train: the dropouts act, so the loss moves away from it
    import torch
    x = tokens(0, (2, 16)) % 50
    targets = np.concatenate([x[:, 1:], np.full((2, 1), -100)], axis=1)  # HF shifts labels inside
    hf.eval()
    with torch.no_grad():
        want = hf(torch.tensor(x), labels=torch.tensor(x)).loss.item()
    assert abs(float(ours.eval()(x, targets)[1].data) - want) < 1e-5
    assert abs(float(ours.train()(x, targets)[1].data) - want) > 1e-4
