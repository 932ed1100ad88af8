"""tinygpt.optim: SGD, Adam, AdamW, RMSprop, Adagrad, Adamax and NAdam over parameter groups, global gradient-norm clipping, and
learning-rate schedules; every piece of state saves to NumPy arrays + JSON-able scalars.
Not here: the training loop (train.py) or the AdamW arithmetic (tinygpt/ops/adamw.py).
"""

from tinygpt.optim.adagrad import Adagrad
from tinygpt.optim.adam import Adam, AdamW
from tinygpt.optim.adamax import Adamax
from tinygpt.optim.clip import clip_grad_norm_
from tinygpt.optim.optimizer import Optimizer, weight_decay_groups
from tinygpt.optim.nadam import NAdam
from tinygpt.optim.rmsprop import RMSprop
from tinygpt.optim.schedule import ConstantLR, LRSchedule, WarmupCosine
from tinygpt.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "NAdam", "weight_decay_groups", "clip_grad_norm_",
           "LRSchedule", "ConstantLR", "WarmupCosine"]
