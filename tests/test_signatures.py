"""Names tinygpt shares with PyTorch take PyTorch's argument order, names and defaults (NumPy's
axis and keepdims are accepted beside dim and keepdim).

SIGNATURES holds, for each shared name, the parameters of torch's signature that tinygpt promises,
written as torch writes them. Without torch, each tinygpt signature is checked against its
promise; with torch, each promise is checked against torch's own signature (or the signature line
of its docstring, for builtins), and every public name tinygpt shares with torch must have a
promise or a documented difference (DIFFERENT), so a future mismatch fails here.
"""

import builtins
import inspect
import re

import numpy as np
import pytest

import tinygpt
import tinygpt.functional as F
import tinygpt.nn as nn
import tinygpt.optim as optim
from tinygpt import Tensor

# tinygpt name -> (torch name, the torch parameters tinygpt takes, in torch's words)
SIGNATURES = {
    # tinygpt.functional against torch.nn.functional (F.) or torch (torch.)
    "F.add": ("torch.add", "input, other, *, alpha=1"),
    "F.sub": ("torch.sub", "input, other, *, alpha=1"),
    "F.mul": ("torch.mul", "input, other"),
    "F.div": ("torch.div", "input, other"),
    "F.neg": ("torch.neg", "input"),
    "F.pow": ("torch.pow", "input, exponent"),
    "F.exp": ("torch.exp", "input"),
    "F.log": ("torch.log", "input"),
    "F.sqrt": ("torch.sqrt", "input"),
    "F.tanh": ("torch.tanh", "input"),
    "F.sigmoid": ("torch.sigmoid", "input"),
    "F.relu": ("F.relu", "input"),
    "F.gelu": ("F.gelu", "input, approximate='none'"),
    "F.clamp": ("torch.clamp", "input, min=None, max=None"),
    "F.clip": ("torch.clip", "input, min=None, max=None"),
    "F.where": ("torch.where", "condition, input, other"),
    "F.masked_fill": ("torch.Tensor.masked_fill", "input, mask, value"),  # torch.masked_fill: undocumented
    "F.sum": ("torch.sum", "input, dim, keepdim=False"),
    "F.mean": ("torch.mean", "input, dim, keepdim=False"),
    "F.amax": ("torch.amax", "input, dim=None, keepdim=False"),
    "F.max": ("torch.max", "input, dim, keepdim=False"),
    "F.var": ("torch.var", "input, dim=None, *, correction=1, keepdim=False"),
    "F.matmul": ("torch.matmul", "input, other"),
    "F.linear": ("F.linear", "input, weight, bias=None"),
    "F.reshape": ("torch.reshape", "input, shape"),
    "F.permute": ("torch.permute", "input, dims"),
    "F.transpose": ("torch.transpose", "input, dim0, dim1"),
    "F.embedding": ("F.embedding", "input, weight, padding_idx=None"),
    "F.cat": ("torch.cat", "tensors, dim=0"),
    "F.concatenate": ("torch.concatenate", "tensors, axis=0"),
    "F.stack": ("torch.stack", "tensors, dim=0"),
    "F.split": ("torch.split", "tensor, split_size_or_sections, dim=0"),
    "F.chunk": ("torch.chunk", "input, chunks, dim=0"),
    "F.softmax": ("F.softmax", "input, dim=None"),
    "F.log_softmax": ("F.log_softmax", "input, dim=None"),
    "F.cross_entropy": ("F.cross_entropy",
                        "input, target, weight=None, *, ignore_index=-100, reduction='mean', label_smoothing=0.0"),
    "F.binary_cross_entropy": ("F.binary_cross_entropy", "input, target, weight=None, *, reduction='mean'"),
    "F.mse_loss": ("F.mse_loss", "input, target, *, reduction='mean'"),
    "F.layer_norm": ("F.layer_norm", "input, normalized_shape, weight=None, bias=None, eps=1e-05"),
    "F.dropout": ("F.dropout", "input, p=0.5, training=True, inplace=False"),
    "F.tensor": ("torch.tensor", "data, *, dtype=None, requires_grad=False"),
    # Tensor methods (without self)
    "Tensor.backward": ("torch.Tensor.backward", "gradient=None, retain_graph=None"),
    "Tensor.sum": ("torch.Tensor.sum", "dim=None, keepdim=False"),
    "Tensor.mean": ("torch.Tensor.mean", "dim=None, keepdim=False"),
    "Tensor.max": ("torch.Tensor.max", "dim, keepdim=False"),
    "Tensor.amax": ("torch.Tensor.amax", "dim=None, keepdim=False"),
    "Tensor.var": ("torch.Tensor.var", "dim=None, *, correction=1, keepdim=False"),
    "Tensor.softmax": ("torch.Tensor.softmax", "dim"),
    "Tensor.log_softmax": ("F.log_softmax", "input, dim=None"),  # undocumented on Tensor
    "Tensor.transpose": ("torch.Tensor.transpose", "dim0, dim1"),
    "Tensor.permute": ("torch.Tensor.permute", "*dims"),
    "Tensor.reshape": ("torch.Tensor.reshape", "*shape"),
    "Tensor.split": ("torch.Tensor.split", "split_size, dim=0"),
    "Tensor.chunk": ("torch.Tensor.chunk", "chunks, dim=0"),
    "Tensor.clamp": ("torch.Tensor.clamp", "min=None, max=None"),
    "Tensor.clip": ("torch.Tensor.clip", "min=None, max=None"),
    "Tensor.masked_fill": ("torch.Tensor.masked_fill", "mask, value"),
    "Tensor.gelu": ("F.gelu", "input, approximate='none'"),  # as F.gelu, with self as input
    "Tensor.relu": ("F.relu", "input"),
    "Tensor.exp": ("torch.Tensor.exp", ""), "Tensor.log": ("torch.Tensor.log", ""),
    "Tensor.sqrt": ("torch.Tensor.sqrt", ""), "Tensor.tanh": ("torch.Tensor.tanh", ""),
    "Tensor.sigmoid": ("torch.Tensor.sigmoid", ""), "Tensor.item": ("torch.Tensor.item", ""),
    # nn classes (constructor arguments, without self)
    "nn.Module": ("torch.nn.Module", ""),
    "nn.Parameter": ("torch.nn.Parameter", "data"),
    "optim.Optimizer": ("torch.optim.Optimizer", "params, defaults"),
    "nn.Linear": ("torch.nn.Linear", "in_features, out_features, bias=True"),
    "nn.Embedding": ("torch.nn.Embedding", "num_embeddings, embedding_dim, padding_idx=None"),
    "nn.LayerNorm": ("torch.nn.LayerNorm", "normalized_shape, eps=1e-05, elementwise_affine=True, bias=True"),
    "nn.Dropout": ("torch.nn.Dropout", "p=0.5, inplace=False"),
    "nn.GELU": ("torch.nn.GELU", "approximate='none'"),
    "nn.LSTM": ("torch.nn.LSTM", "input_size, hidden_size, num_layers=1, bias=True, batch_first=False, "
                                 "dropout=0.0, bidirectional=False, proj_size=0"),
    "nn.Sequential": ("torch.nn.Sequential", "*args"),
    "nn.ModuleList": ("torch.nn.ModuleList", "modules=None"),
    "nn.ModuleDict": ("torch.nn.ModuleDict", "modules=None"),
    # Module methods (without self)
    "Module.parameters": ("torch.nn.Module.parameters", "recurse=True"),
    "Module.named_parameters": ("torch.nn.Module.named_parameters", "prefix='', recurse=True, remove_duplicate=True"),
    "Module.modules": ("torch.nn.Module.modules", "remove_duplicate=True"),
    "Module.named_modules": ("torch.nn.Module.named_modules", "memo=None, prefix='', remove_duplicate=True"),
    "Module.children": ("torch.nn.Module.children", ""),
    "Module.named_children": ("torch.nn.Module.named_children", ""),
    "Module.state_dict": ("torch.nn.Module.state_dict", "*, prefix='', keep_vars=False"),
    "Module.load_state_dict": ("torch.nn.Module.load_state_dict", "state_dict, strict=True"),
    "Module.train": ("torch.nn.Module.train", "mode=True"),
    "Module.eval": ("torch.nn.Module.eval", ""),
    "Module.zero_grad": ("torch.nn.Module.zero_grad", "set_to_none=True"),
    # optimizers (without self)
    "optim.SGD": ("torch.optim.SGD", "params, lr=0.001, momentum=0, dampening=0, weight_decay=0, nesterov=False"),
    "optim.Adam": ("torch.optim.Adam", "params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0"),
    "optim.AdamW": ("torch.optim.AdamW", "params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01"),
    "optim.RMSprop": ("torch.optim.RMSprop", "params, lr=0.01, alpha=0.99, eps=1e-08, weight_decay=0, momentum=0, "
                                            "centered=False"),
    "optim.Adagrad": ("torch.optim.Adagrad", "params, lr=0.01, lr_decay=0, weight_decay=0, "
                                            "initial_accumulator_value=0, eps=1e-10"),
    "optim.Adamax": ("torch.optim.Adamax", "params, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0"),
    "optim.NAdam": ("torch.optim.NAdam", "params, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0, "
                                        "momentum_decay=0.004"),
    "optim.clip_grad_norm_": ("torch.nn.utils.clip_grad_norm_", "parameters, max_norm, norm_type=2.0, "
                                                               "error_if_nonfinite=False"),
    "Optimizer.zero_grad": ("torch.optim.Optimizer.zero_grad", "set_to_none=True"),
    "Optimizer.step": ("torch.optim.Optimizer.step", ""),
    "Optimizer.state_dict": ("torch.optim.Optimizer.state_dict", ""),
    "Optimizer.load_state_dict": ("torch.optim.Optimizer.load_state_dict", "state_dict"),
}

# shared names that knowingly differ from torch (docs/models.md lists them for users), or whose
# torch signature cannot be read, and why
DIFFERENT = {
    "F.conv1d": "channels last, (B, T, C) with weight (K, C_in, C_out), as the Keras layer it serves",
    "F.max_pool1d": "channels last, (B, T, C), with explicit left/right padding, for Keras' MaxPooling1D",
    "F.avg_pool1d": "channels last, (B, T, C), averaging real steps only, for Keras' AveragePooling1D",
    "F.lstm": "one layer over (B, T, I) with explicit weights; torch.lstm is an internal of nn.LSTM",
    "nn.GRU": "torch's takes *args, **kwargs; its documented arguments (input_size, hidden_size, "
              "num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False) are ours",
    "F.gru": "one layer over (B, T, I) with explicit weights; torch.gru is an internal of nn.GRU",
    "F.scaled_dot_product_attention": "torch's is a builtin with no readable signature; "
                                      "tests/test_attention_dropout.py compares it with the one in its docstring",
    "Module.to": "to(dtype) only: there are no devices",
    "Module.forward": "each layer's own arguments",
    "Module.extra_repr": "the same, no arguments",
    "Tensor.numpy": "no arguments; torch's has force= (to copy off a GPU)",
    "Tensor.detach": "no arguments, as torch's, whose builtin carries no signature to compare",
    "optim.ConstantLR": "a schedule returning one learning rate, not torch's LRScheduler multiplying it",
}

OBJECTS = {"F": F, "Tensor": Tensor, "nn": nn, "Module": nn.Module, "optim": optim, "Optimizer": optim.Optimizer}


def _ours(name):
    owner, attr = name.split(".")
    obj = getattr(OBJECTS[owner], attr)
    return obj.__init__ if inspect.isclass(obj) else obj


def _parse(text):
    """'input, dim=None, *, axis=None' -> [inspect.Parameter]. Annotations are dropped unread."""
    scope = {}
    exec(f"from __future__ import annotations\ndef f({text}): pass", {"__builtins__": builtins}, scope)
    return list(inspect.signature(scope["f"]).parameters.values())


def _params(fn, drop_self):
    params = list(inspect.signature(fn).parameters.values())
    return params[1:] if drop_self and params and params[0].name == "self" else params


POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _conforms(ours, promise):
    """Problems (a list of strings) with our parameters against the promised ones."""
    problems = []
    ours_pos = [p for p in ours if p.kind in POSITIONAL]
    promise_pos = [p for p in promise if p.kind in POSITIONAL]
    if [p.name for p in ours_pos] != [p.name for p in promise_pos]:
        problems.append(f"positional parameters {[p.name for p in ours_pos]}, torch's "
                        f"{[p.name for p in promise_pos]}")
    by_name = {p.name: p for p in ours}
    for p in promise:
        if p.kind == p.VAR_POSITIONAL:
            if not any(q.kind == q.VAR_POSITIONAL for q in ours):
                problems.append(f"no *{p.name}")
            continue
        mine = by_name.get(p.name)
        if mine is None:
            problems.append(f"no parameter {p.name!r}")
        elif p.default is not p.empty and mine.default != p.default:
            problems.append(f"{p.name}={mine.default!r}, torch's default {p.default!r}")
    return problems


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_signature_keeps_its_torch_promise(name):
    """Positional parameters exactly torch's (names, order, defaults); torch's keyword parameters
    with torch's defaults; anything tinygpt adds is keyword-only."""
    torch_name, text = SIGNATURES[name]
    ours = _params(_ours(name), drop_self=True)
    if name.startswith("Tensor.") and torch_name.startswith("F."):  # self plays input
        ours = [inspect.Parameter("input", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + ours
    problems = _conforms(ours, _parse(text))
    assert not problems, f"{name}{inspect.signature(_ours(name))} vs {torch_name}({text}): {'; '.join(problems)}"


# ----- against torch itself -------------------------------------------------------------------
def _torch_object(torch, torch_name):
    owner, _, attr = torch_name.rpartition(".")
    root = {"F": torch.nn.functional}.get(owner)
    if root is None:
        root = torch
        for part in owner.split(".")[1:]:
            root = getattr(root, part)
    return getattr(root, attr)


def _torch_signatures(torch, torch_name):
    """Every signature torch gives for the name: inspect's, or those in its docstring."""
    obj = _torch_object(torch, torch_name)
    if torch_name == "torch.nn.LSTM":  # LSTM(*args, **kwargs) passes everything to RNNBase but 'mode'
        return [_params(torch.nn.modules.rnn.RNNBase.__init__, True)[1:]]
    if torch_name == "torch.nn.Parameter":  # made in __new__(cls, data=None, requires_grad=True)
        return [list(inspect.signature(obj.__new__).parameters.values())[1:]]
    fn = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = _params(fn, drop_self=True)
        P = inspect.Parameter
        if [p.kind for p in params] != [P.VAR_POSITIONAL, P.VAR_KEYWORD] or torch_name == "torch.nn.Module":
            return [params]
    except (ValueError, TypeError):
        pass  # a builtin: its signatures are in its docstring
    short = torch_name.rpartition(".")[2]
    found = []
    for line in (obj.__doc__ or "").splitlines():
        m = re.match(rf"\s*(?:\.\. function:: )?{re.escape(short)}\((.*)\)\s*->", line)
        if m:
            try:
                found.append(_parse(m.group(1)))
            except SyntaxError:
                continue
    return found


def _promise_fits(promise, theirs):
    """The promised parameters are torch's: its positional ones in order, and the named ones
    with torch's defaults (a None default where torch has none stands for another overload)."""
    their_pos = [p for p in theirs if p.kind in POSITIONAL]
    promise_pos = [p for p in promise if p.kind in POSITIONAL]
    if [p.name for p in their_pos[:len(promise_pos)]] != [p.name for p in promise_pos]:
        return False
    by_name = {p.name: p for p in theirs}
    for p in promise:
        t = by_name.get(p.name)
        if p.kind == p.VAR_POSITIONAL:
            if not any(q.kind == q.VAR_POSITIONAL for q in theirs):
                return False
        elif t is None or (t.default is not t.empty and p.default is not p.empty
                           and not _same_default(t.default, p.default)):
            return False
        elif t.default is t.empty and p.default not in (p.empty, None):
            return False  # only None may stand for "not given" (torch's overload without it)
    return True


def _same_default(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_promise_is_torchs_signature(name):
    torch = pytest.importorskip("torch")
    torch_name, text = SIGNATURES[name]
    theirs = _torch_signatures(torch, torch_name)
    assert theirs, f"found no signature for {torch_name} in torch {torch.__version__}"
    promise = _parse(text)
    if name.startswith("F.") and torch_name.startswith("torch.Tensor."):
        promise = promise[1:]  # a function checked against the method: its input is the method's self
    assert any(_promise_fits(promise, t) for t in theirs), (
        f"{name}: {torch_name}({text}) is not torch {torch.__version__}'s; torch has "
        + " | ".join("(" + ", ".join(str(p) for p in t) + ")" for t in theirs))


def _shared_names(torch):
    """Every public name of tinygpt.functional, Tensor, nn, nn.Module, optim and Optimizer that
    torch also has, as 'F.sum', 'Tensor.sum', ..."""
    pairs = [("F", F, torch.nn.functional, torch), ("Tensor", Tensor, torch.Tensor, None),
             ("nn", nn, torch.nn, None), ("Module", nn.Module, torch.nn.Module, None),
             ("optim", optim, torch.optim, torch.nn.utils), ("Optimizer", optim.Optimizer, torch.optim.Optimizer, None)]
    names = []
    for label, ours, theirs, also in pairs:
        for attr in dir(ours):
            obj = getattr(ours, attr)
            if attr.startswith("_") or not callable(obj) or isinstance(obj, type(F)):
                continue
            if label == "F" and getattr(obj, "__module__", None) != "tinygpt.functional" or \
                    label == "F" and inspect.isclass(obj):
                continue  # imports (Tensor) and result types (MaxResult)
            if label == "nn" and attr not in nn.__all__ or label == "optim" and attr not in optim.__all__:
                continue
            if hasattr(theirs, attr) or (also is not None and hasattr(also, attr)):
                names.append(f"{label}.{attr}")
    return names


def test_every_name_shared_with_torch_has_a_promise_or_a_stated_difference():
    torch = pytest.importorskip("torch")
    unchecked = [n for n in _shared_names(torch) if n not in SIGNATURES and n not in DIFFERENT]
    assert not unchecked, (f"{unchecked} share a name with torch: add torch's signature to SIGNATURES "
                           f"(and take its arguments), or say how it differs in DIFFERENT and docs/models.md")


# ----- each spelling behaves (no torch needed) --------------------------------------------------
def x23():
    return Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "var"])
def test_reductions_take_numpy_and_torch_names_alike(name):
    fn = getattr(F, name)
    numpy_way = fn(x23(), axis=1, keepdims=True).data
    np.testing.assert_array_equal(fn(x23(), dim=1, keepdim=True).data, numpy_way)
    np.testing.assert_array_equal(getattr(x23(), name)(dim=1, keepdim=True).data, numpy_way)
    np.testing.assert_array_equal(getattr(x23(), name)(1, keepdim=True).data, numpy_way)
    with pytest.raises(TypeError, match=rf"^{name}: give axis= or dim=, not both"):
        fn(x23(), axis=1, dim=1)


def test_var_is_unbiased_by_default_as_in_torch():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    assert F.var(Tensor(x)).item() == pytest.approx(np.var(x, ddof=1))
    assert F.var(Tensor(x), correction=0).item() == pytest.approx(np.var(x))
    assert F.var(Tensor(x), ddof=0).item() == pytest.approx(np.var(x))


def test_max_with_a_dim_returns_values_and_indices():
    values, indices = F.max(Tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])), 1)
    np.testing.assert_array_equal(values.data, [5.0, 7.0])
    np.testing.assert_array_equal(indices, [1, 0])
    assert F.max(x23()).item() == 5.0


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_takes_dim_positionally_and_axis_by_keyword(fn):
    want = fn(x23(), axis=0).data
    np.testing.assert_array_equal(fn(x23(), 0).data, want)
    np.testing.assert_array_equal(fn(x23(), dim=0).data, want)
    np.testing.assert_array_equal(getattr(x23(), fn.__name__)(0).data, want)
    np.testing.assert_array_equal(fn(x23()).data, fn(x23(), -1).data)  # default: the last axis


def test_embedding_takes_the_indices_first_as_torch_does():
    weight = Tensor(np.arange(6, dtype=np.float32).reshape(3, 2))
    np.testing.assert_array_equal(F.embedding(np.array([2, 0]), weight).data, [[4, 5], [0, 1]])


def test_embedding_padding_idx_row_reads_its_value_and_gets_no_gradient():
    layer = nn.Embedding(4, 2, padding_idx=1, rng=0)
    np.testing.assert_array_equal(layer.weight.data[1], 0.0)  # starts at zero, as in torch
    (layer(np.array([1, 2, 1])) * np.ones((3, 2))).sum().backward()
    np.testing.assert_array_equal(layer.weight.grad[1], 0.0)
    np.testing.assert_array_equal(layer.weight.grad[2], 1.0)


def test_stack_and_cat_take_dim_or_axis():
    a, b = Tensor(np.ones(2)), Tensor(np.zeros(2))
    assert F.stack([a, b], 1).shape == F.stack([a, b], dim=1).shape == F.stack([a, b], axis=1).shape == (2, 2)
    assert F.cat([a, b]).shape == F.cat([a, b], axis=0).shape == F.concatenate([a, b], 0).shape == (4,)
    assert F.concatenate([a[None], b[None]], dim=1).shape == F.concatenate([a[None], b[None]], axis=1).shape == (1, 4)
    with pytest.raises(TypeError, match="stack: give axis= or dim=, not both"):
        F.stack([a, b], dim=1, axis=0)


def test_split_takes_a_size_and_chunk_a_count():
    x = Tensor(np.arange(10.0))
    assert [p.shape for p in F.split(x, 4)] == [(4,), (4,), (2,)]
    assert [p.shape for p in F.split(x, [3, 7])] == [(3,), (7,)]
    assert [p.shape for p in F.chunk(x, 4)] == [(3,), (3,), (3,), (1,)]
    assert [p.shape for p in x.chunk(6)] == [(2,)] * 5  # fewer pieces, as torch.chunk


def test_transpose_swaps_two_dims_and_permute_reorders_all():
    x = Tensor(np.zeros((2, 3, 4)))
    assert x.transpose(0, 2).shape == F.transpose(x, -1, 0).shape == (4, 3, 2)
    assert x.permute(1, 2, 0).shape == F.permute(x, (1, 2, 0)).shape == (3, 4, 2)
    assert x.T.shape == (4, 3, 2)


def test_gelu_is_exact_by_default_and_tanh_when_asked():
    x = Tensor(np.array([-1.5, 0.5, 2.0]))
    exact = 0.5 * x.data * (1 + np.array([__import__("math").erf(v / np.sqrt(2)) for v in x.data]))
    np.testing.assert_allclose(F.gelu(x).data, exact, rtol=1e-12)
    np.testing.assert_allclose(nn.GELU()(x).data, exact, rtol=1e-12)
    tanh = 0.5 * x.data * (1 + np.tanh(np.sqrt(2 / np.pi) * (x.data + 0.044715 * x.data ** 3)))
    np.testing.assert_allclose(F.gelu(x, approximate="tanh").data, tanh, rtol=1e-12)
    assert tinygpt.models.GPT(tinygpt.GPTConfig(n_layer=1, n_head=1, n_embd=4, block_size=4, vocab_size=5)
                              ).transformer.h[0].mlp.gelu.approximate == "tanh"  # GPT-2's


def test_module_methods_take_torchs_options():
    model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.Linear(3, 1, bias=False, rng=1))
    assert [n for n, _ in model.named_parameters(prefix="net")] == ["net.0.weight", "net.0.bias", "net.1.weight"]
    assert model.parameters(recurse=False) == []
    assert list(model.state_dict(prefix="m.")) == ["m.0.weight", "m.0.bias", "m.1.weight"]
    assert model.state_dict(keep_vars=True)["0.weight"] is model[0].weight
    (model(Tensor(np.ones((1, 2)))) * 1.0).sum().backward()
    model.zero_grad(set_to_none=False)
    assert all(np.array_equal(p.grad, np.zeros(p.shape)) for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.load_state_dict(state_dict=model.state_dict(), strict=True).missing_keys == []


def test_layer_norm_and_lstm_take_torchs_layer_options():
    ln = nn.LayerNorm((2, 3), elementwise_affine=False)
    assert ln.weight is None and ln.bias is None and ln.parameters() == []
    assert ln(Tensor(np.arange(12.0).reshape(2, 2, 3))).shape == (2, 2, 3)
    time_first = nn.LSTM(3, 4, rng=0)  # batch_first=False: (T, B, I), as torch's default
    batch_first = nn.LSTM(3, 4, batch_first=True, rng=0)
    x = np.random.default_rng(0).normal(size=(5, 2, 3)).astype(np.float32)
    out_t, _ = time_first(Tensor(x))
    out_b, _ = batch_first(Tensor(x.transpose(1, 0, 2)))
    np.testing.assert_allclose(out_t.data, out_b.data.transpose(1, 0, 2), rtol=1e-6)
    assert [n for n, _ in nn.LSTM(3, 4, bias=False).named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    with pytest.raises(NotImplementedError, match="bidirectional=True and proj_size=0 are not supported"):
        nn.LSTM(3, 4, bidirectional=True)
