"""Whether a run's requested work fits its data and this machine, checked before anything big is
allocated: a batch whose activations need more memory than the machine has is refused with the
estimate, instead of growing until the kernel kills the process; a loss estimate that would read
its split a hundred times over is refused, instead of running for minutes without a word.
Not here: the split sizes themselves (data.check_split_sizes), or memory once training runs.
"""

import os

FLOAT = 4  # bytes: every array of a training step is float32
EVAL_OVERREAD = 100  # a loss estimate may read its split this many times over, no more


def available_memory():
    """Bytes the system could give this process now (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def step_bytes(model_config, batch_size, n_params):
    """A rough upper estimate of one training step's memory, in bytes: the activations that
    backward keeps, per token and layer, plus the logits and their gradient, plus the weights,
    their gradients and AdamW's two moments."""
    kind, V = model_config["type"], model_config["vocab_size"]
    if kind == "gpt":
        T, C, L = model_config["block_size"], model_config["n_embd"], model_config["n_layer"]
        per_token = L * 20 * C + 3 * V  # qkv 3C, attention C, MLP 2 x 4C, norms and residuals
    else:
        T, L = model_config.get("block_size", 1), model_config["n_layer"]
        per_token = L * 12 * model_config["hidden_size"] + 2 * model_config["n_embd"] + 3 * V
    return FLOAT * (batch_size * T * per_token + 4 * n_params)


def check_step_fits(model_config, batch_size, block_size, n_params, available=None):
    """Refuse a batch whose training step would not fit in memory, naming the estimate."""
    available = available_memory() if available is None else available
    config = dict(model_config, block_size=model_config.get("block_size", block_size))
    need = step_bytes(config, batch_size, n_params)
    if available is not None and need > available:
        raise ValueError(f"--batch-size {batch_size} x --block-size {block_size} needs about "
                         f"{need / 2**30:.1f} GiB for one training step, and this machine has "
                         f"{available / 2**30:.1f} GiB available; use a smaller --batch-size "
                         f"(at most about {max(1, int(batch_size * available / need))})")


def check_eval_work(eval_iters, batch_size, block_size, val_tokens):
    """Refuse a loss estimate that would read the validation split over EVAL_OVERREAD times."""
    tokens = eval_iters * batch_size * block_size
    if tokens > EVAL_OVERREAD * max(val_tokens, 1):
        raise ValueError(f"--eval-iters {eval_iters} x --batch-size {batch_size} x --block-size "
                         f"{block_size} reads {tokens:,} tokens per loss estimate, over "
                         f"{EVAL_OVERREAD} times the {val_tokens:,}-token validation split; use a "
                         f"smaller --eval-iters or --batch-size (tinygpt evaluate --run RUN gives the exact loss "
                         f"over the whole split)")
