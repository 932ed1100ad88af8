"""LayerNormalization, Keras' layer norm over the last axis: out = (x - mean) / sqrt(var + eps) * gamma + beta.
The op is tinygpt.ops.layernorm (the one GPT-2 uses; eps inside the square root, as Keras puts it).
Keras' defaults differ from PyTorch's: epsilon=1e-3, not 1e-5. Weights: gamma (C,), beta (C,).
Not here: normalising over several axes or one other than the last, rms_scaling, BatchNormalization.
"""

import numpy as np

from tinygpt import functional as F
from tinygpt.keras import initializers
from tinygpt.keras.layers import Layer, _float_tensor


class LayerNormalization(Layer):
    """LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True): x (..., C) -> (..., C)."""

    default_name = "layer_normalization"

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            axis = axis[0] if len(axis) == 1 else axis
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise NotImplementedError(f"LayerNormalization(axis={axis!r}): normalising over several axes "
                                      f"is not supported by tinygpt.keras; it normalises the last axis only")
        if rms_scaling:
            raise NotImplementedError("LayerNormalization(rms_scaling=True) is not supported by tinygpt.keras")
        if not epsilon > 0:
            raise ValueError(f"LayerNormalization: epsilon must be > 0, got {epsilon!r}")
        self.axis, self.epsilon, self.center, self.scale = axis, float(epsilon), bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.set_regularizers(gamma=gamma_regularizer, beta=beta_regularizer)

    def check_input_shape(self, input_shape):
        rank = len(input_shape)
        if rank < 2 or input_shape[-1] is None:
            raise ValueError(f"LayerNormalization {self.name!r} takes input of shape (batch, ..., "
                             f"features) with the features known, got {input_shape}")
        if self.axis not in (-1, rank - 1):
            raise NotImplementedError(f"LayerNormalization {self.name!r}: axis={self.axis} on input of rank "
                                      f"{rank} is not supported by tinygpt.keras; only the last axis (-1)")
        if self.built and input_shape[-1] != self.input_shape[-1]:
            raise ValueError(f"LayerNormalization {self.name!r} was built for {self.input_shape[-1]} "
                             f"features, got input of shape {input_shape}")

    def make_weights(self, input_shape, rng):
        C = input_shape[-1]
        if self.scale:
            self.gamma = self.initial_weight(self.gamma_initializer, (C,), rng)
        if self.center:
            self.beta = self.initial_weight(self.beta_initializer, (C,), rng)

    def forward(self, x):
        x = _float_tensor(x)
        gamma = self.gamma if self.scale else F.tensor(np.ones(x.shape[-1], x.dtype))  # scale=False: a constant 1
        return F.layer_norm(x, x.shape[-1], gamma, self.beta if self.center else None, eps=self.epsilon)

    def named_weights(self):
        return ([("gamma", self.gamma)] if self.scale else []) + ([("beta", self.beta)] if self.center else [])

    def get_config(self):
        return {"axis": self.axis, "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.name_of(self.beta_initializer),
                "gamma_initializer": initializers.name_of(self.gamma_initializer), **self.regularizer_config()}


__all__ = ["LayerNormalization"]
