"""`from tinygpt.keras.preprocessing.sequence import pad_sequences`, as in Keras: tinygpt.data's."""

from tinygpt.data import pad_sequences

__all__ = ["pad_sequences"]
