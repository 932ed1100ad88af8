"""Reliability of the run directory under real processes: one writer at a time (the run lock),
SIGTERM/SIGHUP stop training like Ctrl-C does (checkpoint, exit 128+signal, exact resume), and
damaged checkpoints never block readers or get half-loaded. The CLI tests run
`python -m tinygpt` in subprocesses, so signals and exit codes are the real ones."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygpt.checkpoint import latest_checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
TEXT = "".join(f"line {i}: to be, or not to be, that is the question.\n" for i in range(150))
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--eval-iters", "2", "--warmup-steps", "2", "--sample-tokens", "0"]


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", "/tmp/numba_cache")}


def tinygpt(*args, timeout=180):
    """Run `python -m tinygpt args` -> (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "tinygpt", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env())
    return done.returncode, done.stdout, done.stderr


def first_line(text):
    return text.strip().splitlines()[0] if text.strip() else ""


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def train_run(tmp_path, text_file, name="run", steps=8, eval_interval=4, *extra):
    code, out, err = tinygpt("train", "--data", text_file, "--out-dir", tmp_path / name, *TINY,
                             "--steps", steps, "--eval-interval", eval_interval, *extra)
    assert code == 0, err
    return tmp_path / name


def weights(run_dir):
    return load_checkpoint(run_dir)[0]


# ----- 1. one writer per run directory --------------------------------------------------------

HOLD_LOCK = """
import sys, time
from tinygpt.train.runs import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_run_lock_refuses_a_second_writer_naming_the_pid(tmp_path, text_file):
    run_dir = train_run(tmp_path, text_file)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE,
                              text=True, env=env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = sorted(p.name for p in run_dir.iterdir())
        code, _, err = tinygpt("train", "--resume", run_dir, "--steps", 12)
        assert code == 1
        line = first_line(err)
        assert line.startswith("tinygpt: error:") and f"process {holder.pid}" in line, err
        assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing written, nothing deleted
        # readers do not take the lock
        code, out, err = tinygpt("generate", "--run", run_dir, "--max-new-tokens", 5, "--seed", 0)
        assert code == 0, err
        code, out, err = tinygpt("evaluate", "--run", run_dir)
        assert code == 0 and "perplexity" in out, err
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the dead holder's flock: its lock file (with a dead pid) is taken over
    assert (run_dir / ".lock").read_text().split()[0] == str(holder.pid)
    code, _, err = tinygpt("train", "--resume", run_dir, "--steps", 12)
    assert code == 0, err
    assert latest_checkpoint(run_dir).name == "ckpt_000012.json"
    assert not (run_dir / ".lock").exists()  # released on exit


def test_run_lock_stale_file_with_a_dead_pid_is_taken_over(tmp_path, text_file):
    run_dir = train_run(tmp_path, text_file)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_dir / ".lock").write_text(f"{dead.pid} {socket.gethostname()}\n")
    code, _, err = tinygpt("train", "--resume", run_dir, "--steps", 12)
    assert code == 0, err
    assert latest_checkpoint(run_dir).name == "ckpt_000012.json"


def test_run_lock_in_process_second_lock_is_refused_and_release_frees_it(tmp_path):
    from tinygpt.train.runs import RunLock
    first = RunLock(tmp_path).acquire()
    with pytest.raises(ValueError, match=f"process {os.getpid()} on"):
        RunLock(tmp_path).acquire()
    first.release()
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    assert not (tmp_path / ".lock").exists()


# ----- 2. SIGTERM and SIGHUP ------------------------------------------------------------------


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_saves_a_checkpoint_exits_128_plus_signal_and_resume_is_exact(tmp_path, text_file, signum, code):
    straight = train_run(tmp_path, text_file, "straight", 3000, 3000)
    run_dir = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "tinygpt", "train", "--data", str(text_file), "--out-dir",
                             str(run_dir), *TINY, "--steps", "3000", "--eval-interval", "3000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    deadline = time.time() + 120
    while not (run_dir / "metrics.csv").exists():  # the step-0 estimate is written: training has begun
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.1)  # a few steps in, before any checkpoint
    assert latest_checkpoint(run_dir) is None
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.count(f"tinygpt train --resume {run_dir}") == 1, err  # the resume command, once
    saved = latest_checkpoint(run_dir)
    assert saved is not None and 0 < load_checkpoint(saved)[1]["step"] < 3000
    code, _, err = tinygpt("train", "--resume", run_dir)
    assert code == 0, err
    a, b = weights(straight), weights(run_dir)
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
