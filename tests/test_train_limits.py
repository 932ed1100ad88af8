"""Requested work is checked against the data and the machine before anything big is allocated."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinygpt.train import limits

ROOT = Path(__file__).resolve().parent.parent
GPT = {"type": "gpt", "vocab_size": 70, "block_size": 64, "n_layer": 4, "n_embd": 128, "n_head": 4}


def test_step_bytes_grow_with_the_batch_and_include_the_optimizer_state():
    one, two = limits.step_bytes(GPT, 1, 10**6), limits.step_bytes(GPT, 2, 10**6)
    per_window = two - one
    assert per_window == 4 * 64 * (4 * 20 * 128 + 3 * 70)
    assert one - per_window == 4 * 4 * 10**6  # weights, gradients, two AdamW moments


def test_a_batch_that_cannot_fit_is_refused_with_the_estimate_and_a_size_that_fits():
    with pytest.raises(ValueError, match=r"^--batch-size 100000 x --block-size 64 needs about "
                                         r"[\d.]+ GiB for one training step, and this machine has "
                                         r"1.0 GiB available; use a smaller --batch-size \(at most about \d+\)"):
        limits.check_step_fits(GPT, 100000, 64, 10**6, available=2**30)
    limits.check_step_fits(GPT, 12, 64, 10**6, available=2**30)  # the default fits easily


def test_a_loss_estimate_that_rereads_its_split_a_hundred_times_is_refused():
    limits.check_eval_work(20, 12, 64, 154)  # 15,360 tokens: under 100 times 154, allowed
    with pytest.raises(ValueError):
        limits.check_eval_work(20, 12, 64, 153)
    with pytest.raises(ValueError, match=r"^--eval-iters 100000 x --batch-size 12 x --block-size 64 "
                                         r"reads 76,800,000 tokens per loss estimate"):
        limits.check_eval_work(100000, 12, 64, 7800)


def test_cli_refuses_an_impossible_batch_before_allocating_it(tmp_path):
    (tmp_path / "t.txt").write_text("to be or not to be\n" * 400, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "tinygpt", "train", "--data", "t.txt",
                           "--batch-size", "100000000"], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("tinygpt: error: --batch-size 100000000 x --block-size 64 needs about")
    assert not (tmp_path / "runs").exists()  # refused before the run directory was made
