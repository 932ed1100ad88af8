"""Hugging Face GPT-2 model folders (config.json + model.safetensors, or sharded with
model.safetensors.index.json) <-> tinygpt's GPT, with NumPy alone. The parameter names are the
same on both sides (models/gpt.py), so loading is a config mapping plus a dtype widening.
The safetensors header is parsed here and each tensor read into place, as NumPy has no bfloat16.
Not here: tokenizers, pickle (pytorch_model.bin is refused, never unpickled), or the CLI.
"""

import json
import os
import struct
from pathlib import Path

import numpy as np

from tinygpt.checkpoint import write_atomically

EPS = 1e-5  # tinygpt's LayerNorm eps (nn/layers.py); GPTConfig has no field to pass another
GELUS = ("gelu_new", "gelu_pytorch_tanh")  # both are the tanh approximation tinygpt's GELU computes
_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16}


class HFModelError(ValueError):
    """A folder that is not a GPT-2 model tinygpt can load, or an option tinygpt does not implement."""


class EmptyRng(np.random.Generator):
    """An rng whose weight draws (uniform, normal, standard_normal) are np.empty: layers built
    with it allocate their weights without computing a random init that loading would overwrite."""

    def __init__(self, bit_generator=None):
        super().__init__(bit_generator or np.random.PCG64(0))

    def uniform(self, low=0.0, high=1.0, size=None):
        return np.empty(size, np.float32)

    def normal(self, loc=0.0, scale=1.0, size=None):
        return np.empty(size, np.float32)

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return np.empty(size, np.float32)

    # NOTE: random() is inherited and real: Dropout draws its masks with it, and spawn() gives
    # each Dropout its own stream, as it would in a freshly initialised GPT.


# ---------------------------------------------------------------------------------------------
# config.json <-> GPTConfig
# ---------------------------------------------------------------------------------------------


def config_from_hf(hf):
    """HF GPT2Config dict -> GPTConfig, or HFModelError naming each option tinygpt lacks."""
    from tinygpt.models.gpt import GPTConfig
    problems = []
    if hf.get("model_type", "gpt2") != "gpt2":
        problems.append(f"model_type {hf.get('model_type')!r} (only 'gpt2' has tinygpt's architecture)")
    act = hf.get("activation_function", "gelu_new")
    if act not in GELUS:
        problems.append(f"activation_function {act!r} (tinygpt's GELU is the tanh approximation: {GELUS})")
    n_embd = hf.get("n_embd", 768)
    if hf.get("n_inner") not in (None, 4 * n_embd):
        problems.append(f"n_inner {hf['n_inner']} (tinygpt's MLP is 4 * n_embd = {4 * n_embd} wide)")
    if hf.get("layer_norm_epsilon", EPS) != EPS:
        problems.append(f"layer_norm_epsilon {hf['layer_norm_epsilon']} (tinygpt's LayerNorm uses {EPS})")
    for key, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                      ("reorder_and_upcast_attn", False), ("add_cross_attention", False)):
        if hf.get(key, want) != want:
            problems.append(f"{key}={hf[key]} (tinygpt implements only {key}={want})")
    if problems:
        raise HFModelError("this GPT-2 config uses options tinygpt does not implement:\n  "
                           + "\n  ".join(problems))
    # GPT2Config's default for each dropout is 0.1; `dropout`, the knob of a run trained further
    # from this model (train --init-from), starts at resid_pdrop
    pdrops = {name: float(hf.get(name, 0.1)) for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop")}
    return GPTConfig(vocab_size=hf.get("vocab_size", 50257), block_size=hf.get("n_positions", 1024),
                     n_layer=hf.get("n_layer", 12), n_head=hf.get("n_head", 12), n_embd=n_embd,
                     dropout=pdrops["resid_pdrop"], bias=True, **pdrops)


def config_to_hf(config):
    """GPTConfig -> the config.json that transformers' GPT2LMHeadModel reads as the same model."""
    if not config.bias:
        raise HFModelError("GPTConfig.bias=False has no GPT-2 equivalent (GPT-2 always has biases)")
    eos = 50256 if config.vocab_size > 50256 else None  # GPT-2's <|endoftext|>, if it exists
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": config.vocab_size, "n_positions": config.block_size, "n_ctx": config.block_size,
            "n_embd": config.n_embd, "n_layer": config.n_layer, "n_head": config.n_head, "n_inner": None,
            "activation_function": "gelu_new", "layer_norm_epsilon": EPS,
            "resid_pdrop": config.pdrop("resid"), "embd_pdrop": config.pdrop("embd"),
            "attn_pdrop": config.pdrop("attn"),
            "scale_attn_weights": True, "tie_word_embeddings": True, "torch_dtype": "float32",
            "bos_token_id": eos, "eos_token_id": eos}


# ---------------------------------------------------------------------------------------------
# safetensors, read one tensor at a time
# ---------------------------------------------------------------------------------------------


def _read_float32(f, offset, dtype, out):
    """Read the tensor at file offset into the float32 array `out` (readinto: no intermediate
    bytes object). Float16 and bfloat16 go through a raw array of half the size; bfloat16 is the
    top half of a float32, so its bits shifted left by 16 are that float32 exactly.
    NOTE: safetensors is little-endian, as is every host NumPy's float32 means here (x86, ARM)."""
    raw = out if dtype == "F32" else np.empty(out.shape, _DTYPES[dtype])
    f.seek(offset)
    if f.readinto(memoryview(raw).cast("B")) != raw.nbytes:
        raise HFModelError(f"{f.name}: file ends inside a tensor; the download is truncated")
    if dtype == "BF16":
        bits = out.view(np.uint32)  # the same memory as out, as uint32
        bits[...] = raw
        bits <<= 16
    elif raw is not out:
        out[...] = raw  # float16 / float64 -> float32
    return out


def read_safetensors(path, into=None):
    """path -> yields (name, float32 array), one tensor at a time. into(name, shape) may give the
    array to read into (so a model's own allocation is filled, never a second copy) or None to
    skip the tensor; without it each tensor gets a new array. The format: an 8-byte little-endian
    header length, a JSON header {name: {dtype, shape, data_offsets}}, then the data."""
    path = Path(path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        for name, info in header.items():
            if info["dtype"] not in _DTYPES:
                raise HFModelError(f"{path}: tensor {name!r} has dtype {info['dtype']}; "
                                   f"expected one of {sorted(_DTYPES)}")
            shape = tuple(info["shape"])
            out = np.empty(shape, np.float32) if into is None else into(name, shape)
            if out is not None:
                yield name, _read_float32(f, 8 + n + info["data_offsets"][0], info["dtype"], out)


def _weight_files(folder):
    """folder -> the safetensors files holding its weights, or HFModelError saying what to do."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / s for s in shards]
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    if (folder / "pytorch_model.bin").is_file():
        raise HFModelError(f"{folder} holds only pytorch_model.bin, a pickle, which tinygpt never "
                           f"loads (unpickling can run code); convert it to safetensors: "
                           f"GPT2LMHeadModel.from_pretrained(path).save_pretrained(path) (safetensors "
                           f"is transformers' default format)")
    raise HFModelError(f"{folder} has no model.safetensors or model.safetensors.index.json")


# ---------------------------------------------------------------------------------------------
# folder <-> GPT
# ---------------------------------------------------------------------------------------------


def load_gpt2(path):
    """A local HF GPT-2 folder -> GPT (float32) in eval mode, each weight read straight into place."""
    from tinygpt.models.gpt import GPT
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise HFModelError(f"{folder} is not a Hugging Face model folder: no config.json")
    hf = json.loads((folder / "config.json").read_text())
    config = config_from_hf(hf)
    files = _weight_files(folder)
    model = GPT(config, seed=EmptyRng(), init=False)  # allocated, not filled: the files fill it
    own, loaded, head = dict(model.named_parameters()), set(), []

    def into(name, shape):
        """Where tensor `name` of a file goes: its Parameter's own (empty) array, or None."""
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            return None  # legacy causal-mask buffers: tinygpt's attention masks by itself
        key = name if name.startswith(("transformer.", "lm_head.")) else "transformer." + name
        if key == "lm_head.weight":
            head.append(np.empty(shape, np.float32))  # compared with wte once all files are read
            return head[-1]
        if key not in own:
            raise HFModelError(f"{folder}: tensor {name!r} has no place in tinygpt's GPT-2")
        if shape != own[key].shape:
            raise HFModelError(f"{folder}: {name} has shape {shape}, config.json implies {own[key].shape}")
        loaded.add(key)
        return own[key].data

    for file in files:
        for _ in read_safetensors(file, into):
            pass  # each tensor is read straight into its Parameter
    missing = sorted(set(own) - loaded)
    if missing:
        raise HFModelError(f"{folder}: the weight files lack {len(missing)} tensors, e.g. {missing[:5]}")
    if head and not np.array_equal(head[0], model.transformer.wte.weight.data):
        raise HFModelError(f"{folder}: lm_head.weight differs from wte.weight (tie_word_embeddings="
                           f"{hf.get('tie_word_embeddings', True)}); tinygpt's head is always tied")
    return model.eval()


def save_gpt2(model, path):
    """GPT -> path/config.json + path/model.safetensors, loadable by GPT2LMHeadModel.from_pretrained.
    Refuses a non-empty folder unless it is already a model folder (its HF files are replaced)."""
    from safetensors.numpy import save as safetensors_save
    folder = Path(path)
    if folder.exists():
        if not folder.is_dir():
            raise HFModelError(f"save_pretrained: {folder} exists and is not a directory")
        names = set(os.listdir(folder))
        if names and "config.json" not in names:
            raise HFModelError(f"save_pretrained: {folder} is not empty and not a model folder "
                               f"(no config.json); choose a new or empty directory")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: np.ascontiguousarray(p.data, dtype=np.float32)
               for name, p in model.named_parameters()}
    blob = safetensors_save(tensors, metadata={"format": "pt"})  # transformers checks "format"
    config = json.dumps(config_to_hf(model.config), indent=2) + "\n"
    index = folder / "model.safetensors.index.json"
    if index.exists():  # an older sharded save would shadow the new single file
        for shard in set(json.loads(index.read_text())["weight_map"].values()):
            (folder / shard).unlink(missing_ok=True)
        index.unlink()
    write_atomically(folder / "model.safetensors", blob)
    write_atomically(folder / "config.json", config.encode("utf-8"))
    return folder


TOKENIZER_FILES = ("tokenizer.json", "vocab.json")  # either marks a folder that ships its tokenizer


def load_model_from_path(path, load_tokenizer=None):
    """A HF GPT-2 folder -> (GPT, tokenizer or None), for the CLI's --model PATH.

    load_tokenizer(folder) reads the folder's tokenizer; it is passed in (the CLI passes the HF
    tokenizer reader from tinygpt.tokenizers) so that this module stays about model files.
    The tokenizer is None when no reader is given or the folder has no tokenizer files."""
    model = load_gpt2(path)
    folder = Path(path)
    if load_tokenizer is None or not any((folder / f).is_file() for f in TOKENIZER_FILES):
        return model, None
    return model, load_tokenizer(folder)
