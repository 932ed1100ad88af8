"""Checkpoints that let a fine-tuning run stop at any step and resume bit for bit, the way training's do:
the classifier's weights, AdamW's moments, the schedule, every random stream (the shuffle's, taken at
the start of the current epoch, and each dropout's) and where in the epoch's order the next batch starts.
A signal (Ctrl-C, SIGTERM, SIGHUP) asks the loop to stop after the current step, then save.
Not here: the fine-tuning loop itself (run.py) or the checkpoint file format (checkpoint.py).
"""

import contextlib
import json
import signal
import threading
from pathlib import Path

from tinygpt.checkpoint import rng_state_to_json
from tinygpt.train import runs

SETTINGS = "finetune.json"  # the FinetuneConfig a run was started with, written before the first step
KEEP_CHECKPOINTS = 2  # like tinygpt train: the newest two, so a damaged newest one has a fallback


def write_settings(run_dir, settings):
    runs.write_json(Path(run_dir) / SETTINGS, settings)


def read_settings(run_dir):
    """run_dir -> the dict write_settings saved; a ValueError naming the run if there is none."""
    path = Path(run_dir) / SETTINGS
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a fine-tuning run that can be resumed (it has no {SETTINGS})")
    return json.loads(path.read_text(encoding="utf-8"))


def save_state(run_dir, step, model, optimizer, schedule, epoch_rng, position, losses):
    """Checkpoint ckpt_<step> with everything the loop needs to go on -> its .json path.

    epoch_rng: the shuffle's state dict before this epoch's permutation (replaying it gives the same
    order); position: the index in that order where the next batch starts; losses: the step losses
    since the last evaluation (the next metrics row averages them)."""
    tensors = runs.model_tensors(model)
    optimizer_arrays, optimizer_meta = runs.optimizer_tensors(optimizer)
    tensors.update(optimizer_arrays)
    meta = {"kind": "finetune", "step": step, "optimizer": optimizer_meta, "schedule": schedule.state_dict(),
            "rng": {"epoch": epoch_rng,
                    "dropout": {n: rng_state_to_json(m.rng) for n, m in runs.dropout_modules(model)}},
            "position": position, "losses": [float(x) for x in losses]}
    return runs.save_step(run_dir, step, tensors, meta, KEEP_CHECKPOINTS)


def load_state(run_dir, model, optimizer, schedule):
    """The newest checkpoint of run_dir into model, optimizer and schedule -> (path, meta, notes).
    Only the holder of the run's lock may call this (runs.resume_checkpoint may rename files)."""
    path, tensors, meta, notes = runs.resume_checkpoint(run_dir)
    if meta.get("kind") != "finetune":
        raise ValueError(f"{path} is a {meta.get('kind')!r} checkpoint, not one a fine-tuning run can resume from")
    runs.load_model_tensors(model, tensors, path.name)
    runs.load_optimizer(optimizer, tensors, meta["optimizer"], path.name)
    schedule.load_state_dict(meta["schedule"])
    runs.restore_dropout_rngs(model, meta["rng"]["dropout"])
    return path, meta, notes


class StopOnSignal:
    """Within `with stopper:`, the first Ctrl-C (SIGINT), SIGTERM or SIGHUP sets .requested (the loop
    stops after its step, when the state is whole and can be saved); a second one raises
    KeyboardInterrupt at once. .signal is the one received. Only the main thread can catch signals."""

    def __init__(self, log):
        self.log, self.requested, self.signal = log, False, None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signal = True, signal.Signals(signum)
        name = "Ctrl-C" if signum == signal.SIGINT else self.signal.name
        self.log(f"{name}: stopping after this step (send it again to stop at once)")

    @contextlib.contextmanager
    def _installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        wanted = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        previous = {s: signal.signal(s, self._handler) for s in wanted}
        try:
            yield self
        finally:
            for s, old in previous.items():
                signal.signal(s, old)

    def __enter__(self):
        self._context = self._installed()
        return self._context.__enter__()

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)
