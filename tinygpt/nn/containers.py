"""Containers that hold other Modules under numbered or named keys: Sequential, ModuleList, ModuleDict.

Their children are named "0", "1", ... (or by key), which is where names like `h.0.attn` come from.
Not here: any computation of their own beyond Sequential's chaining.
"""

from tinygpt.nn.module import Module


class ModuleList(Module):
    """A list of Modules, each registered under its index: `blocks[0]`, `for b in blocks`."""

    def __init__(self, modules=None):
        super().__init__()
        for module in modules or ():
            self.append(module)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__} holds Modules, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return list(self._modules.values())[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))


class Sequential(ModuleList):
    """Modules applied one after another: Sequential(a, b, c)(x) == c(b(a(x)))."""

    def __init__(self, *modules):
        super().__init__(modules)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*list(self._modules.values())[index])
        return super().__getitem__(index)

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


class ModuleDict(Module):
    """Modules registered under string keys: ModuleDict(wte=..., h=...); `d.wte` or `d["wte"]`."""

    def __init__(self, modules=None, **named):
        super().__init__()
        for key, module in {**(modules or {}), **named}.items():
            self[key] = module

    def __setitem__(self, key, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict[{key!r}] must be a Module, got {type(module).__name__}")
        setattr(self, key, module)

    def __getitem__(self, key):
        return self._modules[key]

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules))

    def keys(self):
        return list(self._modules.keys())

    def items(self):
        return list(self._modules.items())

    def values(self):
        return list(self._modules.values())
