"""compile, fit, evaluate, predict: Keras' training loop, as a Trainer class mixed into Sequential
(Keras 3 is organised the same way: keras/src/trainers/trainer.py).

fit is, per epoch: shuffle, then per batch: forward, loss, backward, optimizer step, with the
callbacks around; then evaluate the validation data. The loss and metrics it reports are running
means over the epoch's batches weighted by their size, as Keras reports them. Under mpiexec fit is
data-parallel (distribution.py): each rank takes its shard of every batch, gradients are averaged.
The loss includes the
layers' regularization penalties (regularizers.py) and honours sample_weight / class_weight
(sample_weights.py), which weighted_metrics honour too.
Not here: the layers and the forward pass (layers.py, models.py), losses and metrics themselves.
"""

import math

import numpy as np

from tinygpt.keras import losses as losses_module
from tinygpt.keras import masking
from tinygpt.keras import metrics as metrics_module
from tinygpt.keras import optimizers, printer, regularizers
from tinygpt.keras import sample_weights as weights_module
from tinygpt.keras.distribution import data_parallel_world
from tinygpt.keras.batches import BatchStream, is_batch_stream, split_batch
from tinygpt.keras.callbacks import CallbackList, History, ProgbarLogger
from tinygpt.keras.layers import Dense, split_weights
from tinygpt.tensor import Tensor, no_grad


def n_samples(x):
    """The batch size of x: an array, or a list of arrays (one per input of a functional Model)."""
    return len(x[0]) if isinstance(x, list) else len(x)


def take(x, index):
    """x[index] for an array, or for each array of a list (several inputs or several targets)."""
    return [a[index] for a in x] if isinstance(x, list) else x[index]


class _RunningMeans:
    """Epoch totals: the loss weighted by batch size, each metric over all its values. Metric
    objects (Precision, AUC, ...) keep their own totals: reset here, updated by _metric_values."""

    def __init__(self, compiled_metrics, weighted_metrics=()):
        compiled_metrics = list(compiled_metrics) + list(weighted_metrics)
        self.stateful = {name: m for name, m in compiled_metrics if isinstance(m, metrics_module.Metric)}
        for metric in self.stateful.values():
            metric.reset_state()
        self.totals = {name: 0.0 for name in ["loss"] + [name for name, _ in compiled_metrics]}
        self.counts = dict.fromkeys(self.totals, 0)

    def add(self, batch_size, loss, metric_values):
        self.totals["loss"] += loss * batch_size
        self.counts["loss"] += batch_size
        for name, values in metric_values.items():
            if isinstance(values, tuple):  # a weighted metric: (values, sample weights)
                total, count = weights_module.weighted_sum_and_count(*values)
                self.totals[name] += total
                self.counts[name] += count
            else:
                self.totals[name] += float(np.sum(values))
                self.counts[name] += np.size(values)

    def result(self):
        means = {name: self.totals[name] / max(self.counts[name], 1) for name in self.totals}
        means.update({name: float(metric.result()) for name, metric in self.stateful.items()})
        return means


def _check_batch_size(batch_size):
    if batch_size is None:
        return 32  # Keras' default
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1 (or None for 32), got {batch_size!r}")
    return int(batch_size)


def _verbosity(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0 (silent), 1 (progress bar), 2 (one line per epoch) "
                         f"or 'auto', got {verbose!r}")
    return verbose


class Trainer:
    """Needs from the model: layers, built, forward(x, training), prepare_x(x, what),
    output_shape, parameters()."""

    compiled = False

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, weighted_metrics=None):
        """Choose the optimizer, loss and metrics (names as in Keras, or objects); weighted_metrics
        are averaged with fit's sample_weight / class_weight as weights, metrics without them."""
        for what, value in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if value is not None and (isinstance(value, str) or not hasattr(value, "__iter__")):
                raise TypeError(f"{what} must be a list such as ['accuracy'], got {value!r}")
        self.optimizer = optimizers.get(optimizer)
        self.optimizer.engine = None  # bound to this model's parameters (fresh state) on first use
        self.loss = losses_module.get(loss)
        self.compiled_metrics = [metrics_module.get(m) for m in metrics or []]
        self.weighted_metrics = []
        taken = {name for name, _ in self.compiled_metrics}
        for m in weighted_metrics or []:
            name, fn = metrics_module.get(m)
            if isinstance(fn, metrics_module.Metric):
                raise NotImplementedError(f"weighted_metrics=[{type(fn).__name__}()]: metric objects do not "
                                          f"take sample weights in tinygpt.keras; use a name such as 'accuracy'")
            self.weighted_metrics.append((f"weighted_{name}" if name in taken else name, fn))
        self.compiled = True

    @property
    def metrics_names(self):
        return ["loss"] + [name for name, _ in self.compiled_metrics + self.weighted_metrics]

    def _require_compiled(self, method):
        if not self.compiled:
            raise RuntimeError(f"{method}() needs a compiled model: call model.compile(optimizer="
                               f"'adam', loss='categorical_crossentropy', metrics=['accuracy']) first")

    def _prepare_xy(self, x, y, x_name, y_name):
        """Check x (building the model if needed) and y against the loss; bind the optimizer."""
        x = self.prepare_x(x, x_name)
        if y is None:
            raise ValueError(f"{y_name} is missing: training and evaluation need targets")
        y = self._prepare_targets(y, n_samples(x), y_name)
        if self.optimizer.engine is None:
            self.optimizer.build(self.parameters())
        return x, y

    def _prepare_targets(self, y, n, y_name):
        """y -> the array the loss reads, checked against n samples and the model's output shape."""
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != n:
            raise ValueError(f"x has {n} samples but {y_name} has "
                             f"{len(y) if y.ndim else 'none (a scalar)'}; they must be equal")
        last = self.layers[-1]
        desc = f"{self.output_shape} from {type(last).__name__} {last.name!r}"
        return self.loss.prepare_targets(y, self.output_shape, desc, y_name)

    # ----- one batch ---------------------------------------------------------------------------
    def _fused_head(self):
        """The last layer if the loss can read its logits (softmax + crossentropy, sigmoid + binary)."""
        last = self.layers[-1]
        if (not self.loss.from_logits and isinstance(last, Dense) and last.activity_regularizer is None
                and last.activation_name == self.loss.logits_activation):
            return last
        return None

    def _loss_and_predictions(self, x, y, training, sample_weight=None):
        """-> (scalar loss Tensor, predictions as NumPy: the model's output after its last
        activation, y, sample_weight). With a mask on a (B, T, ...) output, only the real steps of
        predictions, y and the weights remain: the loss and metrics average over those, as Keras'."""
        head = self._fused_head()
        if head is None:
            out = self.forward(x, training=training)
            y, out, predictions, sample_weight = masking.select_unmasked(
                masking.get_mask(out), y, out, out.data, sample_weight)
            return self.loss(y, out, sample_weight), predictions, y, sample_weight
        # fused: the loss reads the pre-softmax logits, the metrics the probabilities
        features = self.forward(x, training=training, layers=list(self.layers)[:-1])
        logits = head.pre_activation(features)
        predictions = head.activation(Tensor(logits.data)).data  # a constant: outside the graph
        y, logits, predictions, sample_weight = masking.select_unmasked(
            masking.get_mask(features), y, logits, predictions, sample_weight)
        return self.loss.weighted(y, logits, True, sample_weight), predictions, y, sample_weight

    def _total_loss(self, x, y, training, sample_weight=None):
        """The loss fit minimises and reports: the loss plus every regularization penalty
        -> (that loss, predictions, y, sample_weight) as _loss_and_predictions gives them."""
        with regularizers.collecting() as activity:
            loss, predictions, y, sample_weight = self._loss_and_predictions(x, y, training, sample_weight)
        total = regularizers.add_penalties(loss, regularizers.weight_penalties(self) + activity)
        return total, predictions, y, sample_weight

    def _metric_values(self, y, predictions, sample_weight=None):
        """Per-prediction values of the function metrics ((values, weights) for weighted_metrics);
        Metric objects are updated in place."""
        values = {}
        for name, fn in self.compiled_metrics:
            if isinstance(fn, metrics_module.Metric):
                fn.update_state(y, predictions)
            else:
                values[name] = fn(y, predictions)
        for name, fn in getattr(self, "weighted_metrics", []):
            weights = np.ones(len(predictions), np.float32) if sample_weight is None else sample_weight
            values[name] = (fn(y, predictions), weights)
        return values

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None):
        """One optimizer step on (x, y) -> loss, or [loss, *metrics] with metrics (of this batch)."""
        self._require_compiled("train_on_batch")
        self._world = None  # one batch, on this rank alone (data-parallel training is fit's)
        x, y = self._prepare_xy(x, y, "x", "y")
        sw = weights_module.resolve(sample_weight, class_weight, y, n_samples(x), "train_on_batch")
        means = _RunningMeans(self.compiled_metrics, self.weighted_metrics)
        means.add(n_samples(x), *self._train_step(x, y, sw))
        logs = means.result()
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    def _train_step(self, x, y, sample_weight=None):
        """-> (the batch's loss as a float, {metric name: its values on this batch})"""
        if getattr(self, "_world", None) is not None:  # inside a data-parallel fit
            if self._data_parallel is None:  # the first batch: the parameters exist now
                self._start_data_parallel()
            return self._data_parallel_step(x, y, sample_weight)
        loss, predictions, y, sample_weight = self._total_loss(x, y, True, sample_weight)
        self.optimizer.zero_grad()
        loss.backward()
        for param in split_weights(self)[1]:  # trainable=False: no gradient, so the step skips it
            param.grad = None
        self.optimizer.step()
        return loss.item(), self._metric_values(y, predictions, sample_weight)

    def _data_parallel_step(self, x, y, sample_weight=None):
        """_train_step on this rank's shard of the batch: np.array_split's part `rank`, weighted by
        its share of the samples so that the summed gradients are the whole batch's mean. The
        shards' predictions are gathered, so the metrics see the whole batch, as in one process."""
        world, buckets = self._data_parallel
        n = n_samples(x)
        rows = np.array_split(np.arange(n), world.size)[world.rank]
        # a rank with no sample in a short last batch computes one with weight 0: same graph, no effect
        shard = rows if len(rows) else [0]
        shard_weight = None if sample_weight is None else sample_weight[shard]
        loss, predictions, y_kept, _ = self._total_loss(take(x, shard), take(y, shard), True, shard_weight)
        if isinstance(predictions, list):
            raise NotImplementedError("data-parallel fit of a model with several outputs is not supported")
        if np.shape(y_kept) != np.shape(take(y, shard)):  # a mask kept only the real steps of a (B, T, ...) output
            raise NotImplementedError("data-parallel fit of a model whose output carries a mask "
                                      "(Embedding(mask_zero=True) or Masking) is not supported")
        self.optimizer.zero_grad()
        buckets.backward(loss * (len(rows) / n), divide_by=1)
        for param in split_weights(self)[1]:
            param.grad = None
        self.optimizer.step()
        total = world.sum([loss.item() * len(rows)], "the batch's loss")[0] / n
        whole = world.allgatherv_(np.ascontiguousarray(predictions[:len(rows)]), n, "the batch's predictions")
        return float(total), self._metric_values(y, whole, sample_weight)

    def _start_data_parallel(self):
        """Rank 0's weights to every rank, and the buckets that average the gradients."""
        for p in self.parameters():
            self._world.broadcast_(p.data, "the initial weights")
        from tinygpt.distributed.buckets import GradBuckets
        self._data_parallel = (self._world, GradBuckets(self.parameters(), self._world))

    # ----- the loops ---------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, seed=None, steps_per_epoch=None, validation_steps=None):
        """Train for `epochs` passes over (x, y) -> a History whose .history maps each of loss,
        the metrics, and (with validation) val_loss, val_<metric> to its list of per-epoch values.

        validation_split takes the *last* fraction of x and y, before any shuffling (as Keras);
        validation_data=(x_val, y_val) wins over it. seed fixes the shuffling order.
        x may instead be a generator or iterable of (x, y) batches (batches.py), with steps_per_epoch
        batches an epoch; validation_data may be one too, read for validation_steps batches.
        sample_weight (one weight per sample) or class_weight ({class id: weight}) weight the loss
        and weighted_metrics; a generator may yield (x, y, sample_weight). shuffle (arrays only)
        reorders the samples every epoch."""
        self._require_compiled("fit")
        batch_size, verbose = _check_batch_size(batch_size), _verbosity(verbose)
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be an int >= 0 (0 trains nothing, as in Keras), got {value!r}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise (NotImplementedError if shuffle == "batch" else ValueError)(
                f"fit(shuffle={shuffle!r}): tinygpt.keras takes shuffle=True or False ('batch' is "
                f"TensorFlow's HDF5 mode, not supported)")
        stream = val_stream = x_val = y_val = sw = sw_val = None
        if is_batch_stream(x):
            if y is not None or validation_split or sample_weight is not None:
                raise ValueError("fit(x=<generator>): y, sample_weight and validation_split must be left "
                                 "out when x yields (x, y) or (x, y, sample_weight) batches; pass "
                                 "validation_data=(x_val, y_val) instead")
            stream = BatchStream(x, steps_per_epoch, "x")
        else:
            if steps_per_epoch is not None:
                raise NotImplementedError("fit(steps_per_epoch=...) with arrays is not supported by "
                                          "tinygpt.keras; it is for generators of (x, y) batches")
            x, y = self._prepare_xy(x, y, "x", "y")
            sw = weights_module.resolve(sample_weight, class_weight, y, n_samples(x), "fit")
        world = data_parallel_world()  # None in one process
        if world is not None and not world.is_root:
            verbose = 0  # rank 0 alone shows progress
        if is_batch_stream(validation_data):
            val_stream = BatchStream(validation_data, validation_steps, "validation_data")
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight)")
            x_val, y_val = self._prepare_xy(*validation_data[:2], "validation_data x", "validation_data y")
            if len(validation_data) == 3:  # class_weight is for training only, as in Keras
                sw_val = weights_module.check_sample_weight(validation_data[2], n_samples(x_val),
                                                            "validation_data's sample_weight")
        elif validation_split and stream is None:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split!r}")
            n = n_samples(x)
            split_at = int(math.floor(n * (1.0 - validation_split)))  # Keras' own rounding
            if split_at in (0, n):
                raise ValueError(f"validation_split={validation_split} of {n} samples leaves "
                                 f"{split_at} for training and {n - split_at} for validation; "
                                 f"both need at least one")
            head, tail = slice(None, split_at), slice(split_at, None)
            x, x_val, y, y_val = take(x, head), take(x, tail), take(y, head), take(y, tail)
            if sw is not None:  # the validation samples keep their weights, as Keras splits them
                sw, sw_val = sw[head], sw[tail]

        rng = self.shuffle_rng if seed is None else np.random.default_rng(seed)
        self._world, self._data_parallel = world, None  # set up by the first training batch
        n = None if stream else n_samples(x)
        steps = stream.steps_hint if stream else math.ceil(n / batch_size)
        self.history = History()
        callback_list = ([ProgbarLogger(verbose)] if verbose else []) + list(callbacks or []) + [self.history]
        callbacks = CallbackList(callback_list, model=self, params={
            "epochs": epochs, "steps": steps, "verbose": verbose, "batch_size": batch_size, "samples": n})
        self.stop_training, logs = False, {}
        self._initial_epoch = None
        callbacks.on_train_begin()
        if self._initial_epoch is not None:  # set by BackupAndRestore when it restored a backup
            initial_epoch = self._initial_epoch
        for epoch in range(initial_epoch, epochs):
            callbacks.on_epoch_begin(epoch)
            means = _RunningMeans(self.compiled_metrics, self.weighted_metrics)
            batches = self._train_batches(stream, x, y, sw, rng, shuffle, batch_size, class_weight)
            for step, (xb, yb, swb) in enumerate(batches):
                callbacks.on_train_batch_begin(step)
                means.add(n_samples(xb), *self._train_step(xb, yb, swb))
                callbacks.on_train_batch_end(step, means.result())
                if self.stop_training:  # TerminateOnNaN: stop mid-epoch, as Keras does
                    break
            logs = means.result()
            if x_val is not None or val_stream is not None:
                val_logs = (self._evaluate_batches(self._stream_batches(val_stream, "validation_data"))
                            if val_stream else self._evaluate_prepared(x_val, y_val, batch_size, sample_weight=sw_val))
                logs.update({f"val_{name}": value for name, value in val_logs.items()})
            callbacks.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callbacks.on_train_end(logs)
        self._world = self._data_parallel = None
        return self.history

    def _train_batches(self, stream, x, y, sw, rng, shuffle, batch_size, class_weight=None):
        """One epoch's (x, y, sample_weight) batches: from the generator, or (shuffled) slices of the arrays."""
        if stream is not None:
            yield from self._stream_batches(stream, "x", class_weight)
            return
        n = n_samples(x)
        order = rng.permutation(n) if shuffle else np.arange(n)
        if self._world is not None:  # rank 0's order on every rank: their shuffle_rng may differ
            order = self._world.broadcast_(order.astype(np.int64), "the shuffled order")
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            yield take(x, batch), take(y, batch), None if sw is None else sw[batch]

    def _stream_batches(self, stream, what, class_weight=None):
        for batch in stream.epoch():
            xb, yb, swb = split_batch(batch, what)
            xb, yb = self._prepare_xy(xb, yb, f"a batch's x from {what}", f"a batch's y from {what}")
            yield xb, yb, weights_module.resolve(swb, class_weight, yb, n_samples(xb), f"a batch from {what}")

    def evaluate(self, x=None, y=None, batch_size=None, verbose=0, sample_weight=None, steps=None,
                 return_dict=False):
        """-> the loss, or [loss, *metrics] with metrics (or a dict with return_dict), over (x, y),
        or over `steps` batches (default: all) of a generator of (x, y[, sample_weight]) given as x."""
        self._require_compiled("evaluate")
        batch_size, verbose = _check_batch_size(batch_size), _verbosity(verbose)
        if is_batch_stream(x):
            if y is not None or sample_weight is not None:
                raise ValueError("evaluate(x=<generator>): y and sample_weight must be left out when x "
                                 "yields (x, y) or (x, y, sample_weight) batches")
            logs = self._evaluate_batches(self._stream_batches(BatchStream(x, steps, "x"), "x"), verbose)
        else:
            x, y = self._prepare_xy(x, y, "x", "y")
            sw = weights_module.check_sample_weight(sample_weight, n_samples(x), "evaluate's sample_weight")
            logs = self._evaluate_prepared(x, y, batch_size, verbose, sw)
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    def _evaluate_prepared(self, x, y, batch_size, verbose=0, sample_weight=None):
        slices = (slice(start, start + batch_size) for start in range(0, n_samples(x), batch_size))
        return self._evaluate_batches(((take(x, s), take(y, s), None if sample_weight is None else sample_weight[s])
                                       for s in slices), verbose)

    def _evaluate_batches(self, batches, verbose=0):
        means = _RunningMeans(self.compiled_metrics, self.weighted_metrics)
        with no_grad():  # no graph: evaluation only reads the weights
            for xb, yb, swb in printer.batches(batches, verbose):
                loss, predictions, yb, swb = self._total_loss(xb, yb, False, swb)
                means.add(n_samples(xb), loss.item(), self._metric_values(yb, predictions, swb))
        return means.result()

    def predict(self, x, batch_size=None, verbose=0, steps=None):
        """x -> the model's outputs as one NumPy array (probabilities after a softmax layer).
        x may be a generator of batches (x, or (x, y) whose y is ignored), read for `steps` batches.
        An unbuilt model is built from x first, as in Keras (with untrained weights)."""
        batch_size, verbose = _check_batch_size(batch_size), _verbosity(verbose)
        if is_batch_stream(x):
            batches = (self.prepare_x(split_batch(b, "x", need_y=False)[0], "a batch from x")
                       for b in BatchStream(x, steps, "x").epoch())
        else:
            prepared = self.prepare_x(x, "x")
            batches = (take(prepared, slice(start, start + batch_size))
                       for start in range(0, n_samples(prepared), batch_size))
        outputs = []
        with no_grad():
            for xb in printer.batches(batches, verbose):
                out = self.forward(xb, training=False)
                outputs.append([o.data for o in out] if isinstance(out, list) else out.data)
        if isinstance(outputs[0], list):  # several outputs: one array each, as Keras returns
            return [np.concatenate(parts) for parts in zip(*outputs)]
        return np.concatenate(outputs)
