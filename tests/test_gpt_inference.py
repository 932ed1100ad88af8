"""GPTDecoder (models/gpt_inference.py) against the oracle GPT.forward: equal logits for a prompt
read at once, for single tokens through the KV cache and without a cache, on every backend, with
and without biases, batch 1 and more; and greedy generation equal on the lean path, the Module
path and without a cache."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tinygpt import backend, no_grad
from tinygpt.generate import GPTContext, generate, inference
from tinygpt.models import GPT, GPTConfig
from tinygpt.models.gpt_inference import GPTDecoder

ATOL = 1e-5  # float32, times the largest |logit|: the two paths may sum in different orders


@pytest.fixture(params=backend.BACKENDS)
def backend_name(request):
    """Each backend in turn for the test's body, or a skip saying why it is not available."""
    available, why = backend.availability()[request.param]
    if not available:
        pytest.skip(f"backend {request.param!r} is not available: {why}")
    with backend.use(request.param):
        yield request.param


def make_gpt(bias=True, n_layer=2, n_head=2, n_embd=16, block_size=12, vocab_size=29, dropout=0.1,
             seed=0):
    """An eval-mode GPT whose weights are large enough for the logits to differ by more than rounding."""
    config = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                       n_embd=n_embd, dropout=dropout, bias=bias)
    model = GPT(config, seed=seed).eval()  # eval: dropout is the identity the decoder assumes
    rng = np.random.default_rng(seed)
    for _, p in model.named_parameters():  # biases and gains away from 0 and 1 so every term counts
        p.data[...] = rng.normal(0.0, 0.3, p.shape)
    return model


def assert_logits_close(got, want, what):
    atol = ATOL * max(1.0, float(np.abs(want).max()))
    diff = float(np.abs(got - want).max())
    assert got.shape == want.shape and diff <= atol, \
        (f"{what}: GPTDecoder logits {got.shape} vs GPT.forward {want.shape}, max difference "
         f"{diff:.3g} > {atol:.3g}; first values {got.ravel()[:4]} vs {want.ravel()[:4]}")


def check_against_forward(model, idx, prefill, what):
    """Feed idx[:, :prefill] at once, then one token per call; every logit row must be forward's."""
    with no_grad():
        want = model(idx)[0].data  # (B, T, V): the oracle, every position
        decoder, cache = GPTDecoder(model), model.make_kv_cache(idx.shape[0])
        assert_logits_close(decoder.logits(idx[:, :prefill], cache), want[:, prefill - 1],
                            f"{what}, prefill of {prefill}")
        for t in range(prefill, idx.shape[1]):
            assert_logits_close(decoder.logits(idx[:, t:t + 1], cache), want[:, t],
                                f"{what}, cached token {t}")
            assert_logits_close(decoder.logits(idx[:, :t + 1]), want[:, t], f"{what}, uncached {t + 1}")
        assert cache.length == idx.shape[1]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_gpt_decoder_logits_equal_forward(backend_name, bias, batch):
    model = make_gpt(bias=bias)
    idx = np.random.default_rng(1).integers(0, 29, (batch, 12))  # a full block
    check_against_forward(model, idx, 5, f"{backend_name}, bias={bias}, B={batch}")


@given(n_layer=st.integers(1, 2), n_head=st.integers(1, 3), head_size=st.sampled_from([1, 4, 7]),
       batch=st.integers(1, 3), length=st.integers(1, 9), data=st.data(), bias=st.booleans())
@example(n_layer=1, n_head=1, head_size=4, batch=1, length=1, data=None, bias=True)  # one token
def test_gpt_decoder_logits_equal_forward_for_any_shape(n_layer, n_head, head_size, batch, length,
                                                        data, bias):
    prefill = 1 if data is None else data.draw(st.integers(1, length), label="prefill")
    model = make_gpt(bias, n_layer, n_head, n_head * head_size, block_size=9, seed=n_layer + length)
    idx = np.random.default_rng(length).integers(0, 29, (batch, length))
    check_against_forward(model, idx, prefill, f"{backend.get_backend()}, {model.config}")


def test_gpt_decoder_rejects_more_tokens_than_block_size():
    model = make_gpt(block_size=4)
    decoder, cache = GPTDecoder(model), model.make_kv_cache(1)
    decoder.logits(np.array([[1, 2, 3]]), cache)
    with pytest.raises(ValueError, match="exceeds block_size 4"):
        decoder.logits(np.array([[4, 5]]), cache)
    with pytest.raises(ValueError, match="out of range"):  # the embedding's own check
        decoder.logits(np.array([[29]]))


def greedy(model, idx, new_tokens, use_cache, lean):
    """Greedy decoding through a GPTContext, as iter_tokens drives it: idx (B, T) -> (B, T + new)."""
    tokens, n_new = idx, idx.shape[1]
    context = GPTContext(model, idx.shape[0], use_cache, lean=lean)
    assert (context.decoder is not None) == lean
    for _ in range(new_tokens):
        with inference(model):
            next_ids = context.next_logits(tokens, n_new).argmax(axis=-1)
        tokens, n_new = np.concatenate([tokens, next_ids[:, None]], axis=1), 1
    return tokens


def test_greedy_tokens_equal_on_lean_module_and_uncached_paths(backend_name):
    # prompt 3 + 15 new > block_size 12: the cache also fills and restarts from the last block
    model = make_gpt()
    idx = np.array([[1, 2, 3], [4, 5, 6]])
    lean = greedy(model, idx, 15, use_cache=True, lean=True)
    np.testing.assert_array_equal(lean, greedy(model, idx, 15, use_cache=True, lean=False))
    np.testing.assert_array_equal(lean, greedy(model, idx, 15, use_cache=False, lean=True))
    np.testing.assert_array_equal(lean, greedy(model, idx, 15, use_cache=False, lean=False))
    np.testing.assert_array_equal(lean, generate(model, idx, 15, temperature=0))


def test_gpt_context_uses_the_module_path_when_training_with_gradients(monkeypatch):
    model = make_gpt(dropout=0.0).train()
    context = GPTContext(model, 1, use_cache=False)
    # the decoder must not run: a forward in training mode with gradients belongs to the Modules
    monkeypatch.setattr(GPTDecoder, "logits", None)
    got = context.next_logits(np.array([[1, 2, 3]]), 3)
    with no_grad():
        assert_logits_close(got, model.eval()(np.array([[1, 2, 3]]))[0].data[:, -1], "train mode")
