"""tinygpt: a from-scratch deep-learning engine for GPT-style language models.

`tinygpt.Tensor` with reverse-mode autograd, `tinygpt.functional` (as F) for every op,
`tinygpt.nn` layers, `tinygpt.models` (GPT, LSTM LM), `tinygpt.optim`, and
`tinygpt.backend` for which kernel runs each op. The Keras-style API is `tinygpt.keras`.
"""

__version__ = "0.1.0"

from tinygpt.tensor import Tensor, no_grad, is_grad_enabled
from tinygpt import functional, nn, models, optim
from tinygpt.functional import tensor
from tinygpt.models import GPT, GPTConfig, LSTMConfig, LSTMLanguageModel, SequenceClassifier

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "functional", "nn", "models", "optim", "tensor",
           "GPT", "GPTConfig", "LSTMConfig", "LSTMLanguageModel", "SequenceClassifier",
           "__version__"]
