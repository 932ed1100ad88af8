"""A GRU weather-style forecaster, written as a Keras user writes it (Keras' "timeseries weather
forecasting" recipe, shrunk): only the import line differs from Keras.

The data is made here instead of downloaded: three hourly "sensor" series (a daily cycle, a slow
yearly-like drift and noise, temperature-like and pressure-like), normalised with the training
part's mean and std. keras.utils.timeseries_dataset_from_array cuts windows of the past
`--past` hours; the target is the first series `--future` hours after the window ends.
The model is Input -> GRU(32) -> Dense(1), trained on MSE with Adam and reported as MAE next to
the naive forecast "the value at the end of the window", which it must beat to be worth anything.

    python examples/keras_gru_forecast.py               # ~5 s on 2 shared cores
    python examples/keras_gru_forecast.py --epochs 10 --hours 8000
"""

import argparse

import numpy as np

import tinygpt.keras as keras  # was: from tensorflow import keras


def make_series(hours, seed):
    """(hours, 3) float32: temperature-like, pressure-like and humidity-like hourly series."""
    rng = np.random.default_rng(seed)
    t = np.arange(hours, dtype=np.float64)
    day, season = np.sin(2 * np.pi * t / 24), np.sin(2 * np.pi * t / (24 * 90))
    weather = np.cumsum(rng.normal(0, 0.15, hours))  # a slow random walk: fronts passing by
    weather -= np.convolve(weather, np.ones(500) / 500, mode="same")  # keep it from drifting off
    temperature = 10 + 6 * day + 8 * season + 2 * weather + rng.normal(0, 0.5, hours)
    pressure = 1010 - 4 * weather + rng.normal(0, 0.3, hours)
    humidity = 60 - 15 * day + rng.normal(0, 3, hours)
    return np.stack([temperature, pressure, humidity], axis=1).astype(np.float32)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=int, default=4000, help="length of the series (default 4000)")
    p.add_argument("--past", type=int, default=48, help="hours of history per window (default 48)")
    p.add_argument("--future", type=int, default=6, help="hours ahead to forecast (default 6)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=2)
    args = p.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    raw = make_series(args.hours, args.seed)
    split = int(0.7 * len(raw))
    mean, std = raw[:split].mean(axis=0), raw[:split].std(axis=0)
    data = (raw - mean) / std

    # window i covers data[i : i + past]; its target is temperature `future` hours after it ends
    delay = args.past + args.future - 1
    targets = data[delay:, 0]
    train_ds = keras.utils.timeseries_dataset_from_array(
        data[:split], targets[:split], sequence_length=args.past, batch_size=args.batch_size,
        shuffle=True, seed=args.seed)
    val_ds = keras.utils.timeseries_dataset_from_array(
        data[split:-delay], targets[split:], sequence_length=args.past, batch_size=args.batch_size)

    inputs = keras.Input(shape=(args.past, data.shape[1]))
    x = keras.layers.GRU(32)(inputs)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.003), loss="mse", metrics=["mae"])
    history = model.fit(train_ds, epochs=args.epochs, validation_data=val_ds, verbose=args.verbose)

    # the naive forecast: temperature stays what it was at the end of the window
    naive = [np.abs(xb[:, -1, 0] - yb).mean() * len(yb) for xb, yb in val_ds]
    naive_mae = float(np.sum(naive) / sum(len(yb) for _, yb in val_ds))
    val_mae = history.history["val_mae"][-1]
    print(f"validation MAE: GRU {val_mae * std[0]:.2f} degrees, naive {naive_mae * std[0]:.2f} degrees")
    return {"loss": history.history["loss"], "val_mae": val_mae, "naive_mae": naive_mae}


if __name__ == "__main__":
    main()
