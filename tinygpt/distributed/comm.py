"""Which process am I: the MPI world (rank, size) when a launcher started several, else None.

A launcher (mpiexec, mpirun, srun) tells each process its rank count in the environment; only
when that count is above 1 is mpi4py imported at all, so one process never loads MPI. Every
collective here waits with a deadline: a dead or stuck rank ends the job (MPI Abort) with a
message instead of a hang. Not here: what is communicated (buckets.py, zero.py).
"""

import hashlib
import os
import sys
import time

import numpy as np

# Launchers and the variables in which they announce the world size (first match wins).
# NOTE: srun's is SLURM_STEP_NUM_TASKS, not SLURM_NTASKS: a batch script that never calls srun has
# SLURM_NTASKS too, and is one process.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS")
DEFAULT_TIMEOUT = 300.0  # seconds a collective may wait for the other ranks before the job is aborted
TIMEOUT_EXIT_CODE = 3  # what every rank exits with when a collective times out
POLL_SECONDS = 2e-4  # how long a waiting rank sleeps between tests of its requests


class MissingMPI(RuntimeError):
    """Started as one of several ranks, but mpi4py cannot be imported."""


def launched_size(environ=None):
    """The rank count a launcher announced in the environment, or 1 (not launched by one)."""
    environ = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")


def launched_rank(environ=None):
    """This process's rank as the launcher announced it, or 0 (not launched by one)."""
    environ = os.environ if environ is None else environ
    if launched_size(environ) <= 1:
        return 0
    for name in RANK_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


_world = None


def get_world(timeout=DEFAULT_TIMEOUT, environ=None):
    """The World of this job, or None when there is one process. mpi4py is imported only here,
    and only when a launcher started more than one rank."""
    global _world
    if launched_size(environ) <= 1:
        return None
    if _world is None:
        try:
            from mpi4py import MPI
        except ImportError:
            raise MissingMPI(f"this process is one of {launched_size(environ)} ranks started by an MPI "
                             f"launcher, but mpi4py is not installed; install it with "
                             f"`pip install 'tinygpt[mpi]'` (mpi4py + mpich)") from None
        if MPI.COMM_WORLD.Get_size() <= 1:
            return None
        _world = World(MPI.COMM_WORLD, MPI, timeout)
    _world.timeout = timeout
    return _world


def mpi_library():
    """-> {"mpi4py": version, "library": first line of MPI_Get_library_version, "standard": "5.0"},
    or None if mpi4py is not installed. Importing mpi4py initialises MPI (as a 1-rank world)."""
    try:
        import mpi4py
        from mpi4py import MPI
    except ImportError:
        return None
    major, minor = MPI.Get_version()
    return {"mpi4py": mpi4py.__version__, "library": MPI.Get_library_version().strip().splitlines()[0],
            "standard": f"{major}.{minor}", "size": MPI.COMM_WORLD.Get_size()}


class World:
    """COMM_WORLD with the few collectives training needs, each one waited on with a deadline."""

    def __init__(self, comm, mpi, timeout=DEFAULT_TIMEOUT):
        self.comm, self.MPI = comm, mpi
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.timeout = timeout
        self.log = None  # a callable(str) that hears why the job is aborted, besides stderr

    @property
    def is_root(self):
        return self.rank == 0

    # ----- waiting with a deadline ------------------------------------------------------------
    def wait(self, requests, what):
        """Test `requests` until all are done; after `timeout` seconds abort the whole job."""
        deadline = time.monotonic() + self.timeout
        while not self.MPI.Request.Testall(requests):
            if time.monotonic() > deadline:
                self.abort(f"rank {self.rank}: {what} waited {self.timeout:g} s for the other ranks; "
                           f"one of them has died or hangs. Aborting every rank.")
            time.sleep(POLL_SECONDS)

    def abort(self, message):
        """Say why on stderr (the process dies next, so nothing else could) and end every rank."""
        if self.log is not None:
            self.log(message)
        sys.stderr.write(f"tinygpt.distributed: {message}\n")
        sys.stderr.flush()
        self.comm.Abort(TIMEOUT_EXIT_CODE)

    # ----- collectives ------------------------------------------------------------------------
    def allreduce_(self, array, what="allreduce"):
        """Sum `array` over the ranks, in place, and return it."""
        self.wait([self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)], what)
        return array

    def sum(self, values, what="sum"):
        """A float64 sum over ranks of each of `values` -> np.ndarray (float64)."""
        return self.allreduce_(np.array(values, dtype=np.float64), what)

    def any(self, flag, what="agreement"):
        """True on every rank if `flag` is true on any rank."""
        return bool(self.sum([1.0 if flag else 0.0], what)[0] > 0)

    def allgather_(self, piece, out, what="allgather"):
        """Every rank's `piece` (equal sizes), in rank order, into `out` on every rank."""
        self.wait([self.comm.Iallgather(piece, out)], what)
        return out

    def allgatherv_(self, rows, n, what="allgather"):
        """Every rank's `rows` (np.array_split(range(n), size) shards, in rank order) -> (n, ...) on every rank."""
        counts = [len(part) for part in np.array_split(np.arange(n), self.size)]
        row = int(np.prod(rows.shape[1:]))
        out = np.empty((n,) + rows.shape[1:], dtype=rows.dtype)
        self.wait([self.comm.Iallgatherv(rows, [out, [c * row for c in counts]])], what)
        return out

    def gather_(self, piece, out, what="gather"):
        """Every rank's `piece` into `out` on rank 0 (`out` is ignored elsewhere)."""
        self.wait([self.comm.Igather(piece, out if self.is_root else None, root=0)], what)
        return out

    def broadcast_(self, array, what="broadcast"):
        """Rank 0's `array` into `array` on every rank."""
        self.wait([self.comm.Ibcast(array, root=0)], what)
        return array

    def broadcast_text(self, text, what="broadcast"):
        """Rank 0's str (others pass anything) -> that str on every rank; None stays None."""
        data = b"\x00" if text is None else b"\x01" + text.encode("utf-8")
        size = self.broadcast_(np.array([len(data)], dtype=np.int64), what)
        buffer = np.frombuffer(data, dtype=np.uint8).copy() if self.is_root else np.zeros(int(size[0]), np.uint8)
        data = self.broadcast_(buffer, what).tobytes()
        return None if data[:1] == b"\x00" else data[1:].decode("utf-8")

    def barrier(self, what="barrier"):
        self.wait([self.comm.Ibarrier()], what)

    def check_same(self, arrays, what):
        """Raise RuntimeError unless `arrays` hash to the same bytes on every rank."""
        digest = hashlib.blake2b(digest_size=8)
        for a in arrays:
            digest.update(np.ascontiguousarray(a).tobytes())
        mine = np.frombuffer(digest.digest(), dtype=np.uint64).copy()
        every = self.allgather_(mine, np.zeros(self.size, dtype=np.uint64), what)
        if np.any(every != every[0]):
            differing = [r for r in range(self.size) if every[r] != every[0]]
            raise RuntimeError(f"{what}: ranks {differing} hold other values than rank 0 "
                               f"(hashes {[f'{h:016x}' for h in every]}); the ranks have diverged")
