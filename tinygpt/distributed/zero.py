"""ZeRO stage 1: AdamW whose moments are split across the ranks.

The parameters, laid end to end in optimizer order, form one flat vector of N floats; rank r owns
elements [r*S, (r+1)*S) with S = ceil(N / ranks). Each rank keeps exp_avg and exp_avg_sq for its
slice only (2*S floats instead of 2*N), updates that slice with the same adamw_update kernel as
AdamW, element for element, and an allgather gives every rank every updated slice. Gradients are
averaged in full beforehand (buckets.py), so clipping sees the global norm as in one process.
state_dict() gathers the slices into AdamW's own layout, so a checkpoint resumes at any rank
count, with or without ZeRO. Not here: sharded gradients or parameters (ZeRO stages 2 and 3).
"""

import math

import numpy as np

from tinygpt.ops.adamw import adamw_update
from tinygpt.optim import AdamW


class ZeroAdamW(AdamW):
    """AdamW(params, ...) with its moments sharded over `world`'s ranks (ZeRO-1)."""

    def __init__(self, params, world, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.world = world
        for p in self.parameters():
            if p.data.dtype != np.float32 or not p.data.flags.c_contiguous:
                raise TypeError(f"ZeroAdamW needs C-contiguous float32 parameters, got one of shape "
                                f"{p.shape} and dtype {p.data.dtype}")
        sizes = [p.data.size for p in self.parameters()]
        self.offsets = np.cumsum([0] + sizes)  # parameter i is flat[offsets[i]:offsets[i+1]]
        self.total = int(self.offsets[-1])
        self.shard = math.ceil(self.total / world.size)  # S: the last rank's slice may be padding
        self.lo = min(world.rank * self.shard, self.total)
        self.hi = min(self.lo + self.shard, self.total)
        # [(index, start, stop)]: the part [start, stop) of parameter `index` (its own flat
        # positions) that falls in this rank's slice
        self.pieces = []
        for i, (a, b) in enumerate(zip(self.offsets[:-1], self.offsets[1:])):
            start, stop = max(a, self.lo), min(b, self.hi)
            if start < stop:
                self.pieces.append((i, int(start - a), int(stop - a)))

    def optimizer_bytes(self):
        """Bytes of moments this rank holds (AdamW without ZeRO: 8 bytes per parameter)."""
        return sum(v.nbytes for s in self.state.values() for v in s.values() if isinstance(v, np.ndarray))

    # ----- the step ---------------------------------------------------------------------------
    def step(self):
        params = self.parameters()
        group_of = {id(p): g for g in self.param_groups for p in g["params"]}
        mine = {i: (start, stop) for i, start, stop in self.pieces}
        for i, p in enumerate(params):
            if p.grad is None:  # the same on every rank: the gradients were averaged
                continue
            state = self.state.setdefault(p, {"step": 0})
            state["step"] += 1
            if i not in mine:
                continue
            start, stop = mine[i]
            if "exp_avg" not in state:
                state["exp_avg"] = np.zeros(stop - start, dtype=np.float32)  # m of this slice
                state["exp_avg_sq"] = np.zeros(stop - start, dtype=np.float32)  # v of this slice
            group = group_of[id(p)]
            beta1, beta2 = group["betas"]
            adamw_update(p.data.reshape(-1)[start:stop], np.ascontiguousarray(p.grad).reshape(-1)[start:stop],
                         state["exp_avg"], state["exp_avg_sq"], group["lr"], beta1, beta2, group["eps"],
                         group["weight_decay"], state["step"])
        self._gather_parameters(params)

    def _gather_parameters(self, params):
        """Every rank's updated slice -> every rank's parameters."""
        send = np.zeros(self.shard, dtype=np.float32)  # (S,)
        self._copy_slice(params, send, lambda p, start, stop: p.data.reshape(-1)[start:stop])
        every = np.empty(self.shard * self.world.size, dtype=np.float32)  # (ranks * S,), freed after the step
        self.world.allgather_(send, every, "the ZeRO-1 parameter allgather")
        for p, a, b in zip(params, self.offsets[:-1], self.offsets[1:]):
            p.data.reshape(-1)[:] = every[a:b]

    def _copy_slice(self, params, out, part):
        for i, start, stop in self.pieces:
            at = self.offsets[i] + start - self.lo
            out[at:at + stop - start] = part(params[i], start, stop)

    # ----- saving and loading: AdamW's own layout ---------------------------------------------
    def state_dict(self):
        """AdamW's state_dict, the moments gathered whole on rank 0 (a collective: every rank calls it;
        the other ranks get their own slices only and should not save them)."""
        params = self.parameters()
        full = {}
        for name in ("exp_avg", "exp_avg_sq"):
            send = np.zeros(self.shard, dtype=np.float32)
            self._copy_slice(params, send, lambda p, start, stop: self.state.get(p, {}).get(name, 0.0))
            every = np.zeros(self.shard * self.world.size, dtype=np.float32) if self.world.is_root else None
            self.world.gather_(send, every, f"the ZeRO-1 gather of {name}")
            full[name] = every
        saved = super().state_dict()
        if self.world.is_root:
            for i, p in enumerate(params):
                entry = saved["state"].get(str(i))
                if entry is not None:
                    a, b = self.offsets[i], self.offsets[i + 1]
                    entry.update({name: full[name][a:b].reshape(p.data.shape).copy() for name in full})
        return saved

    def load_state_dict(self, state_dict):
        """Restore AdamW's layout (whole moments), keeping this rank's slice of them."""
        super().load_state_dict(state_dict)
        params = self.parameters()
        mine = {i: (start, stop) for i, start, stop in self.pieces}
        for i, p in enumerate(params):
            state = self.state.get(p)
            if state is None:
                continue
            for name in ("exp_avg", "exp_avg_sq"):
                whole = state.pop(name, None)
                if whole is not None and i in mine:
                    start, stop = mine[i]
                    state[name] = np.ascontiguousarray(whole.reshape(-1)[start:stop], dtype=np.float32)
