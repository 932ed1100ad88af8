"""Keras' `preprocessing` namespace; `preprocessing.sequence.pad_sequences` is tinygpt.data's."""

from tinygpt.keras.preprocessing import sequence

__all__ = ["sequence"]
