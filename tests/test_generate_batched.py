"""Batched generation: left-padded prompts of different lengths give each row exactly what that
prompt gives alone (greedy on every backend, sampled with per-row seeds), eos stops a row,
repetition_penalty follows the CTRL rule, num_return_sequences repeats prompts, and (when
transformers is installed) greedy left-padded output equals GPT2LMHeadModel.generate."""

import numpy as np
import pytest

from tinygpt import backend
from tinygpt.generate import apply_repetition_penalty, generate, iter_tokens, left_pad
from tinygpt.models import GPT, GPTConfig
from tinygpt.ops.attention import attention_backward, attention_forward

PROMPTS = [[5], [7, 1, 3], [2, 9, 4, 4, 8, 1, 6]]  # lengths 1, 3, 7


def boosted_gpt(seed=0, vocab_size=30, block_size=32):
    """An untrained GPT with its embeddings scaled up: distinct logits, so greedy has no near-ties,
    and positions as loud as tokens, so a wrong position id changes the output."""
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2,
                          n_embd=16), seed=seed)
    model.transformer.wte.weight.data *= 40.0
    model.transformer.wpe.weight.data *= 40.0
    return model


def available_backends():
    names = []
    for name in backend.BACKENDS:
        try:
            with backend.use(name):
                names.append(name)
        except RuntimeError:
            pass
    return names


@pytest.mark.parametrize("name", available_backends())
@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_left_padded_batch_equals_one_by_one_greedy(name, use_cache):
    model = boosted_gpt()
    with backend.use(name):
        alone = [generate(model, np.array([p]), 20, temperature=0, use_cache=use_cache)[0, len(p):]
                 for p in PROMPTS]
        batched = generate(model, PROMPTS, 20, temperature=0, pad_token_id=0, use_cache=use_cache)
    assert batched.shape == (3, 7 + 20)
    for b, p in enumerate(PROMPTS):
        np.testing.assert_array_equal(batched[b, :7], [0] * (7 - len(p)) + p)
        np.testing.assert_array_equal(batched[b, 7:], alone[b], err_msg=f"row {b} on {name}")


def test_generate_left_padded_batch_equals_one_by_one_sampled_with_per_row_seeds():
    model = boosted_gpt(seed=1)
    model.transformer.wte.weight.data /= 10.0  # flatter: the draws matter
    seeds = [11, 12, 13]
    alone = [generate(model, np.array([p]), 20, temperature=1.0, top_k=10, seed=s)[0, len(p):]
             for p, s in zip(PROMPTS, seeds)]
    batched = generate(model, PROMPTS, 20, temperature=1.0, top_k=10, seed=seeds)
    for b in range(3):
        np.testing.assert_array_equal(batched[b, 7:], alone[b])


def test_generate_padding_token_value_does_not_change_the_continuation():
    model = boosted_gpt(seed=2)
    a = generate(model, PROMPTS, 10, temperature=0, pad_token_id=0)
    b = generate(model, PROMPTS, 10, temperature=0, pad_token_id=17)
    np.testing.assert_array_equal(a[:, 7:], b[:, 7:])


def test_attention_key_mask_hides_keys_like_dropping_them():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 2, 5, 4)).astype(np.float32) for _ in range(3))
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=bool)
    for name in available_backends():
        with backend.use(name):
            out, _ = attention_forward(q, k, v, True, key_mask=mask)
            kept, _ = attention_forward(q[:1, :, 2:], k[:1, :, 2:], v[:1, :, 2:], True)
            full, _ = attention_forward(q[1:], k[1:], v[1:], True)
        np.testing.assert_allclose(out[0, :, 2:], kept[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[1], full[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out[0, :, :2], 0.0)  # a pad query sees no key: 0, not nan


def test_attention_key_mask_backward_equals_dropping_the_hidden_keys():
    rng = np.random.default_rng(1)
    q, k, v, dout = (rng.standard_normal((1, 2, 6, 4)).astype(np.float32) for _ in range(4))
    mask = np.array([[0, 0, 0, 1, 1, 1]], dtype=bool)
    for name in available_backends():
        with backend.use(name):  # the masked cache goes back to the reference on every backend
            _, cache = attention_forward(q, k, v, True, key_mask=mask)
            dq, dk, dv = attention_backward(dout, cache)
            _, kept_cache = attention_forward(q[:, :, 3:], k[:, :, 3:], v[:, :, 3:], True)
            kq, kk, kv = attention_backward(dout[:, :, 3:], kept_cache)
        for full, kept in ((dq, kq), (dk, kk), (dv, kv)):
            np.testing.assert_allclose(full[:, :, 3:], kept, rtol=1e-4, atol=1e-5)
        for grad in (dq, dk, dv):  # pad queries see nothing, hidden keys are seen by no one
            np.testing.assert_array_equal(grad[:, :, :3], 0.0)


def test_generate_eos_stops_a_row_and_pads_it():
    model = boosted_gpt(seed=3)
    free = generate(model, PROMPTS, 20, temperature=0)
    row, step = 1, 4
    eos = int(free[row, 7 + step])  # the token row 1 emits at step 4
    first = [int(np.argmax(free[b, 7:] == eos)) if (free[b, 7:] == eos).any() else None for b in range(3)]
    out = generate(model, PROMPTS, 20, temperature=0, eos_token_id=eos, pad_token_id=29)
    assert out.shape == free.shape
    for b in range(3):  # the left padding differs (29, not 0): compare what comes after it
        if first[b] is None:
            np.testing.assert_array_equal(out[b, 7:], free[b, 7:])
        else:
            stop = 7 + first[b]
            np.testing.assert_array_equal(out[b, 7:stop + 1], free[b, 7:stop + 1])
            assert (out[b, stop + 1:] == 29).all()
    assert first[row] <= step


def test_iter_tokens_ends_once_every_row_has_met_eos():
    model = boosted_gpt(seed=3)
    free = generate(model, np.array([[4, 2]]), 20, temperature=0)
    eos = int(free[0, 2 + 3])
    steps = list(iter_tokens(model, np.array([[4, 2]]), 20, temperature=0, eos_token_id=eos))
    assert 1 <= len(steps) <= 4 and steps[-1][0] == eos


def test_apply_repetition_penalty_matches_the_ctrl_formula():
    logits = np.array([[2.0, -1.0, 0.5, -3.0, 1.0]], dtype=np.float32)
    tokens = np.array([[0, 1, 1, 4, 3]])
    mask = np.array([[1, 1, 1, 1, 0]], dtype=bool)  # token 3 is padding: not counted
    got = apply_repetition_penalty(logits, tokens, 2.0, mask)
    expected = np.array([[2.0 / 2, -1.0 * 2, 0.5, -3.0, 1.0 / 2]], dtype=np.float32)
    np.testing.assert_allclose(got, expected, rtol=0)


def test_generate_repetition_penalty_changes_one_greedy_step_as_the_formula_says():
    from tinygpt.models.gpt_inference import GPTDecoder
    model = boosted_gpt(seed=4)
    prompt = np.array([[3, 8, 8, 1]])
    logits = GPTDecoder(model).logits(prompt).astype(np.float64)[0]  # (V,)
    present = np.isin(np.arange(30), prompt)
    penalised = np.where(present, np.where(logits < 0, logits * 1.7, logits / 1.7), logits)
    got = generate(model, prompt, 1, temperature=0, repetition_penalty=1.7)[0, -1]
    assert got == int(np.argmax(penalised))
    huge = generate(model, prompt, 1, temperature=0, repetition_penalty=1e6)[0, -1]
    assert huge not in prompt  # penalised enough, no present token can win


def test_generate_num_return_sequences_shape_and_independence():
    model = boosted_gpt(seed=5)
    model.transformer.wte.weight.data /= 20.0  # flat: samples differ
    out = generate(model, PROMPTS, 15, temperature=1.0, seed=0, num_return_sequences=4)
    assert out.shape == (12, 7 + 15)
    for b, p in enumerate(PROMPTS):
        group = out[4 * b:4 * b + 4]
        assert (group[:, 7 - len(p):7] == p).all()
        assert len({tuple(r) for r in group[:, 7:]}) > 1  # each copy draws its own tokens
    greedy = generate(model, PROMPTS, 15, temperature=0, num_return_sequences=2)
    np.testing.assert_array_equal(greedy[0::2], greedy[1::2])  # same prompt, no draws: same row


def test_generate_rejects_bad_options_by_name():
    model = boosted_gpt()
    with pytest.raises(ValueError, match="repetition_penalty"):
        generate(model, PROMPTS, 2, repetition_penalty=0)
    with pytest.raises(ValueError, match="num_return_sequences"):
        generate(model, PROMPTS, 2, num_return_sequences=0)
    with pytest.raises(ValueError, match="left padding"):
        generate(model, np.array([[1, 2]]), 2, attention_mask=np.array([[1, 0]]))
    with pytest.raises(ValueError, match="block_size"):
        generate(model, PROMPTS, 40)
    with pytest.raises(ValueError, match="per-row seeds"):
        generate(model, PROMPTS, 2, seed=[1, 2])


def hf_folder(tmp_path):
    """A random-init GPT2LMHeadModel saved to tmp_path -> (the HF model, tinygpt's load of it)."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=101, n_positions=32, n_embd=32, n_layer=2,
                                     n_head=4, bos_token_id=100, eos_token_id=100)
    ref = transformers.GPT2LMHeadModel(config).eval()
    ref.save_pretrained(tmp_path, safe_serialization=True)
    return ref, GPT.from_pretrained(tmp_path)


def hf_generate(ref, idx, mask, **kw):
    import torch
    with torch.no_grad():
        return ref.generate(torch.from_numpy(idx), attention_mask=torch.from_numpy(mask),
                            do_sample=False, max_new_tokens=20, pad_token_id=0,
                            eos_token_id=None, **kw).numpy()


def test_generate_left_padded_greedy_matches_transformers(tmp_path):
    ref, model = hf_folder(tmp_path)
    idx, mask = left_pad(PROMPTS, pad_token_id=0)
    got = generate(model, idx, 20, temperature=0, attention_mask=mask, pad_token_id=0)
    np.testing.assert_array_equal(got, hf_generate(ref, idx, mask))


def test_generate_repetition_penalty_matches_transformers(tmp_path):
    ref, model = hf_folder(tmp_path)
    # no padding: Hugging Face counts pad ids as present tokens, tinygpt does not
    idx = np.array([[7, 1, 3, 3], [2, 9, 4, 8]])
    mask = np.ones_like(idx)
    got = generate(model, idx, 20, temperature=0, repetition_penalty=1.3)
    expected = hf_generate(ref, idx, mask, repetition_penalty=1.3)
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got, generate(model, idx, 20, temperature=0))  # the penalty mattered


def test_gpt_generate_method_passes_the_batch_options_through():
    from tinygpt.generate import generate
    from tinygpt.models import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8), seed=0)
    prompts = [[5], [7, 1, 3]]
    want = generate(model, prompts, 4, temperature=0.0, pad_token_id=0, num_return_sequences=2)
    got = model.generate(prompts, 4, temperature=0.0, pad_token_id=0, num_return_sequences=2)
    np.testing.assert_array_equal(got, want)
    assert got.shape == (4, 3 + 4)
