"""Every differentiable primitive as a NumPy forward and a hand-written backward on plain arrays.

Each `<op>_forward(*arrays, **params)` returns `(out, cache)`; each `<op>_backward(dout, cache)`
returns one gradient per array input, shaped like that input, or None for constants and integers.
Backward functions never modify `dout` in place: the same array may be handed to several inputs.
Not here: Tensors and the graph (tinygpt/tensor.py), or faster kernels (tinygpt/kernels).
"""

from tinygpt.ops import (  # noqa: F401  (importing registers each family's kernels)
    elementwise, reduce, matmul, linear, shape, softmax, layernorm, dropout, attention, lstm, gru, adamw,
)
