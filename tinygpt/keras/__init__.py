"""tinygpt.keras: the Keras API over tinygpt, so Keras code runs with `tf.keras` replaced:

    import tinygpt.keras
    from tinygpt.keras.layers import Embedding, LSTM, Dense
    model = tinygpt.keras.Sequential([Embedding(1000, 64), LSTM(128), Dense(1000, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=10, validation_data=(x_val, y_val))

Sequential models of Embedding, LSTM, Dense, Dropout layers; Keras' losses, metrics, optimizers
and callbacks by name; weights saved as safetensors + JSON. What differs from Keras: docs/keras.md.
Not here: the functional API, masking, custom training steps, HDF5 files, GPUs.
"""

from tinygpt.keras import callbacks, layers, losses, metrics, models, optimizers, preprocessing, utils
from tinygpt.keras.layers import Input
from tinygpt.keras.models import Sequential

__all__ = ["Sequential", "Input", "layers", "models", "losses", "metrics", "optimizers", "callbacks",
           "utils", "preprocessing"]
