"""tinygpt.generate: sampling semantics on hand-made distributions, KV-cached == uncached generation,
prompt cropping, streaming and stop strings, and clear errors for prompts that cannot be used."""

import numpy as np
import pytest

import tinygpt
from tinygpt.generate import (default_prompt, encode_prompt, generate, generate_text, iter_tokens,
                              next_token_probs, sample, stream_text)
from tinygpt.models import GPT, GPTConfig, LSTMConfig, LSTMLanguageModel, SequenceClassifier
from tinygpt.models.gpt_inference import GPTDecoder
from tinygpt.tokenizers import ByteLevelBPETokenizer, CharTokenizer, WordTokenizer

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 3


def tiny_gpt(vocab_size=30, block_size=8, seed=0):
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=16), seed=seed)


def tiny_lstm(vocab_size=30, seed=0):
    return LSTMLanguageModel(LSTMConfig(vocab_size=vocab_size, n_embd=8, hidden_size=16, n_layer=2), seed=seed)


def boosted(model, scale=40.0):
    """An untrained GPT's logits are nearly equal; scaling the tied embedding makes them distinct,
    so greedy decoding has no near-ties and sampling is not almost uniform."""
    model.transformer.wte.weight.data *= scale
    return model


# ----- the distribution the next token is drawn from ------------------------------------------

PROBS = np.array([[0.5, 0.3, 0.15, 0.05]])
LOGITS = np.log(PROBS)


def test_next_token_probs_temperature_one_is_softmax():
    np.testing.assert_allclose(next_token_probs(LOGITS), PROBS, rtol=1e-12)


def test_next_token_probs_temperature_scales_the_logits():
    expected = PROBS ** 2 / (PROBS ** 2).sum()  # softmax(logits / 0.5) = p^2 / sum p^2
    np.testing.assert_allclose(next_token_probs(LOGITS, temperature=0.5), expected, rtol=1e-12)


def test_next_token_probs_temperature_zero_is_greedy():
    np.testing.assert_array_equal(next_token_probs(LOGITS, temperature=0), [[1.0, 0.0, 0.0, 0.0]])


def test_next_token_probs_top_k_keeps_the_k_largest():
    probs = next_token_probs(LOGITS, top_k=2)
    np.testing.assert_allclose(probs, [[0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0]], rtol=1e-12)
    np.testing.assert_allclose(next_token_probs(LOGITS, top_k=10), PROBS, rtol=1e-12)  # k >= V: all


def test_next_token_probs_top_k_is_per_row():
    logits = np.log(np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]))
    assert (next_token_probs(logits, top_k=1) == [[0, 0, 1], [1, 0, 0]]).all()


def test_next_token_probs_top_p_keeps_the_smallest_set_reaching_p():
    # sorted 0.5, 0.3, 0.15, 0.05: mass above each = 0, 0.5, 0.8, 0.95
    np.testing.assert_allclose(next_token_probs(LOGITS, top_p=0.75), [[0.5 / 0.8, 0.3 / 0.8, 0, 0]], rtol=1e-12)
    np.testing.assert_allclose(next_token_probs(LOGITS, top_p=0.85),
                               [[0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]], rtol=1e-12)
    np.testing.assert_allclose(next_token_probs(LOGITS, top_p=1.0), PROBS, rtol=1e-12)


def test_next_token_probs_top_p_always_keeps_the_most_likely_token():
    assert (next_token_probs(LOGITS, top_p=0.01) == [[1.0, 0, 0, 0]]).all()


def test_next_token_probs_top_p_ignores_the_order_of_the_vocabulary():
    shuffled = LOGITS[:, [3, 1, 0, 2]]  # the same distribution, ids permuted
    np.testing.assert_allclose(next_token_probs(shuffled, top_p=0.75), [[0, 0.3 / 0.8, 0.5 / 0.8, 0]], rtol=1e-12)


def test_sample_follows_the_distribution_and_never_draws_a_zero():
    probs = np.repeat([[0.5, 0.0, 0.3, 0.2, 0.0]], 20000, axis=0)
    ids = sample(probs, np.random.default_rng(0))
    counts = np.bincount(ids, minlength=5) / len(ids)
    assert counts[1] == counts[4] == 0
    np.testing.assert_allclose(counts, probs[0], atol=0.015)


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=-1.0), "temperature"), (dict(top_k=0), "top_k"), (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"), (dict(max_new_tokens=-1), "max_new_tokens")])
def test_generate_rejects_bad_sampling_settings(kwargs, match):
    kwargs.setdefault("max_new_tokens", 3)
    with pytest.raises(ValueError, match=match):
        generate(tiny_gpt(), np.array([[1, 2]]), **kwargs)


# ----- generation from models -----------------------------------------------------------------


@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=1.0, seed=7),
                                      dict(temperature=0.8, top_k=5, top_p=0.9, seed=3)])
def test_generate_gpt_kv_cached_equals_uncached(sampling):
    # 3 prompt + 20 new tokens > block_size 8: the run also covers the cache refilling when full
    model = boosted(tiny_gpt())
    idx = np.array([[1, 2, 3], [4, 5, 6]])
    cached = generate(model, idx, 20, use_cache=True, **sampling)
    uncached = generate(model, idx, 20, use_cache=False, **sampling)
    np.testing.assert_array_equal(cached, uncached)
    assert cached.shape == (2, 23) and (cached[:, :3] == idx).all()


@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=1.0, seed=7)])
def test_generate_lstm_carried_state_equals_rereading_the_sequence(sampling):
    model = tiny_lstm()
    idx = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(generate(model, idx, 15, use_cache=True, **sampling),
                                  generate(model, idx, 15, use_cache=False, **sampling))


def test_generate_same_seed_gives_the_same_tokens_and_another_seed_differs():
    model = boosted(tiny_gpt())
    idx = np.array([[1, 2]])
    a, b = generate(model, idx, 30, seed=1), generate(model, idx, 30, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, generate(model, idx, 30, seed=2))


def test_generate_crops_a_prompt_longer_than_block_size():
    model = boosted(tiny_gpt(block_size=8))
    long_prompt = np.arange(20)[None] % 30  # 20 tokens; the model sees 8
    new_from_long = generate(model, long_prompt, 6, seed=0)[:, 20:]
    new_from_tail = generate(model, long_prompt[:, -8:], 6, seed=0)[:, 8:]
    np.testing.assert_array_equal(new_from_long, new_from_tail)


class ModuleOnlyGPT(GPT):
    """A subclass may change the forward, so generation runs it through its Modules, not GPTDecoder."""


@pytest.mark.parametrize("lean", [True, False])
def test_generate_with_cache_feeds_one_position_per_new_token(lean, monkeypatch):
    config = GPTConfig(vocab_size=30, block_size=16, n_layer=2, n_head=2, n_embd=16)
    model = GPT(config) if lean else ModuleOnlyGPT(config)
    fed = []
    if lean:  # GPTDecoder.logits(idx, kv_cache) is what a GPT runs on
        logits = GPTDecoder.logits
        monkeypatch.setattr(GPTDecoder, "logits", lambda self, idx, kv_cache=None:
                            fed.append(idx.shape[1]) or logits(self, idx, kv_cache))
    else:
        features = model.features
        model.features = lambda idx, kv_cache=None: fed.append(idx.shape[1]) or features(idx, kv_cache)
    generate(model, np.array([[1, 2, 3, 4, 5, 6]]), 12, seed=0)
    # the 6-token prompt once, then one token per step; at 16 cached the last block is re-read
    assert fed == [6] + [1] * 10 + [16]


def test_generate_restores_the_mode_and_never_leaves_gradients_off():
    model = tiny_gpt().train()
    tokens = iter_tokens(model, np.array([[1, 2]]), 5, seed=0)
    next(tokens)
    assert tinygpt.is_grad_enabled() and model.training  # a paused generator changes nothing
    list(tokens)
    assert model.training


@pytest.mark.parametrize("make", [tiny_gpt, tiny_lstm])
def test_model_generate_method_is_generate(make):
    model, idx = make(), np.array([[1, 2, 3]])
    np.testing.assert_array_equal(model.generate(idx, 5, top_k=3, seed=2), generate(model, idx, 5, top_k=3, seed=2))


def test_generate_needs_a_language_model():
    with pytest.raises(TypeError, match="SequenceClassifier"):
        generate(SequenceClassifier(tiny_gpt(), 2), np.array([[1, 2]]), 3)


# ----- text -----------------------------------------------------------------------------------


@pytest.fixture
def char_model():
    tokenizer = CharTokenizer.train(TEXT)
    return boosted(tiny_gpt(vocab_size=tokenizer.vocab_size, block_size=16)), tokenizer


def test_stream_text_pieces_join_to_generate_text(char_model):
    model, tokenizer = char_model
    pieces = list(stream_text(model, tokenizer, "the ", 40, seed=5))
    assert len(pieces) > 1
    assert "".join(pieces) == generate_text(model, tokenizer, "the ", 40, seed=5)


def test_stream_text_matches_decoding_the_generated_ids():
    tokenizer = ByteLevelBPETokenizer.train("我爱吃苹果，你爱吃草莓。" * 5 + TEXT, 300)
    model = boosted(tiny_gpt(vocab_size=tokenizer.vocab_size, block_size=32), scale=5.0)
    prompt_ids = tokenizer.encode("我爱")
    ids = generate(model, np.array([prompt_ids]), 25, seed=11)[0]
    assert generate_text(model, tokenizer, "我爱", 25, seed=11) == tokenizer.decode(ids[len(prompt_ids):].tolist())


def test_stop_string_ends_generation_right_before_it(char_model):
    model, tokenizer = char_model
    full = generate_text(model, tokenizer, "the ", 60, seed=5)
    stop = full[20:23]
    expected = full[:full.index(stop)]
    assert generate_text(model, tokenizer, "the ", 60, seed=5, stop=[stop]) == expected
    assert "".join(stream_text(model, tokenizer, "the ", 60, seed=5, stop=[stop, "@@@"])) == expected


def test_word_tokenizer_continuation_is_spaced_after_the_prompt():
    tokenizer = WordTokenizer.train(TEXT)
    model = tiny_gpt(vocab_size=tokenizer.vocab_size, block_size=8)
    assert generate_text(model, tokenizer, "the quick", 5, seed=0).startswith(" ")


def test_prompt_that_encodes_to_nothing_is_a_clear_error():
    tokenizer = WordTokenizer.train(TEXT)
    model = tiny_gpt(vocab_size=tokenizer.vocab_size)
    with pytest.raises(ValueError, match="encodes to no tokens"):
        stream_text(model, tokenizer, "   ", 5)  # raises at once, not at the first piece


def test_prompt_with_an_unknown_character_names_it(char_model):
    model, tokenizer = char_model
    with pytest.raises(ValueError, match=r"cannot be encoded.*'Z'"):
        encode_prompt(tokenizer, "the Zebra")


def test_default_prompt_is_a_newline_when_the_tokenizer_has_one():
    assert default_prompt(CharTokenizer.train(TEXT)) == "\n"
    assert default_prompt(WordTokenizer.train(TEXT)) == "the"  # words drop whitespace: the first word
