"""`tinygpt generate/evaluate --model PATH` and `tinygpt export`, through the real command
(`python -m tinygpt` in a subprocess) on a tiny random-init Hugging Face GPT-2 folder made here.
With transformers installed the folder is written by transformers and its tokenizer trained by
Hugging Face `tokenizers` (the outside oracle); without it, by tinygpt's own save_pretrained."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinygpt.cli import main
from tinygpt.generate import generate_text
from tinygpt.models import GPT, GPTConfig
from tinygpt.tokenizers import ByteLevelBPETokenizer, GPT2_SPLIT_PATTERN, GPT2Tokenizer
from tinygpt.train import load_run

TEXT = "".join(f"line {i}: to be, or not to be, that is the question.\n" for i in range(60))
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--eval-iters", "2", "--steps", "3", "--eval-interval", "3", "--sample-tokens", "5"]


def have_transformers():
    try:
        import tokenizers  # noqa: F401
        import transformers  # noqa: F401
        return True
    except ImportError:
        return False


def tinygpt_cmd(*argv):
    """python -m tinygpt ARGV -> CompletedProcess (the worktree's tinygpt, as the tests import it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "tinygpt", *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny GPT-2 folder: config.json + model.safetensors + tokenizer files."""
    root = tmp_path_factory.mktemp("hf")
    folder = root / "gpt2-tiny"
    if have_transformers():
        import torch
        from tokenizers import ByteLevelBPETokenizer as HFByteLevelBPE
        from transformers import GPT2Config, GPT2LMHeadModel
        (root / "text.txt").write_text(TEXT, encoding="utf-8")
        hf_tok = HFByteLevelBPE()
        hf_tok.train([str(root / "text.txt")], vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"],
                     show_progress=False)
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=32,
                                   vocab_size=hf_tok.get_vocab_size(), bos_token_id=None,
                                   eos_token_id=None)).save_pretrained(folder)  # generate never stops early
        hf_tok.save(str(folder / "tokenizer.json"))
    else:
        bpe = ByteLevelBPETokenizer.train(TEXT, 300, pattern=GPT2_SPLIT_PATTERN)
        tok = GPT2Tokenizer.from_byte_bpe(bpe)
        GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)).save_pretrained(folder)
        tok.save_pretrained(folder)
    return folder


# ----- generate --model ---------------------------------------------------------------------------


def test_generate_model_greedy_matches_the_library(hf_folder):
    result = tinygpt_cmd("generate", "--model", hf_folder, "--prompt", "to be", "--temperature", "0",
                         "--max-new-tokens", "20", "--no-stream")
    assert result.returncode == 0, result.stderr
    model, tok = GPT.from_pretrained(hf_folder), GPT2Tokenizer.from_pretrained(hf_folder)
    expected = "to be" + generate_text(model, tok, "to be", 20, temperature=0)
    assert result.stdout == expected + "\n"


def test_generate_model_greedy_matches_transformers(hf_folder):
    pytest.importorskip("transformers")
    import torch
    from tokenizers import Tokenizer
    from transformers import GPT2LMHeadModel
    hf_tok = Tokenizer.from_file(str(hf_folder / "tokenizer.json"))
    ids = torch.tensor([hf_tok.encode("to be").ids])
    out = GPT2LMHeadModel.from_pretrained(hf_folder).generate(ids, max_new_tokens=20, do_sample=False,
                                                              pad_token_id=0)
    expected = hf_tok.decode(out[0].tolist())
    result = tinygpt_cmd("generate", "--model", hf_folder, "--prompt", "to be", "--temperature", "0",
                         "--max-new-tokens", "20", "--no-stream")
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected + "\n"


def test_generate_model_and_run_are_exclusive(hf_folder, tmp_path):
    both = tinygpt_cmd("generate", "--model", hf_folder, "--run", tmp_path)
    neither = tinygpt_cmd("generate")
    for result, word in ((both, "both"), (neither, "neither")):
        assert result.returncode != 0
        assert result.stderr.startswith("tinygpt: error: ") and "exactly one" in result.stderr and word in result.stderr


def test_generate_model_without_tokenizer_says_so(hf_folder, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((hf_folder / name).read_bytes())
    result = tinygpt_cmd("generate", "--model", bare, "--prompt", "to")
    assert result.returncode == 1
    assert "has no tokenizer" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# ----- evaluate --model ---------------------------------------------------------------------------


def test_evaluate_model_loss_matches_windows_scored_directly(hf_folder, tmp_path):
    data = tmp_path / "val.txt"
    data.write_text(TEXT[:1500], encoding="utf-8")
    result = tinygpt_cmd("evaluate", "--model", hf_folder, "--data", data)
    assert result.returncode == 0, result.stderr
    loss = float(result.stdout.split("val loss ")[1].split()[0])
    T = 32
    if have_transformers():  # transformers' own loss over the same consecutive windows
        import torch
        from tokenizers import Tokenizer
        from transformers import GPT2LMHeadModel
        ids = Tokenizer.from_file(str(hf_folder / "tokenizer.json")).encode(TEXT[:1500]).ids
        hf = GPT2LMHeadModel.from_pretrained(hf_folder).eval()
        n = (len(ids) - 1) // T
        x = torch.tensor(ids[:n * T]).reshape(n, T)
        y = torch.tensor(ids[1:n * T + 1]).reshape(n, T)
        with torch.no_grad():
            logits = hf(x).logits  # (n, T, V)
        expected = torch.nn.functional.cross_entropy(logits.reshape(n * T, -1), y.reshape(-1)).item()
    else:  # the library's forward on the same windows
        model, tok = GPT.from_pretrained(hf_folder), GPT2Tokenizer.from_pretrained(hf_folder)
        ids = np.array(tok.encode(TEXT[:1500]))
        n = (len(ids) - 1) // T
        x = ids[:n * T].reshape(n, T)
        y = ids[1:n * T + 1].reshape(n, T)
        expected = float(model(x, y)[1].data)
    assert abs(loss - expected) < 1e-3, (loss, expected)
    assert f"{n:,} windows of {T} tokens" in result.stdout and "perplexity" in result.stdout


def test_evaluate_model_needs_data(hf_folder):
    result = tinygpt_cmd("evaluate", "--model", hf_folder)
    assert result.returncode != 0 and "--data" in result.stderr and result.stderr.startswith("tinygpt: error: ")


# ----- export -------------------------------------------------------------------------------------


def train_run(root, *flags):
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    tiny = TINY if "lstm" not in flags else TINY[4:]  # --n-layer/--n-head shape a GPT only
    assert main(["train", "--data", str(root / "text.txt"), "--out-dir", str(root / "run"), *tiny, *flags]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def gpt2_bpe_run(tmp_path_factory):
    """A bpe GPT run trained with GPT-2's split (--bpe-pattern gpt2), so that it has a GPT-2 equivalent."""
    return train_run(tmp_path_factory.mktemp("bpe"), "--tokenizer", "bpe", "--vocab-size", "280",
                     "--bpe-pattern", "gpt2")


def test_bpe_pattern_gpt2_trains_with_gpt2_split_and_records_it(gpt2_bpe_run):
    run = load_run(gpt2_bpe_run)
    assert run.tokenizer.pattern == GPT2_SPLIT_PATTERN
    assert run.config["train"]["bpe_pattern"] == "gpt2"
    # the same merges as training the tokenizer directly with that pattern
    assert run.tokenizer.merges == ByteLevelBPETokenizer.train(TEXT, 280, pattern=GPT2_SPLIT_PATTERN).merges


# English, Chinese, emoji, code, contractions, digits and whitespace runs: text the exported
# tokenizer.json must split and merge exactly as Hugging Face does
MIXED = ["line 7: to be, or not", "We'll see: it's 12345 o'clock!!  \n\n  ",
         "中文分词测试，你好世界。", "emoji 🙂🚀 and ZWJ 👩‍💻", "def f(x):\n\treturn x**2  # 二次\n",
         "Ünïcödé naïve café — “quotes” …"]


def test_export_of_a_gpt2_pattern_run_encodes_like_hugging_face(gpt2_bpe_run, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    out = tmp_path / "exported"
    assert main(["export", "--run", str(gpt2_bpe_run), "--to", str(out)]) == 0
    ours = load_run(gpt2_bpe_run).tokenizer
    from_json = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    from_files = tokenizers.ByteLevelBPETokenizer(str(out / "vocab.json"), str(out / "merges.txt"))
    for text in MIXED:
        ids = ours.encode(text)
        assert from_json.encode(text).ids == ids, text
        assert from_files.encode(text).ids == ids, text
        assert from_json.decode(ids) == text


def test_bpe_pattern_needs_the_bpe_tokenizer(tmp_path):
    from tinygpt.train import TrainConfig
    with pytest.raises(ValueError, match="bpe_pattern='gpt2'.*needs tokenizer 'bpe'"):
        TrainConfig(tokenizer="char", bpe_pattern="gpt2")
    with pytest.raises(ValueError, match="bpe_pattern must be one of gpt4, gpt2, got 'gpt3'"):
        TrainConfig(tokenizer="bpe", bpe_pattern="gpt3")
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    result = tinygpt_cmd("train", "--data", tmp_path / "text.txt", "--bpe-pattern", "gpt2", "--out-dir", tmp_path / "r")
    assert result.returncode != 0 and "--bpe-pattern gpt2" in result.stderr and "--tokenizer bpe" in result.stderr


def test_export_gives_transformers_the_same_logits_and_tokenizer(gpt2_bpe_run, tmp_path):
    out = tmp_path / "exported"
    result = tinygpt_cmd("export", "--run", gpt2_bpe_run, "--to", out)
    assert result.returncode == 0, result.stderr
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.json", "merges.txt"} <= set(os.listdir(out))
    run = load_run(gpt2_bpe_run)
    ids = np.array([run.tokenizer.encode("line 7: to be, or not")])
    ours = run.model(ids)[0].data
    if have_transformers():
        import torch
        from tokenizers import Tokenizer
        from transformers import GPT2LMHeadModel
        with torch.no_grad():
            theirs = GPT2LMHeadModel.from_pretrained(out)(torch.tensor(ids)).logits.numpy()
        assert Tokenizer.from_file(str(out / "tokenizer.json")).encode("line 7: to be, or not").ids == ids[0].tolist()
    else:
        theirs = GPT.from_pretrained(out)(ids)[0].data
        assert GPT2Tokenizer.from_pretrained(out).encode("line 7: to be, or not") == ids[0].tolist()
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    # and the exported folder is one `generate --model` takes
    assert tinygpt_cmd("generate", "--model", out, "--prompt", "to", "--max-new-tokens", "3",
                       "--seed", "0").returncode == 0


def test_export_char_run_says_the_tokenizer_was_not_exported(tmp_path):
    run = train_run(tmp_path)
    result = tinygpt_cmd("export", "--run", run, "--to", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "tokenizer was not exported" in result.stderr and "CharTokenizer" in result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["n_embd"] == 16


def test_export_gpt4_split_bpe_run_says_why_not(tmp_path):
    run = train_run(tmp_path, "--tokenizer", "bpe", "--vocab-size", "280")
    result = tinygpt_cmd("export", "--run", run, "--to", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "tokenizer was not exported" in result.stderr and "GPT2_SPLIT_PATTERN" in result.stderr
    assert "--bpe-pattern gpt2" in result.stderr
    assert not (tmp_path / "out" / "tokenizer.json").exists()


def test_export_refuses_an_lstm_run(tmp_path):
    run = train_run(tmp_path, "--model", "lstm", "--lstm-hidden", "16")
    result = tinygpt_cmd("export", "--run", run, "--to", tmp_path / "out")
    assert result.returncode == 1 and "LSTM" in result.stderr
    assert not (tmp_path / "out").exists()


# ----- train --init-from / finetune --from a Hugging Face folder ---------------------------------------


def test_train_init_from_hf_folder_keeps_its_weights_tokenizer_and_shape(hf_folder, tmp_path):
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    result = tinygpt_cmd("train", "--init-from", hf_folder, "--data", tmp_path / "text.txt",
                         "--out-dir", tmp_path / "run", "--steps", "0", "--batch-size", "2", "--eval-iters", "1",
                         "--sample-tokens", "0")
    assert result.returncode == 0, result.stderr
    assert "Hugging Face GPT-2 folder" in result.stderr
    run, hf = load_run(tmp_path / "run"), GPT.from_pretrained(hf_folder)
    shape = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "bias")  # dropout is the run's own
    assert [getattr(run.model.config, k) for k in shape] == [getattr(hf.config, k) for k in shape]
    assert run.model.config.block_size == 32  # the folder's n_positions, not the default 64
    hf_tok = GPT2Tokenizer.from_pretrained(hf_folder)
    assert run.tokenizer.encode("line 3: to be") == hf_tok.encode("line 3: to be")
    ids = np.array([hf_tok.encode("line 3: to be, or not")])
    np.testing.assert_allclose(run.model(ids)[0].data, hf(ids)[0].data, atol=1e-6)  # step 0: the same weights


def test_train_init_from_hf_folder_trains(hf_folder, tmp_path):
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    result = tinygpt_cmd("train", "--init-from", hf_folder, "--data", tmp_path / "text.txt",
                         "--out-dir", tmp_path / "run", "--steps", "2", "--batch-size", "2", "--eval-iters", "1",
                         "--eval-interval", "2", "--sample-tokens", "3")
    assert result.returncode == 0, result.stderr
    assert "step 2:" in result.stdout
    assert tinygpt_cmd("generate", "--run", tmp_path / "run", "--max-new-tokens", "3", "--seed", "0").returncode == 0


def test_finetune_from_hf_folder_saves_a_classifier_run(hf_folder, tmp_path):
    rows = ["text,label"] + [f"to be or not {i},yes" if i % 2 else f"the question {i},no" for i in range(40)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = tinygpt_cmd("finetune", "--from", hf_folder, "--data", tmp_path / "labels.csv", "--steps", "2",
                         "--max-len", "16", "--out-dir", tmp_path / "cls")
    assert result.returncode == 0, result.stderr
    assert "held-out accuracy" in result.stdout
    evaluated = tinygpt_cmd("evaluate", "--run", tmp_path / "cls")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "accuracy" in evaluated.stdout
    assert load_run(tmp_path / "cls").tokenizer.encode("to be") == GPT2Tokenizer.from_pretrained(hf_folder).encode("to be")
