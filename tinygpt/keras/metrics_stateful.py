"""Keras' metric classes: objects that accumulate over an epoch's batches and report one number,
for metrics that are not a mean of per-prediction values (Precision = TP / (TP + FP) over the
whole epoch, not the mean of the batches' precisions). The training loop resets them when an epoch
(or an evaluate) starts, calls update_state(y_true, y_pred) after every batch and result() for
the logs. The mean-based ones (SparseCategoricalAccuracy, TopKCategoricalAccuracy) are here too
so that compile(metrics=[...]) takes Keras' class names.
Not here: sample_weight, Precision/Recall top_k and class_id, the PR curve's interpolated AUC.
"""

import numpy as np

EPSILON = 1e-7  # Keras' backend epsilon: AUC's outer thresholds sit this far outside [0, 1]


def _divide_no_nan(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))


class Metric:
    """update_state(y_true, y_pred) per batch; result() -> float; reset_state() per epoch."""

    def __init__(self, name):
        self.name = name
        self.reset_state()

    def reset_state(self):
        raise NotImplementedError

    def update_state(self, y_true, y_pred):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class _MeanOf(Metric):
    """The mean of a per-prediction function over every prediction seen since the reset."""

    def reset_state(self):
        self.total, self.count = 0.0, 0

    def update_state(self, y_true, y_pred):
        values = self.values(np.asarray(y_true), np.asarray(y_pred))
        self.total += float(np.sum(values))
        self.count += int(np.size(values))

    def result(self):
        return self.total / self.count if self.count else 0.0


class SparseCategoricalAccuracy(_MeanOf):
    """y_true class ids (...) (or (..., 1)), y_pred scores (..., K): is the argmax the label?"""

    def __init__(self, name="sparse_categorical_accuracy"):
        super().__init__(name)

    def values(self, y_true, y_pred):
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
            y_true = y_true[..., 0]
        return (y_true == np.argmax(y_pred, axis=-1)).astype(np.float32)


class TopKCategoricalAccuracy(_MeanOf):
    """y_true one-hot (..., K): is the true class among the k highest scores? Ties at the k-th
    score count as in (TensorFlow's in_top_k): the true class is in when fewer than k scores are
    strictly greater than its own."""

    def __init__(self, k=5, name="top_k_categorical_accuracy"):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"TopKCategoricalAccuracy: k must be an int >= 1, got {k!r}")
        self.k = int(k)
        super().__init__(name)

    def values(self, y_true, y_pred):
        label = np.argmax(y_true, axis=-1)
        own = np.take_along_axis(y_pred, label[..., None], axis=-1)  # (..., 1)
        return (np.sum(y_pred > own, axis=-1) < self.k).astype(np.float32)


class _Confusion(Metric):
    """Counts of true/false positives/negatives over every element seen, at each threshold:
    an element is predicted positive when y_pred > threshold, actually positive when y_true != 0."""

    def __init__(self, thresholds, name):
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        super().__init__(name)

    def reset_state(self):
        n = len(self.thresholds)
        self.tp, self.fp, self.tn, self.fn = (np.zeros(n) for _ in range(4))

    def update_state(self, y_true, y_pred):
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred, dtype=np.float64)
        if y_true.shape != y_pred.shape and y_true.shape + (1,) == y_pred.shape:
            y_true = y_true[..., None]  # labels (N,) against an output (N, 1)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"{type(self).__name__}: y_true has shape {y_true.shape} and y_pred "
                             f"{y_pred.shape}; they must be equal (one 0/1 label per output)")
        positive = (y_true != 0).reshape(-1)
        predicted = y_pred.reshape(1, -1) > self.thresholds[:, None]  # (thresholds, elements)
        self.tp += np.sum(predicted & positive, axis=1)
        self.fp += np.sum(predicted & ~positive, axis=1)
        self.fn += np.sum(~predicted & positive, axis=1)
        self.tn += np.sum(~predicted & ~positive, axis=1)


def _one_threshold(cls, thresholds, top_k, class_id):
    if top_k is not None or class_id is not None:
        raise NotImplementedError(f"{cls}(top_k=..., class_id=...) is not supported by tinygpt.keras")
    if thresholds is None:
        return [0.5]
    if not isinstance(thresholds, (int, float)):
        raise NotImplementedError(f"{cls}(thresholds={thresholds!r}): tinygpt.keras takes one float "
                                  f"threshold (a list gives Keras one result per threshold)")
    return [float(thresholds)]


class Precision(Metric):
    """TP / (TP + FP): of the predictions above the threshold (0.5), the share that are positive."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="precision"):
        self.counts = _Confusion(_one_threshold("Precision", thresholds, top_k, class_id), name)
        super().__init__(name)

    def reset_state(self):
        self.counts.reset_state()

    def update_state(self, y_true, y_pred):
        self.counts.update_state(y_true, y_pred)

    def result(self):
        return float(_divide_no_nan(self.counts.tp, self.counts.tp + self.counts.fp)[0])


class Recall(Precision):
    """TP / (TP + FN): of the positives, the share predicted above the threshold (0.5)."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="recall"):
        self.counts = _Confusion(_one_threshold("Recall", thresholds, top_k, class_id), name)
        Metric.__init__(self, name)

    def result(self):
        return float(_divide_no_nan(self.counts.tp, self.counts.tp + self.counts.fn)[0])


class AUC(_Confusion):
    """Area under the ROC curve (or PR curve), as Keras computes it: confusion counts at
    num_thresholds thresholds evenly spaced in [0, 1] (the outer two just outside it), then a
    Riemann sum over them, with 'interpolation' the trapezoid rule."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name="auc",
                 thresholds=None, from_logits=False):
        curve, summation_method = curve.upper(), summation_method.lower()
        if curve not in ("ROC", "PR"):
            raise ValueError(f"AUC: curve must be 'ROC' or 'PR', got {curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"AUC: summation_method must be 'interpolation', 'minoring' or "
                             f"'majoring', got {summation_method!r}")
        if curve == "PR" and summation_method == "interpolation":
            raise NotImplementedError("AUC(curve='PR', summation_method='interpolation') (Davis & "
                                      "Goadrich's interpolation) is not in tinygpt.keras; use "
                                      "'minoring' or 'majoring'")
        if thresholds is None:
            if num_thresholds < 2:
                raise ValueError(f"AUC: num_thresholds must be > 1, got {num_thresholds}")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        else:
            inner = sorted(float(t) for t in thresholds)
        self.curve, self.summation_method, self.from_logits = curve, summation_method, from_logits
        super().__init__([0.0 - EPSILON] + inner + [1.0 + EPSILON], name)
        self.num_thresholds = len(self.thresholds)

    def update_state(self, y_true, y_pred):
        y_pred = np.asarray(y_pred, dtype=np.float64)
        super().update_state(y_true, 1.0 / (1.0 + np.exp(-y_pred)) if self.from_logits else y_pred)

    def result(self):
        recall = _divide_no_nan(self.tp, self.tp + self.fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(self.fp, self.fp + self.tn), recall  # false-positive rate, TPR
        else:
            x, y = recall, _divide_no_nan(self.tp, self.tp + self.fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))  # thresholds rise, so x falls


__all__ = ["Metric", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "Precision", "Recall", "AUC"]
