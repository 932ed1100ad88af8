"""Callbacks: objects the training loop calls at the start and end of training, of each epoch and
of each batch, with Keras' names and arguments. `logs` is a dict such as {"loss": 2.3, "accuracy":
0.4, "val_loss": 2.5}; a callback stops training by setting `self.model.stop_training = True`.

History records every epoch's logs (fit returns it); ProgbarLogger is fit's `verbose` output;
EarlyStopping stops when a monitored value stops improving; ModelCheckpoint saves weights;
ReduceLROnPlateau and LearningRateScheduler set the learning rate per epoch; CSVLogger writes the
epoch logs; TerminateOnNaN stops at a non-finite loss; LambdaCallback wraps plain functions.
Not here: the loop that calls them (training.py), BackupAndRestore (callbacks_backup.py), TensorBoard.
"""

import csv
import math
import time
import warnings
from pathlib import Path

from tinygpt.keras import printer


class Callback:
    """Base class: override the hooks you need; `self.model` and `self.params` are set by fit."""

    def __init__(self):
        self.model, self.params = None, {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass


class CallbackList:
    """Calls one hook on every callback, in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be tinygpt.keras.callbacks.Callback objects, "
                                f"got {type(callback).__name__}")
            callback.set_model(model)
            callback.set_params(params)

    def on_train_begin(self, logs=None):
        for c in self.callbacks: c.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for c in self.callbacks: c.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for c in self.callbacks: c.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for c in self.callbacks: c.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        for c in self.callbacks: c.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        for c in self.callbacks: c.on_train_batch_end(batch, logs)


class History(Callback):
    """`history.history` = {"loss": [per epoch], "accuracy": [...], "val_loss": [...], ...}."""

    def on_train_begin(self, logs=None):
        self.epoch, self.history = [], {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def _format_logs(logs):
    return " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())


class ProgbarLogger(Callback):
    """fit's output: verbose=1 a tqdm bar per epoch with the running loss and metrics,
    verbose=2 one line per epoch, both through tinygpt.keras.printer."""

    def __init__(self, verbose=1):
        super().__init__()
        self.verbose, self.bar = verbose, None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        if self.verbose == 1:
            self.bar = printer.epoch_bar(self.params["steps"], f"Epoch {epoch + 1}/{self.params['epochs']}")

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is not None:
            self.bar.set_postfix_str(_format_logs(logs), refresh=False)
            self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.set_postfix_str(_format_logs(logs), refresh=False)
            self.bar.close()  # the last refresh shows the validation numbers too
            self.bar = None
        elif self.verbose == 2:
            seconds = time.perf_counter() - self.started
            printer.line(f"Epoch {epoch + 1}/{self.params['epochs']} - {seconds:.0f}s - {_format_logs(logs)}")


def _monitor_mode(name, monitor, mode):
    """'min' or 'max': with 'auto', max for accuracies (a name containing 'acc'), else min."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{name}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def _monitored(name, monitor, logs):
    if monitor not in (logs or {}):
        hint = " (pass validation_data or validation_split to fit)" if monitor.startswith("val_") else ""
        raise ValueError(f"{name} monitors {monitor!r}, but the epoch logs only have "
                         f"{sorted(logs or {})}{hint}")
    return logs[monitor]


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs.

    restore_best_weights=True puts back the weights of the best epoch when training ends
    (as Keras 3 does, whether or not it stopped early)."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.verbose, self.baseline, self.start_from_epoch = verbose, baseline, start_from_epoch
        self.mode = _monitor_mode("EarlyStopping", monitor, mode)
        self.restore_best_weights = restore_best_weights

    def _is_improvement(self, current, reference):
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = _monitored("EarlyStopping", self.monitor, logs)
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0  # only beating both the best so far and the baseline resets patience
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            printer.line(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                printer.line(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the weights (save_weights' format) after every epoch, or only when `monitor` improves.

    filepath may hold Keras' fields: 'ckpt_{epoch:02d}_{val_loss:.3f}.weights.h5'. The model's
    architecture is saved with the weights either way, so save_weights_only changes nothing."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto"):
        super().__init__()
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = _monitor_mode("ModelCheckpoint", monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf  # kept across fit() calls, as Keras

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as missing:
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} names {missing}, but the "
                             f"epoch logs only have {sorted(logs)} (and 'epoch')") from None
        if self.save_best_only:
            current = _monitored("ModelCheckpoint", self.monitor, logs)
            better = current < self.best if self.mode == "min" else current > self.best
            if not better:
                return
            if self.verbose > 0:
                printer.line(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                             f"{current:.5f}, saving model to {path}")
            self.best = current
        self.model.save_weights(path)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved by min_delta for
    `patience` epochs, then wait `cooldown` epochs before counting again; never below min_lr.
    Adds 'learning_rate' to the epoch logs, as Keras 3 does."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1 (it multiplies the learning "
                             f"rate), got {factor}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), patience, verbose
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, float(min_lr)
        self.mode = _monitor_mode("ReduceLROnPlateau", monitor, mode)
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.cooldown_counter, self.wait = 0, 0

    def _improved(self, current):
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = _monitored("ReduceLROnPlateau", self.monitor, logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(self.model.optimizer.learning_rate)
                if old_lr > self.min_lr:
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        printer.line(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                                     f"{new_lr}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """At the start of each epoch set the learning rate to schedule(epoch, lr) (epoch from 0, lr
    the current rate); a one-argument schedule(epoch) is accepted too, as in Keras."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function (epoch, lr) -> lr, "
                            f"got {type(schedule).__name__}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.model.optimizer.learning_rate)
        try:
            new_lr = self.schedule(epoch, lr)
        except TypeError:  # schedule(epoch), Keras' old signature
            new_lr = self.schedule(epoch)
        if isinstance(new_lr, bool) or not isinstance(new_lr, (int, float)) or not math.isfinite(new_lr):
            raise ValueError(f"LearningRateScheduler: schedule({epoch}, {lr}) returned {new_lr!r}; "
                             f"it must return a finite float")
        self.model.optimizer.learning_rate = float(new_lr)
        if self.verbose > 0:
            printer.line(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {new_lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    """One CSV row per epoch: 'epoch' then the logs' keys in sorted order, flushed after each row
    so a crash loses at most the epoch in progress. The file is replaced unless append=True
    (as in Keras); appending to a non-empty file writes no second header."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = Path(filename), separator, append
        self.file = self.writer = self.keys = None

    def on_train_begin(self, logs=None):
        has_rows = self.append and self.filename.exists() and self.filename.stat().st_size > 0
        self.write_header = not has_rows
        self.file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")
        self.writer, self.keys = None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self.writer = csv.DictWriter(self.file, fieldnames=["epoch"] + self.keys,
                                         delimiter=self.sep, extrasaction="ignore", restval="NA")
            if self.write_header:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: logs[k] for k in self.keys if k in logs}})
        self.file.flush()

    def on_train_end(self, logs=None):
        if self.file is not None:
            self.file.close()
            self.file = self.writer = None


class TerminateOnNaN(Callback):
    """Stop training at the end of the batch whose running loss is NaN or infinite; that epoch still
    ends (validation, on_epoch_end), as in Keras 3, and no other starts."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            # Keras prints this line; here it is a RuntimeWarning, which a caller can filter or
            # turn into an error (it has no verbose= to switch it off)
            warnings.warn(f"Batch {batch}: Invalid loss {loss}, terminating training", RuntimeWarning)
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from plain functions: on_epoch_begin(epoch, logs), on_epoch_end(epoch, logs),
    on_train_begin(logs), on_train_end(logs), on_batch_begin(batch, logs), on_batch_end(batch, logs)
    (on_train_batch_begin/_end are the same hooks under their Keras 3 names)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_batch_begin=None, on_batch_end=None, on_train_batch_begin=None,
                 on_train_batch_end=None):
        super().__init__()
        self.functions = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                              on_train_begin=on_train_begin, on_train_end=on_train_end,
                              on_train_batch_begin=on_train_batch_begin or on_batch_begin,
                              on_train_batch_end=on_train_batch_end or on_batch_end)
        for hook, fn in self.functions.items():
            if fn is not None and not callable(fn):
                raise TypeError(f"LambdaCallback: {hook} must be a function, got {type(fn).__name__}")

    def _call(self, hook, *args):
        if self.functions[hook] is not None:
            self.functions[hook](*args)

    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs)
    def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs)
    def on_train_batch_begin(self, batch, logs=None): self._call("on_train_batch_begin", batch, logs)
    def on_train_batch_end(self, batch, logs=None): self._call("on_train_batch_end", batch, logs)


from tinygpt.keras.callbacks_backup import BackupAndRestore  # noqa: E402  (it subclasses Callback)

__all__ = ["BackupAndRestore", "Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "ModelCheckpoint",
           "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "LambdaCallback"]
