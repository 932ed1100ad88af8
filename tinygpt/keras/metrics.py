"""Keras' metrics by name, on NumPy arrays: each returns one value per prediction, and the
training loop averages them over all the predictions of an epoch (as Keras' running means do).

'accuracy' (or 'acc') picks its kind from the shapes, as Keras does: a single output unit means
binary accuracy (threshold 0.5), class ids (y with one axis fewer than the output) mean sparse
categorical accuracy, otherwise categorical accuracy (argmax of y against argmax of the output).
Metric objects (Precision, Recall, AUC, SparseCategoricalAccuracy, TopKCategoricalAccuracy) live in
metrics_stateful.py and are re-exported here; get() passes them through.
Not here: metrics that need gradients (losses.py).
"""

import numpy as np

from tinygpt.keras.metrics_stateful import (AUC, Metric, Precision, Recall, SparseCategoricalAccuracy,
                                            TopKCategoricalAccuracy)


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    return (np.asarray(y_true) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    return ((y_pred > threshold) == (y_true > 0.5)).astype(np.float32)


def accuracy(y_true, y_pred):
    if y_pred.shape[-1] == 1:
        return binary_accuracy(y_true, y_pred)
    if np.ndim(y_true) < y_pred.ndim:
        return sparse_categorical_accuracy(y_true, y_pred)
    return categorical_accuracy(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    return np.square(y_pred - y_true)


def mean_absolute_error(y_true, y_pred):
    return np.abs(y_pred - y_true)


METRICS = {"accuracy": accuracy, "acc": accuracy, "categorical_accuracy": categorical_accuracy,
           "sparse_categorical_accuracy": sparse_categorical_accuracy,
           "binary_accuracy": binary_accuracy, "mse": mean_squared_error,
           "mean_squared_error": mean_squared_error, "mae": mean_absolute_error,
           "mean_absolute_error": mean_absolute_error}


# names that make a fresh Metric object per compile (Keras 3 also takes the class names)
METRIC_CLASSES = {"precision": Precision, "Precision": Precision, "recall": Recall, "Recall": Recall,
                  "auc": AUC, "AUC": AUC, "top_k_categorical_accuracy": TopKCategoricalAccuracy,
                  "TopKCategoricalAccuracy": TopKCategoricalAccuracy}


def get(identifier):
    """A name, a Metric object, or a function (y_true, y_pred) -> per-prediction values
    -> (history key, the function or the Metric)."""
    if isinstance(identifier, Metric):
        return identifier.name, identifier
    if isinstance(identifier, str) and identifier in METRIC_CLASSES:
        metric = METRIC_CLASSES[identifier]()
        return metric.name, metric
    if isinstance(identifier, str):
        if identifier not in METRICS:
            raise ValueError(f"unknown metric {identifier!r}; valid: {sorted(METRICS) + sorted(METRIC_CLASSES)}, "
                             f"a tinygpt.keras.metrics object such as AUC(), or a "
                             f"function (y_true, y_pred) -> array of NumPy values")
        return identifier, METRICS[identifier]
    if callable(identifier):
        return getattr(identifier, "__name__", "metric"), identifier
    raise TypeError(f"a metric must be a name (one of {sorted(METRICS)}) or a function, "
                    f"got {type(identifier).__name__}")


__all__ = ["Metric", "AUC", "Precision", "Recall", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
           "accuracy", "categorical_accuracy", "sparse_categorical_accuracy", "binary_accuracy",
           "mean_squared_error", "mean_absolute_error", "get"]
