"""tinygpt.optim Adagrad, Adamax, NAdam step for step against torch.optim (same names, arguments
and rules), and tinygpt.keras Adagrad, Adamax, Nadam against Keras' rules written out in NumPy."""

import numpy as np
import pytest

import tinygpt.nn as nn
from tinygpt import optim
from tinygpt.keras import optimizers as kopt

SHAPES = ((3, 4), (4,))


def grads(step):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s) for s in SHAPES]


def start():
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s) for s in SHAPES]


def run_tinygpt(make, steps):
    ps = [nn.Parameter(w.astype(np.float64)) for w in start()]
    opt = make(ps)
    for step in range(steps):
        for p, g in zip(ps, grads(step)):
            p.grad = g.copy()
        opt.step()
    return [p.data for p in ps]


def run_torch(make, steps):
    torch = pytest.importorskip("torch")  # the oracle; the Keras-rule tests below need no torch
    ps = [torch.nn.Parameter(torch.tensor(w, dtype=torch.float64)) for w in start()]
    opt = make(ps)
    for step in range(steps):
        for p, g in zip(ps, grads(step)):
            p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return [p.detach().numpy() for p in ps]


CASES = [
    ("Adagrad", {}), ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1,
                                      initial_accumulator_value=0.2, eps=1e-6)),
    ("Adamax", {}), ("Adamax", dict(lr=0.05, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.1)),
    ("NAdam", {}), ("NAdam", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-4, weight_decay=0.1,
                                  momentum_decay=0.01)),
]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_optim_new_rules_match_torch_step_for_step(name, kwargs):
    ours = run_tinygpt(lambda ps: getattr(optim, name)(ps, **kwargs), 12)
    torch = pytest.importorskip("torch")
    theirs = run_torch(lambda ps: getattr(torch.optim, name)(ps, **kwargs), 12)
    # torch keeps NAdam's mu_product as a float32 scalar tensor: that alone costs ~1e-8
    rtol = 1e-7 if name == "NAdam" else 1e-10
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("name", ["Adagrad", "Adamax", "NAdam"])
def test_optim_new_rules_reject_negative_lr(name):
    with pytest.raises(ValueError, match="lr=-1"):
        getattr(optim, name)([nn.Parameter(np.zeros(2))], lr=-1)


# --- Keras' rules, written out from keras/src/optimizers/{adagrad,adamax,nadam}.py -------------
def keras_adagrad(steps, lr=0.001, init=0.1, eps=1e-7):
    ws = start()
    acc = [np.full_like(w, init) for w in ws]
    for step in range(steps):
        for w, a, g in zip(ws, acc, grads(step)):
            a += g * g
            w -= lr * g / np.sqrt(a + eps)
    return ws


def keras_adamax(steps, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    ws = start()
    ms, us = [np.zeros_like(w) for w in ws], [np.zeros_like(w) for w in ws]
    for step in range(steps):
        t = step + 1
        for w, m, u, g in zip(ws, ms, us, grads(step)):
            m += (g - m) * (1 - b1)
            u[...] = np.maximum(b2 * u, np.abs(g))
            w -= lr / (1 - b1 ** t) * m / (u + eps)
    return ws


def keras_nadam(steps, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    ws = start()
    ms, vs = [np.zeros_like(w) for w in ws], [np.zeros_like(w) for w in ws]
    u_product = 1.0
    for step in range(steps):
        local_step, next_step = step + 1, step + 2
        u_t = b1 * (1.0 - 0.5 * 0.96 ** (0.004 * local_step))
        u_t_1 = b1 * (1.0 - 0.5 * 0.96 ** (0.004 * next_step))
        u_product_t = u_product * u_t
        u_product_t_1 = u_product_t * u_t_1
        for w, m, v, g in zip(ws, ms, vs, grads(step)):
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - b2)
            m_hat = u_t_1 * m / (1 - u_product_t_1) + (1 - u_t) * g / (1 - u_product_t)
            v_hat = v / (1 - b2 ** local_step)
            w -= lr * m_hat / (np.sqrt(v_hat) + eps)
        u_product = u_product_t
    return ws


def run_keras(opt, steps):
    ps = [nn.Parameter(w.astype(np.float64)) for w in start()]
    opt.build(ps)
    for step in range(steps):
        for p, g in zip(ps, grads(step)):
            p.grad = g.copy()
        opt.step()
    return [p.data for p in ps]


@pytest.mark.parametrize("make,oracle", [
    (lambda: kopt.Adagrad(), keras_adagrad),
    (lambda: kopt.Adagrad(learning_rate=0.1, initial_accumulator_value=0.01, epsilon=1e-3),
     lambda n: keras_adagrad(n, lr=0.1, init=0.01, eps=1e-3)),
    (lambda: kopt.Adamax(), keras_adamax),
    (lambda: kopt.Adamax(learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=1e-2),
     lambda n: keras_adamax(n, lr=0.05, b1=0.8, b2=0.9, eps=1e-2)),
    (lambda: kopt.Nadam(), keras_nadam),
    (lambda: kopt.Nadam(learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=1e-3),
     lambda n: keras_nadam(n, lr=0.05, b1=0.8, b2=0.9, eps=1e-3)),
])
def test_keras_new_optimizers_follow_keras_rules(make, oracle):
    for a, b in zip(run_keras(make(), 12), oracle(12)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_keras_new_optimizers_by_name():
    for name, cls in (("adagrad", kopt.Adagrad), ("Adamax", kopt.Adamax), ("nadam", kopt.Nadam)):
        assert isinstance(kopt.get(name), cls)


@pytest.mark.parametrize("name", ["Adagrad", "Adamax", "NAdam"])
def test_optim_new_rules_state_dict_resume_equals_an_uninterrupted_run(name):
    import json
    straight = run_tinygpt(lambda ps: getattr(optim, name)(ps, lr=0.05), 8)
    ps = [nn.Parameter(w.astype(np.float64)) for w in start()]
    first = getattr(optim, name)(ps, lr=0.05)
    for step in range(4):
        for p, g in zip(ps, grads(step)):
            p.grad = g.copy()
        first.step()
    saved = first.state_dict()
    json.dumps({k: {f: v for f, v in e.items() if not isinstance(v, np.ndarray)}
                for k, e in saved["state"].items()})  # the scalars are JSON-able
    second = getattr(optim, name)(ps, lr=0.05)
    second.load_state_dict(saved)
    for step in range(4, 8):
        for p, g in zip(ps, grads(step)):
            p.grad = g.copy()
        second.step()
    for a, b in zip([p.data for p in ps], straight):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs", [dict(lr=0.1, momentum=0.9, dampening=0.5), dict(lr=0.1, momentum=0.9, nesterov=True,
                                                                                 weight_decay=0.01), {}])
def test_sgd_with_torchs_arguments_and_defaults_matches_torch_step_for_step(kwargs):
    ours = run_tinygpt(lambda ps: optim.SGD(ps, **kwargs), 6)
    torch = pytest.importorskip("torch")
    theirs = run_torch(lambda ps: torch.optim.SGD(ps, **kwargs), 6)  # {}: both default to lr=1e-3
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, float("inf")])
def test_clip_grad_norm_of_any_order_matches_torch(norm_type):
    torch = pytest.importorskip("torch")
    ps = [nn.Parameter(w) for w in start()]
    tps = [torch.nn.Parameter(torch.tensor(w)) for w in start()]
    for p, tp, g in zip(ps, tps, grads(0)):
        p.grad, tp.grad = g.copy(), torch.tensor(g)
    total = optim.clip_grad_norm_(ps, 0.5, norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(tps, 0.5, norm_type)
    assert total == pytest.approx(theirs.item(), rel=1e-12)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10)  # the same max_norm / (total + 1e-6)


def test_clip_grad_norm_raises_on_a_nonfinite_norm_when_asked():
    p = nn.Parameter(np.ones(2))
    p.grad = np.array([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is inf"):
        optim.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
