"""tinygpt.nn: Module and Parameter, and the layers GPT and LSTM language models are built from.

`import tinygpt.nn as nn`, then nn.Linear, nn.Embedding, nn.LayerNorm, nn.Dropout, nn.LSTM, nn.GRU,
nn.CausalSelfAttention, nn.MLP, nn.Block, nn.Sequential, nn.ModuleList, nn.ModuleDict.
Not here: whole models (tinygpt.models), optimizers (tinygpt.optim), the Keras-style API.
"""

from tinygpt.nn.attention import CausalSelfAttention, KVCache, LayerKVCache
from tinygpt.nn.containers import ModuleDict, ModuleList, Sequential
from tinygpt.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear
from tinygpt.nn.gru import GRU
from tinygpt.nn.lstm import LSTM
from tinygpt.nn.module import LoadResult, Module, Parameter, as_rng
from tinygpt.nn.transformer import MLP, Block

__all__ = ["Module", "Parameter", "LoadResult", "as_rng", "Linear", "Embedding", "LayerNorm",
           "Dropout", "GELU", "LSTM", "GRU", "CausalSelfAttention", "KVCache", "LayerKVCache", "MLP",
           "Block", "Sequential", "ModuleList", "ModuleDict"]
