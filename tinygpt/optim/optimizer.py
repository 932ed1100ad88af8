"""The Optimizer base class: parameter groups, per-parameter state, zero_grad, and state_dict.

A group is a dict: {"params": [...], "lr": ..., "weight_decay": ..., ...}; each group may override
the optimizer's defaults (e.g. no weight decay for biases). `state[param]` holds what an update
keeps between steps (momentum, moments, step count). Not here: any update rule (sgd.py, adam.py).
"""

import numpy as np

from tinygpt.tensor import Tensor


def _as_groups(params):
    """Parameters, (name, Parameter) pairs, or group dicts -> a list of group dicts."""
    params = list(params)
    if not params:
        raise ValueError("the optimizer got an empty list of parameters")
    if all(isinstance(p, dict) for p in params):
        return [dict(g) for g in params]
    if all(isinstance(p, tuple) and len(p) == 2 for p in params):
        params = [p for _, p in params]
    return [{"params": params}]


class Optimizer:
    """Subclasses set `defaults` via super().__init__ and define `update(param, grad, group, state)`."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        seen = set()
        for group in _as_groups(params):
            unknown = set(group) - set(defaults) - {"params", "names"}
            if unknown:
                raise ValueError(f"{type(self).__name__}: unknown group option(s) {sorted(unknown)}; "
                                 f"known: {sorted(defaults)}")
            group = {**self.defaults, **group, "params": list(group["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor) or not p.requires_grad:
                    raise TypeError(f"{type(self).__name__} optimizes Parameters (requires_grad=True), "
                                    f"got {type(p).__name__}")
                if id(p) in seen:
                    raise ValueError(f"{type(self).__name__}: a parameter of shape {p.shape} appears "
                                     f"in more than one group")
                seen.add(id(p))
            self.param_groups.append(group)
        self.state = {}  # Parameter -> dict of arrays and scalars; filled on its first update

    def parameters(self):
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none=True):
        """Forget every gradient: None (the default, as in PyTorch), or arrays of zeros."""
        for p in self.parameters():
            p.grad = None if set_to_none or p.grad is None else np.zeros_like(p.data)

    def step(self):
        """Update every parameter that has a gradient; parameters without one are left alone."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad, group, self.state.setdefault(p, {}))

    def update(self, param, grad, group, state):
        raise NotImplementedError

    # ----- saving and loading -----------------------------------------------------------------
    def state_dict(self):
        """{"param_groups": [options + "params": indices], "state": {"<index>": {name: array or scalar}}}.
        Parameters are numbered in group order; arrays are copies, everything else is JSON-able."""
        index = {id(p): i for i, p in enumerate(self.parameters())}
        groups = []
        for group in self.param_groups:
            options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
            groups.append({**options, "params": [index[id(p)] for p in group["params"]]})
        state = {str(index[id(p)]): {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for p, s in self.state.items()}
        return {"param_groups": groups, "state": state}

    def load_state_dict(self, state_dict):
        """Restore options and state saved by state_dict() from an optimizer over the same parameters."""
        groups = state_dict["param_groups"]
        sizes = [len(g["params"]) for g in self.param_groups]
        if [len(g["params"]) for g in groups] != sizes:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved groups hold "
                             f"{[len(g['params']) for g in groups]} parameters, this optimizer's {sizes}")
        params = self.parameters()
        new_state = {}
        for key, saved in state_dict["state"].items():
            p = params[int(key)]
            entry = {}
            for name, value in saved.items():
                if isinstance(value, np.ndarray):
                    if value.shape != p.shape:
                        raise ValueError(f"{type(self).__name__}.load_state_dict: state {name!r} of "
                                         f"parameter {key} has shape {value.shape}, the parameter {p.shape}")
                    value = value.astype(p.dtype, copy=True)
                entry[name] = value
            new_state[p] = entry
        for group, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(self.defaults.get(k), tuple) else v
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__}("]
        for i, group in enumerate(self.param_groups):
            options = ", ".join(f"{k}={v}" for k, v in group.items() if k not in ("params", "names"))
            lines.append(f"  group {i}: {len(group['params'])} parameters, {options}")
        return "\n".join(lines + [")"])


def weight_decay_groups(params, weight_decay):
    """model.named_parameters() (or plain Parameters) -> two groups: the 2-D+ weights (matrices,
    embeddings) with weight_decay, and the 1-D ones (biases, LayerNorm gains) with none: pulling a
    gain or a bias towards 0 regularises nothing, it only distorts the layer."""
    named = [p if isinstance(p, tuple) else (None, p) for p in params]
    groups = []
    for decays, wd in ((True, weight_decay), (False, 0.0)):
        chosen = [(n, p) for n, p in named if (p.ndim >= 2) == decays]
        if chosen:
            group = {"params": [p for _, p in chosen], "weight_decay": wd}
            if all(n is not None for n, _ in chosen):
                group["names"] = [n for n, _ in chosen]  # kept so a reader can see who decays
            groups.append(group)
    return groups
