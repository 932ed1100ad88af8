"""tinygpt.models: GPT (GPT-2 architecture), an LSTM language model, and a sequence classifier
that fine-tunes either body. Not here: layers (tinygpt.nn) or training loops (train.py)."""

from tinygpt.models.classifier import SequenceClassifier
from tinygpt.models.gpt import GPT, GPTConfig, LMHead
from tinygpt.models.lstm import LSTMConfig, LSTMLanguageModel

__all__ = ["GPT", "GPTConfig", "LMHead", "LSTMConfig", "LSTMLanguageModel", "SequenceClassifier"]
