"""Keras masks: a boolean (B, T) array saying which time steps of a (B, T, ...) tensor are real.

A layer's output Tensor carries the mask its layer computed, as Keras' `_keras_mask` attribute
does; Tensor has __slots__, so here the masks sit in a side table keyed by the Tensor, dropped
when the Tensor is. Layer.__call__ reads the input's mask and records the output's (layers.py);
the loss and metrics read the model output's (training.py). Not here: the Masking layer and the
layers that honour masks (layers_recurrent.py, layers_wrappers.py, layers_reshape.py).
"""

import weakref

import numpy as np

from tinygpt import functional as F
from tinygpt.tensor import Tensor

_masks = {}  # id(tensor) -> (weak reference to it, its mask)


def set_mask(tensor, mask):
    """Record `mask` (None: no mask) as the mask of `tensor` (or of each Tensor in a list)."""
    if isinstance(tensor, (list, tuple)):
        masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(tensor)
        for t, m in zip(tensor, masks):
            set_mask(t, m)
        return
    if not isinstance(tensor, Tensor):
        return
    key = id(tensor)
    if mask is None:
        _masks.pop(key, None)
        return
    # the callback runs when the tensor is freed, before its id can be reused
    _masks[key] = (weakref.ref(tensor, lambda _, key=key: _masks.pop(key, None)), np.asarray(mask, bool))


def get_mask(x):
    """The mask recorded for Tensor x (a list of masks for a list of inputs), or None."""
    if isinstance(x, (list, tuple)):
        masks = [get_mask(t) for t in x]
        return None if all(m is None for m in masks) else masks
    entry = _masks.get(id(x))
    if entry is None or entry[0]() is not x:
        return None
    return entry[1]


def select_unmasked(mask, y_true, y_pred, predictions, sample_weight=None):
    """The real time steps only, for the loss and metrics: Keras averages them over the unmasked
    steps. mask (B, T), y_true (B, T, ...), y_pred a Tensor and predictions an array (B, T, ...),
    sample_weight (B,) or (B, T) or None -> (y_true[mask], y_pred[mask], predictions[mask],
    the weights of those steps); all unchanged when the mask does not apply."""
    y_true = np.asarray(y_true)
    if mask is None or mask.ndim != 2 or y_pred.shape[:2] != mask.shape or y_true.shape[:2] != mask.shape:
        return y_true, y_pred, predictions, sample_weight
    if not mask.any():
        raise ValueError("every time step of this batch is masked: there is nothing to compute "
                         "the loss on; check the padding value given to Masking or mask_zero")
    if sample_weight is not None:  # a sample's weight holds for each of its steps
        sample_weight = np.asarray(sample_weight)
        sample_weight = np.broadcast_to(sample_weight.reshape(sample_weight.shape + (1,) * (2 - sample_weight.ndim)),
                                        mask.shape)[mask]
    return y_true[mask], F.getitem(y_pred, mask), predictions[mask], sample_weight


def combine(masks):
    """Several inputs' masks -> one: a step is real when it is real in every input that has a mask."""
    if masks is None:
        return None
    present = [m for m in masks if m is not None]
    if not present or len({m.shape for m in present}) > 1:  # e.g. concatenated along time
        return None
    return np.logical_and.reduce(present)
