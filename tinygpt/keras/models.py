"""Sequential: a stack of tinygpt.keras layers, each feeding the next, with Keras' model methods.

Building: the model is built (every layer's weights made) as soon as the input shape is known:
from Input(shape=...), a first layer's input_length / input_shape, model.build(shape), or else the
first batch given to fit, evaluate, predict or the model itself. Layer i draws its weights from
seed stream i of the model's seed, so Sequential(layers, seed=0) is the same model every time.
Training (compile, fit, evaluate, predict) is the Trainer in training.py.
Not here: the functional API and subclassed models (functional.py); a Sequential as a layer of one.
"""

import numpy as np

from tinygpt import nn
from tinygpt.keras import printer, saving
from tinygpt.keras.layers import Embedding, Layer, WeightLists, split_weights
from tinygpt.keras.symbolic import KerasTensor, is_symbolic
from tinygpt.keras.training import Trainer
from tinygpt.keras.utils import next_seed
from tinygpt.tensor import Tensor


class ModelWeights:
    """What Sequential and the functional Model do alike with `self.layers`: get_layer, and the
    model's weights as NumPy lists or files (saving.py)."""

    def get_layer(self, name=None, index=None):
        """A layer by its name (or position in model.layers), as Keras' get_layer."""
        return _get_layer(self, name, index)

    def get_weights(self):
        """Every layer's weights in order, as NumPy copies (Keras' names and layouts)."""
        self._require_built("get_weights")
        return [w for layer in self.layers for w in layer.get_weights()]

    def save_weights(self, filepath, overwrite=True):
        """Write filepath with its suffix swapped for .safetensors and .json ('m.weights.h5' ->
        m.weights.safetensors + m.weights.json; see saving.py). overwrite=False refuses existing files."""
        return saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        saving.load_weights(self, filepath)

    def save(self, filepath, overwrite=True, zipped=None):
        """The whole model (architecture, weights, compile arguments, optimizer state) as a .keras
        zip of JSON + safetensors (model_saving.py); keras.models.load_model reads it back. A
        subclassed model needs get_config()."""
        return saving.save_model(self, filepath, overwrite=overwrite, zipped=zipped)


class Sequential(Trainer, ModelWeights, WeightLists, nn.Module):
    """Sequential([Embedding(1000, 64), LSTM(128), Dense(1000, activation='softmax')])."""

    def __init__(self, layers=None, name=None, seed=None):
        super().__init__()
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"Sequential takes a list of layers, got {type(layers).__name__}")
        self.name = name or "sequential"
        self.layers = nn.ModuleList()  # children "0", "1", ...; each layer keeps its Keras name
        self.built, self.input_shape, self.declared_input_shape = False, None, None
        # every random choice of this model descends from one seed: layer i uses spawn_key (1, i)
        self.seed_sequence = np.random.SeedSequence(seed if seed is not None else next_seed())
        self.shuffle_rng = np.random.default_rng(self._child_seed(0))
        for layer in layers or []:
            self.add(layer)

    def _child_seed(self, *key):
        return np.random.SeedSequence(self.seed_sequence.entropy, spawn_key=key)

    # ----- structure ----------------------------------------------------------------------------
    def add(self, layer):
        """Append a layer (or, first, an Input); it is built at once if the model already is."""
        if isinstance(layer, KerasTensor):  # Input(shape=...) / InputLayer(...)
            if len(self.layers):
                raise ValueError("Input(...) must come first in a Sequential, before any layer")
            self.declared_input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential holds tinygpt.keras layers (Embedding, LSTM, Dense, Dropout, "
                            f"Input), got {type(layer).__name__}")
        if getattr(layer, "return_state", False):
            raise ValueError(f"LSTM {layer.name!r} has return_state=True, so it returns [output, h, c]; "
                             f"a layer of a Sequential must return one tensor. Call such a layer "
                             f"directly instead: output, h, c = layer(x)")
        taken = {other.name for other in self.layers}
        if layer.name in taken and not layer.auto_named:
            raise ValueError(f"layer name {layer.name!r} is used twice in {self.name!r}; names must be unique")
        k = 0
        while layer.name in taken:  # like Keras: lstm, lstm_1, lstm_2, ...
            k += 1
            layer.name = f"{layer.default_name}_{k}"
        if self.built:  # the model has weights already: make this layer's now, for the current output
            shape = self._shapes()[-1]
            if layer.built:
                layer.check_input_shape(shape)
            else:
                layer.build(shape, rng=np.random.default_rng(self._child_seed(1, len(self.layers))))
            self.layers.append(layer)
            return
        self.layers.append(layer)
        declared = self.declared_input_shape or layer.declared_input_shape
        if len(self.layers) == 1 and declared:
            self.build(declared)

    def build(self, input_shape):
        """input_shape (None, ...), the batch as None -> make every layer's weights."""
        if not len(self.layers):
            raise ValueError(f"{self.name!r} has no layers to build; add some first")
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
        shape = input_shape
        for i, layer in enumerate(self.layers):
            if not layer.built:
                layer.build(shape, rng=np.random.default_rng(self._child_seed(1, i)))
            else:
                layer.check_input_shape(shape)
            shape = layer.compute_output_shape(shape)
        self.input_shape, self.built = input_shape, True

    def _shapes(self):
        """[the input shape, then each layer's output shape]."""
        shapes = [self.input_shape]
        for layer in self.layers:
            shapes.append(layer.compute_output_shape(shapes[-1]))
        return shapes

    @property
    def output_shape(self):
        self._require_built("output_shape")
        return self._shapes()[-1]

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"{what}: {self.name!r} has not been built yet, so its layers have no "
                             f"weights. Build it with model.build((None, 100)), start it with "
                             f"Input(shape=(100,)) or Embedding(..., input_length=100), or call "
                             f"fit/predict (or the model) on a batch of data first")

    # ----- running it ---------------------------------------------------------------------------
    def prepare_x(self, x, what="x"):
        """x -> a NumPy array the first layer accepts (ids for an Embedding, else float32); builds."""
        if not len(self.layers):
            raise ValueError(f"{self.name!r} has no layers; add some before giving it data")
        if x is None:
            raise ValueError(f"{what} is missing")
        x = np.asarray(x.data if isinstance(x, Tensor) else x)
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(f"{what} must be an array with at least one sample, got shape {x.shape}")
        first = self.layers[0]
        if isinstance(first, Embedding):
            if x.dtype.kind not in "iu":
                raise TypeError(f"{what} has dtype {x.dtype}, but the first layer, Embedding "
                                f"{first.name!r}, takes integer token ids; convert with "
                                f"{what}.astype('int64') (Keras casts silently)")
        elif getattr(first, "takes_strings", False):  # TextVectorization / StringLookup: raw strings
            x = x if x.dtype.kind in "OUS" else x.astype(object)
            x = x[:, None] if x.ndim == 1 and self.built and len(self.input_shape) == 2 else x  # (B,) -> (B, 1)
        elif x.dtype.kind in "biuf":
            x = x.astype(np.float32, copy=False)
        else:
            raise TypeError(f"{what} must hold numbers, got dtype {x.dtype}")
        if not self.built:
            self.build((None,) + x.shape[1:])
        if x.ndim != len(self.input_shape):
            raise ValueError(f"{what} has shape {x.shape}, but {self.name!r} was built for inputs "
                             f"of shape {self.input_shape} (rank {len(self.input_shape)})")
        return x

    def forward(self, x, training=False, layers=None):
        """x (prepared) -> a Tensor: each layer (default: all) applied in turn."""
        for layer in self.layers if layers is None else layers:
            x = layer(x, training=training)
        return x

    def __call__(self, x, training=False):
        if is_symbolic(x):
            raise NotImplementedError("calling a Sequential on keras.Input tensors (a Sequential used "
                                      "as a layer of a functional Model) is not supported by "
                                      "tinygpt.keras; build the inner part as a keras.Model(inputs, "
                                      "outputs) instead, which can be called like a layer")
        return self.forward(self.prepare_x(x), training=training)

    # ----- weights (get_weights, save_weights, load_weights: ModelWeights) -----------------------
    def set_weights(self, weights):
        self._require_built("set_weights")
        weights = list(weights)
        expected = sum(len(layer.named_weights()) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"set_weights got {len(weights)} arrays, {self.name!r} has {expected}: "
                             + ", ".join(f"{layer.name}/{n}" for layer in self.layers for n, _ in layer.named_weights()))
        for layer in self.layers:
            count = len(layer.named_weights())
            layer.set_weights(weights[:count])
            weights = weights[count:]

    def count_params(self):
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self.layers)

    # ----- printing -----------------------------------------------------------------------------
    def summary(self, print_fn=None):
        """Print Keras' table: each layer, its output shape and parameter count, then the totals.
        print_fn(text) receives the table instead, e.g. print_fn=lines.append."""
        self._require_built("summary")
        rows = [(f"{layer.name} ({type(layer).__name__})", str(shape), f"{layer.count_params():,}")
                for layer, shape in zip(self.layers, self._shapes()[1:])]
        printer.summary(summary_table(self, rows), print_fn)

    def extra_repr(self):
        return f"name={self.name!r}, built={self.built}, input_shape={self.input_shape}"


def summary_table(model, rows, header=("Layer (type)", "Output Shape", "Param #")):
    """Keras' summary text: the rows under header, columns as wide as their longest cell (at
    least Keras' 29, 26, 10), then total / trainable / non-trainable counts."""
    widths = [max([minimum, len(title) + 2] + [len(str(row[i])) + 2 for row in rows])
              for i, (title, minimum) in enumerate(zip(header, (29, 26, 10, 26)))]
    rule = "_" * sum(widths)

    def line(cells):
        return "".join(f" {cell}".ljust(width) for cell, width in zip(cells, widths)).rstrip()

    trainable, frozen = (sum(p.size for p in ps) for ps in split_weights(model))

    def count(n):
        return f"{n:,} ({n * 4 / 2**20:.2f} MB)"  # float32

    return "\n".join([f'Model: "{model.name}"', rule, line(header), "=" * sum(widths), *map(line, rows),
                      "=" * sum(widths), f"Total params: {count(trainable + frozen)}",
                      f"Trainable params: {count(trainable)}", f"Non-trainable params: {count(frozen)}", rule])


# keras.models.Model, as Keras spells it; functional.py imports summary_table from here, so last
from tinygpt.keras.functional import Model, _get_layer  # noqa: E402
from tinygpt.keras.saving import load_model, save_model  # noqa: E402,F401  (keras.models.load_model)
