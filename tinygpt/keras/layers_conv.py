"""Conv1D, Keras' 1-D convolution over time: x (B, T, C_in) -> (B, T_out, filters), channels last.
The op is tinygpt.ops.conv (NumPy forward + hand-written backward); this layer chooses the padding
and adds the bias. Weights as Keras stores them: kernel (kernel_size, C_in, filters), bias (filters,).
Not here: groups, data_format='channels_first', Conv2D, pooling with a window.
"""

import math

from tinygpt import functional as F
from tinygpt.keras import activations, initializers
from tinygpt.keras.layers import Layer, _check_units, _float_tensor

PADDINGS = ("valid", "same", "causal")


def conv_padding(T, kernel_size, stride, dilation, padding):
    """-> (pad_left, pad_right) for T input steps, as TensorFlow pads (the extra step goes right)."""
    span = (kernel_size - 1) * dilation + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":  # out[t] reads only x[..t]: all padding on the left
        return span - 1, 0
    total = max((math.ceil(T / stride) - 1) * stride + span - T, 0)  # 'same': T_out = ceil(T / stride)
    return total // 2, total - total // 2


class Conv1D(Layer):
    """Conv1D(filters, kernel_size, strides=1, padding='valid'|'same'|'causal', dilation_rate=1)."""

    default_name = "conv1d"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.set_regularizers(kernel=kernel_regularizer, bias=bias_regularizer)
        one = lambda v: v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v  # noqa: E731  (Keras takes (3,))
        kernel_size, strides, dilation_rate = one(kernel_size), one(strides), one(dilation_rate)
        _check_units("Conv1D", filters=filters, kernel_size=kernel_size, strides=strides, dilation_rate=dilation_rate)
        if padding not in PADDINGS:
            raise ValueError(f"Conv1D: padding must be one of {PADDINGS}, got {padding!r}")
        if strides > 1 and dilation_rate > 1:
            raise ValueError("Conv1D: strides > 1 together with dilation_rate > 1 is not supported (nor in Keras)")
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.padding, self.dilation_rate, self.use_bias = padding, int(dilation_rate), bool(use_bias)
        self.activation_name, self.activation = activations.get(activation)

    def make_weights(self, input_shape, rng):
        # Keras' fans for a conv kernel (initializers.compute_fans): fan_in = K * C_in, fan_out = K * filters
        self.kernel = self.initial_weight(self.kernel_initializer, (self.kernel_size, input_shape[-1], self.filters), rng)
        if self.use_bias:
            self.bias = self.initial_weight(self.bias_initializer, (self.filters,), rng)

    def check_input_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[2] is None:
            raise ValueError(f"Conv1D {self.name!r} takes input of shape (batch, steps, channels), "
                             f"got {input_shape}; a single series needs x[..., None]")
        if self.built and input_shape[2] != self.input_shape[2]:
            raise ValueError(f"Conv1D {self.name!r} was built for {self.input_shape[2]} channels, got {input_shape}")

    def compute_output_shape(self, input_shape):
        T = input_shape[1]
        if T is None:
            return (input_shape[0], None, self.filters)
        left, right = conv_padding(T, self.kernel_size, self.strides, self.dilation_rate, self.padding)
        span = (self.kernel_size - 1) * self.dilation_rate + 1
        return (input_shape[0], (T + left + right - span) // self.strides + 1, self.filters)

    def forward(self, x):
        x = _float_tensor(x)
        left, right = conv_padding(x.shape[1], self.kernel_size, self.strides, self.dilation_rate, self.padding)
        out = F.conv1d(x, self.kernel, stride=self.strides, dilation=self.dilation_rate,
                       pad_left=left, pad_right=right)  # (B, T, C_in) -> (B, T_out, filters)
        if self.use_bias:
            out = out + self.bias
        return self.activation(out)

    def named_weights(self):
        return [("kernel", self.kernel)] + ([("bias", self.bias)] if self.use_bias else [])

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "dilation_rate": self.dilation_rate, "activation": self.activation_name,
                "use_bias": self.use_bias, "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "bias_initializer": initializers.name_of(self.bias_initializer), **self.regularizer_config()}


__all__ = ["Conv1D", "conv_padding"]
