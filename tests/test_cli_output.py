"""What a user of the `tinygpt` command reads: the real `python -m tinygpt ...` in a subprocess,
stdout and stderr as a pipe gives them (not a terminal, as under nohup or CI), on a tiny model."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TEXT = "".join(f"line {i}: to be, or not to be, that is the question.\n" for i in range(150))
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--eval-iters", "2", "--steps", "6", "--eval-interval", "3", "--sample-tokens", "0"]
ROOT = Path(__file__).resolve().parent.parent


def tinygpt(*argv, cwd):
    """`python -m tinygpt argv` in cwd -> CompletedProcess (text stdout and stderr)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "tinygpt", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def here(tmp_path):
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    return tmp_path


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ----- 1. per-step losses, loss.png, tinygpt plot ----------------------------------------------


def test_train_records_every_step_and_plot_compares_runs(here):
    for name, lr in (("a", "1e-3"), ("b", "3e-3")):
        done = tinygpt("train", "--data", "text.txt", "--out-dir", name, "--max-lr", lr, *TINY, cwd=here)
        assert done.returncode == 0, done.stderr
    steps = read_csv(here / "a" / "train_steps.csv")
    assert [int(r["step"]) for r in steps] == [1, 2, 3, 4, 5, 6]
    assert all(float(r["loss"]) > 0 and float(r["lr"]) > 0 for r in steps)
    assert (here / "a" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = tinygpt("plot", "--run", "a", "b", "--out", "both.png", cwd=here)
    assert done.returncode == 0, done.stderr
    assert "both.png" in done.stdout and (here / "both.png").read_bytes()[:4] == b"\x89PNG"
    done = tinygpt("plot", "--run", "nothing-here", cwd=here)
    assert done.returncode == 1 and done.stderr.startswith("tinygpt: error: nothing-here has neither")


def test_pyproject_data_extra_brings_matplotlib():
    import tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("matplotlib") for r in extras["data"])
    assert any(r.startswith("matplotlib") for r in extras["plot"])


def test_resume_truncates_the_step_log_to_the_checkpoint(here):
    assert tinygpt("train", "--data", "text.txt", "--out-dir", "r", *TINY, cwd=here).returncode == 0
    done = tinygpt("train", "--resume", "r", "--steps", "9", cwd=here)
    assert done.returncode == 0, done.stderr
    assert [int(r["step"]) for r in read_csv(here / "r" / "train_steps.csv")] == list(range(1, 10))


# ----- 2. a second `tinygpt train` ---------------------------------------------------------------


def test_second_train_without_out_dir_uses_a_numbered_directory(here):
    first = tinygpt("train", "--data", "text.txt", *TINY, cwd=here)
    second = tinygpt("train", "--data", "text.txt", *TINY, cwd=here)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert first.stderr.splitlines()[0] == f"training into {Path('runs/text-char-gpt')}"
    assert second.stderr.splitlines()[0].startswith(f"training into {Path('runs/text-char-gpt-2')} ")
    assert f"run saved in {Path('runs/text-char-gpt-2')}" in second.stdout
    assert (here / "runs" / "text-char-gpt" / "ckpt_000006.json").is_file()


def test_explicit_out_dir_is_refused_unless_overwrite(here):
    assert tinygpt("train", "--data", "text.txt", "--out-dir", "r", *TINY, cwd=here).returncode == 0
    done = tinygpt("train", "--data", "text.txt", "--out-dir", "r", *TINY, cwd=here)
    assert done.returncode == 1 and "already holds a run" in done.stderr and "--overwrite" in done.stderr
    done = tinygpt("train", "--data", "text.txt", "--out-dir", "r", "--overwrite", *TINY[:-6],
                   "--steps", "4", "--eval-interval", "2", cwd=here)
    assert done.returncode == 0, done.stderr
    assert "--overwrite" in done.stderr.splitlines()[0]
    assert sorted(p.name for p in (here / "r").glob("ckpt_*.json")) == ["ckpt_000002.json", "ckpt_000004.json"]


# ----- 3. progress without a terminal ------------------------------------------------------------


def test_progress_lines_when_stderr_is_a_pipe(here):
    done = tinygpt("train", "--data", "text.txt", "--out-dir", "r", *TINY, "--log-interval", "2", cwd=here)
    assert done.returncode == 0, done.stderr
    lines = [l for l in done.stderr.splitlines() if l.startswith("train step ")]
    assert [l.split(":")[0] for l in lines] == ["train step 2/6", "train step 4/6", "train step 6/6"]
    assert all("loss " in l and "ms/step" in l and "tok/s" in l and "ETA " in l for l in lines)
    assert "\r" not in done.stderr  # no bar redrawn into the log


def test_evaluate_reports_progress_and_what_it_measures(here):
    assert tinygpt("train", "--data", "text.txt", "--out-dir", "r", *TINY, cwd=here).returncode == 0
    done = tinygpt("evaluate", "--run", "r", "--batch-size", "4", cwd=here)
    assert done.returncode == 0, done.stderr
    assert "evaluate: batch" in done.stderr
    # 7,840 characters, the last 10% held out: 784 tokens -> (784 - 1) // 16 = 48 windows
    assert "(full split, 48 windows of 16 tokens = 768 tokens;" in done.stdout
    done = tinygpt("evaluate", "--run", "r", "--batch-size", "4", "--max-batches", "2", cwd=here)
    assert "(first 2 batches of 4, 8 windows of 16 tokens" in done.stdout


# ----- 4, 5. what the final lines say, once -------------------------------------------------------


def test_train_final_estimate_is_printed_once_and_says_what_it_measures(here):
    done = tinygpt("train", "--data", "text.txt", "--out-dir", "r", *TINY, cwd=here)
    assert done.returncode == 0, done.stderr
    both = done.stdout + done.stderr
    assert both.count("step 6: train loss") == 1
    assert "(estimated on 2 random batches of 4; perplexity" in done.stdout
    assert f"saved checkpoint {Path('r/ckpt_000006')} (.safetensors + .json)" in done.stderr
    assert "val loss" in next(l for l in done.stderr.splitlines() if l.startswith("step 3: train loss"))
    assert done.stderr.count("(estimated on 2 random batches of 4)") == 2  # steps 0 and 3


@pytest.mark.slow
def test_ctrl_c_is_reported_once(here):
    argv = [sys.executable, "-m", "tinygpt", "train", "--data", "text.txt", "--out-dir", "r",
            *TINY[:-6], "--steps", "100000", "--eval-interval", "100000"]
    process = subprocess.Popen(argv, cwd=here, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (here / "r" / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.count("interrupted") == 1 and err.count("--resume") == 1, err
    assert "saved checkpoint ckpt_" in err


# ----- 6. hints a command-line user can type ----------------------------------------------------


def test_bad_utf8_hint_names_the_flag(here):
    (here / "bad.txt").write_bytes(TEXT.encode() + b"\xff\xfe broken\n")
    done = tinygpt("train", "--data", "bad.txt", "--out-dir", "r", *TINY, cwd=here)
    assert done.returncode == 1 and "--errors replace" in done.stderr and "errors='replace'" not in done.stderr
    done = tinygpt("train", "--data", "bad.txt", "--out-dir", "r", "--errors", "replace", *TINY, cwd=here)
    assert done.returncode == 0, done.stderr


def test_unknown_character_hint_names_the_flag_that_fixes_it(here):
    (here / "other.txt").write_text("QXZ" * 200 + "\n", encoding="utf-8")
    assert tinygpt("train", "--data", "text.txt", "--out-dir", "plain", *TINY, cwd=here).returncode == 0
    done = tinygpt("evaluate", "--run", "plain", "--data", "other.txt", cwd=here)
    assert done.returncode == 1 and "--unk '<unk>'" in done.stderr and "unk='<unk>'" not in done.stderr
    assert tinygpt("train", "--data", "text.txt", "--out-dir", "u", "--unk", "<unk>", *TINY, cwd=here).returncode == 0
    done = tinygpt("evaluate", "--run", "u", "--data", "other.txt", cwd=here)
    assert done.returncode == 0, done.stderr
    assert "val loss" in done.stdout


# ----- 7. help ----------------------------------------------------------------------------------


def test_help_has_examples_choices_and_text_for_every_option(here):
    train = tinygpt("train", "--help", cwd=here).stdout
    assert "examples:" in train and "tinygpt train --data" in train
    assert "{gpt,lstm}" in train and "{char,word,bpe}" in train and "{cosine,constant}" in train
    assert "{strict,replace}" in train
    finetune = tinygpt("finetune", "--help", cwd=here).stdout
    assert "examples:" in finetune and "{last,mean}" in finetune
    generate = tinygpt("generate", "--help", cwd=here).stdout
    for flag in ("--max-new-tokens", "--num-samples"):
        text = generate.split(flag, 2)[2].split("\n  --")[0]  # the option's own help text
        assert len(text.split()) > 2, generate
    evaluate = tinygpt("evaluate", "--help", cwd=here).stdout
    assert "windows per forward pass" in evaluate


def test_misspelled_flag_suggests_the_right_one(here):
    done = tinygpt("train", "--stesp", "4", cwd=here)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("did you mean --steps (not --stesp)?")
    done = tinygpt("generate", "--run", "r", "--temprature", "0", cwd=here)
    assert "did you mean --temperature" in done.stderr
    done = tinygpt("train", "--model", "gtp", cwd=here)
    assert done.returncode == 2 and "invalid choice: 'gtp' (choose from 'gpt', 'lstm')" in done.stderr


def test_terminal_gets_a_bar_even_when_it_reports_zero_columns(here):
    pty = pytest.importorskip("pty")
    leader, follower = pty.openpty()  # a fresh pty reports 0 rows and 0 columns
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("COLUMNS", None)
    try:
        done = subprocess.run([sys.executable, "-m", "tinygpt", "train", "--data", "text.txt", "--out-dir", "r", *TINY],
                              cwd=here, env=env, stdout=subprocess.PIPE, stderr=follower, text=True, timeout=300)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the pty is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    err = b"".join(chunks).decode("utf-8", "replace")
    assert done.returncode == 0, err
    assert "train:" in err and "6/6" in err and "\r" in err  # tqdm's bar, redrawn in place
    assert "train step 2/6" not in err  # no plain lines on a terminal
    bar = [line for line in err.replace("\r", "\n").splitlines() if "6/6" in line][-1]
    assert 40 <= len(bar) <= 80, bar  # the 80-column fallback, not a 0-wide or unbounded bar


def test_unk_with_a_tokenizer_that_needs_none_is_refused(here):
    done = tinygpt("train", "--data", "text.txt", "--out-dir", "r", "--tokenizer", "bpe", "--unk", "<unk>", cwd=here)
    assert done.returncode == 1 and "--unk" in done.stderr and "needs tokenizer 'char'" in done.stderr
    assert not (here / "r").exists()


# ----- tinygpt profile ---------------------------------------------------------------------------


def test_profile_prints_the_op_table_of_a_run_and_writes_a_trace(here):
    import json
    done = tinygpt("train", "--data", "text.txt", "--out-dir", "r", *TINY, cwd=here)
    assert done.returncode == 0, done.stderr
    done = tinygpt("profile", "--run", "r", "--trace", "step.json", cwd=here)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "one training step of r (forward, backward, clip, AdamW), after two warm-up steps:"
    assert lines[1].split()[:3] == ["op", "backend", "calls"]
    ops = {line.split()[0] for line in lines[3:] if line and not line.startswith(("-", "in ops"))}
    assert {"linear", "causal_self_attention", "layernorm", "cross_entropy", "embedding"} <= ops
    events = json.loads((here / "step.json").read_text())["traceEvents"]
    assert any(e.get("name") == "linear" and e.get("ph") == "X" for e in events)


def test_profile_refuses_run_and_config_together(here):
    done = tinygpt("profile", "--run", "r", "--config", "tiny", cwd=here)
    assert done.returncode == 2 and done.stderr.strip() == "tinygpt: error: pass --run RUN or --config NAME, not both"


def test_text_without_a_newline_trains_samples_and_generates(tmp_path):
    (tmp_path / "t.txt").write_text("to be or not to be that is the question " * 200, encoding="utf-8")
    tiny = [a if a != "0" else "12" for a in TINY]  # --sample-tokens 12
    done = tinygpt("train", "--data", "t.txt", "--out-dir", "r", *tiny, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "---- sample ----" in done.stdout
    assert (tmp_path / "r" / "sample.txt").read_text(encoding="utf-8").strip()
    assert (tmp_path / "r" / "loss.png").exists()
    done = tinygpt("generate", "--run", "r", "--max-new-tokens", "5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\n" not in done.stdout.rstrip("\n") and len(done.stdout.strip()) >= 5


def test_default_prompt_comes_from_the_vocabulary():
    from tinygpt.generate import default_prompt
    from tinygpt.tokenizers import CharTokenizer
    assert default_prompt(CharTokenizer.train("ab\ncd")) == "\n"
    assert default_prompt(CharTokenizer.train(" abc")) == "a"  # " " is text, but only whitespace
