"""Fine-tuning survives being stopped: SIGTERM saves and exits 143, kill -9 loses at most the steps since
the last periodic checkpoint, and `tinygpt finetune --resume` then reaches the very weights, metrics and
accuracy of a run that was never stopped (the oracle). A second writer is refused by the run lock.
Everything runs `python -m tinygpt` in subprocesses, so the signals and exit codes are the real ones."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygpt.checkpoint import latest_checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
TEXT = "".join(f"review {i}: a great, wonderful film. an awful, boring plot.\n" for i in range(100))
WORDS = {"pos": "great wonderful film fun".split(), "neg": "awful boring plot dull".split()}
STEPS, EVERY = 1500, 40  # enough steps that a signal lands mid-run, a checkpoint every 40 steps


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", "/tmp/numba_cache")}


def tinygpt(*args, timeout=300):
    done = subprocess.run([sys.executable, "-m", "tinygpt", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env())
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny pretrained run, a labelled CSV, and an uninterrupted fine-tuning run to compare with."""
    root = tmp_path_factory.mktemp("ft")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    code, _, err = tinygpt("train", "--data", root / "text.txt", "--out-dir", root / "pre", "--n-layer", 1,
                           "--n-head", 2, "--n-embd", 16, "--block-size", 16, "--batch-size", 4, "--steps", 5,
                           "--eval-interval", 5, "--eval-iters", 1, "--sample-tokens", 0)
    assert code == 0, err
    with open(root / "labelled.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(50):  # 50 examples, batch 8: epochs of 5 steps, so resumes land mid-epoch too
            label = "pos" if i % 2 else "neg"
            writer.writerow([" ".join(np.random.default_rng(i).choice(WORDS[label], 3 + i % 3)), label])
    args = ["finetune", "--from", root / "pre", "--data", root / "labelled.csv", "--batch-size", 8,
            "--max-len", 16, "--lr", 1e-3, "--steps", STEPS, "--eval-interval", EVERY]
    code, _, err = tinygpt(*args, "--out-dir", root / "straight")
    assert code == 0, err
    return root, args


def start(args, run_dir):
    return subprocess.Popen([sys.executable, "-m", "tinygpt", *map(str, args), "--out-dir", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())


def wait_for_checkpoint(proc, run_dir):
    deadline = time.time() + 240
    while latest_checkpoint(run_dir) is None:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)


def assert_same_run(straight, resumed):
    a, b = load_checkpoint(straight)[0], load_checkpoint(resumed)[0]
    assert sorted(a) == sorted(b) and any(name.startswith("model.head") for name in a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert (straight / "results.json").read_text() == (resumed / "results.json").read_text()  # accuracy, F1
    assert (straight / "metrics.csv").read_text() == (resumed / "metrics.csv").read_text()  # every loss


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_finetune_signal_saves_exits_128_plus_signal_and_resume_is_bit_identical(setup, signum, code):
    root, args = setup
    run_dir = root / f"stopped-{signum}"
    proc = start(args, run_dir)
    wait_for_checkpoint(proc, run_dir)
    time.sleep(0.05)  # usually a few steps past the checkpoint: the signal's own save is tested too
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.count(f"tinygpt finetune --resume {run_dir}") == 1, err
    step = load_checkpoint(latest_checkpoint(run_dir))[1]["step"]
    assert 0 < step < STEPS and not (run_dir / "config.json").exists()
    code, _, err = tinygpt("finetune", "--resume", run_dir)
    assert code == 0, err
    assert_same_run(root / "straight", run_dir)


def test_finetune_killed_with_sigkill_resumes_to_the_same_weights(setup):
    root, args = setup
    run_dir = root / "killed"
    proc = start(args, run_dir)
    wait_for_checkpoint(proc, run_dir)
    proc.send_signal(signal.SIGKILL)  # no chance to save: resume starts from the last periodic checkpoint
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    code, _, err = tinygpt("finetune", "--resume", run_dir)
    assert code == 0, err
    assert_same_run(root / "straight", run_dir)


def test_finetune_resume_of_a_run_being_written_is_refused_by_the_lock(setup):
    root, args = setup
    run_dir = root / "busy"
    proc = start(args, run_dir)
    try:
        wait_for_checkpoint(proc, run_dir)
        code, _, err = tinygpt("finetune", "--resume", run_dir)
        assert code == 1 and f"in use by process {proc.pid}" in err, err
        assert proc.poll() is None  # the writer goes on
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("extra, match", [(["--resume", "x", "--lr", "0.1"], "drop --lr"),
                                          (["--data", "a.csv"], "--from"),
                                          (["--from", "x"], "one of the arguments --data --corpus")])
def test_finetune_resume_command_line_errors_are_one_line(tmp_path, extra, match):
    code, _, err = tinygpt("finetune", *extra)
    assert code == 2 and err.count("\n") == 1 and match in err, err


def test_finetune_resume_refuses_a_directory_that_is_not_an_interrupted_finetune(setup):
    root, _ = setup
    code, _, err = tinygpt("finetune", "--resume", root / "straight")
    assert code == 1 and "finished classifier run" in err, err
    code, _, err = tinygpt("finetune", "--resume", root / "pre")
    assert code == 1 and "finetune.json" in err, err


def test_finetune_api_resume_of_a_frozen_body_mid_epoch_is_exact(setup, tmp_path):
    from tinygpt.finetune import FinetuneConfig, finetune
    root, _ = setup
    base = dict(from_run=str(root / "pre"), data=str(root / "labelled.csv"), batch_size=8, max_len=16,
                lr=1e-2, steps=23, eval_interval=5, freeze_body=True)  # about 40 training examples: 5 steps an epoch
    straight = finetune(FinetuneConfig(**base, out_dir=str(tmp_path / "straight")))

    def stop_at_step_12(event):  # mid-epoch, between checkpoints
        if event.kind == "step" and event.step == 12:
            os.kill(os.getpid(), signal.SIGINT)

    stopped = finetune(FinetuneConfig(**base, out_dir=str(tmp_path / "stopped")), progress=stop_at_step_12)
    assert stopped.interrupted and stopped.step == 12 and stopped.stop_signal == signal.SIGINT
    assert stopped.checkpoint.name == "ckpt_000012.json"
    assert [p.name for p in sorted(tmp_path.joinpath("stopped").glob("ckpt_*.json"))] == \
        ["ckpt_000010.json", "ckpt_000012.json"]  # 5 was pruned: the last two are kept
    resumed = finetune(FinetuneConfig.resuming(tmp_path / "stopped"))
    assert not resumed.interrupted and resumed.step == 23 and resumed.accuracy == straight.accuracy
    assert_same_run(tmp_path / "straight", tmp_path / "stopped")
