"""bench/kernels.py's gpt_gemm section: each library in a worker process of its own, one row per
product, and a product list that covers a GPT-2 step including the V=50257 head."""

import numpy as np
import pytest

from bench import kernels
from tinygpt import backend

TINY = [(24, 16, 40, "x@W"), (24, 16, 40, "dout@W^T"), (24, 16, 40, "x^T@dout")]


def test_gpt_gemm_rows_one_worker_per_library():
    rows = kernels.gpt_gemm_rows(TINY, threads=1, libs=("c", "blas"), rounds=2, pause=0.0,
                                 target=0.002)
    assert [(r["m"], r["k"], r["n"], r["product"]) for r in rows] == TINY
    libs = ("c", "blas") if backend.availability()["c"][0] else ("blas",)
    for row in rows:
        for lib in libs:
            stat = row[lib]
            assert len(stat.values) == 2 and stat.median > 0


def test_gpt_gemm_sides_compute_the_products():
    sides, missing, _ = kernels.gpt_gemm_sides("blas", TINY, 1)
    assert missing == {} and sorted(sides) == ["0", "1", "2"]
    x, w = kernels.gpt_operands(24, 16, 40, "x@W")
    np.testing.assert_array_equal(sides["0"](), x @ w)
    assert sides["1"]().shape == (24, 16) and sides["2"]().shape == (16, 40)
    with pytest.raises(ValueError, match="lib='mkl'"):
        kernels.gpt_gemm_sides("mkl", TINY, 1)


@pytest.mark.parametrize("quick", [False, True])
def test_gpt_products_include_the_head_and_all_three_products(quick):
    products = kernels.gpt_products(quick)
    head = [p for p in products if p[3] == 50257]
    assert sorted(p[4] for p in head) == ["dout@W^T", "x@W", "x^T@dout"]
    assert all(p[1] == 256 for p in head)
    assert len(products) == (len({p[1:4] for p in products}) * 3)


def test_summary_counts_the_ratios_below_target():
    line = kernels.gpt_gemm_summary([1.0, 0.9, 0.97, 0.5])
    assert "median 0.94" in line and "0.50–1.00" in line and "2 below 0.95" in line
