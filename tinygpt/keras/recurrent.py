"""The time loop Keras' recurrent layers share (LSTM, GRU, SimpleRNN): input dropout, go_backwards,
and the choice between one fused op over the whole sequence and the cell one step at a time.

The step path composes the cell from primitives (F.lstm over one step, matmul, sigmoid, where), so
its backward is theirs. It runs when a step needs its own decision: a mask (a masked step carries
the previous state forward and repeats the previous output, Keras' zero_output_for_mask=False) or
recurrent dropout (one mask per sequence on the state entering each step, as Keras).
Not here: the cells themselves (each layer's `step`), initial_state, stateful layers, unroll.
"""

import numpy as np

from tinygpt import functional as F
from tinygpt.tensor import Tensor


def check_rates(layer, dropout, recurrent_dropout):
    for key, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{layer}: {key} must be in [0, 1), got {value!r}")


def check_unsupported(layer, stateful=False, unroll=False, time_major=False):
    for key, value in (("stateful", stateful), ("unroll", unroll), ("time_major", time_major)):
        if value:
            raise NotImplementedError(f"{layer}({key}=True) is not supported by tinygpt.keras")


def check_input_shape(layer, input_shape):
    """A recurrent layer's input must be (batch, timesteps, features), with the features it was built for."""
    name = type(layer).__name__
    if len(input_shape) != 3 or input_shape[2] is None:
        raise ValueError(f"{name} {layer.name!r} takes input of rank 3 (batch, timesteps, features), "
                         f"got shape {input_shape}; token ids need an Embedding layer first, and a "
                         f"single series of numbers needs x[..., None]")
    if layer.built and input_shape[2] != layer.input_shape[2]:
        raise ValueError(f"{name} {layer.name!r} was built for {layer.input_shape[2]} features per "
                         f"step, got input of shape {input_shape}")


def output_shape(layer, input_shape, n_states):
    """(batch, steps, features) -> the output's shape, and with return_state the n_states states' too."""
    batch, steps = input_shape[0], input_shape[1]
    out = (batch, steps, layer.units) if layer.return_sequences else (batch, layer.units)
    return [out] + [(batch, layer.units)] * n_states if layer.return_state else out


def output_mask(layer, mask, n_states):
    """The mask of a recurrent layer's output(s): the steps' mask for a sequence, none for a state."""
    seq_mask = mask if layer.return_sequences else None
    if mask is not None and layer.return_sequences and layer.go_backwards:
        seq_mask = mask[:, ::-1]  # the outputs come in reading order
    return [seq_mask] + [None] * n_states if layer.return_state else seq_mask


def run(layer, x, fused, project, step, n_states):
    """x (B, T, I) -> Keras' outputs: the sequence (B, T, units) or the last state, then the states.

    fused(x) -> (sequence, states) over the whole sequence, or None when the layer has no fused op
    for its configuration; project(x) -> (B, T, G), what every step reads of the input;
    step(xw_t (B, G), states, h_dropped) -> new states, the first of which is the output."""
    if not isinstance(x, Tensor) or x.dtype.kind != "f":
        x = Tensor(np.asarray(x.data if isinstance(x, Tensor) else x, dtype=np.float32))
    batch, steps = x.shape[0], x.shape[1]
    mask = layer.input_mask
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != (batch, steps):
            raise ValueError(f"{type(layer).__name__} {layer.name!r}: mask of shape {mask.shape} does "
                             f"not match input of shape {x.shape}; expected ({batch}, {steps})")
        if mask.all():
            mask = None  # nothing masked: the fused op computes the same thing
    if layer.go_backwards:
        x = x[:, ::-1]  # Keras reads the last step first and returns the outputs in that order
        mask = None if mask is None else mask[:, ::-1]
    if layer.training and layer.dropout > 0.0:
        # one input mask per sequence, the same at every time step
        keep = layer.dropout_rng.random((batch, 1, x.shape[2])) >= layer.dropout
        x = x * (keep / (1.0 - layer.dropout)).astype(x.dtype)
    recurrent_keep = None
    if layer.training and layer.recurrent_dropout > 0.0:
        keep = layer.dropout_rng.random((batch, layer.units)) >= layer.recurrent_dropout
        recurrent_keep = (keep / (1.0 - layer.recurrent_dropout)).astype(x.dtype)
    result = fused(x) if mask is None and recurrent_keep is None else None
    if result is None:
        result = _steps(x, mask, recurrent_keep, project, step, n_states, layer.units)
    sequence, states = result
    output = sequence if layer.return_sequences else states[0]
    return [output, *states] if layer.return_state else output


def _steps(x, mask, recurrent_keep, project, step, n_states, units):
    batch, steps = x.shape[0], x.shape[1]
    xw = project(x)  # (B, T, G): one matmul for every step's input part
    pieces = F.chunk(xw, steps, axis=1) if steps > 1 else (xw,)  # one op, not T slices
    states = [np.zeros((batch, units), x.dtype) for _ in range(n_states)]
    outputs = []
    for t, piece in enumerate(pieces):
        xw_t = piece.reshape((batch, xw.shape[2]))  # (B, 1, G) -> (B, G)
        h = states[0]
        h_dropped = h if recurrent_keep is None else h * recurrent_keep
        new = step(xw_t, states, h_dropped)
        if mask is not None:
            real = mask[:, t]
            if not real.any():
                new = states  # a padding step in every row: the state passes through unchanged
            elif not real.all():
                keep = np.broadcast_to(real[:, None], (batch, units))
                new = [F.where(keep, n, s) for n, s in zip(new, states)]
        states = list(new)
        outputs.append(states[0])
    states = [s if isinstance(s, Tensor) else Tensor(s) for s in states]
    return F.stack(outputs, axis=1), states  # (B, T, units)
