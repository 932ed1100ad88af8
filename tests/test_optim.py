"""tinygpt.optim: each update rule against its formula written out in NumPy, weight-decay groups,
state_dict resume == uninterrupted run, clip_grad_norm_ (NaN included), and schedule values."""

import json
import math

import numpy as np
import pytest

import tinygpt.nn as nn
from tinygpt.models import GPT, GPTConfig
from tinygpt.optim import (SGD, Adam, AdamW, ConstantLR, WarmupCosine, clip_grad_norm_,
                           weight_decay_groups)


def params_with_grads(seed=0, shapes=((3, 4), (4,))):
    rng = np.random.default_rng(seed)
    ps = [nn.Parameter(rng.standard_normal(s)) for s in shapes]
    return ps


def set_grads(ps, step):
    rng = np.random.default_rng(100 + step)
    for p in ps:
        p.grad = rng.standard_normal(p.shape).astype(p.dtype)


def grads_at(step):
    """The gradients set_grads gives at `step`, as float64 arrays."""
    ps = params_with_grads()
    set_grads(ps, step)
    return [p.grad.astype(np.float64) for p in ps]


def run(make_opt, steps, ps=None, start=0, opt=None):
    ps = ps or params_with_grads()
    opt = opt or make_opt(ps)
    for step in range(start, start + steps):
        set_grads(ps, step)
        opt.step()
    return ps, opt


# --- update rules against their formulas ----------------------------------------------------


def test_sgd_momentum_nesterov_and_weight_decay_follow_the_formula():
    lr, mu, wd = 0.1, 0.9, 0.01
    for nesterov in (False, True):
        ps, _ = run(lambda ps: SGD(ps, lr=lr, momentum=mu, nesterov=nesterov, weight_decay=wd), 3)
        for k, p0 in enumerate(params_with_grads()):
            w, buf = p0.data.astype(np.float64), None
            for step in range(3):
                g = grads_at(step)[k] + wd * w
                buf = g if buf is None else mu * buf + g
                w = w - lr * (g + mu * buf if nesterov else buf)
            np.testing.assert_allclose(ps[k].data, w, rtol=1e-5, atol=1e-6)


def test_plain_sgd_is_w_minus_lr_g():
    (p,), _ = run(lambda ps: SGD(ps, lr=0.5), 1, ps=params_with_grads(shapes=((2, 2),)))
    p0 = params_with_grads(shapes=((2, 2),))[0]
    set_grads([p0], 0)
    np.testing.assert_allclose(p.data, p0.data - 0.5 * p0.grad, rtol=1e-6)


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_adam_and_adamw_follow_the_formula(cls):
    lr, b1, b2, eps, wd = 1e-2, 0.8, 0.9, 1e-8, 0.1
    groups = lambda ps: [{"params": ps, "weight_decay": wd}]  # noqa: E731  decay every parameter
    ps, _ = run(lambda ps: cls(groups(ps), lr=lr, betas=(b1, b2), eps=eps), 4)
    for k, p0 in enumerate(params_with_grads()):
        w, m, v = p0.data.astype(np.float64), 0.0, 0.0
        for t in range(1, 5):
            g = grads_at(t - 1)[k]
            if cls is AdamW:
                w = w * (1 - lr * wd)  # decoupled: shrink the weight itself
            else:
                g = g + wd * w  # L2: through the gradient
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        np.testing.assert_allclose(ps[k].data, w, rtol=1e-5, atol=1e-6)


def test_parameters_without_gradient_are_left_alone():
    ps = params_with_grads()
    before = ps[1].data.copy()
    opt = AdamW(ps, lr=0.1)
    ps[0].grad = np.ones(ps[0].shape, np.float32)
    opt.step()
    np.testing.assert_array_equal(ps[1].data, before)
    assert ps[1] not in opt.state and opt.state[ps[0]]["step"] == 1
    opt.zero_grad()
    assert ps[0].grad is None


# --- weight decay groups ----------------------------------------------------------------------


def test_adamw_by_default_decays_only_2d_parameters():
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4))
    groups = weight_decay_groups(model.named_parameters(), 0.1)
    decayed, plain = groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert "transformer.wte.weight" in decayed["names"] and "transformer.h.0.attn.c_attn.weight" in decayed["names"]
    assert all(n.endswith((".bias", "ln_1.weight", "ln_2.weight", "ln_f.weight")) for n in plain["names"])
    opt = AdamW(model.parameters(), weight_decay=0.1)  # plain parameters: the same split
    assert [len(g["params"]) for g in opt.param_groups] == [len(decayed["params"]), len(plain["params"])]
    # only 1-D parameters, zero gradient: AdamW does not move them at all
    bias = nn.Parameter(np.ones(3))
    bias.grad = np.zeros(3, np.float32)
    AdamW([bias], lr=1.0, weight_decay=0.5).step()
    np.testing.assert_array_equal(bias.data, np.ones(3))


def test_optimizer_rejects_bad_groups():
    p = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="more than one group"):
        SGD([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="unknown group option"):
        SGD([{"params": [p], "momentun": 0.9}])
    with pytest.raises(ValueError, match="empty"):
        Adam([])
    with pytest.raises(TypeError, match="Parameters"):
        Adam([np.ones(2)])
    with pytest.raises(ValueError, match="nesterov"):
        SGD([p], nesterov=True)


# --- state_dict: a resumed run continues exactly --------------------------------------------------


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
                                  lambda ps: Adam(ps, lr=1e-2, weight_decay=0.01),
                                  lambda ps: AdamW(ps, lr=1e-2, betas=(0.8, 0.9), weight_decay=0.1)])
def test_optimizer_state_dict_resume_equals_an_uninterrupted_run(make):
    straight, _ = run(make, 6)
    ps, opt = run(make, 3)
    saved = opt.state_dict()
    arrays = {k: v for s in saved["state"].values() for k, v in s.items() if isinstance(v, np.ndarray)}
    assert arrays  # the moments / momentum buffers are arrays ...
    scalars = {"param_groups": saved["param_groups"],
               "state": {i: {k: v for k, v in s.items() if not isinstance(v, np.ndarray)}
                         for i, s in saved["state"].items()}}
    json.dumps(scalars)  # ... and everything else is JSON-able
    for s in saved["state"].values():
        for v in s.values():
            if isinstance(v, np.ndarray):
                v += 1000.0  # the saved arrays are copies, not the live state
    saved = opt.state_dict()
    fresh_params = [nn.Parameter(p.data.copy()) for p in ps]
    fresh = make(fresh_params)
    fresh.load_state_dict(json.loads(json.dumps(scalars)) | {"state": saved["state"]})
    run(make, 3, ps=fresh_params, start=3, opt=fresh)
    for a, b in zip(straight, fresh_params):
        np.testing.assert_array_equal(a.data, b.data)


def test_optimizer_load_state_dict_rejects_a_different_model():
    opt = Adam(params_with_grads(), lr=0.1)
    run(None, 1, ps=opt.parameters(), opt=opt)
    other = Adam(params_with_grads(shapes=((3, 4),)))
    with pytest.raises(ValueError, match="hold"):
        other.load_state_dict(opt.state_dict())
    swapped = Adam(params_with_grads(shapes=((4,), (3, 4))))
    with pytest.raises(ValueError, match="shape"):
        swapped.load_state_dict(opt.state_dict())


# --- clip_grad_norm_ ----------------------------------------------------------------------------


def test_clip_grad_norm_scales_all_gradients_to_max_norm():
    ps = params_with_grads()
    set_grads(ps, 0)
    grads = [p.grad.copy() for p in ps]
    total = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    assert clip_grad_norm_(ps, 1.0) == pytest.approx(total, rel=1e-12)
    clipped = math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in ps))
    assert clipped == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(ps[0].grad / grads[0], 1.0 / (total + 1e-6), rtol=1e-5)  # one factor for all
    set_grads(ps, 0)
    assert clip_grad_norm_(ps, 1e6) == pytest.approx(total)  # under the limit: untouched
    np.testing.assert_array_equal(ps[0].grad, grads[0])
    assert clip_grad_norm_([nn.Parameter(np.ones(2))], 1.0) == 0.0  # no gradients at all


def test_clip_grad_norm_sums_large_gradients_in_float64_chunks():
    from tinygpt.ops import reduce
    rng = np.random.default_rng(3)
    big = nn.Parameter(np.zeros((3, reduce._CHUNK // 2 + 7), np.float32))  # 1.5 chunks and a bit
    big.grad = (rng.standard_normal(big.data.shape) * 1e3).astype(np.float32)
    want = math.sqrt(float((big.grad.astype(np.float64) ** 2).sum()))
    assert clip_grad_norm_([big], 1e12) == pytest.approx(want, rel=1e-12)


def test_clip_grad_norm_propagates_nan_and_inf():
    ps = params_with_grads()
    set_grads(ps, 0)
    ps[1].grad[0] = np.nan
    assert math.isnan(clip_grad_norm_(ps, 1.0))
    assert np.isnan(ps[0].grad).all()
    set_grads(ps, 0)
    ps[1].grad[0] = np.inf
    assert clip_grad_norm_(ps, 1.0) == math.inf


# --- schedules ----------------------------------------------------------------------------------


def test_warmup_cosine_values():
    s = WarmupCosine(max_lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert s(0) == pytest.approx(0.1) and s(4) == pytest.approx(0.5) and s(9) == pytest.approx(1.0)
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.55)  # halfway through the cosine: the mean of max and min
    assert s(35) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert s(110) == pytest.approx(0.1) and s(10_000) == pytest.approx(0.1)
    values = [s(i) for i in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # decays monotonically
    assert ConstantLR(3e-4)(123) == 3e-4
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupCosine(1.0, 0.1, warmup_steps=20, max_steps=10)
    with pytest.raises(ValueError, match="min_lr"):
        WarmupCosine(1.0, 2.0, 1, 10)


def test_schedule_sets_the_optimizer_lr_and_resumes_from_its_state_dict():
    opt = AdamW(params_with_grads(), lr=123.0)
    s = WarmupCosine(max_lr=1.0, min_lr=0.1, warmup_steps=3, max_steps=20)
    lrs = [s.step(opt) for _ in range(5)]
    assert lrs == [s(i) for i in range(5)] and all(g["lr"] == lrs[-1] for g in opt.param_groups)
    state = json.loads(json.dumps(s.state_dict()))
    resumed = WarmupCosine(max_lr=1.0, min_lr=0.1, warmup_steps=3, max_steps=20)
    resumed.load_state_dict(state)
    assert [resumed.step(opt) for _ in range(3)] == [s.step(opt) for _ in range(3)]
    with pytest.raises(ValueError, match="differs"):
        WarmupCosine(max_lr=2.0, min_lr=0.1, warmup_steps=3, max_steps=20).load_state_dict(state)
