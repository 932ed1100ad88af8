"""How fit() spreads its work, in the spirit of keras.distribution: DataParallel over MPI ranks.

    from tinygpt.keras import distribution
    distribution.set_distribution(distribution.DataParallel())   # or leave it: automatic under mpiexec

Under `mpiexec -n N`, with DataParallel (the default there), fit splits every batch of batch_size
samples into N shards, one per rank, averages the gradients (tinygpt.distributed.buckets) and so
applies the same update on every rank; batch_size stays the global batch, as in Keras.
Not here: model or layout parallelism (keras.distribution.ModelParallel), or device meshes.
"""

from tinygpt import distributed


class DataParallel:
    """Replicate the model on every rank; each rank computes its shard of every batch."""

    def __repr__(self):
        return "DataParallel()"


class SingleProcess:
    """Every rank trains alone on its whole batches, as without mpiexec (the opt-out)."""

    def __repr__(self):
        return "SingleProcess()"


_chosen = None  # None: automatic (DataParallel when launched as more than one rank)


def set_distribution(value):
    """DataParallel(), SingleProcess(), or None for the automatic choice."""
    global _chosen
    if value is not None and not isinstance(value, (DataParallel, SingleProcess)):
        raise TypeError(f"set_distribution takes DataParallel(), SingleProcess() or None, got {value!r}; "
                        f"ModelParallel is not supported by tinygpt.keras")
    _chosen = value


def distribution():
    """The distribution fit uses now."""
    if _chosen is not None:
        return _chosen
    return DataParallel() if distributed.launched_size() > 1 else SingleProcess()


def data_parallel_world():
    """The MPI World fit shards its batches over, or None (one process, or SingleProcess)."""
    if isinstance(distribution(), SingleProcess):
        return None
    return distributed.get_world()
