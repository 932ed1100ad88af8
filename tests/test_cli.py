"""The `tinygpt` command end to end on tiny settings: main([...]) in-process, plus real subprocesses
for `python -m tinygpt` and the console script. Every error is one line on stderr, exit code != 0."""

import csv
import json
import shutil
import subprocess
import sys

import pytest

from tinygpt.cli import main

TEXT = "".join(f"line {i}: to be, or not to be, that is the question.\n" for i in range(150))
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--eval-iters", "2", "--steps", "6", "--eval-interval", "3", "--sample-tokens", "20"]


def run(capsys, *argv):
    """main(argv) -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, match):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinygpt: error: "), err
    assert match in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run made once through the CLI, shared by the read-only tests below."""
    root = tmp_path_factory.mktemp("cli")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    assert main(["train", "--data", str(root / "text.txt"), "--out-dir", str(root / "run"), *TINY]) == 0
    return root / "run"


# ----- train ----------------------------------------------------------------------------------


def test_train_prints_losses_a_sample_and_where_the_run_is(tmp_path, text_file, capsys):
    code, out, err = run(capsys, "train", "--data", text_file, "--out-dir", tmp_path / "run", *TINY)
    assert code == 0, err
    assert "val loss" in out and "perplexity" in out and f"run saved in {tmp_path / 'run'}" in out
    assert "---- sample ----" in out
    assert "step 3: train loss" in err  # evaluations are reported on stderr
    assert (tmp_path / "run" / "ckpt_000006.json").is_file()


def test_train_lstm_with_word_tokenizer(tmp_path, text_file, capsys):
    lstm_tiny = [a for i, a in enumerate(TINY) if TINY[i - (i % 2)] not in ("--n-layer", "--n-head")]
    code, out, err = run(capsys, "train", "--data", text_file, "--out-dir", tmp_path / "run", "--model", "lstm",
                         "--tokenizer", "word", "--lstm-hidden", "16", "--lstm-layers", "1", *lstm_tiny)
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["type"] == "lstm"


def test_train_resume_continues_to_more_steps(tmp_path, text_file, capsys):
    assert run(capsys, "train", "--data", text_file, "--out-dir", tmp_path / "run", *TINY)[0] == 0
    code, out, err = run(capsys, "train", "--resume", tmp_path / "run", "--steps", "9")
    assert code == 0, err
    assert "resuming" in err and "step 9:" in out
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [0, 3, 6, 9]


def test_resume_of_a_checkpoint_written_before_attention_dropout(tmp_path, text_file, capsys):
    # checkpoints from before GPT-2's attention dropout have no generator state for attn_dropout
    assert run(capsys, "train", "--data", text_file, "--out-dir", tmp_path / "run", *TINY)[0] == 0
    record = tmp_path / "run" / "ckpt_000006.json"
    saved = json.loads(record.read_text())
    generators = saved["meta"]["rng"]["dropout"]
    dropped = [name for name in generators if name.endswith(".attn.attn_dropout")]
    assert dropped, sorted(generators)
    for name in dropped:
        del generators[name]
    record.write_text(json.dumps(saved))
    code, out, err = run(capsys, "train", "--resume", tmp_path / "run", "--steps", "9")
    assert code == 0, err
    assert "step 9:" in out
    # a generator missing for another module is still refused
    record = sorted((tmp_path / "run").glob("ckpt_*.json"))[-1]
    saved = json.loads(record.read_text())
    del saved["meta"]["rng"]["dropout"]["transformer.drop"]
    record.write_text(json.dumps(saved))
    code, out, err = run(capsys, "train", "--resume", tmp_path / "run", "--steps", "12")
    assert code != 0 and "rng['dropout'] names" in err


def test_train_init_from_continues_on_new_text(trained, tmp_path, capsys):
    new = tmp_path / "new.txt"
    new.write_text(TEXT[::-1], encoding="utf-8")
    code, out, err = run(capsys, "train", "--init-from", trained, "--data", new, "--out-dir", tmp_path / "cont",
                         "--steps", "3", "--eval-interval", "3", "--eval-iters", "2", "--block-size", "16",
                         "--batch-size", "4")
    assert code == 0, err
    assert "initialising from" in err


@pytest.mark.parametrize("content, match", [
    (None, "text file not found"), (b"", "text file is empty"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "looks binary (NUL byte at offset 7)"),
    (b"caf\xc3\xa9 ok, then bad: \xe9t\xe9\n" * 20, "not valid UTF-8: byte 0xe9 at offset 20")],
    ids=["missing", "empty", "binary", "latin-1"])
def test_train_on_a_bad_data_file_is_one_line_and_writes_nothing(tmp_path, capsys, content, match):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    code, _, err = run(capsys, "train", "--data", path, "--out-dir", tmp_path / "run", *TINY)
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "run").exists()


def test_train_errors_replace_accepts_bad_utf8(tmp_path, capsys):
    path = tmp_path / "data.txt"
    path.write_bytes(b"caf\xc3\xa9 ok, then bad: \xe9t\xe9\n" * 40)
    code, _, err = run(capsys, "train", "--data", path, "--errors", "replace", "--out-dir", tmp_path / "run", *TINY)
    assert code == 0, err


@pytest.mark.parametrize("flags, match", [
    (["--n-embd", "30", "--n-head", "4"], "n_embd (30) must be divisible by n_head (4)"),
    (["--max-lr", "-0.001"], "max_lr must be >= 0"), (["--block-size", "0"], "block_size must be an integer >= 1"),
    (["--steps", "ten"], "argument --steps: invalid int value: 'ten'"), (["--model", "rnn"], "invalid choice: 'rnn' (choose from 'gpt', 'lstm')"),
    (["--corpus", "sentiment-zh"], "labelled"), (["--corpus", "nope"], "unknown corpus 'nope'")])
def test_train_invalid_settings_are_one_line_errors(tmp_path, capsys, flags, match):
    code, _, err = run(capsys, "train", "--out-dir", tmp_path / "run", *flags)
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "run").exists()


def test_train_into_an_existing_run_leaves_it_untouched(trained, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in trained.iterdir()}
    code, _, err = run(capsys, "train", "--data", trained.parent / "text.txt", "--out-dir", trained, *TINY)
    assert_one_line_error(code, err, "already holds a run")
    assert before == {p.name: p.stat().st_mtime_ns for p in trained.iterdir()}


def test_ctrl_c_during_training_saves_and_exits_130(tmp_path, text_file, capsys, monkeypatch):
    from tinygpt import cli

    class CtrlCAfterStep2(cli.ProgressBar):
        def update(self, event):
            super().update(event)
            if event.kind == "step" and event.step == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(cli, "ProgressBar", CtrlCAfterStep2)
    code, _, err = run(capsys, "train", "--data", text_file, "--out-dir", tmp_path / "run", *TINY)
    assert code == 130 and "Traceback" not in err
    assert "interrupted at step 2" in err and f"tinygpt train --resume {tmp_path / 'run'}" in err
    assert (tmp_path / "run" / "ckpt_000002.json").is_file()
    assert run(capsys, "train", "--resume", tmp_path / "run")[0] == 0


# ----- generate -------------------------------------------------------------------------------


def test_generate_streams_the_prompt_and_its_continuation(trained, capsys):
    code, out, err = run(capsys, "generate", "--run", trained, "--prompt", "to be", "--max-new-tokens", "30",
                         "--seed", "1")
    assert code == 0, err
    assert out.startswith("to be") and len(out) > len("to be")


def test_generate_is_deterministic_with_a_seed_and_no_stream_gives_the_same_text(trained, capsys):
    argv = ["generate", "--run", trained, "--prompt", "line", "--max-new-tokens", "40", "--seed", "3"]
    first, second = run(capsys, *argv)[1], run(capsys, *argv, "--no-stream")[1]
    assert first == second
    assert run(capsys, *argv[:-1], "4")[1] != first


def test_generate_stop_string_and_greedy(trained, capsys):
    code, out, _ = run(capsys, "generate", "--run", trained, "--prompt", "line", "--temperature", "0",
                       "--max-new-tokens", "60", "--stop", "\n")
    assert code == 0 and "\n" not in out.rstrip("\n")


@pytest.mark.parametrize("prompt, match", [("Zebra", "character 'Z' (U+005A) at position 0 is not in the vocabulary"),
                                           ("", "encodes to no tokens")])
def test_generate_with_an_unusable_prompt_is_one_line(trained, capsys, prompt, match):
    code, _, err = run(capsys, "generate", "--run", trained, "--prompt", prompt)
    assert_one_line_error(code, err, match)


def test_generate_from_a_missing_run(tmp_path, capsys):
    assert_one_line_error(*run(capsys, "generate", "--run", tmp_path / "nope")[::2], "run directory not found")


def test_corrupt_checkpoint_is_one_line_and_exit_1(trained, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    for older in broken.glob("ckpt_*"):  # with an intact older checkpoint, readers would fall back to it
        if not older.name.startswith("ckpt_000006."):
            older.unlink()
    (broken / "ckpt_000006.json").write_text("{not json", encoding="utf-8")
    code, _, err = run(capsys, "generate", "--run", broken)
    assert code == 1
    assert_one_line_error(code, err, "is not valid JSON")
    arrays = broken / "ckpt_000006.safetensors"
    shutil.copy(trained / "ckpt_000006.json", broken / "ckpt_000006.json")
    arrays.write_bytes(arrays.read_bytes()[:-10])
    code, _, err = run(capsys, "evaluate", "--run", broken)
    assert_one_line_error(code, err, "truncated")


def test_checkpoint_from_another_model_shape_is_one_line(trained, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    config = json.loads((other / "config.json").read_text())
    config["model"]["n_embd"] = 32  # config.json and the checkpoint now disagree
    (other / "config.json").write_text(json.dumps(config))
    code, _, err = run(capsys, "generate", "--run", other)
    assert_one_line_error(code, err, "does not fit the model in config.json")


# ----- evaluate, finetune ---------------------------------------------------------------------


def test_evaluate_reports_loss_and_perplexity(trained, tmp_path, capsys):
    code, out, err = run(capsys, "evaluate", "--run", trained)
    assert code == 0, err
    assert "validation split" in out and "perplexity" in out
    held_out = tmp_path / "more.txt"
    held_out.write_text(TEXT[:500], encoding="utf-8")
    code, out, _ = run(capsys, "evaluate", "--run", trained, "--data", held_out)
    assert code == 0 and str(held_out) in out


def test_finetune_then_evaluate_the_classifier(trained, tmp_path, capsys):
    data = tmp_path / "labelled.csv"
    rows = ["text,label"] + [f"to be or not to be {i},pos" if i % 2 else f"the question {i},neg" for i in range(40)]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, out, err = run(capsys, "finetune", "--from", trained, "--data", data, "--epochs", "3", "--lr", "0.003",
                         "--batch-size", "8", "--max-len", "16", "--out-dir", tmp_path / "cls")
    assert code == 0, err
    assert "held-out accuracy" in out and "macro-F1" in out and "confusion" in out
    code, out, err = run(capsys, "evaluate", "--run", tmp_path / "cls")
    assert code == 0 and "accuracy" in out, err
    code, _, err = run(capsys, "generate", "--run", tmp_path / "cls")
    assert_one_line_error(code, err, "is a classifier run")


def test_finetune_needs_a_data_source(trained, capsys):
    assert_one_line_error(*run(capsys, "finetune", "--from", trained)[::2], "one of the arguments --data --corpus")


# ----- info, corpora, bench, help -------------------------------------------------------------


def test_info_lists_version_backends_kernels_and_corpora(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0
    assert "tinygpt 0.1.0" in out and "backend mode" in out and "matmul_forward" in out and "pydoc" in out


def test_backend_option_applies_to_the_command_only(capsys):
    from tinygpt import backend
    before = backend.get_backend()
    code, out, _ = run(capsys, "info", "--backend", "numpy")
    assert code == 0 and "backend mode: numpy" in out
    assert backend.get_backend() == before


def test_corpora_lists_every_corpus(capsys):
    code, out, _ = run(capsys, "corpora")
    assert code == 0 and all(name in out for name in ("shakespeare", "news-zh", "sentiment-zh", "pydoc"))


def test_bench_passes_every_argument_to_python_dash_m_bench(monkeypatch, capsys):
    from tinygpt import cli
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda argv, cwd: calls.append(argv) or 0)
    code, _, err = run(capsys, "bench", "--help", "--steps", "3")
    if code != 0:  # an installed tinygpt without the source checkout's bench/ explains instead
        assert_one_line_error(code, err, "bench")
    else:
        assert calls == [[sys.executable, "-m", "bench", "--help", "--steps", "3"]]


def test_help_and_no_command(capsys):
    assert run(capsys, "--help")[0] == 0
    assert run(capsys)[0] == 2


def test_unknown_command_is_one_line(capsys):
    assert_one_line_error(*run(capsys, "trian")[::2], "invalid choice: 'trian'")


def test_python_dash_m_tinygpt_runs_in_a_subprocess():
    done = subprocess.run([sys.executable, "-m", "tinygpt", "info"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "backend mode" in done.stdout
    done = subprocess.run([sys.executable, "-m", "tinygpt", "generate", "--run", "/no/such/run"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("tinygpt: error: run directory not found")


def test_console_script_help():
    script = shutil.which("tinygpt")
    if script is None:
        pytest.skip("the tinygpt console script is not installed (pip install -e .)")
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: tinygpt" in done.stdout


@pytest.mark.slow
def test_real_ctrl_c_stops_after_the_step_saves_and_resumes(tmp_path, text_file):
    import signal
    import time

    argv = [sys.executable, "-m", "tinygpt", "train", "--data", str(text_file), "--out-dir", str(tmp_path / "run"),
            *TINY[:-6], "--steps", "100000", "--eval-interval", "100000"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "run" / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.1)  # metrics.csv appears with the step-0 estimate: the loop is running
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted at step" in err and "Traceback" not in err
    saved = sorted((tmp_path / "run").glob("ckpt_*.json"))
    assert len(saved) == 1 and int(saved[0].stem.split("_")[1]) > 0


@pytest.mark.parametrize("extra, message", [
    (["--model", "lstm", "--n-layer", "3"], "--n-layer shapes a GPT and would be ignored by --model lstm; "
                                            "its size flags are --lstm-layers, --lstm-hidden"),
    (["--lstm-hidden", "64"], "--lstm-hidden shapes an LSTM and would be ignored by --model gpt"),
    (["--vocab-size", "300"], "--vocab-size 300 does nothing with the char tokenizer"),
    (["--tokenizer", "word", "--vocab-size", "1"], "vocab_size must be >= 2 for the word tokenizer"),
    (["--resume", "somewhere", "--out-dir", "elsewhere"], "--resume somewhere continues that run in its "
                                                          "own directory; --out-dir would be ignored"),
    (["--resume", "somewhere", "--init-from", "other"], "--init-from would be ignored"),
])
def test_train_flags_that_would_be_ignored_are_refused(capsys, text_file, tmp_path, extra, message):
    out_dir = [] if "--resume" in extra else ["--out-dir", tmp_path / "r"]
    code, _, err = run(capsys, "train", "--data", text_file, *out_dir, *extra)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("extra, message", [
    (["--num-samples", "0"], "--num-samples 0: expected --num-samples >= 1"),
    (["--max-new-tokens", "-3"], "--max-new-tokens -3: expected"),
])
def test_generate_refuses_a_request_for_nothing(capsys, trained, extra, message):
    code, out, err = run(capsys, "generate", "--run", trained, *extra)
    assert_one_line_error(code, err, message)
    assert out == ""


def test_finetune_refuses_a_frozen_random_body():
    from tinygpt.finetune import FinetuneConfig
    with pytest.raises(ValueError, match=r"^freeze_body \(--freeze-body\) with from_scratch"):
        FinetuneConfig(from_run="run", data="x.csv", freeze_body=True, from_scratch=True)
