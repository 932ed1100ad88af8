"""Two ranks against one process: data-parallel training draws the same windows, gives the same
losses and weights (to float32 summation order), keeps every rank's weights bit-identical, and
resumes across rank counts. Run them with two ranks (CI does):

    mpiexec -n 2 python -m pytest -q -p no:cacheprovider -m mpi tests/test_distributed_mpi.py

A plain `pytest` skips them (there is no second rank to compare with).
"""

import numpy as np
import pytest

import tinygpt.distributed as distributed
from tinygpt.checkpoint import load_checkpoint
from tinygpt.train import TrainConfig, Trainer

pytestmark = [pytest.mark.mpi,
              pytest.mark.skipif(distributed.launched_size() != 2,
                                 reason="needs exactly 2 MPI ranks: mpiexec -n 2 python -m pytest -m mpi ...")]

TEXT = "".join(f"line {i}: to be, or not to be, that is the question; whether 'tis nobler.\n" for i in range(300))
SMALL = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, eval_iters=2, eval_interval=10,
             warmup_steps=3, lr_decay_steps=20, sample_tokens=0, steps=20, max_lr=3e-3,
             mpi_timeout=60)  # a failed assert on one rank ends the other's wait within a minute
# float32 tolerance for "the same run computed on 2 ranks": the losses and the gradients are summed
# in another order (two halves, then the allreduce), which changes the last bits of each step. The
# losses stay within 1e-5 over 20 steps. The weights too, except where the true gradient is 0: the
# attention's key bias cannot change the softmax, so its gradient is rounding noise, and Adam turns
# noise of any size into steps of up to lr; those elements move apart by ~1e-5 (lr 3e-3, 20 steps).
LOSS_TOL, WEIGHT_TOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def world():
    w = distributed.get_world(timeout=60)
    assert w is not None and w.size == 2
    return w


@pytest.fixture
def shared(tmp_path, world):
    """A directory every rank sees: rank 0's tmp_path (one machine, one filesystem)."""
    from pathlib import Path
    path = Path(world.broadcast_text(str(tmp_path)))
    text = path / "text.txt"
    if world.is_root:
        text.write_text(TEXT, encoding="utf-8")
    world.barrier()
    return path


def one_process(monkeypatch, config):
    """Train `config` in this process alone, as if mpiexec had not started it -> (losses, Trainer)."""
    with monkeypatch.context() as m:
        m.setattr(distributed, "get_world", lambda *args, **kwargs: None)
        return run(config)


def run(config):
    losses = []
    trainer = Trainer(config, progress=lambda e: losses.append(e.loss) if e.kind == "step" else None)
    trainer.run()
    return losses, trainer


def params(trainer):
    return {name: p.data.copy() for name, p in trainer.model.named_parameters()}


@pytest.mark.parametrize("zero, grad_accum", [(0, 1), (1, 1), (0, 2), (1, 2)])
def test_two_ranks_train_like_one_process_with_twice_the_batch(monkeypatch, tmp_path, shared, world, zero, grad_accum):
    """2 ranks x 6 windows (or x 3 x 2 micro-steps) == 1 process x 12 windows: losses and weights."""
    data = str(shared / "text.txt")
    reference, ref = one_process(monkeypatch, TrainConfig(data=data, out_dir=str(tmp_path / f"one-{world.rank}"),
                                                          batch_size=12, **SMALL))
    losses, trainer = run(TrainConfig(data=data, out_dir=str(shared / "two"), batch_size=6 // grad_accum,
                                      grad_accum=grad_accum, zero=zero, check_weights_every=5, **SMALL))
    mine, theirs = params(trainer), params(ref)
    world.check_same(list(mine.values()), "the final weights")  # bit-identical on every rank
    assert trainer.global_batch == 12
    if world.is_root:  # only rank 0 reports the losses, and writes the files: each row once
        assert len(losses) == 20
        np.testing.assert_allclose(losses, reference, rtol=0, atol=LOSS_TOL)
        assert len((shared / "two" / "train_steps.csv").read_text().splitlines()) == 1 + 20
        assert [r.split(",")[0] for r in (shared / "two" / "metrics.csv").read_text().splitlines()] == \
            ["step", "0", "10", "20"]
    else:
        assert losses == []
    for name in mine:
        np.testing.assert_allclose(mine[name], theirs[name], rtol=0, atol=WEIGHT_TOL, err_msg=name)


def test_zero1_gives_the_weights_of_plain_data_parallel(shared, world):
    data = str(shared / "text.txt")
    _, plain = run(TrainConfig(data=data, out_dir=str(shared / "plain"), batch_size=6, **SMALL))
    _, zero = run(TrainConfig(data=data, out_dir=str(shared / "zero"), batch_size=6, zero=1, **SMALL))
    full = sum(p.data.size for p in plain.model.parameters())
    assert zero.optimizer.optimizer_bytes() <= 4 * 2 * (full // 2 + 1)  # half the moments of AdamW
    a, b = params(plain), params(zero)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6, err_msg=name)
    # the checkpoint holds AdamW's whole moments, gathered from both ranks
    if world.is_root:
        za, _ = load_checkpoint(shared / "zero" / "ckpt_000020.json")
        pa, _ = load_checkpoint(shared / "plain" / "ckpt_000020.json")
        assert sorted(za) == sorted(pa)
        for name in pa:
            np.testing.assert_allclose(za[name], pa[name], rtol=0, atol=1e-6, err_msg=name)
    world.barrier()


def test_a_run_saved_on_two_ranks_resumes_on_one_and_back(monkeypatch, tmp_path, shared, world):
    """10 steps on 2 ranks (ZeRO-1), 5 on 1 process with batch 12, 5 on 2 ranks again == 20 on 1."""
    data = str(shared / "text.txt")
    config = TrainConfig(data=data, out_dir=str(shared / "moving"), batch_size=6, zero=1, **SMALL)
    run(TrainConfig(**{**config.to_dict(), "steps": 10}))
    middle = None
    if world.is_root:  # rank 0 alone continues it as a single process, with the same global batch
        with pytest.raises(ValueError, match="global batch of 6 windows .* trained with 12"):
            one_process(monkeypatch, TrainConfig(**{**config.to_dict(), "steps": 15, "resume": True}))
        middle, _ = one_process(monkeypatch, TrainConfig(**{**config.to_dict(), "steps": 15, "resume": True,
                                                              "batch_size": 12, "zero": 0}))
    world.barrier()
    losses, trainer = run(TrainConfig(**{**config.to_dict(), "steps": 20, "resume": True}))
    world.check_same([p.data for p in trainer.model.parameters()], "the resumed weights")
    reference, ref = one_process(monkeypatch, TrainConfig(data=data, out_dir=str(tmp_path / f"ref-{world.rank}"),
                                                          batch_size=12, **SMALL))
    if world.is_root:
        np.testing.assert_allclose(middle + losses, reference[10:], rtol=0, atol=LOSS_TOL)
    for name, p in trainer.model.named_parameters():
        np.testing.assert_allclose(p.data, dict(ref.model.named_parameters())[name].data, rtol=0, atol=WEIGHT_TOL,
                                   err_msg=name)


def test_the_loss_estimate_is_sharded_and_matches_one_process(monkeypatch, tmp_path, shared, world):
    data = str(shared / "text.txt")
    config = dict(SMALL, steps=0)
    _, ref = one_process(monkeypatch, TrainConfig(data=data, out_dir=str(tmp_path / f"e-{world.rank}"),
                                                  batch_size=12, **config))
    _, two = run(TrainConfig(data=data, out_dir=str(shared / "eval"), batch_size=6, **config))
    a, b = ref.estimate_loss(), two.estimate_loss()
    for split in ("train", "val"):
        assert b[split] == pytest.approx(a[split], abs=1e-5)


def keras_model(seed):
    from tinygpt.keras import Input, Sequential
    from tinygpt.keras.layers import Dense
    model = Sequential([Input(shape=(6,)), Dense(16, activation="tanh"), Dense(3, activation="softmax")], seed=seed)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_keras_fit_under_mpiexec_is_data_parallel_and_matches_one_process(world):
    """45 samples in batches of 10: the last batch of 5 splits 3 + 2, so the shards are weighted."""
    from tinygpt.keras import distribution
    rng = np.random.default_rng(0)
    x = rng.normal(size=(45, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    assert isinstance(distribution.distribution(), distribution.DataParallel)  # automatic under mpiexec
    distribution.set_distribution(distribution.SingleProcess())
    try:
        alone = keras_model(seed=1)
        alone_history = alone.fit(x, y, batch_size=10, epochs=3, seed=4, verbose=0).history
    finally:
        distribution.set_distribution(None)
    # rank 1 starts from other weights and another shuffle seed: rank 0's are broadcast
    two = keras_model(seed=1 + world.rank)
    history = two.fit(x, y, batch_size=10, epochs=3, seed=4 + world.rank, verbose=0).history
    world.check_same([p.data for p in two.parameters()], "the keras weights")
    for p, q in zip(two.parameters(), alone.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=0, atol=1e-5)
    np.testing.assert_allclose(history["loss"], alone_history["loss"], rtol=1e-5)
    assert history["accuracy"] == alone_history["accuracy"]  # the whole batch's predictions, gathered
