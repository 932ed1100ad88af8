"""tinygpt.nn: Module and Parameter, and the generic layers models are built from.

`import tinygpt.nn as nn`, then nn.Linear, nn.Embedding, nn.LayerNorm, nn.Dropout, nn.GELU,
nn.LSTM, nn.GRU, nn.Sequential, nn.ModuleList, nn.ModuleDict.
Not here: whole models and the layers only GPT uses (attention, MLP, Block, KV cache: all in
tinygpt/models/gpt.py), optimizers (tinygpt.optim), the Keras-style API (tinygpt.keras).
"""

from tinygpt.nn.containers import ModuleDict, ModuleList, Sequential
from tinygpt.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear
from tinygpt.nn.gru import GRU
from tinygpt.nn.lstm import LSTM
from tinygpt.nn.module import LoadResult, Module, Parameter, as_rng

__all__ = ["Module", "Parameter", "LoadResult", "as_rng", "Linear", "Embedding", "LayerNorm",
           "Dropout", "GELU", "LSTM", "GRU", "Sequential", "ModuleList", "ModuleDict"]
