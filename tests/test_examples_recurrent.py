"""The recurrent Keras example scripts run to the end with small settings and learn: the GRU
forecaster beats the naive forecast, the bidirectional tagger beats the most common tag."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gru_forecast_example_learns_and_beats_the_naive_forecast():
    result = _load("keras_gru_forecast").main(["--hours", "2000", "--epochs", "3", "--verbose", "0"])
    assert result["loss"][-1] < result["loss"][0], result
    assert result["val_mae"] < 0.5 * result["naive_mae"], result


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_tagger_example_learns_the_tags(cell):
    result = _load("keras_bidirectional_tagger").main(
        ["--sentences", "1000", "--epochs", "3", "--cell", cell, "--verbose", "0"])
    assert result["loss"][-1] < result["loss"][0], result
    assert result["accuracy"] > result["majority"] + 0.4, result
    # a forward-only LSTM gets ~0.8 on these (it can only guess NOUN): the backward pass is needed
    assert result["ambiguous_accuracy"] > 0.95, result
