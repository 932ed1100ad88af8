"""tinygpt.keras: the Keras API over tinygpt, so Keras code runs with `tf.keras` replaced:

    import tinygpt.keras
    from tinygpt.keras.layers import Embedding, LSTM, Dense
    model = tinygpt.keras.Sequential([Embedding(1000, 64), LSTM(128), Dense(1000, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=10, validation_data=(x_val, y_val))

Sequential, functional (Model(inputs, outputs)) and subclassed models; Keras' losses, metrics, optimizers
and callbacks by name; initializers and regularizers; weights saved as safetensors + JSON, whole
models as a .keras zip (model_saving.py). What differs from Keras: docs/keras.md.
Not here: custom training steps, HDF5 files, GPUs.
"""

from tinygpt.keras import (callbacks, initializers, layers, losses, metrics, models, optimizers, preprocessing,
                           regularizers, saving, utils)
from tinygpt.keras.functional import Model
from tinygpt.keras.models import Sequential
from tinygpt.keras.symbolic import Input, KerasTensor

__all__ = ["Sequential", "Model", "Input", "KerasTensor", "layers", "models", "losses", "metrics",
           "optimizers", "callbacks", "utils", "preprocessing", "initializers", "regularizers",
           "saving"]
