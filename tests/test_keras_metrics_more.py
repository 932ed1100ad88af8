"""keras.metrics classes against NumPy: SparseCategoricalAccuracy and TopKCategoricalAccuracy as
means, Precision and Recall as epoch-wide counts (not means of batch values), AUC against Keras'
200-threshold trapezoid written out and near the exact rank (Mann-Whitney) AUC; and all of them
in compile(metrics=[...]) through evaluate and fit's validation."""

import numpy as np
import pytest

import tinygpt.keras
from tinygpt.keras import metrics
from tinygpt.keras.layers import Dense, Input

rng = np.random.default_rng(0)


def keras_auc_by_hand(y, p, num_thresholds=200):
    """Keras' AUC: thresholds -1e-7, 1/199, ..., 198/199, 1 + 1e-7; ROC points; trapezoids."""
    ts = [-1e-7] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1 + 1e-7]
    tpr, fpr = [], []
    for t in ts:
        pred = p > t
        tp, fp = np.sum(pred & (y == 1)), np.sum(pred & (y == 0))
        fn, tn = np.sum(~pred & (y == 1)), np.sum(~pred & (y == 0))
        tpr.append(tp / (tp + fn) if tp + fn else 0.0)
        fpr.append(fp / (fp + tn) if fp + tn else 0.0)
    return sum((fpr[i] - fpr[i + 1]) * (tpr[i] + tpr[i + 1]) / 2 for i in range(len(ts) - 1))


def rank_auc(y, p):
    """P(score of a random positive > score of a random negative), ties counted half."""
    pos, neg = p[y == 1], p[y == 0]
    return (np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])) / (len(pos) * len(neg))


def test_auc_matches_keras_formula_and_the_rank_auc():
    y = (rng.random(300) < 0.4).astype(np.float32)
    p = np.clip(0.35 * y + 0.65 * rng.random(300), 0, 1)
    auc = metrics.AUC()
    for part in np.array_split(np.arange(300), 4):  # counts accumulate over batches
        auc.update_state(y[part], p[part])
    assert auc.result() == pytest.approx(keras_auc_by_hand(y, p), rel=1e-12)
    assert auc.result() == pytest.approx(rank_auc(y, p), abs=5e-3)
    auc.reset_state()
    auc.update_state(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert auc.result() == pytest.approx(1.0)


def test_auc_minoring_below_interpolation_below_majoring_and_bad_arguments():
    y = (rng.random(100) < 0.5).astype(float)
    p = np.clip(0.3 * y + 0.7 * rng.random(100), 0, 1)
    values = []
    for method in ("minoring", "interpolation", "majoring"):
        auc = metrics.AUC(num_thresholds=20, summation_method=method)
        auc.update_state(y, p)
        values.append(auc.result())
    assert values[0] < values[1] < values[2]
    with pytest.raises(ValueError, match="curve must be 'ROC' or 'PR', got 'XY'"):
        metrics.AUC(curve="xy")
    with pytest.raises(NotImplementedError, match="curve='PR'"):
        metrics.AUC(curve="PR")


def test_precision_recall_count_over_the_whole_epoch_not_batch_means():
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.4, 0.1, 0.3])
    precision, recall = metrics.Precision(), metrics.Recall()
    for part in (slice(0, 4), slice(4, 8)):
        precision.update_state(y[part], p[part])
        recall.update_state(y[part], p[part])
    pred = p > 0.5
    assert precision.result() == pytest.approx(np.sum(pred & (y == 1)) / np.sum(pred))  # 2/4
    assert recall.result() == pytest.approx(np.sum(pred & (y == 1)) / np.sum(y == 1))  # 2/4
    strict = metrics.Precision(thresholds=0.75)
    strict.update_state(y, p)
    assert strict.result() == pytest.approx(0.5)  # 0.9 (pos) and 0.8 (neg)
    empty = metrics.Precision()
    empty.update_state(np.array([1, 1]), np.array([0.1, 0.2]))
    assert empty.result() == 0.0  # no positive predictions: 0, as Keras' divide_no_nan


def test_top_k_and_sparse_categorical_accuracy_match_numpy():
    scores = rng.random((50, 7))
    ids = rng.integers(0, 7, 50)
    for k in (1, 3, 5):
        top = metrics.TopKCategoricalAccuracy(k=k)
        top.update_state(np.eye(7)[ids], scores)
        in_top = [i in np.argsort(-s)[:k] for i, s in zip(ids, scores)]
        assert top.result() == pytest.approx(np.mean(in_top))
    tie = metrics.TopKCategoricalAccuracy(k=1)
    tie.update_state(np.array([[0, 1, 0]]), np.array([[0.4, 0.4, 0.2]]))
    assert tie.result() == 1.0  # ties at the k-th score count as in, as tf.math.in_top_k
    sparse = metrics.SparseCategoricalAccuracy()
    sparse.update_state(ids[:25, None], scores[:25])
    sparse.update_state(ids[25:], scores[25:])
    assert sparse.result() == pytest.approx(np.mean(ids == scores.argmax(-1)))
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        metrics.TopKCategoricalAccuracy(k=0)


def test_metric_objects_in_compile_report_epoch_values():
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, :1] + 0.5 * rng.standard_normal((64, 1)) > 0).astype(np.float32)
    model = tinygpt.keras.Sequential([Input(shape=(4,)), Dense(1, activation="sigmoid")], seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[metrics.Precision(), metrics.Recall(), metrics.AUC(), "accuracy"])
    history = model.fit(x[:48], y[:48], epochs=3, batch_size=8, verbose=0, validation_data=(x[48:], y[48:]))
    assert {"precision", "recall", "auc", "val_precision", "val_recall", "val_auc"} <= set(history.history)
    p = model.predict(x[48:])[:, 0]
    yv = y[48:, 0]
    assert history.history["val_auc"][-1] == pytest.approx(keras_auc_by_hand(yv, p), rel=1e-6)
    logs = model.evaluate(x, y, batch_size=5, return_dict=True)
    pa, pred = model.predict(x)[:, 0], model.predict(x)[:, 0] > 0.5
    tp = np.sum(pred & (y[:, 0] == 1))
    assert logs["precision"] == pytest.approx(tp / max(np.sum(pred), 1))
    assert logs["recall"] == pytest.approx(tp / np.sum(y == 1))
    assert logs["auc"] == pytest.approx(keras_auc_by_hand(y[:, 0], pa), rel=1e-6)


def test_top_k_metric_in_compile_with_softmax():
    x = rng.standard_normal((40, 4)).astype(np.float32)
    ids = rng.integers(0, 6, 40)
    model = tinygpt.keras.Sequential([Input(shape=(4,)), Dense(6, activation="softmax")], seed=0)
    model.compile(optimizer="adam", loss="categorical_crossentropy",
                  metrics=[metrics.TopKCategoricalAccuracy(k=2)])
    logs = model.evaluate(x, np.eye(6)[ids], batch_size=7, return_dict=True)
    top2 = np.argsort(-model.predict(x), axis=-1)[:, :2]
    assert logs["top_k_categorical_accuracy"] == pytest.approx(np.mean([i in t for i, t in zip(ids, top2)]))


def test_metric_class_names_in_compile_make_a_fresh_object_each_time():
    x = rng.standard_normal((30, 4)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    made = []
    for _ in range(2):
        model = tinygpt.keras.Sequential([Input(shape=(4,)), Dense(1, activation="sigmoid")], seed=0)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["auc", "Precision", "recall"])
        logs = model.evaluate(x, y, return_dict=True)
        assert logs["auc"] == pytest.approx(keras_auc_by_hand(y[:, 0], model.predict(x)[:, 0]), rel=1e-6)
        assert set(logs) == {"loss", "auc", "precision", "recall"}
        made.append(model.compiled_metrics[0][1])
    assert made[0] is not made[1]
