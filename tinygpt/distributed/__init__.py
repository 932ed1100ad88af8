"""tinygpt.distributed: data-parallel training on MPI (mpi4py), for the Trainer and keras fit.

comm.py (is this one of several ranks? the World and its collectives, each with a deadline),
buckets.py (gradients averaged in flat float32 buckets, overlapping backward), zero.py (ZeRO-1:
AdamW moments sharded over the ranks). With one process nothing here imports mpi4py.
Not here: model parallelism, or a launcher (use mpiexec, mpirun or srun; docs/distributed.md).
"""

import os

from tinygpt.distributed.comm import (DEFAULT_TIMEOUT, MissingMPI, World, get_world, launched_rank, launched_size,
                                      mpi_library)

THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")


def share_cores(world):
    """Give each rank on a machine its share of the cores for tinygpt's kernels (numba and the C
    kernels' OpenMP), unless the user chose a thread count: 2 ranks x 2 threads on 2 cores would
    make every step wait for descheduled threads. -> the thread count set, or None."""
    if world is None or any(v in os.environ for v in THREAD_VARIABLES):
        return None
    local = world.comm.Split_type(world.MPI.COMM_TYPE_SHARED)
    threads = max(1, (os.cpu_count() or 1) // local.Get_size())
    local.Free()
    try:  # NumPy's BLAS (matmuls the C kernels leave to it); threadpoolctl is optional
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:
        pass
    import numba
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        from tinygpt.kernels import c_kernels
        c_kernels.set_num_threads(threads)
    except Exception:  # no C build: numba and NumPy only
        pass
    return threads


__all__ = ["DEFAULT_TIMEOUT", "MissingMPI", "World", "get_world", "launched_rank", "launched_size", "mpi_library",
           "share_cores"]
