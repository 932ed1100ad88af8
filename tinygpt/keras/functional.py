"""keras.Model: the functional API (Model(inputs, outputs) over any DAG of layer calls) and
subclassed models (a class with its layers as attributes and a `call(x)` method).

Functional: every layer call on symbolic tensors (symbolic.py) recorded a Node; the Model walks back
from its outputs to its inputs (iteratively, no recursion) and keeps the nodes in an order where each
comes after the nodes that feed it. forward() replays that order on real Tensors. A layer called
twice (shared) appears once in model.layers and has one set of weights. A Model is a Layer, so it can
be called on symbolic tensors inside another Model. compile/fit/evaluate/predict are the Trainer's.
Masks travel with the Tensors (masking.py), so a masked output's loss averages over its real steps.
Not here: dict outputs, metrics on models with several outputs, Sequential as a layer.
"""

import inspect

import numpy as np

from tinygpt import nn
from tinygpt.keras import losses as losses_module
from tinygpt.keras import masking, printer
from tinygpt.keras.layers import Dense, Layer
from tinygpt.keras.models import ModelWeights, summary_table
from tinygpt.keras.symbolic import KerasTensor, call_symbolic, flatten, is_symbolic
from tinygpt.keras.training import Trainer
from tinygpt.keras.utils import next_seed
from tinygpt.tensor import Tensor, no_grad


def _topological_nodes(outputs):
    """The Nodes that lead to `outputs`, each after every node that feeds it (iterative DFS)."""
    order, done, stack = [], set(), [(t.node, False) for t in reversed(outputs) if t.node is not None]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        stack.extend((t.node, False) for t in reversed(node.flat_inputs)
                     if t.node is not None and id(t.node) not in done)
    return order


class Model(Trainer, ModelWeights, Layer):
    """Model(inputs=Input(...), outputs=...) or a subclass defining call(self, x[, training])."""

    default_name = "functional"

    def __init__(self, inputs=None, outputs=None, name=None, seed=None, **kwargs):
        if kwargs:
            raise TypeError(f"keras.Model: unsupported arguments {sorted(kwargs)}; tinygpt.keras's "
                            f"Model takes inputs, outputs, name")
        Layer.__init__(self, name=name)
        self.seed_sequence = np.random.SeedSequence(seed if seed is not None else next_seed())
        self.shuffle_rng = np.random.default_rng(np.random.SeedSequence(self.seed_sequence.entropy, spawn_key=(0,)))
        self.functional = inputs is not None
        if not self.functional:  # subclassed: built by the first call, from call()'s own layers
            if outputs is not None:
                raise ValueError("keras.Model(outputs=...) needs inputs=... too")
            self.name = name or type(self).__name__.lower()
            return
        self.input_structure, self.output_structure = inputs, outputs
        if isinstance(outputs, dict):
            raise NotImplementedError("keras.Model(outputs={...}): dict outputs are not supported by "
                                      "tinygpt.keras; pass a list of outputs")
        self.inputs, self.outputs = flatten(inputs), flatten(outputs)
        for t in self.inputs + self.outputs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"keras.Model: inputs and outputs must be symbolic tensors from "
                                f"keras.Input(...) and layer calls on them, got {type(t).__name__}")
        self.nodes = _topological_nodes(self.outputs)
        known = {id(t) for t in self.inputs}
        for node in self.nodes:
            for t in node.flat_inputs:
                if t.node is None and id(t) not in known:
                    raise ValueError(f"keras.Model: the graph is disconnected: layer {node.layer.name!r} "
                                     f"reads input {t.name!r}, which is not among the Model's inputs "
                                     f"{[i.name for i in self.inputs]}")
        layers, seen = [], set()
        for node in self.nodes:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                layers.append(node.layer)
        taken = set()
        for layer in layers:  # Keras' naming: dense, dense_1, ... (a name given by the user is kept)
            k = 0
            while layer.name in taken and layer.auto_named:
                k += 1
                layer.name = f"{layer.default_name}_{k}"
            if layer.name in taken:
                raise ValueError(f"layer name {layer.name!r} is used twice in {self.name!r}; names must be unique")
            taken.add(layer.name)
        self.layers = nn.ModuleList(layers)
        self.input_shape = [t.shape for t in self.inputs] if len(self.inputs) > 1 else self.inputs[0].shape
        self.built = True

    def __setattr__(self, name, value):
        # Keras tracks layers kept in a list attribute (self.blocks = [Dense(8), Dense(8)]); a plain
        # list would hide their weights from parameters(), so fit would silently never train them
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, Layer) for v in value):
            value = nn.ModuleList(list(value))
        super().__setattr__(name, value)

    # ----- as a layer ---------------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        shapes = [t.shape for t in self.outputs]
        return shapes if len(shapes) > 1 else shapes[0]

    def check_input_shape(self, input_shape):
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        if self.functional and len(shapes) != len(self.inputs):
            raise ValueError(f"Model {self.name!r} takes {len(self.inputs)} inputs, got {len(shapes)}")

    def named_weights(self):
        return [(f"{layer.name}/{n}", p) for layer in self.layers for n, p in layer.named_weights()]

    @property
    def output_shape(self):
        self._require_built("output_shape")
        return self.compute_output_shape(None)

    @property
    def output_names(self):
        return [t.node.layer.name if t.node else t.name for t in self.outputs]

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"{what}: the subclassed model {self.name!r} is built by its first call; "
                             f"call fit/predict (or the model) on a batch of data first")

    # ----- running it ---------------------------------------------------------------------------
    def prepare_x(self, x, what="x"):
        """x: an array, a list in inputs' order or a dict by input name -> a list of arrays
        (integers stay integers, for an Embedding; other numbers become float32)."""
        if x is None:
            raise ValueError(f"{what} is missing")
        if self.functional:
            if isinstance(x, dict):
                names = [t.name for t in self.inputs]
                missing = [n for n in names if n not in x]
                if missing:
                    raise ValueError(f"{what} is a dict without the inputs {missing}; its keys are "
                                     f"{sorted(x)}, the model's inputs are {names}")
                x = [x[n] for n in names]
            elif not isinstance(x, (list, tuple)) or all(isinstance(s, str) for s in x):
                x = [x]  # one array, or one list of texts for a string Input
            if len(x) != len(self.inputs):
                raise ValueError(f"{what} holds {len(x)} arrays, but {self.name!r} has "
                                 f"{len(self.inputs)} inputs {[t.name for t in self.inputs]}")
        else:
            x = list(x) if isinstance(x, (list, tuple)) else [x]
        arrays = []
        for i, a in enumerate(x):
            a = np.asarray(a.data if isinstance(a, Tensor) else a)
            if a.dtype.kind in "bf":
                a = a.astype(np.float32, copy=False)
            elif a.dtype.kind in "OUS" and self.functional and self.inputs[i].dtype.kind == "O":
                a = a.astype(object, copy=False)  # Input(dtype="string"): a TextVectorization's texts
                a = a[:, None] if a.ndim == 1 and len(self.inputs[i].shape) == 2 else a  # (B,) texts -> (B, 1)
            elif a.dtype.kind not in "iu":
                raise TypeError(f"{what}[{i}] must hold numbers, got dtype {a.dtype}")
            if a.ndim == 0 or len(a) == 0 or len(a) != len(x[0]):
                raise ValueError(f"{what}[{i}] has shape {a.shape}; every input needs the same "
                                 f"number (>= 1) of samples, the first has {len(x[0])}")
            if self.functional and a.ndim != len(self.inputs[i].shape):
                raise ValueError(f"{what}[{i}] has shape {a.shape}, but input {self.inputs[i].name!r} "
                                 f"has shape {self.inputs[i].shape}")
            arrays.append(a)
        if not self.built:
            self._build_subclassed(arrays)
        return arrays

    def _build_subclassed(self, arrays):
        with no_grad():
            out = self._call(arrays[:1] and [a[:1] for a in arrays], training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        self.outputs = [KerasTensor((None,) + tuple(o.shape[1:])) for o in outs]
        self.input_shape = (None,) + arrays[0].shape[1:]
        self.input_specs = [(list(a.shape[1:]), a.dtype.str) for a in arrays]  # what model.save rebuilds it from
        self.layers = nn.ModuleList(_top_layers(self))
        self.built = True

    def _call(self, arrays, training):
        """A subclass's call(x[, training]) on one array (or a list for several inputs)."""
        x = arrays[0] if len(arrays) == 1 else arrays
        if "training" in inspect.signature(self.call).parameters:
            return self.call(x, training=training)
        return self.call(x)

    def call(self, x, training=False):
        raise NotImplementedError(f"{type(self).__name__}: a subclassed keras.Model must define "
                                  f"call(self, x, training=False), or be made as Model(inputs, outputs)")

    def forward(self, x, training=False, layers=None, logits_node=None):
        """x: a list of arrays or Tensors, one per input -> a Tensor (a list for several outputs).
        logits_node: a Dense output node to stop before its activation (the fused loss reads it)."""
        if not self.functional:
            return self._call(list(x), training)
        values = {id(t): a for t, a in zip(self.inputs, x)}
        for node in self.nodes:
            args = _fill(node.inputs, values)
            if node is logits_node:
                node.layer.train(training)
                self._head_mask = masking.get_mask(args)  # the output's mask (Dense passes masks on)
                out = node.layer.pre_activation(args)
            else:
                out = node.layer(args, training=training, **node.kwargs)
            for t, o in zip(node.outputs, out if len(node.outputs) > 1 else [out]):
                values[id(t)] = o
        outs = [values[id(t)] for t in self.outputs]
        return outs if len(outs) > 1 else outs[0]

    def __call__(self, x, training=False, **kwargs):
        if kwargs:
            raise NotImplementedError(f"Model {self.name!r}: the call arguments {sorted(kwargs)} are not "
                                      f"supported by tinygpt.keras; a model takes (x, training=False)")
        if is_symbolic(x):
            if not self.built:
                raise NotImplementedError("calling an unbuilt subclassed keras.Model on keras.Input "
                                          "tensors is not supported by tinygpt.keras; call it on data first")
            return call_symbolic(self, x, kwargs)
        if any(isinstance(t, Tensor) for t in flatten(x)):  # inside another model: keep the graph
            self.train(training)
            return self.forward(x if isinstance(x, (list, tuple)) else [x], training=training)
        self.train(training)
        return self.forward(self.prepare_x(x), training=training)

    # ----- training with several outputs ---------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None):
        """As Sequential's; with several outputs, loss may be one loss for all, a list or a dict by
        output layer name, and the total loss is their sum, each times its loss_weights entry (1)."""
        n = len(self.outputs) if self.built else 1
        if isinstance(loss_weights, dict):
            loss_weights = [float(loss_weights.get(name, 1.0)) for name in self.output_names]
        self.loss_weights = [1.0] * n if loss_weights is None else [float(w) for w in loss_weights]
        if len(self.loss_weights) != n:
            raise ValueError(f"compile: got {len(self.loss_weights)} loss_weights for {n} outputs")
        if isinstance(loss, dict):
            unknown = sorted(set(loss) - set(self.output_names))
            if unknown:
                raise ValueError(f"compile(loss={{...}}): keys {unknown} are not output names {self.output_names}")
            loss = [loss.get(name) for name in self.output_names]
        losses = list(loss) if isinstance(loss, (list, tuple)) else [loss] * n
        if len(losses) != n:
            raise ValueError(f"compile: got {len(losses)} losses for a model with {n} outputs")
        if n > 1 and (metrics or weighted_metrics):
            raise NotImplementedError("compile(metrics=...) on a keras.Model with several outputs is not "
                                      "supported by tinygpt.keras; evaluate each output's metric from predict()")
        super().compile(optimizer, losses[0], metrics, weighted_metrics)
        self.output_losses = [losses_module.get(one) for one in losses]

    def _prepare_targets(self, y, n_samples, y_name):
        if len(self.outputs) == 1:
            y = [y]
        elif isinstance(y, dict):
            y = [y[name] for name in self.output_names]
        if not isinstance(y, (list, tuple)) or len(y) != len(self.outputs):
            raise ValueError(f"{y_name}: a model with {len(self.outputs)} outputs needs a list (or a dict "
                             f"by output name {self.output_names}) of that many target arrays")
        prepared = []
        for i, (yi, loss, t) in enumerate(zip(y, self.output_losses, self.outputs)):
            yi, what = np.asarray(yi), y_name if len(y) == 1 else f"{y_name}[{i}]"
            if yi.ndim == 0 or len(yi) != n_samples:
                raise ValueError(f"x has {n_samples} samples but {what} has shape {yi.shape}; "
                                 f"they must be equal")
            prepared.append(loss.prepare_targets(yi, t.shape, f"{t.shape} from {self._output_source(i)}", what))
        return prepared if len(prepared) > 1 else prepared[0]

    def _output_source(self, i):
        t = self.outputs[i]
        return f"{type(t.node.layer).__name__} {t.node.layer.name!r}" if t.node else f"input {t.name!r}"

    def _loss_and_predictions(self, x, y, training, sample_weight=None):
        head = self._fused_head()
        if head is not None:  # as Sequential: the loss reads the Dense layer's logits (no log(0))
            logits = self.forward(x, training=training, logits_node=head)
            predictions = head.layer.activation(Tensor(logits.data)).data  # a constant for the metrics
            y, logits, predictions, sample_weight = masking.select_unmasked(
                self._head_mask, y, logits, predictions, sample_weight)
            return self.output_losses[0].weighted(y, logits, True, sample_weight), predictions, y, sample_weight
        if not self.functional or len(self.outputs) == 1:
            out = self.forward(x, training=training)
            y, out, predictions, sample_weight = masking.select_unmasked(
                masking.get_mask(out), y, out, out.data, sample_weight)
            return self.output_losses[0](y, out, sample_weight), predictions, y, sample_weight
        outs = self.forward(x, training=training)
        total = None
        for loss, weight, yi, out in zip(self.output_losses, self.loss_weights, y, outs):
            term = loss(yi, out, sample_weight) * weight  # one sample_weight weighs every output, as Keras
            total = term if total is None else total + term
        return total, [out.data for out in outs], y, sample_weight

    def _fused_head(self):
        """The output's node if it is a Dense whose activation the (single) loss can fuse with."""
        if not self.functional or len(self.outputs) != 1 or self.outputs[0].node is None:
            return None
        node, loss = self.outputs[0].node, self.output_losses[0]
        if (isinstance(node.layer, Dense) and not loss.from_logits and not node.kwargs
                and node.layer.activity_regularizer is None  # it reads the output the fused path skips
                and node.layer.activation_name == loss.logits_activation):
            return node
        return None

    # ----- weights and printing (get/save/load_weights: ModelWeights; trainable_weights: Layer) --
    def set_weights(self, weights):
        self._require_built("set_weights")
        Layer.set_weights(self, weights)

    def count_params(self):
        self._require_built("count_params")
        return sum(p.size for p in self.parameters())

    def summary(self, print_fn=None):
        """Keras' table with a "Connected to" column; columns widen to fit long names."""
        self._require_built("summary")
        if not self.functional:
            rows = [(f"{layer.name} ({type(layer).__name__})", "?", f"{layer.count_params():,}")
                    for layer in self.layers]
            printer.summary(summary_table(self, rows), print_fn)
            return
        rows = [(f"{t.name} (InputLayer)", str(t.shape), "0", "-") for t in self.inputs]
        for node in self.nodes:
            sources = ", ".join(t.node.layer.name if t.node else t.name for t in node.flat_inputs)
            shapes = [t.shape for t in node.outputs]
            rows.append((f"{node.layer.name} ({type(node.layer).__name__})",
                         str(shapes[0] if len(shapes) == 1 else shapes), f"{node.layer.count_params():,}", sources))
        (print_fn or print)(summary_table(self, rows, ("Layer (type)", "Output Shape", "Param #", "Connected to")))


def _get_layer(model, name, index):
    if index is not None:
        if not -len(model.layers) <= index < len(model.layers):
            raise ValueError(f"get_layer(index={index}): {model.name!r} has {len(model.layers)} layers")
        return model.layers[index]
    for layer in model.layers:
        if layer.name == name:
            return layer
    raise ValueError(f"get_layer: no layer named {name!r} in {model.name!r}; its layers are "
                     f"{[layer.name for layer in model.layers]}")


def _top_layers(model):
    """The Layers a subclassed model holds, in attribute order, looking inside lists (ModuleList)
    but not inside other Layers (their sublayers belong to them)."""
    found, stack = [], list(reversed(list(model._modules.values())))
    while stack:
        module = stack.pop()
        if isinstance(module, Layer):
            found.append(module)
        else:
            stack.extend(reversed(list(module._modules.values())))
    return found


def _fill(structure, values):
    """The node's input structure with each KerasTensor replaced by its computed Tensor."""
    if isinstance(structure, dict):
        return {k: _fill(v, values) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [_fill(v, values) for v in structure]
    return values[id(structure)]


__all__ = ["Model"]
