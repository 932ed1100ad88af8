"""bench/llmc.py: the files it writes for llm.c's CPU trainer, read back the way llm.c reads them.

The reader here is written from llm.c's own code (gpt2_build_from_checkpoint and
fill_in_parameter_sizes in train_gpt2.c, llmc/dataloader.h), not from bench/llmc.py. With a
checkout of llm.c in TINYGPT_BENCH_LLMC and a C compiler, one test also builds its trainer and
checks that it computes tinygpt's loss on the same weights and tokens.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench import llmc
from tinygpt.models import GPT, GPTConfig

TINY = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=32, vocab_size=200, dropout=0.0)


def read_llmc_checkpoint(path):
    """-> (header ints, {name: array}) as train_gpt2.c's gpt2_build_from_checkpoint lays them out."""
    raw = Path(path).read_bytes()
    header = np.frombuffer(raw[:256 * 4], np.int32)
    maxT, V, L, NH, C, Vp = (int(x) for x in header[2:8])
    shapes = [("wte", (Vp, C)), ("wpe", (maxT, C)), ("ln1w", (L, C)), ("ln1b", (L, C)),
              ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)), ("attprojw", (L, C, C)), ("attprojb", (L, C)),
              ("ln2w", (L, C)), ("ln2b", (L, C)), ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)),
              ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)), ("lnfw", (C,)), ("lnfb", (C,))]
    floats = np.frombuffer(raw[256 * 4:], np.float32)
    params, at = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        params[name] = floats[at:at + n].reshape(shape)
        at += n
    assert at == floats.size, f"{floats.size - at} floats left over after the 16 parameter tensors"
    return header, params


def test_checkpoint_has_llmc_header_and_every_weight_in_its_place(tmp_path):
    model = GPT(TINY, seed=3)
    llmc.write_checkpoint(tmp_path / "m.bin", model)
    header, p = read_llmc_checkpoint(tmp_path / "m.bin")
    assert list(header[:8]) == [20240326, 3, 32, 200, 2, 2, 16, 256]  # 200 padded to 256
    assert not header[8:].any()
    tr = model.transformer
    np.testing.assert_array_equal(p["wte"][:200], tr.wte.weight.data)
    assert not p["wte"][200:].any()  # the padding rows are zeros
    np.testing.assert_array_equal(p["wpe"], tr.wpe.weight.data)
    for layer, block in enumerate(tr.h):
        # llm.c's matrices are (out, in); tinygpt's Linear weights are (in, out)
        np.testing.assert_array_equal(p["qkvw"][layer], block.attn.c_attn.weight.data.T)
        np.testing.assert_array_equal(p["qkvb"][layer], block.attn.c_attn.bias.data)
        np.testing.assert_array_equal(p["attprojw"][layer], block.attn.c_proj.weight.data.T)
        np.testing.assert_array_equal(p["fcw"][layer], block.mlp.c_fc.weight.data.T)
        np.testing.assert_array_equal(p["fcprojw"][layer], block.mlp.c_proj.weight.data.T)
        np.testing.assert_array_equal(p["fcprojb"][layer], block.mlp.c_proj.bias.data)
        np.testing.assert_array_equal(p["ln2w"][layer], block.ln_2.weight.data)
    np.testing.assert_array_equal(p["lnfb"], tr.ln_f.bias.data)


def test_token_file_has_llmc_header_and_uint16_ids(tmp_path):
    ids = np.array([0, 1, 50256, 65535, 7])
    llmc.write_tokens(tmp_path / "t.bin", ids)
    raw = (tmp_path / "t.bin").read_bytes()
    header = np.frombuffer(raw[:1024], np.int32)
    assert list(header[:3]) == [20240520, 1, 5] and not header[3:].any()
    np.testing.assert_array_equal(np.frombuffer(raw[1024:], np.uint16), ids)
    with pytest.raises(ValueError, match="uint16 ids; got ids from 0 to 65536"):
        llmc.write_tokens(tmp_path / "u.bin", [0, 65536])


def test_build_refuses_a_train_gpt2_c_it_was_not_written_for(tmp_path):
    fake = tmp_path / "llm.c"
    (fake / "llmc").mkdir(parents=True)
    (fake / "train_gpt2.c").write_text("int main() { int T = 128; }\n")
    with pytest.raises(RuntimeError, match=r"has 0 copies of 'int T = 64;', expected one"):
        llmc.build(fake, tmp_path / "build", 64, 3)
    with pytest.raises(FileNotFoundError, match="expected a checkout of karpathy/llm.c"):
        llmc.build(tmp_path / "nowhere", tmp_path / "build", 64, 3)


@pytest.mark.skipif(not os.environ.get("TINYGPT_BENCH_LLMC") or shutil.which(os.environ.get("CC", "cc")) is None,
                    reason="needs a checkout of llm.c in TINYGPT_BENCH_LLMC and a C compiler")
def test_llmc_trainer_computes_tinygpts_loss_on_the_same_weights(tmp_path):
    """llm.c reads the header for its config, so a tiny GPT stands in for GPT-2 124M."""
    T = 16
    model = GPT(TINY, seed=5)
    executable, _, _ = llmc.build(os.environ["TINYGPT_BENCH_LLMC"], tmp_path / "build", T, 1)
    val = llmc.lay_out_run_dir(tmp_path / "run", model, T, steps=1)
    theirs, steps = llmc.run_llmc(executable, tmp_path / "run", threads=1, timeout=300)
    assert [s for s, _, _ in steps] == [0, 1]
    assert theirs == pytest.approx(llmc.tinygpt_val_loss(model, val, T), abs=1e-4)
