"""Parameter and Module: the bookkeeping that turns a tree of layers into one list of weights.

A Module registers every Parameter and sub-Module assigned to one of its attributes, so
`named_parameters()` can walk the tree and give each weight a dotted name
(`transformer.h.0.attn.c_attn.weight`), which `state_dict()` / `load_state_dict()` use as keys.
Not here: any layer (layers.py, lstm.py, models/gpt.py) or any math (tinygpt.functional).
"""

from collections import namedtuple

import numpy as np

from tinygpt.tensor import Tensor


class Parameter(Tensor):
    """A Tensor a Module learns: requires_grad=True, and found by `Module.parameters()`."""

    __slots__ = ()  # Tensor uses __slots__; an empty one keeps Parameter just as small

    def __init__(self, data, *, dtype=None):
        super().__init__(data, requires_grad=True, dtype=dtype)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


def as_rng(rng):
    """None -> a fresh unseeded Generator; an int -> Generator seeded with it; a Generator -> itself."""
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be None, an int seed or a np.random.Generator, got {type(rng).__name__}")


LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model. Subclasses call `super().__init__()` first, then assign
    Parameters and Modules as attributes, and define `forward`; `module(x)` calls `forward(x)`."""

    def __init__(self):
        # object.__setattr__ because our own __setattr__ needs these two dicts to exist already
        object.__setattr__(self, "_parameters", {})  # attribute name -> Parameter
        object.__setattr__(self, "_modules", {})  # attribute name -> Module
        object.__setattr__(self, "training", True)

    # ----- registration ---------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot set {name!r} before Module.__init__ ran: call "
                                 f"super().__init__() first in {type(self).__name__}.__init__")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif isinstance(value, Tensor) and value.requires_grad and value.is_leaf:
            # NOTE: a plain leaf Tensor would silently never be trained or saved
            raise TypeError(f"{type(self).__name__}.{name} is a Tensor with requires_grad=True; "
                            f"wrap it in nn.Parameter(...) so the module registers it")
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    # ----- walking the tree -----------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """[(dotted name, module)] for this module (`prefix`) and every descendant, parents first;
        a module reached twice is listed once unless remove_duplicate=False. memo: a set of
        modules to leave out (they and everything below them), as in torch."""
        result, seen = [], set() if memo is None else {id(m) for m in memo}
        stack = [(prefix, self)]  # a stack, not recursion: the tree is walked in definition order
        while stack:
            name, module = stack.pop()
            if remove_duplicate and id(module) in seen:
                continue
            seen.add(id(module))
            result.append((name, module))
            children = [(f"{name}.{key}" if name else key, child)
                        for key, child in module._modules.items()]
            stack.extend(reversed(children))
        return result

    def modules(self, remove_duplicate=True):
        return [module for _, module in self.named_modules(remove_duplicate=remove_duplicate)]

    def named_children(self):
        return list(self._modules.items())

    def children(self):
        return list(self._modules.values())

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """[(dotted name, Parameter)], names starting with `prefix`; recurse=False lists only this
        module's own. A Parameter shared by two modules (tied weights) appears once, under the
        first name met, so it is counted, saved and updated once (unless remove_duplicate=False)."""
        result, seen = [], set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for name, module in modules:
            for key, param in module._parameters.items():
                if param is None:
                    continue
                if not remove_duplicate or id(param) not in seen:
                    seen.add(id(param))
                    result.append((f"{name}.{key}" if name else key, param))
        return result

    def parameters(self, recurse=True):
        return [param for _, param in self.named_parameters(recurse=recurse)]

    def num_parameters(self):
        return sum(param.size for param in self.parameters())

    # ----- modes, gradients, dtype ----------------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout active) for this module and all below it; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Forget every gradient: None (the default, as in PyTorch), or arrays of zeros."""
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad = np.zeros_like(param.data)

    def to(self, dtype):
        """Convert every parameter to `dtype` in place (same Parameter objects, so ties and
        optimizers keep pointing at them); e.g. `model.to(np.float64)` for gradient checks."""
        for param in self.parameters():
            param.data = param.data.astype(dtype)
            param.grad = None
        return self

    # ----- saving and loading ---------------------------------------------------------------
    def state_dict(self, *, prefix="", keep_vars=False):
        """{dotted name (after `prefix`): a copy of the parameter's array}, or with keep_vars=True
        the Parameters themselves."""
        return {prefix + name: (param if keep_vars else param.data.copy())
                for name, param in self.named_parameters()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from `state` into the parameters (in place, cast to each parameter's dtype).

        Shape mismatches always raise; with strict=True missing and unexpected keys raise too, all
        listed in one ValueError. Returns LoadResult(missing_keys, unexpected_keys)."""
        state = {k: (v.data if isinstance(v, Tensor) else v) for k, v in state_dict.items()}
        own = dict(self.named_parameters())
        missing = [name for name in own if name not in state]
        unexpected = [name for name in state if name not in own]
        mismatched = [f"{name}: state {tuple(np.shape(state[name]))} vs model {own[name].shape}"
                      for name in own if name in state and tuple(np.shape(state[name])) != own[name].shape]
        problems = []
        if strict and missing:
            problems.append(f"missing keys (in the model, not in the state): {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys (in the state, not in the model): {', '.join(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatches: {'; '.join(mismatched)}")
        if problems:
            hint = ("hint: a checkpoint from a different config? compare the shapes above; "
                    "strict=False loads the keys that match and skips the rest")
            raise ValueError(f"load_state_dict({type(self).__name__}): "
                             + "\n  ".join([""] + problems) + f"\n{hint}")
        for name, param in own.items():
            if name in state:
                np.copyto(param.data, np.asarray(state[name]), casting="same_kind")
        return LoadResult(missing, unexpected)

    # ----- calling and printing -------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self):
        """The arguments shown inside `Name(...)`, e.g. `in_features=4, out_features=8`."""
        return ""

    def __repr__(self):
        count = f"  # {self.num_parameters():,} parameters" if self._parameters or self._modules else ""
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()}){count}"
        lines = [f"{type(self).__name__}({count}"] + ([f"  {self.extra_repr()}"] if self.extra_repr() else [])
        for name, child in self._modules.items():
            child_text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_text}")
        lines.append(")")
        return "\n".join(lines)
