"""How the Trainer spreads over MPI ranks: which rows of a global batch each rank computes, which
checkpoint a resumed job opens (rank 0 chooses), the global batch a resume must keep, and dropout
streams of each rank's own. One process (world None) takes the single-process path everywhere.
Not here: the communication itself (tinygpt.distributed) or the loop (trainer.py).
"""

import numpy as np

from tinygpt.checkpoint import checkpoint_path, load_checkpoint
from tinygpt.train import runs


def my_micro_batches(x, y, batch_size, rank, ranks, grad_accum):
    """The global batch x, y: (G, T), G = batch_size * ranks * grad_accum -> this rank's grad_accum
    micro-batches [(b, T) pairs]. Micro-step m of rank r takes rows (m * ranks + r) * b onwards, so
    N ranks x b hold exactly the windows of one process x N*b."""
    b = batch_size
    return [(x[(m * ranks + rank) * b:][:b], y[(m * ranks + rank) * b:][:b]) for m in range(grad_accum)]


def check_global_batch(run_dir, config, ranks, meta, saved):
    """A resumed run must keep batch_size x ranks x grad_accum: else its batches would change.
    Checkpoints from before data-parallel training have no "global_batch": theirs is the config's."""
    global_batch = config.batch_size * ranks * config.grad_accum
    saved_batch = meta.get("global_batch", saved.batch_size * saved.grad_accum)
    if global_batch != saved_batch:
        hint = (f", e.g. --batch-size {saved_batch // ranks} --grad-accum 1" if saved_batch % ranks == 0
                else f" (with a rank count that divides {saved_batch})")
        raise ValueError(f"cannot resume {run_dir} with a global batch of {global_batch} windows "
                         f"(batch_size {config.batch_size} x {ranks} rank(s) x grad_accum {config.grad_accum}): "
                         f"the run was trained with {saved_batch}; choose --batch-size and --grad-accum so "
                         f"that their product times the rank count is {saved_batch}{hint}")


def open_checkpoint(world, run_dir, name, take_lock):
    """The checkpoint a resumed run starts from -> (path, tensors, meta, notes). Rank 0 takes the lock
    and chooses (runs.resume_checkpoint may rename newer checkpoints); the others read its choice."""
    if world is None:
        take_lock()
        return runs.resume_checkpoint(run_dir, name)
    step, opened, error = np.array([-1], dtype=np.int64), None, None
    if world.is_root:
        try:
            take_lock()
            opened = runs.resume_checkpoint(run_dir, name)
            step[0] = opened[2]["step"]
        except Exception as e:  # the others hear -1 and stop too
            error = e
    world.broadcast_(step, "choosing the checkpoint")
    if error is not None:
        raise error
    if world.is_root:
        return opened
    if step[0] < 0:
        raise RuntimeError("rank 0 could not open the run's checkpoint (it reports why)")
    path = checkpoint_path(run_dir, int(step[0]))
    return (path, *load_checkpoint(path), [])


def fork_dropout(model, seed, rank, step):
    """Rank r > 0 draws its dropout masks from streams of its own: the same stream on every rank
    would drop the same units in every shard. (A checkpoint keeps rank 0's streams, so with
    dropout a resumed multi-rank run is reproducible but not bit-exact.)"""
    if rank == 0:
        return
    for k, (_, module) in enumerate(runs.dropout_modules(model)):
        module.rng = np.random.default_rng([seed, 3, rank, k, step])
