"""Tensor: a NumPy array that remembers how it was made, and reverse-mode autodiff over that record.

Every differentiable operation goes through `apply(forward, backward, *inputs)`: the forward runs on
plain arrays and returns (out, cache); if any input requires a gradient, the output keeps a Node
holding the backward function, the cache and where each input's gradient goes. `Tensor.backward()`
orders the Nodes topologically without recursion and calls each backward once, summing gradients
of reused tensors.
Not here: the ops themselves (tinygpt/ops, on plain arrays) or their public names (functional.py).
"""

import contextlib
import sys

import numpy as np

_grad_enabled = True
_FREED = object()  # a Node's cache after backward released it
_profiler = None  # the active tinygpt.profiler.Profiler, or None: apply checks it once per op


@contextlib.contextmanager
def no_grad():
    """Inside `with no_grad():` ops record nothing, so evaluation and generation keep no graph."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


class Node:
    """How one op's output(s) were made: the backward to call, what forward saved, and one Edge
    (or None) per input saying where that input's gradient goes."""

    __slots__ = ("backward", "cache", "edges", "n_outputs", "tuple_out")

    def __init__(self, backward, cache, edges, n_outputs, tuple_out=False):
        self.backward, self.cache, self.edges, self.n_outputs = backward, cache, edges, n_outputs
        self.tuple_out = tuple_out  # forward returned a tuple (even of one array): backward gets one


class Edge:
    """Where the gradient of one input of an op goes: into `leaf.grad` when the input is a leaf
    Tensor, else to output `index` of `node`, the Node that made the input. `shape` and `dtype`
    are the input's, so backward can check a gradient and a graph can be drawn, without the
    input's array.

    NOTE: an Edge never holds an op's output Tensor, only this. Holding it would keep its array
    alive until backward even when no backward reads it: a matmul's output before the bias add,
    every residual sum. Arrays a backward does need stay alive through that op's cache, so the
    graph holds only what backward reads (bench/RESULTS.md measures what that saves)."""

    __slots__ = ("leaf", "node", "index", "shape", "dtype")

    def __init__(self, leaf, node, index, shape, dtype):
        self.leaf, self.node, self.index, self.shape, self.dtype = leaf, node, index, shape, dtype


def _edge(x):
    """The Edge for input `x` of an op, or None: a constant, or a tensor that needs no gradient."""
    if not isinstance(x, Tensor) or not x.requires_grad:
        return None
    if x._node is None:
        return Edge(x, None, 0, x.data.shape, x.data.dtype)
    return Edge(None, x._node, x._index, x.data.shape, x.data.dtype)


def _as_array(data, dtype):
    """float32 unless told otherwise: a float64 *array* keeps its precision, Python floats do not."""
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    given_array = isinstance(data, (np.ndarray, np.generic))
    try:
        array = np.asarray(data)
    except ValueError as error:  # a ragged nested list: NumPy's message names no shape we know
        raise ValueError(f"Tensor data must be a rectangular nested list or an array; this list "
                         f"is ragged (rows of different lengths): {error}") from None
    if array.dtype == object and isinstance(data, int):
        raise ValueError(f"Tensor data {data} does not fit in int64 (|x| < 2**63); pass a float "
                         f"(Tensor(float(x))) if an approximate value will do")
    if array.dtype.kind == "f":
        if array.dtype == np.float64 and given_array:
            return array
        return array.astype(np.float32, copy=False)
    if array.dtype.kind in "iub":
        return array
    raise TypeError(f"Tensor data must be numeric, got an array of dtype {array.dtype}")


class Tensor:
    """An n-dimensional array with an optional gradient. `.data` is the NumPy array itself."""

    __slots__ = ("data", "grad", "requires_grad", "_node", "_index", "name", "__weakref__")
    __array_priority__ = 1000  # so `ndarray + Tensor` calls Tensor.__radd__ instead of NumPy's

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        if isinstance(data, Tensor):
            data = data.data
        array = _as_array(data, dtype)
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(f"requires_grad=True needs a floating-point tensor, got dtype "
                            f"{array.dtype}; integer tensors hold indices and have no gradient")
        self._set(array, bool(requires_grad), None, 0, name)

    def _set(self, array, requires_grad, node, index, name=None):
        """Every field, in one place: __init__ after its checks, and apply for an op's outputs."""
        self.data = array
        self.requires_grad = requires_grad
        self.grad = None
        self._node = node  # the Node that made this tensor; None for leaves
        self._index = index  # which output of that Node this tensor is
        self.name = name

    @classmethod
    def _from_op(cls, array, node, index=0):
        """An op's output: its array is already well formed, so __init__'s checks are skipped."""
        tensor = cls.__new__(cls)
        tensor._set(array if isinstance(array, np.ndarray) else np.asarray(array),
                    node is not None, node, index)
        return tensor

    # ----- backward -------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None):
        """Fill `.grad` of every leaf this tensor depends on with d(self)/d(leaf), weighted by
        `gradient` (torch's name; needed unless self is a scalar). retain_graph=None is False."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of the "
                               "ops that made it has requires_grad=True (or it was made under no_grad)")
        if gradient is None:
            if self.data.size != 1:
                raise ValueError(f"backward() without a gradient needs a scalar, but this tensor "
                                 f"has shape {self.shape}; pass gradient= of that shape or reduce first")
            grad = np.ones_like(self.data)
        else:
            grad = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(gradient=...) got shape {grad.shape}, expected {self.shape}")
        if self._node is None:
            self._accumulate(grad)
            return
        pending = {self._node: [None] * self._node.n_outputs}  # Node -> gradients of its outputs
        pending[self._node][self._index] = grad
        for node in _topological_order(self._node):
            out_grads = pending.pop(node, None)
            if out_grads is None:  # no path from self reaches this node's outputs
                continue
            if node.cache is _FREED:
                raise RuntimeError("backward through a graph that was already freed; "
                                   "call backward(retain_graph=True) the first time to go twice")
            dout = tuple(out_grads) if node.tuple_out else out_grads[0]
            in_grads = node.backward(dout, node.cache)
            in_grads = list(in_grads) if isinstance(in_grads, tuple) else [in_grads]
            for i, edge in enumerate(node.edges):
                dx, in_grads[i] = in_grads[i], None
                if dx is None or edge is None:
                    continue
                if dx.shape != edge.shape:
                    raise RuntimeError(f"{node.backward.__name__} returned a gradient of shape "
                                       f"{dx.shape} for an input of shape {edge.shape}")
                if edge.leaf is not None:
                    # two references, `dx` and getrefcount's argument: no one else has this array
                    sole_owner = sys.getrefcount(dx) == 2
                    edge.leaf._accumulate(dx, sole_owner)
                else:
                    slots = pending.setdefault(edge.node, [None] * edge.node.n_outputs)
                    previous = slots[edge.index]
                    slots[edge.index] = dx if previous is None else previous + dx
            if not retain_graph:  # free saved activations now, not when the loss goes away
                node.cache, node.edges = _FREED, ()

    def _accumulate(self, dx, sole_owner=False):
        """A leaf's gradient sums over every use. The first one is copied so that no op's array is
        aliased, unless backward() is its sole owner (no other reference) and it is no view."""
        if self.grad is None:
            # NOTE: like torch's AccumulateGrad, a fresh gradient that no one else holds becomes
            # .grad itself: copying GPT-2's 150 MiB head gradient costs time and doubles it at the
            # step's memory peak.
            if (sole_owner and dx.base is None and dx.dtype == self.data.dtype
                    and dx.flags.writeable and dx.flags.c_contiguous):
                self.grad = dx
            else:
                self.grad = np.array(dx, dtype=self.data.dtype, copy=True)
        else:
            self.grad += dx

    # ----- conversions ----------------------------------------------------------------------
    def detach(self):
        """The same data, cut from the graph: gradients do not flow through the result."""
        return Tensor(self.data)

    def numpy(self):
        return self.data

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def astype(self, dtype):
        """A converted copy, cut from the graph (casts are not differentiable here)."""
        return Tensor(self.data.astype(dtype))

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def is_leaf(self):
        return self._node is None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.data, precision=4, separator=", ", threshold=20,
                               prefix="Tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        dtype = "" if self.dtype == np.float32 else f", dtype={self.dtype}"
        return f"Tensor({body}{dtype}{extra})"

    # ----- operators and methods: each is one line into tinygpt.functional -------------------
    def __add__(self, other): return F.add(self, other)
    def __radd__(self, other): return F.add(other, self)
    def __sub__(self, other): return F.sub(self, other)
    def __rsub__(self, other): return F.sub(other, self)
    def __mul__(self, other): return F.mul(self, other)
    def __rmul__(self, other): return F.mul(other, self)
    def __truediv__(self, other): return F.div(self, other)
    def __rtruediv__(self, other): return F.div(other, self)
    def __neg__(self): return F.neg(self)
    def __pow__(self, exponent): return F.pow(self, exponent)
    def __rpow__(self, base): return F.pow(base, self)
    def __matmul__(self, other): return F.matmul(self, other)
    def __rmatmul__(self, other): return F.matmul(other, self)
    def __getitem__(self, index): return F.getitem(self, index)

    def exp(self): return F.exp(self)
    def log(self): return F.log(self)
    def sqrt(self): return F.sqrt(self)
    def tanh(self): return F.tanh(self)
    def sigmoid(self): return F.sigmoid(self)
    def relu(self): return F.relu(self)
    def gelu(self, approximate="none"): return F.gelu(self, approximate)
    def clamp(self, min=None, max=None): return F.clamp(self, min, max)
    def clip(self, min=None, max=None): return F.clamp(self, min, max)
    # PyTorch's dim/keepdim, positionally or by name; NumPy's axis/keepdims by name
    def sum(self, dim=None, keepdim=False, **numpy_names): return F.sum(self, dim, keepdim, **numpy_names)
    def mean(self, dim=None, keepdim=False, **numpy_names): return F.mean(self, dim, keepdim, **numpy_names)
    def max(self, dim=None, keepdim=False, **numpy_names): return F.max(self, dim, keepdim, **numpy_names)
    def amax(self, dim=None, keepdim=False, **numpy_names): return F.amax(self, dim, keepdim, **numpy_names)
    def var(self, dim=None, *, correction=1, keepdim=False, **numpy_names):
        return F.var(self, dim, correction=correction, keepdim=keepdim, **numpy_names)
    def softmax(self, dim=None, **numpy_name): return F.softmax(self, dim, **numpy_name)
    def log_softmax(self, dim=None, **numpy_name): return F.log_softmax(self, dim, **numpy_name)
    def reshape(self, *shape): return F.reshape(self, _one_tuple(shape))
    def transpose(self, dim0, dim1): return F.transpose(self, dim0, dim1)
    def permute(self, *dims): return F.permute(self, _one_tuple(dims))
    def split(self, split_size, dim=0, **numpy_name): return F.split(self, split_size, dim, **numpy_name)
    def chunk(self, chunks, dim=0, **numpy_name): return F.chunk(self, chunks, dim, **numpy_name)
    def masked_fill(self, mask, value): return F.masked_fill(self, mask, value)

    @property
    def T(self):
        """The dimensions reversed (a matrix transposed), as torch's and NumPy's .T."""
        return F.permute(self, None)


def _one_tuple(args):
    """`x.reshape(2, 3)` and `x.reshape((2, 3))` alike: the arguments as one tuple.
    NOTE: a lone int is a dimension, not a sequence: `x.permute(0)` of a 1-D x means (0,)."""
    return tuple(args[0]) if len(args) == 1 and not isinstance(args[0], (int, np.integer)) else args


def _topological_order(root):
    """Nodes reachable from `root`, each before the nodes of its inputs. Iterative, so a chain of
    100,000 ops needs no recursion: a node is appended once all its inputs' nodes are done."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for edge in node.edges:
            if edge is not None and edge.node is not None and edge.node not in visited:
                stack.append((edge.node, False))  # an op's output, not a leaf
    order.reverse()  # consumers first: a node's gradient is complete before it is used
    return order


def apply(forward, backward, *inputs, **params):
    """Run `forward` on the arrays of `inputs` (Tensors or constants) and record how to go back.

    `forward(*arrays, **params)` returns (out, cache), where out is an array or a tuple of arrays;
    `backward(dout, cache)` returns one gradient per input (None for constants and integers). When
    out is a tuple, dout is a tuple too, with None for the outputs the loss did not use.
    """
    if _profiler is not None:  # `with tinygpt.profile():` times this op and comes back here
        return _profiler.record(forward, backward, inputs, params)
    arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
    out, cache = forward(*arrays, **params)
    edges = tuple(_edge(x) for x in inputs) if _grad_enabled else ()
    track = any(edge is not None for edge in edges)
    if not isinstance(out, tuple):
        return Tensor._from_op(out, Node(backward, cache, edges, 1) if track else None)
    node = Node(backward, cache, edges, len(out), tuple_out=True) if track else None
    return tuple(Tensor._from_op(array, node, i) for i, array in enumerate(out))


from tinygpt import functional as F  # noqa: E402  (functional imports Tensor and apply from here)
