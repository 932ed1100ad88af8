"""tinygpt.optim: SGD, Adam, AdamW and RMSprop over parameter groups, global gradient-norm clipping, and
learning-rate schedules; every piece of state saves to NumPy arrays + JSON-able scalars.
Not here: the training loop (train.py) or the AdamW arithmetic (tinygpt/ops/adamw.py).
"""

from tinygpt.optim.adam import Adam, AdamW
from tinygpt.optim.clip import clip_grad_norm_
from tinygpt.optim.optimizer import Optimizer, weight_decay_groups
from tinygpt.optim.rmsprop import RMSprop
from tinygpt.optim.schedule import ConstantLR, LRSchedule, WarmupCosine
from tinygpt.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "weight_decay_groups", "clip_grad_norm_",
           "LRSchedule", "ConstantLR", "WarmupCosine"]
