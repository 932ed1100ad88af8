"""fit's and evaluate's sample_weight and class_weight, turned into one weight per sample (or per
position) that the loss and the weighted metrics read.

class_weight {class id: weight} becomes sample_weight[i] = class_weight[class of y[i]] (the argmax
of a one-hot row; classes left out weigh 1), as Keras does. Giving both is an error, as in Keras 3.
Not here: the weighting itself (losses.Loss.weighted, training._RunningMeans).
"""

import numpy as np


def check_sample_weight(sample_weight, n, what="sample_weight"):
    """-> float32 array of shape (n, ...), or None."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold numbers, got dtype {w.dtype}")
    w = w.astype(np.float32)
    if w.ndim == 0 or len(w) != n:
        raise ValueError(f"{what} has shape {w.shape}, but there are {n} samples; it needs one weight "
                         f"per sample, shape ({n},) (or ({n}, timesteps) for per-step weights)")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{what} holds a non-finite weight ({w[~np.isfinite(w)].flat[0]})")
    return w


def class_weights(y, class_weight, what="class_weight"):
    """y: class ids (N,), (N, 1) or one-hot (N, K) -> (N,) float32 weights from {class: weight}."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"{what} must be a dict {{class id: weight}}, got {type(class_weight).__name__}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        ids = np.argmax(y, axis=1)  # one-hot or probabilities: the class with the largest value
    elif y.ndim in (1, 2):
        ids = np.round(y.reshape(len(y))).astype(np.int64)  # ids, or 0/1 labels of a sigmoid output
    else:
        raise NotImplementedError(f"{what} with targets of shape {y.shape} (a class per time step) is not "
                                  f"supported by tinygpt.keras, nor by Keras 3; pass sample_weight of "
                                  f"shape {y.shape[:2]} instead")
    for key in class_weight:
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
            raise ValueError(f"{what} keys must be class ids (ints >= 0), got {key!r}")
    table = np.ones(max(int(ids.max(initial=0)), max(class_weight, default=0)) + 1, dtype=np.float32)
    for key, weight in class_weight.items():
        table[int(key)] = float(weight)
    return table[ids]


def resolve(sample_weight, class_weight, y, n, what):
    """The weights one batch or one array of samples gets: from sample_weight, from class_weight, or None."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError(f"{what}: sample_weight and class_weight cannot both be given (Keras refuses "
                         f"too); multiply the class weights into sample_weight yourself")
    if class_weight is not None:
        if isinstance(y, list):
            raise NotImplementedError(f"{what}: class_weight for a model with several outputs is not "
                                      f"supported by tinygpt.keras; pass sample_weight instead")
        return class_weights(y, class_weight)
    return check_sample_weight(sample_weight, n, f"{what}'s sample_weight")


def weighted_sum_and_count(values, weights):
    """Metric values (B, ...) and weights (B,) or (B, T) -> (sum of value * weight, sum of weight),
    the weight broadcast over each sample's values, as Keras' Mean(sample_weight=...) counts them."""
    values = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2 and w.shape[1] == 1 and values.ndim == 1:
        w = w[:, 0]
    w = np.broadcast_to(w.reshape(w.shape + (1,) * (values.ndim - w.ndim)), values.shape)
    return float(np.sum(values * w)), float(np.sum(w))
