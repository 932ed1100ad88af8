"""Gradient averaging that overlaps backward: flat float32 buckets, each allreduced as soon as
backward has finished every gradient in it.

The parameters are packed, last layer first (the order backward completes them), into buckets
of about `bucket_bytes`. Before backward, every use of a parameter in the graph is counted; when
a parameter's last gradient has been accumulated its gradient is copied into its bucket, and a
full bucket starts a non-blocking Iallreduce while backward goes on with earlier layers. Buckets
start strictly in bucket order, so every rank issues the same collectives in the same order.
Not here: the optimizer step (the Trainer, or zero.py), or gradients of non-float32 parameters.
"""

import time

import numpy as np

from tinygpt.tensor import _topological_order

# Without bucket_bytes: about an eighth of the gradients per bucket, within these limits. Several
# buckets for any model, so the first leaves while most of backward is still to come; few enough
# (and large enough) that the per-message cost stays small.
BUCKETS_WANTED, MIN_BUCKET_BYTES, MAX_BUCKET_BYTES = 8, 64 << 10, 4 << 20


class Bucket:
    """Some parameters and one flat float32 array holding their gradients side by side."""

    def __init__(self, params):
        self.params = params
        self.offsets = np.cumsum([0] + [p.data.size for p in params])  # param i is flat[offsets[i]:offsets[i+1]]
        self.flat = np.zeros(int(self.offsets[-1]), dtype=np.float32)  # (n,)
        self.waiting = 0  # parameters whose gradient is not complete yet, in this backward
        self.request = None
        self.had_grad = [False] * len(params)  # p.grad None on every rank stays None, as in one process


class _CountedLeaf:
    """Stands in for a parameter in the graph's edges during one backward: passes each gradient
    on to the parameter and tells the buckets when the parameter has received its last one."""

    __slots__ = ("param", "uses", "owner")

    def __init__(self, param, owner):
        self.param, self.uses, self.owner = param, 0, owner

    def _accumulate(self, dx, sole_owner=False):
        self.param._accumulate(dx, sole_owner)  # Tensor.backward's argument, passed on as it is
        self.uses -= 1
        if self.uses == 0:
            self.owner._param_done(self.param)
        self.owner._make_progress()


class GradBuckets:
    """params -> buckets; backward(loss) leaves every p.grad averaged over the ranks."""

    def __init__(self, params, world, bucket_bytes=None):
        params = list(params)
        if bucket_bytes is None:
            total = 4 * sum(p.data.size for p in params)
            bucket_bytes = min(max(total // BUCKETS_WANTED, MIN_BUCKET_BYTES), MAX_BUCKET_BYTES)
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) or bucket_bytes < 4:
            raise ValueError(f"bucket_bytes must be an int >= 4 (one float32), got {bucket_bytes!r}")
        for p in params:
            if p.data.dtype != np.float32:
                raise TypeError(f"gradient buckets hold float32, but a parameter of shape {p.shape} is "
                                f"{p.data.dtype}; train in float32")
        self.world = world
        self.buckets, current, size = [], [], 0
        for p in reversed(params):  # the output end of the model finishes its gradients first
            current.append(p)
            size += 4 * p.data.size
            if size >= bucket_bytes:
                self.buckets.append(Bucket(current))
                current, size = [], 0
        if current:
            self.buckets.append(Bucket(current))
        self._bucket_of = {id(p): b for b in self.buckets for p in b.params}
        self.stats = {}  # timings of the last backward: backward_seconds, exposed_seconds, bytes

    @property
    def nbytes(self):
        return sum(b.flat.nbytes for b in self.buckets)

    # ----- one backward -----------------------------------------------------------------------
    def backward(self, loss, divide_by=None):
        """loss.backward(), allreducing buckets as they fill; then every p.grad is the sum over ranks
        divided by `divide_by` (default: the rank count, an average). Gradients accumulated by
        earlier backward calls (gradient accumulation) are part of what is sent."""
        t0 = time.perf_counter()
        counted = self._count_uses(loss)
        for b in self.buckets:
            b.waiting = sum(1 for p in b.params if id(p) in counted)
            b.request = None
        self._next = 0  # the first bucket not started yet
        self._start_ready()  # buckets no gradient flows into this time
        loss.backward()
        for leaf in counted.values():  # a use backward never reached (no path from the loss)
            if leaf.uses > 0:
                leaf.uses = 0
                self._param_done(leaf.param)
        t1 = time.perf_counter()
        self.world.wait([b.request for b in self.buckets], "the gradient allreduce")
        t2 = time.perf_counter()
        scale = np.float32(1.0 / (self.world.size if divide_by is None else divide_by))
        for b in self.buckets:
            b.flat *= scale
            for i, p in enumerate(b.params):
                if b.had_grad[i]:
                    p.grad = b.flat[b.offsets[i]:b.offsets[i + 1]].reshape(p.data.shape)  # a view, no copy
        self.stats = {"backward_seconds": t1 - t0, "exposed_seconds": t2 - t1, "bytes": self.nbytes}

    def _count_uses(self, loss):
        """Put a _CountedLeaf into every edge of the graph that leads to one of our parameters."""
        counted = {}
        if loss._node is None:
            return counted
        for node in _topological_order(loss._node):
            for edge in node.edges:
                if edge is None or edge.leaf is None or id(edge.leaf) not in self._bucket_of:
                    continue
                leaf = counted.get(id(edge.leaf))
                if leaf is None:
                    leaf = counted[id(edge.leaf)] = _CountedLeaf(edge.leaf, self)
                leaf.uses += 1
                edge.leaf = leaf
        return counted

    def _param_done(self, param):
        bucket = self._bucket_of[id(param)]
        bucket.waiting -= 1
        self._start_ready()

    def _start_ready(self):
        """Start the next buckets, in order, while they are complete."""
        while self._next < len(self.buckets) and self.buckets[self._next].waiting == 0:
            b = self.buckets[self._next]
            for i, p in enumerate(b.params):
                piece = b.flat[b.offsets[i]:b.offsets[i + 1]]
                b.had_grad[i] = p.grad is not None
                if p.grad is None:
                    piece[:] = 0.0  # unused on every rank alike (the graphs are the same)
                else:
                    piece[:] = p.grad.reshape(-1)
            mpi = self.world.MPI
            b.request = self.world.comm.Iallreduce(mpi.IN_PLACE, b.flat, op=mpi.SUM)
            self._next += 1

    def _make_progress(self):
        """MPICH moves a message on only inside an MPI call; a cheap test per gradient keeps the
        started allreduces moving while backward computes."""
        started = [b.request for b in self.buckets[:self._next]]
        if started:
            self.world.MPI.Request.Testall(started)
