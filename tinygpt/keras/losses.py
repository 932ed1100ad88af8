"""Keras' losses by name, each with the check that tells you when y does not fit it.

    categorical_crossentropy         y one-hot (..., K)      K = the last layer's units
    sparse_categorical_crossentropy  y class ids (...)       (or (..., 1))
    binary_crossentropy              y in [0, 1], the output's shape
    mse / mean_squared_error         y the output's shape
    mae / mean_absolute_error        y the output's shape
    huber                            y the output's shape (Huber(delta=1.0))

Each is also a function, keras.losses.mean_squared_error(y_true, y_pred) -> one loss per sample
(the mean over the last axis, as Keras' functions return); compile(loss=<that function>) uses the
class of the same rule, and any other function's per-sample result is averaged.

Fusion, as Keras does internally: when the last layer is Dense(activation='softmax') (or 'sigmoid'
for binary_crossentropy), the model hands the loss that layer's pre-activation logits and the loss
takes the fused, max-shifted log-softmax path: log(softmax(z)) is never formed, so no log(0). On
probabilities (no matching activation) the loss clips them to [1e-7, 1 - 1e-7] as Keras does.
With sample_weight (fit's sample_weight / class_weight), a loss is Keras 3's 'sum_over_batch_size':
sum(values * w) / values.size over the per-position values (`Loss.values`), so weights of 1 give the
plain mean and the loss is not renormalised by the weights' sum.
Not here: label smoothing, or reductions other than the (weighted) mean.
"""

import numpy as np

from tinygpt import functional as F

EPSILON = 1e-7  # Keras' backend epsilon: how far probabilities are kept from 0 and 1


class Loss:
    """y_true (array), y_pred (Tensor) -> a scalar Tensor, the mean over every sample and position."""

    name = "loss"
    logits_activation = None  # the output activation whose pre-activation this loss can read

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self.weighted(y_true, y_pred, self.from_logits, sample_weight)

    def compute(self, y_true, y_pred, from_logits):
        raise NotImplementedError

    def values(self, y_true, y_pred, from_logits):
        """The per-position losses (batch first) whose mean is compute(): what sample weights scale."""
        raise NotImplementedError(f"{type(self).__name__} has no per-sample form, so sample_weight / "
                                  f"class_weight cannot weight it")

    def weighted(self, y_true, y_pred, from_logits, sample_weight):
        """compute() when sample_weight is None, else sum(values * w) / values.size."""
        if sample_weight is None:
            return self.compute(y_true, y_pred, from_logits)
        values = self.values(y_true, y_pred, from_logits)
        w = broadcast_weights(sample_weight, values.shape, "sample_weight")
        return F.mul(F.sum(F.mul(values, w.astype(values.dtype, copy=False))), 1.0 / max(values.data.size, 1))

    def prepare_targets(self, y, output_shape, output_desc, what="y"):
        """Check y against this loss and the model's output shape (None, ...); return it converted."""
        return np.asarray(y)

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


def broadcast_weights(sample_weight, shape, what):
    """sample_weight (B,), (B, 1) or (B, T, ...) -> an array that broadcasts against values of `shape`."""
    w = np.asarray(sample_weight, dtype=np.float32)
    if w.ndim == 2 and w.shape[1] == 1 and len(shape) == 1:
        w = w[:, 0]
    if w.ndim > len(shape) or w.shape != tuple(shape[:w.ndim]):
        raise ValueError(f"{what} has shape {w.shape}, which does not fit the loss values of shape "
                         f"{tuple(shape)}: expected (batch,) or the targets' leading axes {tuple(shape)}")
    return w.reshape(w.shape + (1,) * (len(shape) - w.ndim))


def _shape_error(loss, what, y, expected, output_desc):
    return ValueError(f"{what} has shape {y.shape}, but with loss={loss!r} the model's output "
                      f"{output_desc} needs {what} of shape {expected}")


def _probabilities_log(y_pred):
    """Keras' from_logits=False path: renormalise each row to sum 1, clip, log."""
    p = y_pred / F.sum(y_pred, axis=-1, keepdims=True)
    return F.log(F.clip(p, EPSILON, 1.0 - EPSILON))


class CategoricalCrossentropy(Loss):
    name = "categorical_crossentropy"
    logits_activation = "softmax"

    def prepare_targets(self, y, output_shape, output_desc, what="y"):
        y = np.asarray(y)
        expected = (len(y),) + tuple(output_shape[1:])
        classes = expected[-1]
        if y.shape in (expected[:-1], expected[:-1] + (1,)) and classes > 1:
            raise ValueError(f"{what} holds class ids of shape {y.shape}, but loss="
                             f"'categorical_crossentropy' needs one-hot {what} of shape {expected}; "
                             f"use loss='sparse_categorical_crossentropy', or convert with "
                             f"tinygpt.keras.utils.to_categorical({what}, num_classes={classes})")
        if y.ndim == len(expected) and y.shape[:-1] == expected[:-1] and y.shape[-1] != classes:
            raise ValueError(f"{what} has {y.shape[-1]} classes on its last axis, but the model's "
                             f"output {output_desc} has {classes} units; they must be equal")
        if y.shape != expected:
            raise _shape_error(self.name, what, y, expected, output_desc)
        return y.astype(np.float32, copy=False)

    def compute(self, y_true, y_pred, from_logits):
        if from_logits:
            return F.cross_entropy(y_pred, y_true)  # fused log-softmax, probability targets
        return F.neg(F.mean(F.sum(F.mul(y_true, _probabilities_log(y_pred)), axis=-1)))

    def values(self, y_true, y_pred, from_logits):
        if from_logits:
            return F.cross_entropy(y_pred, y_true, reduction="none")  # (...)
        return F.neg(F.sum(F.mul(y_true, _probabilities_log(y_pred)), axis=-1))


class SparseCategoricalCrossentropy(Loss):
    name = "sparse_categorical_crossentropy"
    logits_activation = "softmax"

    def prepare_targets(self, y, output_shape, output_desc, what="y"):
        y = np.asarray(y)
        lead, classes = (len(y),) + tuple(output_shape[1:-1]), output_shape[-1]
        if y.shape == lead + (1,):
            y = y[..., 0]  # Keras also takes labels of shape (N, 1)
        if y.shape == lead + (classes,) and classes > 1:
            raise ValueError(f"{what} has shape {y.shape}: it looks one-hot, but loss="
                             f"'sparse_categorical_crossentropy' needs integer class ids of shape "
                             f"{lead}; use loss='categorical_crossentropy', or {what}.argmax(axis=-1)")
        if y.shape != lead:
            raise _shape_error(self.name, what, y, lead, output_desc)
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            raise ValueError(f"{what} must hold integer class ids for sparse_categorical_crossentropy, "
                             f"got the value {y[y != np.round(y)].flat[0]}")
        if y.dtype.kind not in "iubf":
            raise TypeError(f"{what} must hold integer class ids, got dtype {y.dtype}")
        y = y.astype(np.int64)
        bad = (y < 0) | (y >= classes)
        if bad.any():
            where = np.unravel_index(np.argmax(bad), y.shape)
            raise ValueError(f"class id {y[where]} at {what}[{', '.join(map(str, where))}] is out of "
                             f"range for the model's output {output_desc} with {classes} units "
                             f"(valid ids 0..{classes - 1})")
        return y

    def compute(self, y_true, y_pred, from_logits):
        if from_logits:
            return F.cross_entropy(y_pred, y_true)  # fused log-softmax, picks logit[y] per row
        one_hot = np.eye(y_pred.shape[-1], dtype=y_pred.dtype)[y_true]  # (..., K)
        return F.neg(F.mean(F.sum(F.mul(one_hot, _probabilities_log(y_pred)), axis=-1)))

    def values(self, y_true, y_pred, from_logits):
        if from_logits:
            return F.cross_entropy(y_pred, y_true, reduction="none")  # (...)
        one_hot = np.eye(y_pred.shape[-1], dtype=y_pred.dtype)[y_true]
        return F.neg(F.sum(F.mul(one_hot, _probabilities_log(y_pred)), axis=-1))


def _same_shape_targets(loss, y, output_shape, output_desc, what):
    """y of the output's shape; (N,) is accepted for an output (None, 1), as in Keras."""
    y = np.asarray(y)
    expected = (len(y),) + tuple(output_shape[1:])
    if y.shape == expected[:-1] and expected[-1] == 1:
        y = y[..., None]
    if y.shape != expected:
        raise _shape_error(loss, what, y, expected, output_desc)
    if y.dtype.kind not in "iubf":
        raise TypeError(f"{what} must be numbers for loss={loss!r}, got dtype {y.dtype}")
    return y.astype(np.float32, copy=False)


class BinaryCrossentropy(Loss):
    name = "binary_crossentropy"
    logits_activation = "sigmoid"

    def prepare_targets(self, y, output_shape, output_desc, what="y"):
        y = _same_shape_targets(self.name, y, output_shape, output_desc, what)
        if y.size and (y.min() < 0.0 or y.max() > 1.0):
            raise ValueError(f"binary_crossentropy needs {what} in [0, 1], got values from {y.min()} "
                             f"to {y.max()}; for class ids use sparse_categorical_crossentropy")
        return y

    def compute(self, y_true, z, from_logits):
        if not from_logits:
            return F.binary_cross_entropy(z, y_true, eps=EPSILON)  # z holds probabilities here
        # -(y log σ(z) + (1-y) log(1-σ(z))) = max(z, 0) - z y + log(1 + exp(-|z|)): exp never overflows
        abs_z = F.add(F.relu(z), F.relu(F.neg(z)))
        return F.mean(F.add(F.sub(F.relu(z), F.mul(z, y_true)), F.log(F.add(1.0, F.exp(F.neg(abs_z))))))

    def values(self, y_true, z, from_logits):
        if from_logits:
            abs_z = F.add(F.relu(z), F.relu(F.neg(z)))
            return F.add(F.sub(F.relu(z), F.mul(z, y_true)), F.log(F.add(1.0, F.exp(F.neg(abs_z)))))
        p = F.clip(z, EPSILON, 1.0 - EPSILON)
        return F.neg(F.add(F.mul(y_true, F.log(p)), F.mul(1.0 - y_true, F.log(F.sub(1.0, p)))))


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def prepare_targets(self, y, output_shape, output_desc, what="y"):
        return _same_shape_targets("mse", y, output_shape, output_desc, what)

    def compute(self, y_true, y_pred, from_logits):
        return F.mse_loss(y_pred, y_true)

    def values(self, y_true, y_pred, from_logits):
        d = F.sub(y_pred, y_true)
        return F.mul(d, d)


class MeanAbsoluteError(Loss):
    name = "mean_absolute_error"

    def prepare_targets(self, y, output_shape, output_desc, what="y"):
        return _same_shape_targets("mae", y, output_shape, output_desc, what)

    def compute(self, y_true, y_pred, from_logits):
        return F.mean(_abs(F.sub(y_pred, y_true)))

    def values(self, y_true, y_pred, from_logits):
        return _abs(F.sub(y_pred, y_true))


class Huber(Loss):
    """Squared error for errors up to delta, linear beyond: 0.5 e² if |e| <= delta, else
    delta |e| - 0.5 delta². Less pulled by outliers than mse, smooth at 0 unlike mae."""

    name = "huber"

    def __init__(self, delta=1.0):
        super().__init__()
        if delta < 0:
            raise ValueError(f"Huber: delta must be >= 0, got {delta}")
        self.delta = float(delta)

    def prepare_targets(self, y, output_shape, output_desc, what="y"):
        return _same_shape_targets("huber", y, output_shape, output_desc, what)

    def compute(self, y_true, y_pred, from_logits):
        return F.mean(_huber(y_true, y_pred, self.delta))

    def values(self, y_true, y_pred, from_logits):
        return _huber(y_true, y_pred, self.delta)

    def __repr__(self):
        return f"Huber(delta={self.delta})"


def _abs(x):
    return F.add(F.relu(x), F.relu(F.neg(x)))


def _huber(y_true, y_pred, delta):
    # |e| = q + l with q = min(|e|, delta): 0.5 q² + delta l is 0.5 e² inside, delta|e| - 0.5 delta² outside
    abs_error = _abs(F.sub(y_pred, y_true))
    quadratic = F.clip(abs_error, 0.0, delta)
    return F.add(F.mul(0.5, F.mul(quadratic, quadratic)), F.mul(delta, F.sub(abs_error, quadratic)))


# ----- the functions: one loss per sample, the mean over the last axis (Keras' convention) ---------
def _as_tensor(y_pred):
    return y_pred if isinstance(y_pred, F.Tensor) else F.tensor(np.asarray(y_pred))


def mean_squared_error(y_true, y_pred):
    d = F.sub(_as_tensor(y_pred), np.asarray(y_true))
    return F.mean(F.mul(d, d), axis=-1)


def mean_absolute_error(y_true, y_pred):
    return F.mean(_abs(F.sub(_as_tensor(y_pred), np.asarray(y_true))), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    return F.mean(_huber(np.asarray(y_true), _as_tensor(y_pred), float(delta)), axis=-1)


def _log_probabilities(y_pred, from_logits):
    return F.log_softmax(y_pred, axis=-1) if from_logits else _probabilities_log(y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    """y_true one-hot (..., K), y_pred (..., K) -> (...): -Σ_k y_k log p_k."""
    log_p = _log_probabilities(_as_tensor(y_pred), from_logits)
    return F.neg(F.sum(F.mul(np.asarray(y_true, dtype=log_p.dtype), log_p), axis=-1))


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """y_true class ids (...), y_pred (..., K) -> (...): -log p[y]."""
    y_pred = _as_tensor(y_pred)
    one_hot = np.eye(y_pred.shape[-1], dtype=y_pred.dtype)[np.asarray(y_true, dtype=np.int64)]
    return categorical_crossentropy(one_hot, y_pred, from_logits)


def binary_crossentropy(y_true, y_pred, from_logits=False):
    """-(y log p + (1 - y) log(1 - p)), p clipped to [1e-7, 1 - 1e-7], mean over the last axis."""
    y_pred, y_true = _as_tensor(y_pred), np.asarray(y_true)
    if from_logits:
        y_pred = F.sigmoid(y_pred)
    p = F.clip(y_pred, EPSILON, 1.0 - EPSILON)
    terms = F.add(F.mul(y_true, F.log(p)), F.mul(1.0 - y_true, F.log(F.sub(1.0, p))))
    return F.neg(F.mean(terms, axis=-1))


mse, mae = mean_squared_error, mean_absolute_error


class _FunctionLoss(Loss):
    """A user function loss(y_true, y_pred) -> scalar Tensor; y is passed as given."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.name = fn, getattr(fn, "__name__", "loss")

    def compute(self, y_true, y_pred, from_logits):
        loss = self.fn(y_true, y_pred)
        return F.mean(loss) if loss.ndim else loss  # per-sample losses -> their mean, as Keras

    def values(self, y_true, y_pred, from_logits):
        loss = self.fn(y_true, y_pred)
        if not loss.ndim:
            raise ValueError(f"the loss function {self.name!r} returns a scalar, so sample_weight / "
                             f"class_weight cannot weight its samples; return one loss per sample")
        return loss


LOSSES = {"categorical_crossentropy": CategoricalCrossentropy,
          "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
          "binary_crossentropy": BinaryCrossentropy,
          "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
          "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError, "huber": Huber}
# compile(loss=keras.losses.mse) gets the class (its target checks, fused logits) not the function
FUNCTION_CLASSES = {mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
                    huber: Huber, categorical_crossentropy: CategoricalCrossentropy,
                    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
                    binary_crossentropy: BinaryCrossentropy}


def get(identifier):
    """A name, a Loss object, or a function (y_true, y_pred) -> Tensor -> a Loss."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        if identifier not in LOSSES:
            raise ValueError(f"unknown loss {identifier!r}; valid: {sorted(LOSSES)}, a "
                             f"tinygpt.keras.losses object, or a function (y_true, y_pred) -> Tensor")
        return LOSSES[identifier]()
    if callable(identifier):
        if identifier in FUNCTION_CLASSES:
            return FUNCTION_CLASSES[identifier]()
        return _FunctionLoss(identifier)
    raise ValueError(f"compile needs a loss: one of {sorted(LOSSES)}, got {identifier!r}")


__all__ = ["Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
           "MeanSquaredError", "MeanAbsoluteError", "Huber", "mean_squared_error", "mse",
           "mean_absolute_error", "mae", "huber", "categorical_crossentropy",
           "sparse_categorical_crossentropy", "binary_crossentropy", "get"]
