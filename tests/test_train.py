"""tinygpt.train: the run directory, resume == uninterrupted (bit for bit), Ctrl-C saves, clear errors
for bad data, bad settings, and checkpoints that are corrupt or belong to another model."""

import csv
import json
import shutil

import numpy as np
import pytest

from tinygpt.checkpoint import CheckpointError, CheckpointWarning, latest_checkpoint, load_checkpoint
from tinygpt.tokenizers import ByteLevelBPETokenizer, CharTokenizer, WordTokenizer
from tinygpt.train import TrainConfig, Trainer, evaluate_lm, load_run, train
from tinygpt.train.data import encode_in_pieces

TEXT = "".join(f"line {i}: to be, or not to be, that is the question.\n" for i in range(150))
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, eval_iters=2, warmup_steps=2,
            sample_tokens=0)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def tiny(tmp_path, text_file, name="run", **changes):
    return TrainConfig(data=str(text_file), out_dir=str(tmp_path / name), **{**TINY, "steps": 12,
                                                                             "eval_interval": 4, **changes})


def weights(run_dir):
    tensors, _ = load_checkpoint(run_dir)
    return tensors


def metric_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


# ----- a run and its directory ----------------------------------------------------------------


def test_train_writes_a_complete_run_directory(tmp_path, text_file):
    events = []
    result = train(tiny(tmp_path, text_file, sample_tokens=20), progress=events.append)
    run_dir = tmp_path / "run"
    assert result.step == 12 and not result.interrupted and result.val_loss < np.log(30)
    for name in ("config.json", "tokenizer.json", "tokens.bin", "tokens.bin.json", "metrics.csv", "sample.txt"):
        assert (run_dir / name).is_file(), name
    assert sorted(p.name for p in run_dir.glob("ckpt_*.json")) == ["ckpt_000008.json", "ckpt_000012.json"]
    rows = metric_rows(run_dir)
    assert [int(r["step"]) for r in rows] == [0, 4, 8, 12]
    assert list(rows[0]) == ["step", "train_loss", "val_loss", "perplexity", "lr", "tokens_per_sec"]
    assert float(rows[-1]["perplexity"]) == pytest.approx(np.exp(float(rows[-1]["val_loss"])), rel=1e-4)
    assert [e.step for e in events if e.kind == "step"] == list(range(1, 13))
    assert all(e.tokens_per_sec > 0 and e.lr > 0 for e in events if e.kind == "step")
    assert len(result.sample) > 0 and (run_dir / "sample.txt").read_text(encoding="utf-8") == result.sample
    config = json.loads((run_dir / "config.json").read_text())
    assert config["kind"] == "lm" and config["model"]["type"] == "gpt" and config["train"]["lr_decay_steps"] == 12
    _, meta = load_checkpoint(run_dir)
    assert meta["step"] == 12 and "rng" in meta and "optimizer" in meta and "schedule" in meta


def test_load_run_gives_the_trained_model_and_tokenizer(tmp_path, text_file):
    train(tiny(tmp_path, text_file))
    run = load_run(tmp_path / "run")
    assert run.step == 12 and isinstance(run.tokenizer, CharTokenizer) and not run.model.training
    tensors = weights(tmp_path / "run")
    np.testing.assert_array_equal(run.model.transformer.wte.weight.data, tensors["model.transformer.wte.weight"])


# ----- resume == uninterrupted ----------------------------------------------------------------


class StopAt:
    """A progress callback that presses Ctrl-C (raises KeyboardInterrupt) after step `at`."""

    def __init__(self, at):
        self.at, self.losses = at, []

    def __call__(self, event):
        if event.kind == "step":
            self.losses.append(event.loss)
            if event.step == self.at:
                raise KeyboardInterrupt


def assert_same_run(run_a, run_b):
    a, b = weights(run_a), weights(run_b)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # exact, not allclose
    columns = ("step", "train_loss", "val_loss", "lr")
    def table(run_dir):
        return [[row[c] for c in columns] for row in metric_rows(run_dir)]
    assert table(run_a) == table(run_b)


@pytest.mark.parametrize("model", ["gpt", "lstm"])
def test_ctrl_c_then_resume_equals_an_uninterrupted_run(tmp_path, text_file, model):
    # dropout > 0 so the dropout generators' states must be saved and restored too
    straight = StopAt(None)
    train(tiny(tmp_path, text_file, "straight", model=model, dropout=0.1, lstm_hidden=16, n_embd=16), progress=straight)
    stopped = StopAt(6)
    result = train(tiny(tmp_path, text_file, "stopped", model=model, dropout=0.1, lstm_hidden=16, n_embd=16),
                   progress=stopped)
    assert result.interrupted and result.step == 6
    assert latest_checkpoint(tmp_path / "stopped").name == "ckpt_000006.json"  # Ctrl-C saved step 6
    resumed = StopAt(None)
    result = train(TrainConfig.from_run(tmp_path / "stopped", resume=True), progress=resumed)
    assert result.step == 12 and not result.interrupted
    assert stopped.losses + resumed.losses == straight.losses
    assert_same_run(tmp_path / "straight", tmp_path / "stopped")


def test_resume_with_more_steps_equals_a_longer_run(tmp_path, text_file):
    train(tiny(tmp_path, text_file, "long", steps=12, lr_decay_steps=12))
    train(tiny(tmp_path, text_file, "short", steps=8, lr_decay_steps=12))
    train(TrainConfig.from_run(tmp_path / "short", resume=True, steps=12))
    assert_same_run(tmp_path / "long", tmp_path / "short")


def test_resume_with_different_settings_is_refused(tmp_path, text_file):
    train(tiny(tmp_path, text_file))
    with pytest.raises(ValueError, match="cannot resume .* batch_size is 8 but the run was made with 4"):
        Trainer(TrainConfig.from_run(tmp_path / "run", resume=True, batch_size=8))


def test_resume_of_a_directory_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="run directory not found"):
        Trainer(TrainConfig(out_dir=str(tmp_path / "nothing"), resume=True))


# ----- continued training from another run ----------------------------------------------------


def test_init_from_starts_from_the_source_weights(tmp_path, text_file):
    train(tiny(tmp_path, text_file, "source", n_embd=24, n_head=3))
    new_text = tmp_path / "new.txt"
    new_text.write_text(TEXT[::-1], encoding="utf-8")  # the same characters, new text
    trainer = Trainer(TrainConfig(data=str(new_text), out_dir=str(tmp_path / "cont"),
                                  init_from=str(tmp_path / "source"),
                                  **{**TINY, "steps": 2, "eval_interval": 2}))
    assert trainer.config.n_embd == 24 and trainer.config.n_head == 3  # the source's shape wins
    np.testing.assert_array_equal(trainer.model.transformer.wte.weight.data,
                                  weights(tmp_path / "source")["model.transformer.wte.weight"])
    assert trainer.run().step == 2


def test_init_from_with_text_the_tokenizer_cannot_encode_names_the_character(tmp_path, text_file):
    train(tiny(tmp_path, text_file, "source"))
    other = tmp_path / "other.txt"
    other.write_text("Zebra " * 100, encoding="utf-8")
    with pytest.raises(ValueError, match="cannot be encoded by the tokenizer.*'Z'"):
        Trainer(TrainConfig(data=str(other), out_dir=str(tmp_path / "cont"), init_from=str(tmp_path / "source"),
                            **TINY))
    assert not (tmp_path / "cont").exists()


# ----- errors: data, settings, run directories, checkpoints -----------------------------------


@pytest.mark.parametrize("content, match", [
    (None, "text file not found"), (b"", "text file is empty"), (b"abc\x00def" * 10, "NUL byte at offset 3"),
    (b"hello \xff world" * 10, "not valid UTF-8: byte 0xff at offset 6")])
def test_bad_data_file_is_a_clear_error_and_writes_nothing(tmp_path, content, match):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        Trainer(TrainConfig(data=str(path), out_dir=str(tmp_path / "run"), **TINY))
    assert not (tmp_path / "run").exists()


def test_errors_replace_reads_bad_utf8(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(b"hello \xff world, this is a test.\n" * 20)
    Trainer(TrainConfig(data=str(path), errors="replace", out_dir=str(tmp_path / "run"), **TINY))
    assert "\ufffd" in CharTokenizer.load(tmp_path / "run" / "tokenizer.json").chars


def test_text_too_short_for_the_block_size_is_a_clear_error(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("a short text\n" * 5, encoding="utf-8")
    with pytest.raises(ValueError, match=r"validation split has \d+, fewer than block_size \+ 1 = 17"):
        Trainer(TrainConfig(data=str(path), out_dir=str(tmp_path / "run"), **TINY))


@pytest.mark.parametrize("changes, match", [
    (dict(n_embd=30, n_head=4), r"n_embd \(30\) must be divisible by n_head \(4\)"),
    (dict(max_lr=-1e-3), "max_lr must be >= 0"), (dict(block_size=0), "block_size must be an integer >= 1"),
    (dict(min_lr=1e-2, max_lr=1e-3), "min_lr .* must not exceed max_lr"),
    (dict(warmup_steps=50, steps=10), "warmup_steps .* must not exceed lr_decay_steps"),
    (dict(dropout=1.0), "dropout must be in"), (dict(model="rnn"), "model must be one of gpt, lstm"),
    (dict(tokenizer="bpe", vocab_size=100), "vocab_size must be >= 256"),
    (dict(corpus="shakespeare", data="x.txt"), "not both"), (dict(steps=2.5), "steps must be an integer")])
def test_invalid_settings_name_the_problem(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)


def test_an_existing_run_is_never_overwritten(tmp_path, text_file):
    train(tiny(tmp_path, text_file))
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(ValueError, match="already holds a run; resume it with --resume"):
        Trainer(tiny(tmp_path, text_file))
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}


def test_truncated_checkpoint_is_a_clear_error(tmp_path, text_file):
    train(tiny(tmp_path, text_file))
    arrays = tmp_path / "run" / "ckpt_000012.safetensors"
    arrays.write_bytes(arrays.read_bytes()[:100])
    with pytest.warns(CheckpointWarning, match="truncated"):  # a reader falls back to the older one
        assert load_run(tmp_path / "run").step == 8
    with pytest.raises(CheckpointError, match="truncated.*--checkpoint ckpt_000008"):  # a writer refuses
        Trainer(TrainConfig.from_run(tmp_path / "run", resume=True))
    for older in (tmp_path / "run").glob("ckpt_000008.*"):
        older.unlink()
    with pytest.raises(CheckpointError, match="truncated"):  # nothing intact left
        load_run(tmp_path / "run")


def test_checkpoint_of_another_model_shape_is_a_clear_error(tmp_path, text_file):
    train(tiny(tmp_path, text_file, "small"))
    train(tiny(tmp_path, text_file, "wide", n_embd=32, steps=4))
    shutil.copy(tmp_path / "wide" / "ckpt_000004.json", tmp_path / "small" / "ckpt_000099.json")
    shutil.copy(tmp_path / "wide" / "ckpt_000004.safetensors", tmp_path / "small" / "ckpt_000099.safetensors")
    with pytest.raises(CheckpointError, match=r"does not fit the model.*\(\d+, 32\) in the checkpoint but \(\d+, 16\)"):
        load_run(tmp_path / "small")


# ----- pieces ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda t: CharTokenizer.train(t), lambda t: WordTokenizer.train(t),
                                  lambda t: ByteLevelBPETokenizer.train(t, 300)])
def test_encoding_in_pieces_equals_encoding_whole(make):
    text = "first line\n\n  indented, 中文 and 123\n" * 40 + "no newline at the end"
    tokenizer = make(text)
    np.testing.assert_array_equal(encode_in_pieces(tokenizer, text, piece_chars=50), tokenizer.encode(text))


def test_evaluate_lm_reads_every_window_once(tmp_path, text_file):
    train(tiny(tmp_path, text_file))
    run = load_run(tmp_path / "run")
    tokens = np.arange(16 * 5 + 1) % run.tokenizer.vocab_size
    result = evaluate_lm(run.model, tokens, block_size=16, batch_size=2)
    assert result["tokens"] == 16 * 5 and result["perplexity"] == pytest.approx(np.exp(result["loss"]))


def test_steps_zero_still_leaves_a_loadable_run(tmp_path, text_file):
    result = train(tiny(tmp_path, text_file, steps=0, warmup_steps=0))
    assert result.step == 0 and load_run(tmp_path / "run").step == 0


def test_loss_curve_png_when_matplotlib_is_installed(tmp_path, text_file):
    pytest.importorskip("matplotlib")
    train(tiny(tmp_path, text_file))
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0
