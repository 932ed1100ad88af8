"""bench/default_train.py races the real Trainer against TorchGPT: the torch side must start from the
same weights and see the same batches and loss-estimate windows, so its first losses equal tinygpt's.
Skipped when torch is not installed."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench import default_train  # noqa: E402
from tinygpt.data import random_windows  # noqa: E402
from tinygpt.train import Trainer  # noqa: E402

TEXT = "".join(f"{i} little pigs went to market, and {i * 7 % 13} came home.\n" for i in range(400))


@pytest.fixture
def one_thread():
    """Both libraries on one thread: in one process tinygpt's C kernels run on torch's OpenMP
    runtime, whose spinning threads make a 2-thread test 10x slower on a busy machine."""
    from bench import common
    threads = torch.get_num_threads()
    common.set_threads(1)
    yield
    common.set_threads(threads)


@pytest.fixture
def both_sides(tmp_path, one_thread):
    data = tmp_path / "pigs.txt"
    data.write_text(TEXT)
    config = default_train.race_config(tmp_path, steps=4, data=str(data), n_layer=2, eval_iters=3)
    trainer = Trainer(config)
    default_train.export(trainer, tmp_path)
    return trainer, default_train.TorchRun(tmp_path)


def test_windows_match_tinygpt_random_windows():
    tokens = np.arange(1000) % 37
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(3):
        for ours, theirs in zip(default_train.windows(tokens, 4, 16, a), random_windows(tokens, 4, 16, b)):
            np.testing.assert_array_equal(ours, theirs)


def test_default_train_torch_side_matches_the_trainer_step_for_step(both_sides):
    trainer, run = both_sides
    digest = default_train.tinygpt_batches_digest(trainer, 4)
    first = trainer.estimate_loss(), run.estimate_loss()
    for split in ("train", "val"):
        assert abs(first[0][split] - first[1][split]) < 1e-5, (split, first)
    for step in range(4):
        ours, theirs = trainer.train_step()[0], run.train_step()
        # step 0: same weights, same batch; later steps: same AdamW, lr, clip (float32 rounding only)
        assert abs(ours - theirs) < (1e-5 if step == 0 else 1e-4), (step, ours, theirs)
    assert run.digest.hexdigest() == digest  # the torch side drew the Trainer's batches
    after = trainer.estimate_loss(), run.estimate_loss()
    assert abs(after[0]["val"] - after[1]["val"]) < 1e-4, after
