"""Hugging Face GPT-2 folders <-> tinygpt's GPT, against transformers' GPT2LMHeadModel as the oracle:
random-init small models saved by transformers load with the same logits, loss, gradients and
greedy tokens; tinygpt's saves load in transformers with the same logits; unsupported configs refuse."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tinygpt.models import GPT, GPTConfig  # noqa: E402
from tinygpt.models.hf_gpt2 import HFModelError, read_safetensors  # noqa: E402

torch.set_num_threads(1)


def hf_model(seed=0, **kw):
    """A random-init GPT2LMHeadModel in eval mode; kw override a small default shape."""
    torch.manual_seed(seed)
    args = dict(vocab_size=101, n_positions=32, n_embd=32, n_layer=2, n_head=4)
    args.update(kw)
    args.update(bos_token_id=args["vocab_size"] - 1, eos_token_id=args["vocab_size"] - 1)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**args)).eval()


def tokens(vocab, shape, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, shape)


def hf_logits(model, idx):
    with torch.no_grad():
        return model(torch.from_numpy(idx)).logits.float().numpy()


SHAPES = [dict(), dict(vocab_size=50, n_positions=64, n_embd=48, n_layer=3, n_head=3),
          dict(vocab_size=130, n_embd=16, n_layer=1, n_head=1)]


@pytest.mark.parametrize("shape", SHAPES, ids=["2x4", "3x3_v50", "1x1_v130"])
def test_from_pretrained_logits_loss_and_grads_match_transformers(tmp_path, shape):
    ref = hf_model(**shape)
    ref.save_pretrained(tmp_path, safe_serialization=True)
    model = GPT.from_pretrained(tmp_path)
    assert model.config.block_size == ref.config.n_positions
    idx = tokens(ref.config.vocab_size, (2, 9))  # shorter than n_positions

    out = ref(torch.from_numpy(idx), labels=torch.from_numpy(idx))  # HF shifts labels itself
    _, loss = model(idx[:, :-1], targets=idx[:, 1:])  # the same (input, next-token) pairs
    full, _ = model(idx)
    np.testing.assert_allclose(full.data, out.logits.detach().numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(float(loss.data), out.loss.item(), rtol=1e-5)

    w = np.random.default_rng(2).standard_normal((2, 9, ref.config.vocab_size)).astype(np.float32)
    ref.zero_grad()
    ref_logits = ref(torch.from_numpy(idx)).logits
    (ref_logits * torch.from_numpy(w)).sum().backward()
    model.zero_grad()
    logits, _ = model(idx)
    (logits * w).sum().backward()
    ref_grads = dict(ref.named_parameters())
    for name, param in model.named_parameters():
        g = ref_grads[name].grad.numpy()
        np.testing.assert_allclose(param.grad, g, rtol=1e-5, atol=1e-5 * np.abs(g).max(),
                                   err_msg=f"gradient of {name}")


def test_from_pretrained_greedy_generation_matches_transformers(tmp_path):
    ref = hf_model(n_positions=64)
    ref.save_pretrained(tmp_path, safe_serialization=True)
    model = GPT.from_pretrained(tmp_path)
    prompt = tokens(101, (1, 5))
    with torch.no_grad():
        want = ref.generate(torch.from_numpy(prompt), max_new_tokens=50, min_new_tokens=50,
                            do_sample=False, pad_token_id=0).numpy()
    got = model.generate(prompt, 50, temperature=0)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_from_pretrained_widens_half_precision_exactly(tmp_path, dtype):
    ref = hf_model().to(getattr(torch, dtype))
    ref.save_pretrained(tmp_path, safe_serialization=True)
    model = GPT.from_pretrained(tmp_path)
    for name, param in ref.named_parameters():
        if name == "lm_head.weight":
            continue
        assert dict(model.named_parameters())[name].dtype == np.float32
        np.testing.assert_array_equal(dict(model.named_parameters())[name].data,
                                      param.detach().float().numpy(), err_msg=name)
    idx = tokens(101, (1, 7))
    np.testing.assert_allclose(model(idx)[0].data, hf_logits(ref.float(), idx), atol=1e-5, rtol=0)


def test_from_pretrained_reads_sharded_folders(tmp_path):
    ref = hf_model(n_embd=64, n_layer=3)
    ref.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="60KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    idx = tokens(101, (2, 6))
    np.testing.assert_allclose(GPT.from_pretrained(tmp_path)(idx)[0].data, hf_logits(ref, idx),
                               atol=1e-5, rtol=0)


def test_from_pretrained_accepts_unprefixed_keys_and_legacy_mask_buffers(tmp_path):
    from safetensors.numpy import save_file
    ref = hf_model()
    ref.save_pretrained(tmp_path, safe_serialization=True)
    state = dict(read_safetensors(tmp_path / "model.safetensors"))
    legacy = {k.removeprefix("transformer."): v for k, v in state.items()}
    legacy["h.0.attn.bias"] = np.tril(np.ones((1, 1, 32, 32), np.float32))
    legacy["h.0.attn.masked_bias"] = np.array(-1e4, np.float32)
    legacy["lm_head.weight"] = state["transformer.wte.weight"]  # tied, saved anyway
    save_file(legacy, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    idx = tokens(101, (1, 8))
    np.testing.assert_allclose(GPT.from_pretrained(tmp_path)(idx)[0].data, hf_logits(ref, idx),
                               atol=1e-5, rtol=0)


def test_save_pretrained_loads_in_transformers_with_same_logits(tmp_path):
    model = GPT(GPTConfig(vocab_size=77, block_size=24, n_layer=2, n_head=2, n_embd=16), seed=3)
    model.save_pretrained(tmp_path / "out")
    ref = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "out").eval()
    idx = tokens(77, (2, 10))
    np.testing.assert_allclose(hf_logits(ref, idx), model.eval()(idx)[0].data, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path / "out")  # a model folder may be replaced


def test_save_pretrained_refuses_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(HFModelError, match="not empty and not a model folder"):
        model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("option, message", [
    (dict(activation_function="relu"), "activation_function 'relu'"),
    (dict(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx=True"),
    (dict(reorder_and_upcast_attn=True), "reorder_and_upcast_attn=True"),
    (dict(layer_norm_epsilon=1e-6), "layer_norm_epsilon 1e-06"),
    (dict(n_inner=40), "n_inner 40"),
])
def test_from_pretrained_refuses_unsupported_configs(tmp_path, option, message):
    hf_model(**option).save_pretrained(tmp_path, safe_serialization=True)
    with pytest.raises(HFModelError, match=message):
        GPT.from_pretrained(tmp_path)


def test_from_pretrained_refuses_an_untied_lm_head(tmp_path):
    ref = hf_model(tie_word_embeddings=False)
    with torch.no_grad():
        ref.lm_head.weight.normal_()
    ref.save_pretrained(tmp_path, safe_serialization=True)
    with pytest.raises(HFModelError, match="lm_head.weight differs"):
        GPT.from_pretrained(tmp_path)


def test_from_pretrained_refuses_pickle_only_folders(tmp_path):
    ref = hf_model()
    ref.config.save_pretrained(tmp_path)
    torch.save(ref.state_dict(), tmp_path / "pytorch_model.bin")  # what older hub folders hold
    with pytest.raises(HFModelError, match="convert it to safetensors"):
        GPT.from_pretrained(tmp_path)
    json.loads((tmp_path / "config.json").read_text())  # the folder is otherwise a model folder


def test_load_model_from_path_returns_the_tokenizer_only_when_the_folder_has_one(tmp_path):
    from tinygpt.models.hf_gpt2 import load_model_from_path
    hf_model().save_pretrained(tmp_path, safe_serialization=True)
    seen = []
    model, tok = load_model_from_path(tmp_path, load_tokenizer=seen.append)
    assert isinstance(model, GPT) and tok is None and seen == []
    (tmp_path / "vocab.json").write_text("{}")
    model, tok = load_model_from_path(tmp_path, load_tokenizer=lambda folder: ("tok", folder))
    assert tok == ("tok", tmp_path)
    assert load_model_from_path(tmp_path)[1] is None


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_from_pretrained_peak_memory_is_near_one_copy(tmp_path, dtype):
    import tracemalloc  # NumPy reports its array allocations to tracemalloc
    ref = hf_model(vocab_size=4000, n_positions=256, n_embd=256, n_layer=4, n_head=4)
    ref.to(getattr(torch, dtype)).save_pretrained(tmp_path, safe_serialization=True)
    GPT.from_pretrained(tmp_path)  # warm up imports and caches outside the measurement
    tracemalloc.start()
    try:
        model = GPT.from_pretrained(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    weights = sum(p.data.nbytes for p in model.parameters())
    # one copy, plus one tensor's raw bfloat16; holding the files' arrays beside the model would be ~2x
    assert peak < 1.2 * weights, f"peak {peak / 2**20:.1f} MiB for {weights / 2**20:.1f} MiB of weights"


def test_from_pretrained_gives_each_dropout_its_own_mask_stream(tmp_path):
    from tinygpt.nn import Dropout
    hf_model().save_pretrained(tmp_path, safe_serialization=True)
    rngs = [m.rng for m in GPT.from_pretrained(tmp_path).modules() if isinstance(m, Dropout)]
    draws = [tuple(rng.random(4)) for rng in rngs]
    assert len(rngs) > 2 and len(set(draws)) == len(draws)  # fine-tuning with dropout needs real masks


def test_save_pretrained_over_a_sharded_folder_replaces_its_shards(tmp_path):
    hf_model(n_embd=64).save_pretrained(tmp_path, safe_serialization=True, max_shard_size="60KB")
    (tmp_path / "README.md").write_text("kept")
    model = GPT(GPTConfig(vocab_size=101, block_size=32, n_layer=2, n_head=4, n_embd=32), seed=1)
    model.save_pretrained(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())  # transformers' generation_config.json stays
    assert names == ["README.md", "config.json", "generation_config.json", "model.safetensors"]
    idx = tokens(101, (1, 8))
    ref = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    np.testing.assert_allclose(hf_logits(ref, idx), model.eval()(idx)[0].data, atol=1e-5, rtol=0)
