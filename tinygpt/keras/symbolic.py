"""Symbolic tensors, Keras' KerasTensor: what `keras.Input(shape)` returns and what a layer returns
when it is called on one. No numbers flow: a KerasTensor holds a shape (batch as None), a dtype and
the call that made it (its `node`), so keras.Model(inputs, outputs) can walk back from its outputs
to its inputs and replay those calls on real data (functional.py).

Not here: the graph walk and the Model (functional.py), or any arithmetic on KerasTensors
(`x + y` on symbolic tensors: use layers.Add()([x, y]), as Keras 3 recommends).
"""

import itertools

import numpy as np

_names = itertools.count()
_input_names = itertools.count()  # Keras' input_layer, input_layer_1, ...


class Node:
    """One call `layer(inputs, **kwargs)` recorded on symbolic tensors; `outputs` are KerasTensors."""

    def __init__(self, layer, inputs, kwargs):
        self.layer, self.inputs, self.kwargs = layer, inputs, kwargs
        self.outputs = []

    @property
    def flat_inputs(self):
        return flatten(self.inputs)


class KerasTensor:
    """shape: (None, ...) including the batch; node: the call that made it (None for an Input)."""

    def __init__(self, shape, dtype="float32", node=None, index=0, name=None):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.node, self.index = node, index  # this is node.outputs[index]
        self.name = name or f"keras_tensor_{next(_names)}"

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def _no_arithmetic(self, *args):
        raise NotImplementedError("arithmetic on symbolic Keras tensors (x + y, x * 2, x[...]) is not "
                                  "supported by tinygpt.keras; use layers.Add()([x, y]), "
                                  "layers.Concatenate()([x, y]) or a layer's call instead")

    __add__ = __radd__ = __sub__ = __mul__ = __rmul__ = __truediv__ = __getitem__ = __matmul__ = _no_arithmetic


def Input(shape=None, batch_size=None, dtype=None, name=None):  # noqa: N802  (Keras' name)
    """keras.Input(shape=(100,), dtype='int32'): the shape of one sample, batch excluded."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if shape is None or not all(d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                              and d > 0) for d in shape):
        raise ValueError(f"Input: shape must be a tuple of positive ints (or None) for one "
                         f"sample, batch excluded, e.g. Input(shape=(100,)); got {shape!r}")
    try:
        dtype = np.dtype(object if dtype in ("string", "str") else dtype or "float32")  # strings: Python objects
    except TypeError:
        raise TypeError(f"Input: dtype must name a NumPy dtype such as 'int32' or 'float32', got {dtype!r}") from None
    return KerasTensor((batch_size,) + tuple(shape), dtype, name=name or _input_name())


def _input_name():
    k = next(_input_names)
    return f"input_layer_{k}" if k else "input_layer"


def InputLayer(shape=None, batch_size=None, dtype=None, name=None, input_shape=None):  # noqa: N802
    """Keras' InputLayer(input_shape=(4,)) as a Sequential's first entry: the same as Input(shape)."""
    return Input(shape if shape is not None else input_shape, batch_size=batch_size, dtype=dtype, name=name)


def flatten(structure):
    """A KerasTensor, a list/tuple or a dict of them -> a flat list (dicts in key order)."""
    if isinstance(structure, dict):
        return [t for key in structure for t in flatten(structure[key])]
    if isinstance(structure, (list, tuple)):
        return [t for item in structure for t in flatten(item)]
    return [structure]


def is_symbolic(x):
    return any(isinstance(t, KerasTensor) for t in flatten(x))


def map_structure(fn, structure):
    """The same nesting as `structure` (list, tuple, dict, leaf), with fn applied to every leaf."""
    if isinstance(structure, dict):
        return {key: map_structure(fn, value) for key, value in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, item) for item in structure)
    return fn(structure)


def call_symbolic(layer, inputs, kwargs):
    """layer(KerasTensor(s)) -> KerasTensor(s) of the layer's output shape(s); builds the layer."""
    shapes = map_structure(lambda t: t.shape, inputs)
    if not layer.built:
        layer.build(shapes)
    layer.check_input_shape(shapes)
    out_shapes = layer.compute_output_shape(shapes)
    node = Node(layer, inputs, kwargs)
    many = isinstance(out_shapes, list)
    for i, shape in enumerate(out_shapes if many else [out_shapes]):
        node.outputs.append(KerasTensor(shape, "float32", node=node, index=i))
    return node.outputs if many else node.outputs[0]


__all__ = ["Input", "InputLayer", "KerasTensor", "Node"]
