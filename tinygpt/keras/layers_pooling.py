"""MaxPooling1D and AveragePooling1D, Keras' windowed pooling over time: x (B, T, C) -> (B, T_out, C).
The ops are tinygpt.ops.pool (NumPy forward + hand-written backward); this file picks the padding
as TensorFlow does ('same': T_out = ceil(T / strides), the extra padded step on the right).
Not here: the global poolings (layers_reshape.py), 2-D pooling, masks.
"""

from tinygpt import functional as F
from tinygpt.keras.layers import Layer, _check_units, _float_tensor
from tinygpt.keras.layers_conv import conv_padding

DATA_FORMATS = ("channels_last", "channels_first")


class _Pooling1D(Layer):
    """pool_size=2, strides=None (= pool_size), padding='valid'|'same', data_format='channels_last'."""

    op = None  # staticmethod(F.max_pool1d) or staticmethod(F.avg_pool1d)

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        cls = type(self).__name__
        one = lambda v: v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v  # noqa: E731  (Keras takes (2,))
        pool_size, strides = one(pool_size), one(strides)
        strides = pool_size if strides is None else strides
        _check_units(cls, pool_size=pool_size, strides=strides)
        padding = padding.lower() if isinstance(padding, str) else padding
        if padding not in ("valid", "same"):
            raise ValueError(f"{cls}: padding must be 'valid' or 'same', got {padding!r}")
        data_format = data_format or "channels_last"
        if data_format not in DATA_FORMATS:
            raise ValueError(f"{cls}: data_format must be one of {DATA_FORMATS}, got {data_format!r}")
        self.pool_size, self.strides, self.padding = int(pool_size), int(strides), padding
        self.data_format = data_format

    def _steps_axis(self):
        return 1 if self.data_format == "channels_last" else 2

    def check_input_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes input of rank 3, "
                             f"(batch, steps, channels) for data_format={self.data_format!r}, got {input_shape}")
        T = input_shape[self._steps_axis()]
        if self.padding == "valid" and T is not None and T < self.pool_size:
            raise ValueError(f"{type(self).__name__} {self.name!r}: {T} steps are fewer than pool_size "
                             f"{self.pool_size} with padding='valid'; use padding='same' or a smaller pool")

    def compute_output_shape(self, input_shape):
        axis, T = self._steps_axis(), input_shape[self._steps_axis()]
        if T is not None:
            left, right = conv_padding(T, self.pool_size, self.strides, 1, self.padding)
            T = (T + left + right - self.pool_size) // self.strides + 1
        out = list(input_shape)
        out[axis] = T
        return tuple(out)

    def forward(self, x):
        x = _float_tensor(x)
        if self.data_format == "channels_first":
            x = F.permute(x, (0, 2, 1))  # (B, C, T) -> (B, T, C)
        left, right = conv_padding(x.shape[1], self.pool_size, self.strides, 1, self.padding)
        out = self.op(x, self.pool_size, self.strides, left, right)  # (B, T, C) -> (B, T_out, C)
        return F.permute(out, (0, 2, 1)) if self.data_format == "channels_first" else out

    def get_config(self):
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format}


class MaxPooling1D(_Pooling1D):
    """The max of each window of pool_size steps, per channel."""

    default_name = "max_pooling1d"
    op = staticmethod(F.max_pool1d)


class AveragePooling1D(_Pooling1D):
    """The mean of each window; with padding='same' over the window's real steps only, as Keras."""

    default_name = "average_pooling1d"
    op = staticmethod(F.avg_pool1d)


MaxPool1D, AvgPool1D = MaxPooling1D, AveragePooling1D  # Keras' aliases

__all__ = ["MaxPooling1D", "AveragePooling1D", "MaxPool1D", "AvgPool1D"]
