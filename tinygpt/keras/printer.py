"""The one place where tinygpt.keras writes to the terminal, as Keras does: fit's progress bar and
epoch lines (ProgbarLogger), the messages of callbacks made with verbose=1, evaluate/predict's
bars, and summary(). Everywhere else tinygpt leaves printing to cli.py.

Lines go to sys.stdout as it is at call time (so redirect_stdout and pytest's capsys see them);
bars are tqdm's. Not here: what is printed (the callbacks and models decide that).
"""

import sys

from tqdm.auto import tqdm


def line(text):
    """One line of a callback's output, flushed at once so it interleaves with the bars."""
    print(text, file=sys.stdout, flush=True)


def epoch_bar(total, desc):
    """ProgbarLogger's bar for one epoch of `total` batches, on stdout as Keras' is."""
    return tqdm(total=total, desc=desc, unit="batch", file=sys.stdout, dynamic_ncols=True)


def batches(iterable, verbose):
    """evaluate's and predict's bar over their batches (tqdm's stream, stderr); none at verbose=0."""
    return tqdm(iterable, unit="batch", disable=verbose == 0)


def summary(text, print_fn=None):
    """Model.summary's table: to print_fn when given (e.g. lines.append), else printed."""
    (print_fn or print)(text)
