"""bench/hf.py's bookkeeping: ratios point the same way for times and rates (> 1: tinygpt faster),
targets are judged on them, and the agreement notes compare what the two workers produced."""

import numpy as np

from bench import common, hf


def result(name, tg, theirs, lower_is_better=False):
    return dict(name=name, unit="u", stats={"tinygpt": common.Stat.of(tg), "transformers": common.Stat.of(theirs)},
                notes=[], lower_is_better=lower_is_better)


def test_hf_rows_ratio_is_how_many_times_faster_tinygpt_is():
    load, gen = hf.rows([result("load", [0.5], [1.0], lower_is_better=True),
                         result("generate b8", [30.0], [10.0])])
    assert load[3] == "2.00"          # half the seconds: twice as fast
    assert gen[3] == "3.00 ✓" and gen[4] == "≥ 1.5"
    slow = hf.rows([result("prefill 512", [90.0], [100.0])])[0]
    assert slow[3] == "0.90 ✗"


def test_hf_scale_and_invert_keep_every_sample():
    s = common.Stat.of([1.0, 2.0, 4.0])
    assert hf.scale(s, 3).values == (3.0, 6.0, 12.0)
    assert hf.invert(s).median == 0.5 and hf.scale(None, 2) is None


def test_hf_agreement_notes_find_the_first_difference_per_row():
    a = np.array([[1, 2, 3], [4, 5, 6]])
    b = np.array([[1, 2, 3], [4, 0, 6]])
    note = hf.agreement({"tinygpt": {"b2": a}, "transformers": {"b2": b}}, "b2")
    assert note.endswith("[3, 1]")
    assert hf.agreement({"tinygpt": {"b2": a}}, "b2") is None
    assert hf.tokenizer_agreement({"tinygpt": {"ids": [1, 2]}, "transformers": {"ids": [1, 2]}}).endswith("True")
