"""BackupAndRestore: fit, killed by an exception (or the machine), resumes where it stopped.

After every epoch the callback saves the weights, the optimizer's state (moments, step counts,
learning rate) and the epoch number to `backup_dir/latest.safetensors` + `latest.json` (the
tinygpt.checkpoint pair: written atomically, arrays checked by SHA-256; no pickle). When fit
starts with a backup present, it loads all three and fit continues from the next epoch, so the
run ends where an uninterrupted one would. A fit that finishes deletes the backup (as in Keras,
unless delete_checkpoint=False); one that raises leaves it for the next call.
NOTE: the shuffling order is not saved: a resumed run draws its own permutations, and only with
shuffle=False does it repeat the uninterrupted run exactly.
Not here: save_freq in batches (only 'epoch'), or Keras' double_checkpoint.
"""

from pathlib import Path

from tinygpt.checkpoint import load_checkpoint, save_checkpoint
from tinygpt.keras.callbacks import Callback

FORMAT = "tinygpt-keras-backup"


class BackupAndRestore(Callback):
    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError(f"BackupAndRestore: backup_dir must be a directory path, got {backup_dir!r}")
        if save_freq != "epoch":
            raise NotImplementedError(f"BackupAndRestore(save_freq={save_freq!r}): tinygpt.keras "
                                      f"backs up once per epoch only (save_freq='epoch')")
        self.backup_dir, self.delete_checkpoint = Path(backup_dir), delete_checkpoint
        self.stem = self.backup_dir / "latest"

    def _files(self):
        return [self.stem.with_name("latest.safetensors"), self.stem.with_name("latest.json")]

    def on_train_begin(self, logs=None):
        if not self._files()[1].exists():
            return
        tensors, meta = load_checkpoint(self.stem)
        if meta.get("format") != FORMAT:
            raise ValueError(f"BackupAndRestore: {self._files()[1]} is not a backup written by "
                             f"BackupAndRestore (format {meta.get('format')!r}, expected {FORMAT!r})")
        n = meta["n_weights"]
        self.model.set_weights([tensors[f"weight/{i}"] for i in range(n)])
        state = {key: dict(scalars) for key, scalars in meta["optimizer_scalars"].items()}
        for name, array in tensors.items():
            if name.startswith("optimizer/"):
                _, index, field = name.split("/", 2)
                state.setdefault(index, {})[field] = array
        self.model.optimizer.engine.load_state_dict({"param_groups": meta["optimizer_groups"],
                                                     "state": state})
        self.model.optimizer.iterations = meta["iterations"]
        self.model._initial_epoch = meta["epoch"] + 1  # fit reads this after on_train_begin

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        saved = optimizer.engine.state_dict()
        tensors = {f"weight/{i}": w for i, w in enumerate(self.model.get_weights())}
        scalars = {}
        for index, entry in saved["state"].items():
            for field, value in entry.items():
                if hasattr(value, "shape") and value.shape != ():
                    tensors[f"optimizer/{index}/{field}"] = value
                else:
                    scalars.setdefault(index, {})[field] = value.item() if hasattr(value, "item") else value
        meta = {"format": FORMAT, "epoch": epoch, "iterations": optimizer.iterations,
                "n_weights": len(self.model.get_weights()), "optimizer_groups": saved["param_groups"],
                "optimizer_scalars": scalars}
        save_checkpoint(self.stem, tensors, meta)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            for path in self._files():
                path.unlink(missing_ok=True)


__all__ = ["BackupAndRestore"]
