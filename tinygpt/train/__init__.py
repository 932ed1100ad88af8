"""tinygpt.train: train a GPT or LSTM language model on a corpus or a text file.

    from tinygpt.train import TrainConfig, train
    result = train(TrainConfig(steps=500), progress=print)   # -> TrainResult

config.py (TrainConfig), data.py (text -> tokens on disk), trainer.py (the loop, resume, Ctrl-C),
runs.py (the run directory: checkpoints, metrics.csv, load_run), parallel.py (the loop's share of
each global batch and resume under mpiexec; docs/distributed.md). Not here: sampling (generate.py),
classification fine-tuning (tinygpt.finetune), or anything that prints (cli.py).
"""

from tinygpt.train.config import TrainConfig, build_model, read_run_config
from tinygpt.train.runs import Run, load_run
from tinygpt.train.trainer import Trainer, TrainEvent, TrainResult, evaluate_lm, train

__all__ = ["TrainConfig", "Trainer", "TrainEvent", "TrainResult", "train", "evaluate_lm", "load_run",
           "Run", "build_model", "read_run_config"]
