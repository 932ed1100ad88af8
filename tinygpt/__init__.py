"""tinygpt: a from-scratch deep-learning engine for GPT-style language models.

`tinygpt.Tensor` with reverse-mode autograd, `tinygpt.functional` (as F) for every op,
`tinygpt.nn` layers, `tinygpt.models` (GPT, LSTM LM), `tinygpt.optim`, and
`tinygpt.backend` for which kernel runs each op. The Keras-style API is `tinygpt.keras`.
`tinygpt.manual_seed(seed)` restarts the default random stream (F.dropout without a generator).
`tinygpt.profile()` times every op of a step; `tinygpt.viz.draw_graph(loss)` draws its graph.
"""

__version__ = "0.1.0"

from tinygpt.tensor import Tensor, no_grad, is_grad_enabled
from tinygpt import functional, nn, models, optim
from tinygpt.functional import tensor
from tinygpt.random import manual_seed
from tinygpt.profiler import Profiler, profile, profile_training_step
from tinygpt import viz
from tinygpt.models import GPT, GPTConfig, LSTMConfig, LSTMLanguageModel, SequenceClassifier

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "functional", "nn", "models", "optim", "tensor", "manual_seed",
           "GPT", "GPTConfig", "LSTMConfig", "LSTMLanguageModel", "SequenceClassifier",
           "Profiler", "profile", "profile_training_step", "viz",
           "__version__"]
