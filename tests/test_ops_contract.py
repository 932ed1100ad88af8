"""The contract every `<op>_forward` / `<op>_backward` pair keeps, checked on every op in tinygpt.ops:
float32 in gives float32 out and float32 gradients, one gradient per input in that input's shape
(None for integers and constants), and `dout` is never written in place. Kernels rely on all three."""

import inspect

import numpy as np
import pytest

from tinygpt.ops import (attention, conv, dropout, elementwise, gru, layernorm, linear, lstm, matmul, pool,
                         reduce, shape, softmax)

rng = np.random.default_rng(0)
f32 = lambda *shape: rng.uniform(0.5, 1.5, shape).astype(np.float32)  # noqa: E731  (positive: log, sqrt, pow)

# name: (module, positional inputs, keyword params)
CASES = {
    "add": (elementwise, [f32(2, 3), f32(3)], {}),
    "sub": (elementwise, [2.0, f32(2, 1)], {}),
    "mul": (elementwise, [f32(2, 3), 3.0], {}),
    "div": (elementwise, [f32(1, 3), f32(2, 1)], {}),
    "neg": (elementwise, [f32(4)], {}),
    "pow": (elementwise, [f32(2, 3), f32(3)], {}),
    "exp": (elementwise, [f32(4)], {}),
    "log": (elementwise, [f32(4)], {}),
    "sqrt": (elementwise, [f32(4)], {}),
    "tanh": (elementwise, [f32(4)], {}),
    "sigmoid": (elementwise, [f32(4)], {}),
    "relu": (elementwise, [f32(4) - 1.0], {}),
    "gelu": (elementwise, [f32(4)], {}),
    "gelu_erf": (elementwise, [f32(4)], {}),
    "clip": (elementwise, [f32(5)], {"low": 0.7, "high": 1.2}),
    "where": (elementwise, [np.array([True, False, True]), f32(2, 3), -1e9], {}),
    "sum": (reduce, [f32(2, 3)], {"axis": 1}),
    "mean": (reduce, [f32(2, 3)], {"axis": (0, 1), "keepdims": True}),
    "max": (reduce, [f32(2, 3)], {"axis": -1}),
    "var": (reduce, [f32(2, 3)], {"axis": 0}),
    "reshape": (shape, [f32(2, 3)], {"shape": (3, 2)}),
    "transpose": (shape, [f32(2, 3, 4)], {"axes": (2, 0, 1)}),
    "getitem": (shape, [f32(4, 3)], {"index": np.array([0, 0, 3])}),
    "embedding": (shape, [f32(5, 3), np.array([[0, 4, 4]])], {}),
    "concatenate": (shape, [f32(2, 3), f32(1, 3)], {"axis": 0}),
    "stack": (shape, [f32(2, 3), f32(2, 3)], {"axis": 1}),
    "split": (shape, [f32(6, 2)], {"sections": [1, 4], "axis": 0}),
    "softmax": (softmax, [f32(2, 5)], {"axis": 0}),
    "log_softmax": (softmax, [f32(2, 5)], {}),
    "cross_entropy": (softmax, [f32(3, 5), np.array([1, -100, 4])], {}),
    "dropout": (dropout, [f32(3, 4)], {"p": 0.5, "rng": np.random.default_rng(0)}),
    "matmul": (matmul, [f32(2, 3, 4), f32(4, 5)], {}),
    "linear": (linear, [f32(2, 3, 4), f32(4, 5), f32(5)], {}),
    "layernorm": (layernorm, [f32(2, 3, 4), f32(4), f32(4)], {}),
    "attention": (attention, [f32(1, 2, 3, 4), f32(1, 2, 5, 4), f32(1, 2, 5, 4)], {}),
    "causal_self_attention": (attention, [f32(2, 3, 12)], {"n_head": 2}),
    "conv1d": (conv, [f32(2, 7, 3), f32(3, 3, 4)], {"stride": 2, "dilation": 1, "pad_left": 1, "pad_right": 1}),
    "maxpool1d": (pool, [f32(2, 7, 3)], {"pool_size": 3, "stride": 2, "pad_left": 1, "pad_right": 1}),
    "avgpool1d": (pool, [f32(2, 7, 3)], {"pool_size": 3, "stride": 2, "pad_left": 1, "pad_right": 1}),
    "lstm": (lstm, [f32(2, 3, 4), f32(2, 5), f32(2, 5), f32(4, 20), f32(5, 20), f32(20)], {}),
    "gru": (gru, [f32(2, 3, 4), f32(2, 5), f32(4, 15), f32(5, 15), f32(15), f32(15)], {}),
}


def test_every_op_in_tinygpt_ops_is_covered():
    modules = (attention, conv, dropout, elementwise, gru, layernorm, linear, lstm, matmul, pool, reduce,
               shape, softmax)
    ops = {name[:-len("_forward")] for m in modules for name, _ in inspect.getmembers(m)
           if name.endswith("_forward")}
    assert ops == set(CASES), f"add a case for {ops - set(CASES)}; remove {set(CASES) - ops}"


@pytest.mark.parametrize("name", list(CASES))
def test_op_keeps_float32_and_gives_one_gradient_per_input_without_writing_dout(name):
    module, inputs, params = CASES[name]
    forward, backward = getattr(module, f"{name}_forward"), getattr(module, f"{name}_backward")
    out, cache = forward(*inputs, **params)
    outs = out if isinstance(out, tuple) else (out,)
    for i, o in enumerate(outs):
        assert np.asarray(o).dtype == np.float32, f"{name}_forward output {i} is {np.asarray(o).dtype}"
    douts = tuple(np.asarray(rng.normal(size=np.shape(o)), dtype=np.float32) for o in outs)
    for d in douts:
        d.flags.writeable = False  # a backward that writes into dout raises here
    grads = backward(douts if isinstance(out, tuple) else douts[0], cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert len(grads) == len(inputs), f"{name}_backward gave {len(grads)} gradients for {len(inputs)} inputs"
    for i, (x, dx) in enumerate(zip(inputs, grads)):
        if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
            assert dx is None, f"{name}_backward: input {i} is a constant or integers, but got a gradient"
            continue
        assert dx.shape == x.shape, f"{name}_backward: gradient {i} has shape {dx.shape}, input {x.shape}"
        assert dx.dtype == np.float32, f"{name}_backward: gradient {i} is {dx.dtype} for float32 input"
