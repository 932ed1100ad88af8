"""MultiHeadAttention, Keras' attention layer: `mha(query, value, key=None, attention_mask=None, ...)`.

    q = query @ Wq + bq   (B, Tq, Cq) @ (Cq, nh, dk) -> (B, nh, Tq, dk)   (and k from key, v from value)
    A = softmax(q kᵀ / sqrt(dk), masked)                                  (B, nh, Tq, Tv)
    out = (A v) @ Wo + bo   (B, Tq, nh, dv) @ (nh, dv, C_out) -> (B, Tq, C_out)
Weights keep Keras' names, shapes and order (query/kernel (Cq, nh, dk), query/bias (nh, dk), key/...,
value/..., attention_output/kernel (nh, dv, C_out), attention_output/bias), so get_weights() lists
transfer from Keras. Built from tinygpt primitives (matmul, reshape, softmax, where, dropout); without
a mask, scores or dropout it calls the fused attention op instead, which computes the same thing.
Not here: attention_axes (attention over more than the time axis), query_mask/value_mask/key_mask
(Keras' implicit masks), AdditiveAttention / Attention.
"""

import math

import numpy as np

from tinygpt import functional as F
from tinygpt.keras import initializers, regularizers
from tinygpt.keras.layers import Layer, _check_units, _float_tensor
from tinygpt.keras.symbolic import KerasTensor, Node, is_symbolic, map_structure

MASKED = -1e9  # Keras' large negative score for masked keys: a fully masked row attends uniformly


def _heads(x, w, b):
    """x (B, T, C) @ w (C, nh, d) + b (nh, d) -> (B, nh, T, d)."""
    C, nh, d = w.shape
    y = F.matmul(x, F.reshape(w, (C, nh * d)))  # (B, T, C) -> (B, T, nh * d)
    if b is not None:
        y = y + F.reshape(b, (nh * d,))
    y = F.reshape(y, (x.shape[0], x.shape[1], nh, d))  # (B, T, nh, d)
    return F.permute(y, (0, 2, 1, 3))  # (B, nh, T, d)


def multi_head_attention(query, value, key, wq, bq, wk, bk, wv, bv, wo, bo, attention_mask=None,
                         causal=False, dropout=0.0, rng=None, return_scores=False):
    """query (B, Tq, Cq), value (B, Tv, Cv), key (B, Tv, Ck); attention_mask (B, Tq, Tv) bool, True
    where query i may attend to key j -> out (B, Tq, C_out), and the scores (B, nh, Tq, Tv) if asked.
    b* may be None (use_bias=False). dropout (> 0 only in training) drops attention probabilities."""
    q, k, v = _heads(query, wq, bq), _heads(key, wk, bk), _heads(value, wv, bv)  # (B, nh, T, d)
    B, nh, Tq, dk = q.shape
    Tv = k.shape[2]
    scale = 1.0 / math.sqrt(dk)
    fusable = v.shape[-1] == dk and (not causal or Tq == Tv)  # the op takes one head size, causal when square
    if fusable and attention_mask is None and not return_scores and dropout == 0.0:
        # the fused op: same softmax(q kᵀ * scale) v, without holding the scores for backward
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)  # (B, nh, Tq, dv)
        scores = None
    else:
        s = F.matmul(q * scale, F.permute(k, (0, 1, 3, 2)))  # (B, nh, Tq, dk) @ (B, nh, dk, Tv) -> (B, nh, Tq, Tv)
        keep = np.ones((B, 1, Tq, Tv), dtype=bool)
        if attention_mask is not None:
            keep = keep & attention_mask[:, None]  # (B, Tq, Tv) -> (B, 1, Tq, Tv): the same for every head
        if causal:
            keep = keep & np.tril(np.ones((Tq, Tv), dtype=bool))  # Keras' causal mask: key j <= query i
        if not keep.all():  # NOTE: masked before the softmax, so the kept probabilities still sum to 1
            s = F.where(np.broadcast_to(keep, s.shape), s, MASKED)
        scores = F.softmax(s, axis=-1)
        probs = F.dropout(scores, dropout, generator=rng) if dropout > 0.0 else scores
        out = F.matmul(probs, v)  # (B, nh, Tq, Tv) @ (B, nh, Tv, dv) -> (B, nh, Tq, dv)
    nh, dv, c_out = wo.shape
    out = F.reshape(F.permute(out, (0, 2, 1, 3)), (B, Tq, nh * dv))  # (B, nh, Tq, dv) -> (B, Tq, nh * dv)
    out = F.matmul(out, F.reshape(wo, (nh * dv, c_out)))  # -> (B, Tq, C_out)
    if bo is not None:
        out = out + bo
    return (out, scores) if return_scores else out


def _split_shapes(shapes):
    """The layer's input shapes, a dict {query, value[, key]} or a list [query, value, key]."""
    if isinstance(shapes, dict):
        return shapes["query"], shapes["value"], shapes.get("key", shapes["value"])
    return tuple(shapes)


class MultiHeadAttention(Layer):
    """MultiHeadAttention(num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None)."""

    default_name = "multi_head_attention"
    PARTS = ("query", "key", "value", "attention_output")

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        value_dim = key_dim if value_dim is None else value_dim
        _check_units("MultiHeadAttention", num_heads=num_heads, key_dim=key_dim, value_dim=value_dim)
        if attention_axes is not None:
            raise NotImplementedError(f"MultiHeadAttention(attention_axes={attention_axes!r}) is not supported "
                                      f"by tinygpt.keras; it attends over the time axis of (batch, time, features)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout!r}")
        if isinstance(output_shape, (tuple, list)):
            if len(output_shape) != 1:
                raise NotImplementedError(f"MultiHeadAttention(output_shape={output_shape!r}): only a single "
                                          f"output size is supported by tinygpt.keras")
            output_shape = output_shape[0]
        if output_shape is not None:
            _check_units("MultiHeadAttention", output_shape=output_shape)
        self.num_heads, self.key_dim, self.value_dim = int(num_heads), int(key_dim), int(value_dim)
        self.dropout, self.use_bias = float(dropout), bool(use_bias)
        self.output_size = None if output_shape is None else int(output_shape)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_reg, self.bias_reg = regularizers.get(kernel_regularizer), regularizers.get(bias_regularizer)
        for part in self.PARTS:
            self.set_regularizers(**{f"{part}/kernel": kernel_regularizer, f"{part}/bias": bias_regularizer})

    # ----- calling: Keras' signature, the inputs kept together as one dict ------------------------
    def __call__(self, query, value=None, key=None, attention_mask=None, return_attention_scores=False,
                 training=None, use_causal_mask=False, query_mask=None, value_mask=None, key_mask=None):
        """query (B, Tq, Cq), value (B, Tv, Cv), key (B, Tv, Ck) or None (= value) -> (B, Tq, C_out),
        with return_attention_scores also the scores (B, nh, Tq, Tv)."""
        if any(m is not None for m in (query_mask, value_mask, key_mask)):
            raise NotImplementedError("MultiHeadAttention: query_mask / value_mask / key_mask are not "
                                      "supported by tinygpt.keras; pass attention_mask (B, Tq, Tv) instead")
        if isinstance(query, dict):  # a functional Model replaying the call it recorded
            parts = query
        else:
            if value is None:
                raise TypeError(f"MultiHeadAttention {self.name!r} needs value: call it as "
                                f"mha(query, value) (value=query for self-attention)")
            parts = {"query": query, "value": value}
            if key is not None:
                parts["key"] = key
            if attention_mask is not None:
                parts["attention_mask"] = attention_mask
        flags = {"return_attention_scores": bool(return_attention_scores), "use_causal_mask": bool(use_causal_mask)}
        if is_symbolic(parts):
            if "attention_mask" in parts and not is_symbolic(parts["attention_mask"]):
                raise NotImplementedError("MultiHeadAttention on keras.Input tensors: attention_mask must "
                                          "be a symbolic tensor too (an Input), not an array")
            return self._call_symbolic(parts, flags)
        tensors = {name: (t if name == "attention_mask" else _float_tensor(t)) for name, t in parts.items()}
        shapes = {name: (None,) + tuple(t.shape[1:]) for name, t in tensors.items() if name != "attention_mask"}
        if not self.built:
            self.build(shapes)
        self.check_input_shape(shapes)
        self.train(bool(training))
        out = self.attend(tensors, **flags)
        if self.activity_regularizer is not None:
            regularizers.add_activity_penalty(self.activity_regularizer, out)
        return out

    def _call_symbolic(self, parts, flags):
        """As symbolic.call_symbolic, but the outputs depend on return_attention_scores."""
        shapes = map_structure(lambda t: t.shape, parts)
        if not self.built:
            self.build(shapes)
        self.check_input_shape(shapes)
        out = self.compute_output_shape(shapes)
        out_shapes = [out] + ([(out[0], self.num_heads, out[1], shapes["value"][1])]
                              if flags["return_attention_scores"] else [])
        node = Node(self, parts, flags)
        for i, shape in enumerate(out_shapes):
            node.outputs.append(KerasTensor(shape, "float32", node=node, index=i))
        return node.outputs if len(out_shapes) > 1 else node.outputs[0]

    def build(self, input_shape, rng=None):
        """input_shape: {query, value[, key]} or [query, value, key] shapes -> the weights."""
        if isinstance(input_shape, dict):
            input_shape = list(_split_shapes({k: v for k, v in input_shape.items() if k != "attention_mask"}))
        super().build(input_shape, rng)

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = {k: v for k, v in input_shape.items() if k != "attention_mask"}
        q, v, k = _split_shapes(input_shape)
        for what, shape in (("query", q), ("value", v), ("key", k)):
            if len(shape) != 3 or shape[2] is None:
                raise ValueError(f"MultiHeadAttention {self.name!r} takes {what} of shape (batch, time, "
                                 f"features), got {shape}; attention over other axes (attention_axes) "
                                 f"is not supported")
        if k[1] is not None and v[1] is not None and k[1] != v[1]:
            raise ValueError(f"MultiHeadAttention {self.name!r}: key {k} and value {v} must have the same length")
        if self.built:
            built = self.input_shape
            for what, shape, old in zip(("query", "value", "key"), (q, v, k), built):
                if shape[2] != old[2]:
                    raise ValueError(f"MultiHeadAttention {self.name!r} was built for {what} with {old[2]} "
                                     f"features, got {what} of shape {shape}")

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = {k: v for k, v in input_shape.items() if k != "attention_mask"}
        q, _, _ = _split_shapes(input_shape)
        return (q[0], q[1], self.output_size or q[2])

    def make_weights(self, input_shape, rng):
        (_, _, cq), (_, _, cv), (_, _, ck) = input_shape
        nh, dk, dv = self.num_heads, self.key_dim, self.value_dim
        shapes = {"query": ((cq, nh, dk), (nh, dk)), "key": ((ck, nh, dk), (nh, dk)),
                  "value": ((cv, nh, dv), (nh, dv)),
                  "attention_output": ((nh, dv, self.output_size or cq), (self.output_size or cq,))}
        for part in self.PARTS:
            kernel_shape, bias_shape = shapes[part]
            setattr(self, f"{part}_kernel", self.initial_weight(self.kernel_initializer, kernel_shape, rng))
            if self.use_bias:
                setattr(self, f"{part}_bias", self.initial_weight(self.bias_initializer, bias_shape, rng))
        self.dropout_rng = rng.spawn(1)[0]

    def attend(self, tensors, return_attention_scores=False, use_causal_mask=False):
        """The forward pass on {query, value[, key][, attention_mask]} Tensors."""
        query, value = tensors["query"], tensors["value"]
        key = tensors.get("key", value)
        mask = tensors.get("attention_mask")
        if mask is not None:
            mask = np.asarray(mask.data if hasattr(mask, "data") else mask)
            want = (query.shape[0], query.shape[1], value.shape[1])
            if mask.shape != want:
                raise ValueError(f"MultiHeadAttention {self.name!r}: attention_mask has shape {mask.shape}, "
                                 f"expected (batch, Tq, Tv) = {want}")
            mask = mask.astype(bool)
        w = {name: getattr(self, name, None) for part in self.PARTS for name in (f"{part}_kernel", f"{part}_bias")}
        return multi_head_attention(
            query, value, key, w["query_kernel"], w["query_bias"], w["key_kernel"], w["key_bias"],
            w["value_kernel"], w["value_bias"], w["attention_output_kernel"], w["attention_output_bias"],
            attention_mask=mask, causal=use_causal_mask, dropout=self.dropout if self.training else 0.0,
            rng=self.dropout_rng, return_scores=return_attention_scores)

    def named_weights(self):
        return [(f"{part}/{kind}", getattr(self, f"{part}_{kind}")) for part in self.PARTS
                for kind in (("kernel", "bias") if self.use_bias else ("kernel",))]

    def regularizer_config(self):
        return {"kernel_regularizer": regularizers.to_config(self.kernel_reg),
                "bias_regularizer": regularizers.to_config(self.bias_reg)}

    def get_config(self):
        return {"num_heads": self.num_heads, "key_dim": self.key_dim, "value_dim": self.value_dim,
                "dropout": self.dropout, "use_bias": self.use_bias, "output_shape": self.output_size,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "bias_initializer": initializers.name_of(self.bias_initializer), **self.regularizer_config()}


__all__ = ["MultiHeadAttention", "multi_head_attention"]
