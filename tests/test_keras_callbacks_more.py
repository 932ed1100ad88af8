"""tinygpt.keras ReduceLROnPlateau, LearningRateScheduler, CSVLogger, TerminateOnNaN and
LambdaCallback, each judged by what it does during a real small fit. Oracles: Keras' rules
replayed over the fit's own recorded losses, the History against the CSV file, and counts of
the hooks the loop must call."""

import csv
import math

import numpy as np
import pytest

import tinygpt.keras
from tinygpt.keras import callbacks, optimizers
from tinygpt.keras.layers import Dense, Input


def regression(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1).astype(np.float32)
    return x, y


def model(lr=0.01, optimizer=None):
    m = tinygpt.keras.Sequential([Input(shape=(3,)), Dense(4, activation="tanh"), Dense(1)], seed=0)
    m.compile(optimizer=optimizer or optimizers.SGD(learning_rate=lr), loss="mse")
    return m


def keras_plateau_lrs(losses, lr, factor, patience, min_delta, cooldown, min_lr):
    """Keras 3's ReduceLROnPlateau.on_epoch_end replayed: the lr logged at each epoch's end."""
    best, wait, cool, logged = math.inf, 0, 0, []
    for loss in losses:
        logged.append(lr)
        if cool > 0:
            cool, wait = cool - 1, 0
        if loss < best - min_delta:
            best, wait = loss, 0
        elif cool <= 0:
            wait += 1
            if wait >= patience and lr > min_lr:
                lr, cool, wait = max(lr * factor, min_lr), cooldown, 0
    return logged, lr


def test_reduce_lr_on_plateau_follows_keras_rule_during_fit():
    x, y = regression()
    m = model(lr=0.05)
    # min_delta so large that only the first epoch counts as an improvement: reductions follow
    reduce = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=0.05,
                                         cooldown=1, min_lr=0.01)
    history = m.fit(x, y, epochs=20, batch_size=8, verbose=0, shuffle=False, callbacks=[reduce])
    expected, final = keras_plateau_lrs(history.history["loss"], 0.05, 0.5, 2, 0.05, 1, 0.01)
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-12)
    assert m.optimizer.learning_rate == pytest.approx(final)
    assert min(expected) == pytest.approx(0.01) and len(set(expected)) > 2  # it did reduce, to min_lr


def test_reduce_lr_on_plateau_rejects_factor_of_one_or_more():
    with pytest.raises(ValueError, match="factor must be < 1.*got 1.5"):
        callbacks.ReduceLROnPlateau(factor=1.5)


def test_learning_rate_scheduler_sets_each_epochs_rate_and_the_step_uses_it():
    x, y = regression()
    seen = []
    schedule = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 if epoch == 0 else lr * 0.5)
    spy = callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(m.optimizer.learning_rate))
    m = model(lr=0.7)
    history = m.fit(x, y, epochs=4, batch_size=40, verbose=0, callbacks=[schedule, spy])
    assert seen == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    # a schedule of 0 must leave the weights alone: the rate really reaches the step
    frozen = model(lr=0.7)
    before = frozen.get_weights()
    frozen.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e: 0.0)])
    for a, b in zip(before, frozen.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_learning_rate_scheduler_names_a_bad_return_value():
    x, y = regression()
    with pytest.raises(ValueError, match="returned None"):
        model().fit(x, y, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: None)])


def test_csv_logger_rows_equal_history_and_append_adds_rows(tmp_path):
    x, y = regression()
    path = tmp_path / "log.csv"
    path.write_text("unrelated\n")
    m = model()
    history = m.fit(x, y, epochs=3, verbose=0, validation_split=0.25,
                    callbacks=[callbacks.CSVLogger(path)])
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["epoch", "loss", "val_loss"]  # the old content is replaced, as Keras
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose([float(r[key]) for r in rows], history.history[key], rtol=1e-12)
    m.fit(x, y, epochs=2, verbose=0, validation_split=0.25,
          callbacks=[callbacks.CSVLogger(path, separator=";", append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 3 + 2 and lines[4].startswith("0;") and lines[5].startswith("1;")


def test_terminate_on_nan_stops_within_the_epoch():
    x, y = regression()
    y[20] = np.nan  # sample 20 sits in the third batch of 8 (no shuffling)
    batches = []
    spy = callbacks.LambdaCallback(on_batch_end=lambda b, logs: batches.append(b))
    with pytest.warns(RuntimeWarning, match="Batch 2: Invalid loss nan"):
        history = model().fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0,
                              callbacks=[callbacks.TerminateOnNaN(), spy])
    assert batches == [0, 1, 2]  # batches 3 and 4 and the later epochs never ran
    # as in Keras 3 the cut-short epoch still ends (its logs hold the NaN), and no other starts
    assert len(history.history["loss"]) == 1 and math.isnan(history.history["loss"][0])


def test_lambda_callback_hooks_are_called_as_the_loop_runs():
    x, y = regression()
    events = []
    spy = callbacks.LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda e, logs: events.append(f"epoch_begin {e}"),
        on_batch_begin=lambda b, logs: events.append(f"batch_begin {b}"),
        on_batch_end=lambda b, logs: events.append(f"batch_end {b}"),
        on_epoch_end=lambda e, logs: events.append(f"epoch_end {e} {sorted(logs)}"),
        on_train_end=lambda logs: events.append("train_end"))
    model().fit(x, y, epochs=2, batch_size=20, verbose=0, callbacks=[spy])
    batch = ["batch_begin 0", "batch_end 0", "batch_begin 1", "batch_end 1"]
    assert events == (["train_begin", "epoch_begin 0"] + batch + ["epoch_end 0 ['loss']", "epoch_begin 1"]
                      + batch + ["epoch_end 1 ['loss']", "train_end"])


def test_lambda_callback_rejects_a_non_function():
    with pytest.raises(TypeError, match="on_epoch_end must be a function"):
        callbacks.LambdaCallback(on_epoch_end=3)


class Interrupt(Exception):
    pass


def crash_at(epoch_to_crash):
    def on_epoch_begin(epoch, logs):
        if epoch == epoch_to_crash:
            raise Interrupt(f"killed at epoch {epoch}")
    return callbacks.LambdaCallback(on_epoch_begin=on_epoch_begin)


@pytest.mark.parametrize("make_optimizer", [lambda: optimizers.Adam(learning_rate=0.01),
                                            lambda: optimizers.Nadam(learning_rate=0.01)])
def test_backup_and_restore_resumes_to_the_uninterrupted_result(tmp_path, make_optimizer):
    x, y = regression()
    straight = model(optimizer=make_optimizer())
    straight.fit(x, y, epochs=6, batch_size=8, shuffle=False, verbose=0)

    backup = tmp_path / "backup"
    interrupted = model(optimizer=make_optimizer())
    with pytest.raises(Interrupt):
        interrupted.fit(x, y, epochs=6, batch_size=8, shuffle=False, verbose=0,
                        callbacks=[callbacks.BackupAndRestore(backup), crash_at(3)])
    assert (backup / "latest.safetensors").exists() and (backup / "latest.json").exists()
    assert "pickle" not in (backup / "latest.json").read_text()

    resumed = model(optimizer=make_optimizer())  # a fresh process: new weights, new optimizer
    history = resumed.fit(x, y, epochs=6, batch_size=8, shuffle=False, verbose=0,
                          callbacks=[callbacks.BackupAndRestore(backup)])
    assert history.epoch == [3, 4, 5]
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 6 * 5
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not (backup / "latest.json").exists()  # a finished fit deletes its backup


def test_backup_and_restore_refuses_batch_save_freq(tmp_path):
    with pytest.raises(NotImplementedError, match="save_freq=100"):
        callbacks.BackupAndRestore(tmp_path, save_freq=100)
