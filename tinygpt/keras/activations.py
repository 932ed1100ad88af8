"""Activation names -> functions on Tensors, as Keras' `activation=` arguments spell them.

'softmax' and 'sigmoid' are also what a cross-entropy loss can fuse with (see losses.py): the
loss then reads the pre-activation logits instead of the probabilities.
Not here: the math (tinygpt.functional), or activations with parameters (LeakyReLU, PReLU).
"""

from tinygpt import functional as F

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "gelu": lambda x: F.gelu(x, approximate="tanh"),  # NOTE: Keras' default is the exact erf form
    "softmax": lambda x: F.softmax(x, axis=-1),
}


def get(identifier):
    """None or a name -> (canonical name, function). None means 'linear', as in Keras."""
    name = "linear" if identifier is None else identifier
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name (one of {sorted(ACTIVATIONS)}) or None, "
                        f"got {type(identifier).__name__}")
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {identifier!r}; valid: {sorted(ACTIVATIONS)} or None")
    return name, ACTIVATIONS[name]
