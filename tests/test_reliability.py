"""Reliability of the run directory under real processes: one writer at a time (the run lock),
SIGTERM/SIGHUP stop training like Ctrl-C does (checkpoint, exit 128+signal, exact resume), and
damaged checkpoints never block readers or get half-loaded. The CLI tests run
`python -m tinygpt` in subprocesses, so signals and exit codes are the real ones."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    RunLock(tmp_path).acquire()  # dropped without release(): garbage collection frees it
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    assert not (tmp_path / ".lock").exists()


# ----- 2. SIGTERM and SIGHUP ------------------------------------------------------------------


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
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


# ----- 3. damaged checkpoints -----------------------------------------------------------------


def damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[:len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_damaged_newest_checkpoint_readers_fall_back_and_resume_offers_the_flag(tmp_path, text_file, how):
    run_dir = train_run(tmp_path, text_file, "run", 8, 4)  # keeps ckpt_000004 and ckpt_000008
    damage(run_dir / "ckpt_000008.safetensors", how)
    code, out, err = tinygpt("evaluate", "--run", run_dir)
    assert code == 0, err
    line = first_line(err)
    assert line.startswith("tinygpt: warning:") and "ckpt_000008" in line and "using ckpt_000004" in line, err
    assert "at step 4" in out
    code, out, err = tinygpt("generate", "--run", run_dir, "--max-new-tokens", 5, "--seed", 0)
    assert code == 0 and "using ckpt_000004" in first_line(err), err

    code, _, err = tinygpt("train", "--resume", run_dir, "--steps", 12)
    assert code == 1 and "--checkpoint ckpt_000004" in first_line(err), err
    code, _, err = tinygpt("train", "--resume", run_dir, "--steps", 12, "--checkpoint", "ckpt_000004")
    assert code == 0, err
    assert (run_dir / "damaged_ckpt_000008.safetensors").is_file()  # kept for a look, out of the way
    straight = train_run(tmp_path, text_file, "straight", 12, 4, "--lr-decay-steps", 8)  # the same schedule
    a, b = weights(straight), weights(run_dir)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_arrays_without_their_json_are_warned_about(tmp_path, text_file):
    run_dir = train_run(tmp_path, text_file, "run", 8, 4)
    (run_dir / "ckpt_000008.json").unlink()
    code, out, err = tinygpt("evaluate", "--run", run_dir)
    assert code == 0 and "at step 4" in out, err
    line = first_line(err)
    assert line.startswith("tinygpt: warning:") and "ckpt_000008.safetensors has no ckpt_000008.json" in line


def test_leftover_temp_files_are_removed_by_the_next_writer(tmp_path, text_file):
    run_dir = train_run(tmp_path, text_file, "run", 8, 4)
    leftover = run_dir / ".ckpt_000012.safetensors.abc123.tmp"
    leftover.write_bytes(b"half a save")
    code, _, err = tinygpt("evaluate", "--run", run_dir)  # a reader leaves it: it might be a live save
    assert code == 0 and leftover.exists()
    code, _, err = tinygpt("train", "--resume", run_dir, "--steps", 12)
    assert code == 0, err
    assert not leftover.exists()


def test_non_finite_tensor_is_refused_naming_it(tmp_path):
    from tinygpt.checkpoint import CheckpointError, save_checkpoint
    w = np.ones((2, 3), np.float32)
    w[1, 2] = np.nan
    save_checkpoint(tmp_path / "ckpt", {"ok": np.zeros(2, np.float32), "model.w": w}, {"step": 1})
    with pytest.raises(CheckpointError, match=r"'model.w' \(2, 3\) has 1 non-finite"):
        load_checkpoint(tmp_path / "ckpt")


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(step=-3), r"step is -3, expected an int >= 0"),
    (lambda m: m.update(step="8"), r"step is '8', expected an int >= 0"),
    (lambda m: m.update(step=99), r"already at step 99, past steps=8"),
    (lambda m: m["rng"].update(data={"kind": "Generator", "state": {"bit_generator": "Nope"}}), r"rng\['data'\]"),
    (lambda m: m["rng"].pop("dropout"), r"rng is .*expected \{'data'"),
    (lambda m: m.update(optimizer=[]), r"optimizer is \[\], expected"),
])
def test_hand_edited_checkpoint_json_names_file_field_value_and_expectation(tmp_path, text_file, edit, match):
    import json
    run_dir = train_run(tmp_path, text_file, "run", 8, 4)
    record_path = run_dir / "ckpt_000008.json"
    record = json.loads(record_path.read_text())
    edit(record["meta"])
    record_path.write_text(json.dumps(record))
    code, _, err = tinygpt("train", "--resume", run_dir, "--steps", 8)
    line = first_line(err)
    assert code == 1 and line.startswith("tinygpt: error:") and "Error:" not in line, err
    import re
    assert re.search(match, line), line


def test_optimizer_state_of_the_wrong_shape_is_refused(tmp_path, text_file):
    from tinygpt.checkpoint import save_checkpoint
    run_dir = train_run(tmp_path, text_file, "run", 8, 4)
    tensors, meta = load_checkpoint(run_dir / "ckpt_000008")
    name = next(n for n in tensors if n.startswith("optim.") and n.endswith("exp_avg"))
    tensors[name] = np.zeros(tensors[name].shape + (2,), tensors[name].dtype)
    save_checkpoint(run_dir / "ckpt_000008", tensors, meta)
    code, _, err = tinygpt("train", "--resume", run_dir, "--steps", 8)
    assert code == 1 and "ckpt_000008.json" in first_line(err) and "shape" in first_line(err), err


SAVED = {"model.w": np.arange(12, dtype=np.float32).reshape(3, 4) / 7, "model.b": np.array([1.5, -2.0]),
         "optim.0.exp_avg": np.full((3, 4), 1e-3, np.float32)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from([".json", ".safetensors"]), how=st.sampled_from(["truncate", "flip"]),
       where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_damaged_checkpoint_is_loaded_exactly_or_refused_with_valueerror(tmp_path, which, how, where, bit):
    from tinygpt.checkpoint import save_checkpoint
    stem = tmp_path / "ckpt_000003"
    save_checkpoint(stem, SAVED, {"kind": "lm", "step": 3, "rng": {"seed": [1, 2]}})
    path = stem.with_suffix(which)
    data = bytearray(path.read_bytes())
    at = int(where * len(data))
    if how == "truncate":
        data = data[:at]
    else:
        data[at] ^= 1 << bit
    path.write_bytes(bytes(data))
    try:
        tensors, meta = load_checkpoint(stem)
    except ValueError:
        return  # refused (CheckpointError is a ValueError); any other exception type fails the test
    assert sorted(tensors) == sorted(SAVED)  # never half-loaded: every tensor, bit for bit
    for name, array in SAVED.items():
        assert tensors[name].dtype == array.dtype and tensors[name].tobytes() == array.tobytes(), name
    assert isinstance(meta, dict)


# ----- 4. bad arguments and hand-edited config.json -------------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    (tmp / "text.txt").write_text(TEXT, encoding="utf-8")
    return train_run(tmp, tmp / "text.txt", "run", 4, 4)


@pytest.mark.parametrize("argv, expected", [
    (["evaluate", "--max-batches", "0"], "--max-batches must be an int >= 1"),
    (["evaluate", "--batch-size", "0"], "--batch-size must be an int >= 1"),
    (["generate", "--seed", "-1"], "--seed must be an integer >= 0"),
])
def test_bad_reader_arguments_are_one_line_naming_the_argument(small_run, argv, expected):
    code, _, err = tinygpt(argv[0], "--run", small_run, *argv[1:])
    assert code == 1 and first_line(err).startswith(f"tinygpt: error: {expected}") and "got" in first_line(err), err


@pytest.mark.parametrize("command", [["train", "--data"], ["finetune", "--from", "RUN", "--data"]])
def test_negative_train_and_finetune_seed_is_one_line(small_run, command):
    text = small_run.parent / "text.txt"
    argv = [small_run if a == "RUN" else a for a in command] + [text, "--seed", "-1", "--out-dir", small_run.parent / "x"]
    code, _, err = tinygpt(*argv)
    assert code == 1 and "seed must be an integer >= 0, got -1" in first_line(err), err
    assert not (small_run.parent / "x").exists()


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c.pop("model"), "field 'model' is missing, expected a dict"),
    (lambda c: c.update(train=3), "field 'train' is 3, expected a dict"),
    (lambda c: c["model"].pop("type"), "field 'model' has no 'type'"),
])
def test_config_json_without_a_needed_field_names_the_file_and_field(small_run, tmp_path, edit, expected):
    import json
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(small_run, broken)
    config = json.loads((broken / "config.json").read_text())
    edit(config)
    (broken / "config.json").write_text(json.dumps(config))
    for argv in (["generate", "--run", broken], ["evaluate", "--run", broken], ["train", "--resume", broken]):
        code, _, err = tinygpt(*argv)
        line = first_line(err)
        assert code == 1 and line.startswith("tinygpt: error:") and str(broken / "config.json") in line, (argv, err)
        assert expected in line, (argv, line)


BARE_EXCEPTION = re.compile(r"\b(Key|Index|Attribute|ZeroDivision|Type|Name|Unbound|Assertion|"
                            r"NotImplemented|Recursion|Lookup|Runtime)(Error)?\b: |Traceback|\bKeyError\b")


def test_the_cli_never_prints_a_bare_exception_type(small_run, tmp_path):
    """Every bad invocation here ends in one line that names the argument or file, never in an
    internal exception's type (KeyError: 'rng' is not a message)."""
    (tmp_path / "config_only").mkdir()
    (tmp_path / "config_only" / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    cases = [
        ["evaluate", "--run", small_run, "--max-batches", "0"],
        ["evaluate", "--run", small_run, "--batch-size", "0"],
        ["evaluate", "--run", tmp_path / "config_only"],
        ["evaluate", "--run", tmp_path / "missing"],
        ["generate", "--run", tmp_path / "a_file"],
        ["generate", "--run", small_run, "--seed", "-1"],
        ["generate", "--run", small_run, "--num-samples", "0"],
        ["generate", "--run", small_run, "--top-p", "7"],
        ["train", "--data", tmp_path / "missing.txt"],
        ["train", "--data", tmp_path / "a_file", "--steps", "-1"],
        ["train", "--resume", tmp_path / "config_only"],
        ["train", "--resume", small_run, "--init-from", small_run],
        ["train", "--model", "lstm", "--n-layer", "2"],
        ["finetune", "--from", small_run, "--data", tmp_path / "missing.csv"],
        ["finetune", "--from", tmp_path / "a_file", "--data", tmp_path / "a_file"],
        ["plot", "--run", tmp_path / "missing"],
        ["profile", "--run", tmp_path / "missing"],
    ]
    for argv in cases:
        code, out, err = tinygpt(*argv)
        assert code in (1, 2), (argv, code, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("tinygpt: error: "), (argv, err)
        assert not BARE_EXCEPTION.search(err), (argv, err)
