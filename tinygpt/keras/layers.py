"""Keras-style layers: the Layer base, Embedding, LSTM, Dense, Dropout (the others: layers_*.py).
Each is a thin shell around the tinygpt.nn layer that does the work (nn.Embedding, nn.LSTM, nn.Linear, nn.Dropout).

A layer is built lazily: its weights are made from the first input shape it sees (so Dense infers
its input size), drawn from Keras' initial distributions (initializers.py). Shapes are written as
Keras prints them, the batch as None: `(None, 100, 64)`. Weights keep Keras' names and layouts
(`kernel` (in, out), LSTM gates i, f, c, o), so `get_weights()` lists transfer from Keras as they are.
Called on keras.Input tensors, a layer records the call instead (symbolic.py, functional.py).
A layer reads its input's mask and records its output's (masking.py, compute_mask).
Not here: Sequential (models.py), training (training.py), GRU and SimpleRNN (layers_recurrent.py).
"""

import numpy as np

from tinygpt import functional as F
from tinygpt import nn
from tinygpt.keras import activations, initializers, masking, recurrent, regularizers
from tinygpt.keras.symbolic import Input, InputLayer, call_symbolic, is_symbolic, map_structure
from tinygpt.keras.utils import next_seed
from tinygpt.nn.module import Parameter
from tinygpt.tensor import Tensor


def _float_tensor(x):
    """An array or Tensor -> a float Tensor (integer and float64 arrays become float32, as in Keras;
    a float Tensor passes as it is, so a float64 gradient check stays float64)."""
    if isinstance(x, Tensor):
        return x if x.dtype.kind == "f" else Tensor(x.data.astype(np.float32))
    return Tensor(np.asarray(x, dtype=np.float32))


class WeightLists:
    """Keras' trainable_weights and non_trainable_weights (see split_weights), shared by every
    Layer (the functional Model among them) and by Sequential."""

    @property
    def trainable_weights(self):
        """The Parameters fit updates: all below, except those of layers with trainable=False."""
        return split_weights(self)[0]

    @property
    def non_trainable_weights(self):
        return split_weights(self)[1]


class Layer(WeightLists, nn.Module):
    """Base class: a name, a lazy `build`, Keras-named weights, and `layer(x, training=False)`.

    Subclasses define make_weights(input_shape, rng), compute_output_shape(input_shape),
    check_input_shape(input_shape), forward(x) and named_weights()."""

    default_name = "layer"
    supports_masking = False  # True: the input's mask passes through to the output (Dense, Dropout)

    def __init__(self, name=None, seed=None, input_shape=None, activity_regularizer=None):
        super().__init__()
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string, got {name!r}")
        self.name = name or self.default_name
        self.auto_named = name is None  # Sequential may rename it lstm_1, lstm_2, ... like Keras
        self.seed = seed
        self.built = False
        self.input_shape = None  # the (None, ...) shape the weights were built for
        # Keras 2's `input_shape=(100,)` on a first layer: the shape of one sample, batch excluded
        self.declared_input_shape = None if input_shape is None else (None,) + tuple(input_shape)
        self.trainable = True  # False: fit leaves this layer's weights as they are (Keras' freezing)
        self.input_mask = None  # the (B, T) mask of the current call's input, set by __call__
        # penalties fit adds to the loss (regularizers.py): {Keras weight name: regularizer}
        self.weight_regularizers = {}
        self.activity_regularizer = regularizers.get(activity_regularizer)

    # ----- what subclasses define -----------------------------------------------------------
    def make_weights(self, input_shape, rng):
        """Create the nn layer(s) and set Keras' initial weights."""

    def check_input_shape(self, input_shape):
        """Raise ValueError naming this layer if it cannot take inputs of `input_shape`."""

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        """The mask of the output (B, T) from the input's, as Keras' compute_mask: passed through
        by a layer that supports masking, dropped by one that does not (or that consumes it)."""
        return mask if self.supports_masking else None

    def named_weights(self):
        """[(Keras name, Parameter)] in Keras' order: the order of get_weights()."""
        return []

    def get_config(self):
        """The constructor arguments that shape the weights: saved with them, shown in errors."""
        return {}

    # ----- building and calling -------------------------------------------------------------
    def build(self, input_shape, rng=None):
        """(None, ...) -> make the weights for inputs of that shape. A layer's own `seed` wins
        over the model's `rng`; with neither, set_random_seed's stream (or fresh entropy)."""
        input_shape = _norm_shape(input_shape)
        self.check_input_shape(input_shape)
        if self.seed is not None:
            rng = np.random.default_rng(self.seed)
        elif rng is None:
            rng = np.random.default_rng(next_seed())
        self.make_weights(input_shape, rng)
        self.input_shape, self.built = input_shape, True

    def __call__(self, x, training=False, mask=None, **kwargs):
        """x: an array or Tensor, batch first -> a Tensor (a list of them for return_state).
        mask: (B, T) booleans, True for real steps; default: the mask x carries (masking.py).
        On symbolic tensors (keras.Input) -> symbolic tensors: the call is recorded, not run."""
        if kwargs:  # e.g. Keras' LSTM(...)(x, initial_state=[h, c])
            raise NotImplementedError(f"{type(self).__name__} {self.name!r}: the call arguments "
                                      f"{sorted(kwargs)} are not supported by tinygpt.keras; its "
                                      f"layers take (x, training=False, mask=None)")
        if is_symbolic(x):
            if mask is not None:
                raise NotImplementedError(f"{type(self).__name__} {self.name!r}: mask=... on keras.Input "
                                          f"tensors is not supported by tinygpt.keras; put a Masking "
                                          f"layer or Embedding(mask_zero=True) before it instead")
            return call_symbolic(self, x, kwargs)
        shape = map_structure(lambda t: (None,) + tuple(np.shape(t.data if isinstance(t, Tensor) else t))[1:], x)
        if not self.built:
            self.build(shape)
        self.check_input_shape(shape)
        self.train(training)  # training=True turns dropout on; Keras' default call is inference
        self.input_mask = masking.get_mask(x) if mask is None else np.asarray(mask, dtype=bool)
        out = self.forward(x)
        if out is not x:
            masking.set_mask(out, self.compute_mask(x, self.input_mask))
        if self.activity_regularizer is not None:
            regularizers.add_activity_penalty(self.activity_regularizer, out)
        return out

    def initial_weight(self, initializer, shape, rng):
        """A float32 Parameter drawn from `initializer` (a name, object or function; initializers.get)."""
        return Parameter(np.asarray(initializers.get(initializer)(shape, rng=rng), dtype=np.float32))

    def set_regularizers(self, **by_weight):
        """kernel=L2(1e-4), bias=None, ... -> weight_regularizers (names as named_weights gives them)."""
        for weight, identifier in by_weight.items():
            reg = regularizers.get(identifier)
            if reg is not None:
                self.weight_regularizers[weight] = reg

    def regularization_penalties(self):
        """[scalar Tensor] for this layer's own regularized weights (not its sublayers')."""
        return [self.weight_regularizers[name](param) for name, param in self.named_weights()
                if name in self.weight_regularizers]

    def regularizer_config(self):
        """The regularizers as config entries, for get_config (empty when there are none)."""
        config = {f"{'recurrent' if name == 'recurrent_kernel' else name}_regularizer": regularizers.to_config(reg)
                  for name, reg in self.weight_regularizers.items()}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.to_config(self.activity_regularizer)
        return config

    # ----- weights as NumPy lists, the Keras way --------------------------------------------
    def get_weights(self):
        return [param.data.copy() for _, param in self.named_weights()]

    def set_weights(self, weights):
        own = self.named_weights()
        if len(weights) != len(own):
            raise ValueError(f"{type(self).__name__} {self.name!r}.set_weights: got {len(weights)} "
                             f"arrays, expected {len(own)}: {[n for n, _ in own]}")
        for (name, param), value in zip(own, weights):
            if np.shape(value) != param.shape:
                raise ValueError(f"{type(self).__name__} {self.name!r}: weight {name!r} has shape "
                                 f"{param.shape}, got an array of shape {np.shape(value)}")
        for (_, param), value in zip(own, weights):
            np.copyto(param.data, np.asarray(value), casting="same_kind")

    def count_params(self):
        if not self.built:
            raise ValueError(f"{type(self).__name__} {self.name!r} is not built yet, so it has no "
                             f"weights to count; call it on data or build(input_shape) first")
        return sum(param.size for _, param in self.named_weights())

    def extra_repr(self):
        return ", ".join([repr(self.name)] + [f"{k}={v!r}" for k, v in self.get_config().items()])


def _norm_shape(shape):
    """(None, 100) or a list of such shapes (a layer with several inputs) -> tuples of ints / None."""
    if isinstance(shape, list):
        return [_norm_shape(s) for s in shape]
    return tuple(None if d is None else int(d) for d in shape)


def split_weights(module):
    """-> (trainable, non-trainable) Parameters under `module`: a Parameter is frozen when any
    Layer (or model) on its path has trainable=False, as in Keras. Walked with a stack, not recursion."""
    trainable, frozen, seen = [], [], set()
    stack = [(module, False)]
    while stack:
        mod, is_frozen = stack.pop()
        is_frozen = is_frozen or not getattr(mod, "trainable", True)
        for param in mod._parameters.values():
            if id(param) not in seen:
                seen.add(id(param))
                (frozen if is_frozen else trainable).append(param)
        stack.extend((child, is_frozen) for child in reversed(list(mod._modules.values())))
    return trainable, frozen


def _check_units(layer, **values):
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{layer}: {key} must be an int >= 1, got {value!r}")


class Embedding(Layer):
    """token ids (B, T) -> vectors (B, T, output_dim): row `id` of `embeddings` (input_dim, output_dim)."""

    default_name = "embedding"

    def __init__(self, input_dim, output_dim, input_length=None, mask_zero=False,
                 embeddings_initializer="uniform", embeddings_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.set_regularizers(embeddings=embeddings_regularizer)
        _check_units("Embedding", input_dim=input_dim, output_dim=output_dim)
        if input_length is not None:
            _check_units("Embedding", input_length=input_length)
            self.declared_input_shape = (None, int(input_length))
        self.input_dim, self.output_dim, self.input_length = int(input_dim), int(output_dim), input_length
        self.mask_zero = bool(mask_zero)  # id 0 is padding: the mask marks it for the layers after

    def make_weights(self, input_shape, rng):
        self.embedding = nn.Embedding(self.input_dim, self.output_dim, rng=rng)
        self.embedding.weight.data[...] = self.embeddings_initializer(self.embedding.weight.shape, rng=rng)

    def check_input_shape(self, input_shape):
        if self.input_length is not None and (len(input_shape) != 2 or input_shape[1] != self.input_length):
            raise ValueError(f"Embedding {self.name!r} was declared with input_length="
                             f"{self.input_length}, so it takes x of shape (batch, {self.input_length}); "
                             f"got {input_shape}")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, x, mask):
        if not self.mask_zero:
            return None
        return np.asarray(x.data if isinstance(x, Tensor) else x) != 0  # (B, T)

    def forward(self, x):
        idx = np.asarray(x.data if isinstance(x, Tensor) else x)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"Embedding {self.name!r} takes integer token ids, got x of dtype "
                            f"{idx.dtype}; convert with x.astype('int64') (Keras casts silently)")
        if idx.size and (idx.min() < 0 or idx.max() >= self.input_dim):
            where = np.unravel_index(np.argmax((idx < 0) | (idx >= self.input_dim)), idx.shape)
            raise ValueError(f"Embedding {self.name!r}: token id {idx[where]} at x[{', '.join(map(str, where))}] "
                             f"is out of range for input_dim={self.input_dim} (valid ids 0.."
                             f"{self.input_dim - 1}); raise input_dim or re-map the tokens")
        return self.embedding(idx)  # (B, T) -> (B, T, output_dim)

    def named_weights(self):
        return [("embeddings", self.embedding.weight)]

    def get_config(self):
        return {"input_dim": self.input_dim, "output_dim": self.output_dim, "input_length": self.input_length,
                "mask_zero": self.mask_zero,
                "embeddings_initializer": initializers.name_of(self.embeddings_initializer), **self.regularizer_config()}


class LSTM(Layer):
    """x (B, T, I) -> (B, T, units) with return_sequences, else the last step (B, units);
    with return_state, [output, h, c] like Keras, h and c each (B, units). The whole sequence is
    one fused op (nn.LSTM); with a mask or recurrent_dropout it runs step by step (recurrent.py)."""

    default_name = "lstm"

    def __init__(self, units, return_sequences=False, return_state=False, dropout=0.0,
                 unit_forget_bias=True, recurrent_dropout=0.0, go_backwards=False, stateful=False,
                 unroll=False, activation="tanh", recurrent_activation="sigmoid",
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if (activation, recurrent_activation) != ("tanh", "sigmoid"):
            raise NotImplementedError(f"LSTM(activation={activation!r}, recurrent_activation="
                                      f"{recurrent_activation!r}): tinygpt.keras' fused LSTM has Keras' "
                                      f"defaults 'tanh' and 'sigmoid' only")
        self.initializers = {name: initializers.get(init) for name, init in (
            ("kernel", kernel_initializer), ("recurrent", recurrent_initializer), ("bias", bias_initializer))}
        self.set_regularizers(kernel=kernel_regularizer, recurrent_kernel=recurrent_regularizer,
                              bias=bias_regularizer)
        _check_units("LSTM", units=units)
        recurrent.check_rates("LSTM", dropout, recurrent_dropout)
        recurrent.check_unsupported("LSTM", stateful=stateful, unroll=unroll)
        self.units, self.dropout, self.recurrent_dropout = int(units), float(dropout), float(recurrent_dropout)
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.unit_forget_bias, self.go_backwards = bool(unit_forget_bias), bool(go_backwards)

    def make_weights(self, input_shape, rng):
        n_in, d = input_shape[-1], self.units
        self.lstm = nn.LSTM(n_in, d, num_layers=1, batch_first=True, rng=rng)  # same layout and gate order as Keras
        self.lstm.weight_ih_l0.data[...] = self.initializers["kernel"]((n_in, 4 * d), rng=rng)
        self.lstm.weight_hh_l0.data[...] = self.initializers["recurrent"]((d, 4 * d), rng=rng)
        bias = self.initializers["bias"]((4 * d,), rng=rng)
        if self.unit_forget_bias:
            bias[d:2 * d] = 1.0  # forget gate open at first: the cell remembers until it learns not to
        self.lstm.bias_l0.data[...] = bias
        self.dropout_rng = rng.spawn(1)[0]

    def check_input_shape(self, input_shape):
        recurrent.check_input_shape(self, input_shape)

    def compute_output_shape(self, input_shape):
        return recurrent.output_shape(self, input_shape, 2)

    def compute_mask(self, x, mask):
        return recurrent.output_mask(self, mask, 2)

    def forward(self, x):
        return recurrent.run(self, _float_tensor(x), self._fused, lambda x: x, self._step, 2)

    def _fused(self, x):
        out, (h, c) = self.lstm(x)  # out (B, T, D); h, c (1, B, D): one layer
        return out, [h[0], c[0]]  # h is out[:, -1]

    def _step(self, x_t, states, h_dropped):
        """One step through the same op: F.lstm over T=1 from (h_dropped, c)."""
        lstm = self.lstm
        _, h, c = F.lstm(x_t.reshape((x_t.shape[0], 1, x_t.shape[1])), h_dropped, states[1],
                         lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_l0)
        return [h, c]

    def named_weights(self):
        return [("kernel", self.lstm.weight_ih_l0), ("recurrent_kernel", self.lstm.weight_hh_l0),
                ("bias", self.lstm.bias_l0)]

    def get_config(self):
        return {"units": self.units, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout, "go_backwards": self.go_backwards,
                "unit_forget_bias": self.unit_forget_bias,
                **{f"{name}_initializer": initializers.name_of(init) for name, init in self.initializers.items()},
                **self.regularizer_config()}


class Dense(Layer):
    """x (..., in) -> activation(x @ kernel + bias): (..., units); kernel (in, units)."""

    default_name = "dense"
    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        _check_units("Dense", units=units)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.set_regularizers(kernel=kernel_regularizer, bias=bias_regularizer)
        self.units, self.use_bias = int(units), bool(use_bias)
        self.activation_name, self.activation = activations.get(activation)

    def make_weights(self, input_shape, rng):
        n_in = input_shape[-1]
        self.linear = nn.Linear(n_in, self.units, bias=self.use_bias, rng=rng)  # weight (in, out)
        self.linear.weight.data[...] = self.kernel_initializer((n_in, self.units), rng=rng)
        if self.use_bias:
            self.linear.bias.data[...] = self.bias_initializer((self.units,), rng=rng)

    def check_input_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense {self.name!r} takes input of shape (batch, ..., features), "
                             f"got {input_shape}")
        if self.built and input_shape[-1] != self.input_shape[-1]:
            raise ValueError(f"Dense {self.name!r} was built for {self.input_shape[-1]} input "
                             f"features, got input of shape {input_shape}")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def pre_activation(self, x):
        """The logits: x @ kernel + bias, before the activation (what a fused loss reads)."""
        return self.linear(_float_tensor(x))

    def forward(self, x):
        return self.activation(self.pre_activation(x))

    def named_weights(self):
        return [("kernel", self.linear.weight)] + ([("bias", self.linear.bias)] if self.use_bias else [])

    def get_config(self):
        return {"units": self.units, "activation": self.activation_name, "use_bias": self.use_bias,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "bias_initializer": initializers.name_of(self.bias_initializer), **self.regularizer_config()}


class Dropout(Layer):
    """Zero a fraction `rate` of the inputs during fit (scaling the rest by 1/(1-rate)); identity otherwise."""

    default_name = "dropout"
    supports_masking = True

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def make_weights(self, input_shape, rng):
        self.dropout = nn.Dropout(self.rate, rng=rng)  # no weights: only its own mask stream

    def forward(self, x):
        return self.dropout(_float_tensor(x))  # nn.Dropout is the identity unless self.training

    def get_config(self):
        return {"rate": self.rate}


__all__ = ["Layer", "Input", "InputLayer", "Embedding", "LSTM", "Dense", "Dropout"]


# The other layers live in their own files (each imports Layer from here), and are re-exported
# so that `from tinygpt.keras.layers import Conv1D` works as it does in Keras.
from tinygpt.keras.layers_conv import Conv1D  # noqa: E402
from tinygpt.keras.layers_merge import Add, Concatenate  # noqa: E402
from tinygpt.keras.layers_recurrent import GRU, Masking, SimpleRNN  # noqa: E402
from tinygpt.keras.layers_reshape import (Activation, Flatten, GlobalAveragePooling1D,  # noqa: E402
                                          GlobalMaxPooling1D, RepeatVector, Reshape)
from tinygpt.keras.layers_attention import MultiHeadAttention  # noqa: E402
from tinygpt.keras.layers_norm import LayerNormalization  # noqa: E402
from tinygpt.keras.layers_pooling import AveragePooling1D, AvgPool1D, MaxPool1D, MaxPooling1D  # noqa: E402
from tinygpt.keras.layers_text import StringLookup, TextVectorization  # noqa: E402
from tinygpt.keras.layers_wrappers import Bidirectional, TimeDistributed  # noqa: E402

__all__ += ["GRU", "SimpleRNN", "Masking", "Conv1D", "Bidirectional", "TimeDistributed", "Add", "Concatenate", "Activation", "Flatten", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
            "RepeatVector", "Reshape", "TextVectorization", "StringLookup"]
__all__ += ["MaxPooling1D", "AveragePooling1D", "MaxPool1D", "AvgPool1D", "LayerNormalization", "MultiHeadAttention"]
