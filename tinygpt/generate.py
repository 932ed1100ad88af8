"""Sampling from a language model one token at a time: greedy, temperature, top-k and top-p.

A GPT reads the prompt once into a KV cache, then one new token per step, so a token's cost does
not grow with the prompt; an LSTM carries its (h, c) state the same way. Text generation streams
pieces through the tokenizer's StreamingDecoder (never half a UTF-8 character) and honours stop
strings. Prompts of different lengths run as one batch, left-padded, with an attention mask that
hides the padding (a GPT only); rows stop at eos_token_id; repetition_penalty and
num_return_sequences follow Hugging Face's generate. Not here: beam search.
"""

import contextlib

import numpy as np

from tinygpt.models.gpt import GPT, check_idx
from tinygpt.models.gpt_inference import GPTDecoder
from tinygpt.nn import as_rng
from tinygpt.tensor import is_grad_enabled, no_grad

# ---------------------------------------------------------------------------------------------
# From logits to the next token
# ---------------------------------------------------------------------------------------------


def check_sampling(temperature=1.0, top_k=None, top_p=None, max_new_tokens=0):
    """Raise ValueError naming the first sampling setting that is out of range."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                              or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """logits: (B, V) -> probs: (B, V) float64, the distribution the next token is drawn from.

    temperature 0 puts all the mass on the argmax (greedy decoding)."""
    check_sampling(temperature, top_k, top_p)
    logits = np.asarray(logits, dtype=np.float64)  # float64: cumulative sums of tiny probabilities
    B, V = logits.shape
    if temperature == 0:
        probs = np.zeros_like(logits)
        probs[np.arange(B), logits.argmax(axis=-1)] = 1.0
        return probs
    logits = logits / temperature  # < 1 sharpens the distribution, > 1 flattens it
    if top_k is not None and top_k < V:
        # keep the k largest logits: anything below the k-th largest can never be drawn
        # NOTE: tokens tied with the k-th largest are all kept, so a tie may keep more than k.
        kth_largest = np.partition(logits, V - top_k, axis=-1)[:, V - top_k, None]  # (B, 1)
        logits = np.where(logits < kth_largest, -np.inf, logits)
    logits = logits - logits.max(axis=-1, keepdims=True)  # max-shift: exp never overflows
    probs = np.exp(logits)
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        # nucleus: the smallest set of most likely tokens whose mass reaches top_p. A token stays
        # if the tokens ranked above it hold less than top_p, so the most likely one always stays.
        order = np.argsort(-probs, axis=-1, kind="stable")  # (B, V), most likely first
        ranked = np.take_along_axis(probs, order, axis=-1)
        mass_above = np.cumsum(ranked, axis=-1) - ranked
        keep = np.zeros(probs.shape, dtype=bool)
        np.put_along_axis(keep, order, mass_above < top_p, axis=-1)
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum(axis=-1, keepdims=True)
    return probs


def sample(probs, rng):
    """probs: (B, V) -> ids: (B,) int64, one uniform draw per row through the cumulative sum.

    The id is the first whose cumulative probability exceeds u: a token of probability 0 adds
    nothing to the sum, so it can never be the first to exceed it. rng is one Generator, or a
    list of B Generators, one per row."""
    cdf = np.cumsum(probs, axis=-1)  # (B, V)
    if isinstance(rng, list):  # one stream per row: row b draws exactly what it would alone
        draws = np.array([r.random() for r in rng])
    else:
        draws = rng.random(probs.shape[0])
    u = draws * cdf[:, -1]  # scaled by the total: rounding may leave it at 0.9999...
    return (cdf <= u[:, None]).sum(axis=-1).astype(np.int64)


def apply_repetition_penalty(logits, tokens, penalty, mask=None):
    """logits: (B, V), tokens: (B, t) the ids so far, mask: (B, t) bool (False: padding, not
    counted) -> new logits (B, V) with every token already present penalised once.

    The CTRL rule, as in Hugging Face's RepetitionPenaltyLogitsProcessor: a present token's logit
    is divided by the penalty when positive and multiplied by it when negative, so penalty > 1
    always makes it less likely. Padding is not counted (Hugging Face counts pad ids too)."""
    logits = np.array(logits, copy=True)
    B, t = tokens.shape
    keep = np.ones((B, t), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    rows = np.broadcast_to(np.arange(B)[:, None], (B, t))
    present = np.zeros(logits.shape, dtype=bool)
    present[rows[keep], tokens[keep]] = True  # a token present twice is penalised once
    penalised = np.where(logits < 0, logits * penalty, logits / penalty)
    return np.where(present, penalised, logits).astype(logits.dtype, copy=False)


def left_pad(prompts, pad_token_id=0):
    """prompts: a list of B id sequences of any lengths >= 1 -> (idx (B, T), attention_mask (B, T)):
    each prompt right-aligned, padding on the left, mask 1 on real tokens and 0 on padding.
    Left, so every row's next token goes in the same last column."""
    rows = [np.asarray(p, dtype=np.int64).reshape(-1) for p in prompts]
    if not rows or any(r.size == 0 for r in rows):
        raise ValueError(f"prompts must be a non-empty list of non-empty id sequences, got lengths "
                         f"{[r.size for r in rows]}")
    T = max(r.size for r in rows)
    idx = np.full((len(rows), T), pad_token_id, dtype=np.int64)
    mask = np.zeros((len(rows), T), dtype=np.int64)
    for b, r in enumerate(rows):
        idx[b, T - r.size:], mask[b, T - r.size:] = r, 1
    return idx, mask


# ---------------------------------------------------------------------------------------------
# Feeding a model the tokens so far
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def inference(model):
    """Run a forward pass in eval mode (no dropout) and without recording a graph, then restore
    the model's mode. Entered around each forward, never across a `yield`: a paused generator
    must not leave gradients switched off for its caller."""
    was_training = model.training
    if was_training:  # switching walks every module: per token, only when there is something to switch
        model.eval()
    try:
        with no_grad():
            yield
    finally:
        if was_training:
            model.train()


class GPTContext:
    """The next-token logits of a GPT, with (use_cache=True) or without a KV cache.

    With the cache each call feeds only the tokens the cache has not seen. The model knows
    block_size positions (learned position embeddings are absolute, so the cache cannot slide):
    once the cache is full, each step re-encodes the last block_size tokens from scratch — what
    the uncached path does on every step — so both paths always see the same context.
    A GPT itself (not a subclass, which may change the forward) in eval mode under no_grad runs
    on GPTDecoder (models/gpt_inference.py), the same kernels on plain arrays, unless lean=False."""

    def __init__(self, model, batch_size, use_cache=True, lean=True):
        self.model, self.block_size = model, model.config.block_size
        self.cache = model.make_kv_cache(batch_size) if use_cache else None
        self.decoder = GPTDecoder(model) if lean and type(model) is GPT else None

    def next_logits(self, tokens, n_new):
        """tokens: (B, t) all tokens so far, the last n_new of them not yet fed -> logits (B, V)"""
        context = tokens[:, -self.block_size:]  # a prompt longer than the model can see is cropped
        if self.cache is None:
            new = context  # every position, every step
        elif self.cache.length + n_new <= self.block_size:
            new = tokens[:, -n_new:]  # only the tokens the cache has not seen
        else:
            self.cache.reset()  # full: start again from the last block_size tokens
            new = context
        if self.decoder is not None and not self.model.training and not is_grad_enabled():
            return self.decoder.logits(new, self.cache)
        x = self.model.features(new, kv_cache=self.cache)  # (B, t', C)
        # only the last position is scored: (B, 1, C) -> (B, 1, V), never (B, t', V) for a prompt
        return self.model.lm_head(x[:, -1:]).data[:, -1]


class PaddedGPTContext:
    """The next-token logits of a GPT for a left-padded batch: padding hidden by a key mask, and
    position ids counted from each row's first real token, so each row sees what it would alone.

    Runs on GPTDecoder, whose attention takes the key mask in every backend (ops/attention.py).
    The cache cannot slide (positions differ per row), so the padded prompt plus the new tokens
    must fit in block_size."""

    def __init__(self, model, batch_size, use_cache=True):
        if type(model) is not GPT:
            raise TypeError(f"an attention_mask with padding needs a tinygpt GPT, got a "
                            f"{type(model).__name__}; generate its prompts one at a time")
        self.model, self.block_size = model, model.config.block_size
        self.cache = model.make_kv_cache(batch_size) if use_cache else None
        self.decoder = GPTDecoder(model)

    def next_logits(self, tokens, n_new, mask):
        """tokens, mask: (B, t) all tokens so far and their mask, the last n_new not yet fed"""
        positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)  # (B, t): 0 at the first real token
        if self.cache is None:
            return self.decoder.logits(tokens, None, positions, mask.astype(bool))
        return self.decoder.logits(tokens[:, -n_new:], self.cache, positions[:, -n_new:],
                                   mask.astype(bool))


class LSTMContext:
    """The next-token logits of an LSTM LM: feed the new tokens and carry the (h, c) state.
    With use_cache=False the whole sequence is re-read each step (a reference for tests)."""

    def __init__(self, model, batch_size, use_cache=True):
        self.model, self.use_cache, self.state = model, use_cache, None

    def next_logits(self, tokens, n_new):
        if not self.use_cache:
            return self.model(tokens)[0].data[:, -1]
        logits, _, state = self.model(tokens[:, -n_new:], state=self.state, return_state=True)
        self.state = tuple(s.data for s in state)  # plain arrays: no graph to keep
        return logits.data[:, -1]


def model_context(model, batch_size, use_cache=True):
    """The right *Context for `model`: a GPT (make_kv_cache) or an LSTM LM (initial_state)."""
    if hasattr(model, "make_kv_cache"):
        return GPTContext(model, batch_size, use_cache)
    if hasattr(model, "initial_state"):
        return LSTMContext(model, batch_size, use_cache)
    raise TypeError(f"cannot generate from a {type(model).__name__}: need a language model "
                    f"(GPT or LSTMLanguageModel)")


# ---------------------------------------------------------------------------------------------
# Token ids in, token ids out
# ---------------------------------------------------------------------------------------------


def _check_generation_options(eos_token_id, pad_token_id, repetition_penalty, num_return_sequences):
    for name, value in (("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                  or value < 0):
            raise ValueError(f"{name} must be None or an integer token id >= 0, got {value!r}")
    if isinstance(repetition_penalty, bool) or not isinstance(repetition_penalty, (int, float)) \
            or not repetition_penalty > 0:
        raise ValueError(f"repetition_penalty must be a number > 0 (1.0 means none), got "
                         f"{repetition_penalty!r}")
    if isinstance(num_return_sequences, bool) or not isinstance(num_return_sequences, (int, np.integer)) \
            or num_return_sequences < 1:
        raise ValueError(f"num_return_sequences must be an integer >= 1, got {num_return_sequences!r}")


def _rngs(seed, B):
    """seed -> one Generator, or a list of B (seed a list/tuple: one seed or Generator per row)"""
    if isinstance(seed, (list, tuple)):
        if len(seed) != B:
            raise ValueError(f"seed is a list of {len(seed)} per-row seeds, expected one per row: {B}")
        return [as_rng(s) for s in seed]
    return as_rng(seed)


def _check_mask(attention_mask, shape):
    mask = np.asarray(attention_mask)
    if mask.shape != shape:
        raise ValueError(f"attention_mask has shape {mask.shape}, expected the prompt's {shape}")
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
    if not mask[:, -1].all() or (np.diff(mask, axis=1) < 0).any():
        raise ValueError("attention_mask must be left padding: zeros then ones in every row, "
                         "with at least one real token; hint: tinygpt.generate.left_pad(prompts)")
    return mask.astype(np.int64)


def iter_tokens(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None,
                use_cache=True, *, attention_mask=None, eos_token_id=None, pad_token_id=None,
                repetition_penalty=1.0):
    """idx: (B, T) prompt ids -> yields up to max_new_tokens arrays (B,): each step's new token per row.

    seed: an int, a np.random.Generator, None (fresh randomness), or a list of B of those: one
    stream per row, so a row samples what it would alone. Greedy (temperature 0) draws no random
    numbers; otherwise each step draws exactly B, cached or not.
    attention_mask: (B, T) of 0/1, zeros on the left marking padding (see left_pad); a GPT then
    hides the padding and counts positions from each row's first real token.
    eos_token_id: a row that emits it is finished; from then on it gets pad_token_id (default:
    eos_token_id), and iteration ends early once every row is finished.
    repetition_penalty: > 1 makes tokens already in the row (prompt or generated) less likely."""
    idx = check_idx(idx)
    check_sampling(temperature, top_k, top_p, max_new_tokens)
    _check_generation_options(eos_token_id, pad_token_id, repetition_penalty, 1)
    B, T = idx.shape
    rng = _rngs(seed, B)
    pad = eos_token_id if pad_token_id is None else pad_token_id
    mask = None if attention_mask is None else _check_mask(attention_mask, (B, T))
    if mask is not None and mask.all():
        mask = None  # no padding: the ordinary (faster, any-model) path
    # one buffer for prompt + continuation: appending a token copies nothing
    tokens = np.empty((B, T + max_new_tokens), dtype=np.int64)
    tokens[:, :T] = idx
    if mask is None:
        context, full_mask = model_context(model, B, use_cache), None
    else:
        if T + max_new_tokens - 1 > model.config.block_size:
            raise ValueError(f"a padded batch of {T} prompt columns + {max_new_tokens} new tokens "
                             f"needs {T + max_new_tokens - 1} positions, past block_size "
                             f"{model.config.block_size}: padded generation cannot crop; lower "
                             f"max_new_tokens or generate the long prompts alone")
        context = PaddedGPTContext(model, B, use_cache)
        full_mask = np.ones((B, T + max_new_tokens), dtype=np.int64)  # generated tokens are real
        full_mask[:, :T] = mask
    finished = np.zeros(B, dtype=bool)
    t, n_new = T, T  # tokens so far; how many of them the model has not been fed yet
    for _ in range(max_new_tokens):
        with inference(model):
            if full_mask is None:
                logits = context.next_logits(tokens[:, :t], n_new)  # (B, V)
            else:
                logits = context.next_logits(tokens[:, :t], n_new, full_mask[:, :t])
        if repetition_penalty != 1.0:
            logits = apply_repetition_penalty(
                logits, tokens[:, :t], repetition_penalty,
                None if full_mask is None else full_mask[:, :t].astype(bool))
        if temperature == 0:
            next_ids = logits.argmax(axis=-1).astype(np.int64)  # greedy: no random draw
        else:
            next_ids = sample(next_token_probs(logits, temperature, top_k, top_p), rng)
        if eos_token_id is not None:
            next_ids = np.where(finished, pad, next_ids)  # a finished row only pads
            finished |= next_ids == eos_token_id
        tokens[:, t] = next_ids
        t, n_new = t + 1, 1
        yield next_ids
        if eos_token_id is not None and finished.all():
            return


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None,
             use_cache=True, *, attention_mask=None, eos_token_id=None, pad_token_id=None,
             repetition_penalty=1.0, num_return_sequences=1):
    """idx: (B, T) -> (B * num_return_sequences, T + max_new_tokens): the prompt followed by the
    sampled tokens (as in nanoGPT's model.generate).

    idx may also be a list of prompts of different lengths: they are left-padded with
    pad_token_id (default eos_token_id, else 0) and masked (see left_pad). Rows finished at
    eos_token_id are padded with pad_token_id up to the full length. num_return_sequences repeats
    each prompt that many times, adjacent (rows b*n .. b*n + n - 1 continue prompt b), each with
    its own draws. See iter_tokens for the other arguments."""
    _check_generation_options(eos_token_id, pad_token_id, repetition_penalty, num_return_sequences)
    pad = pad_token_id if pad_token_id is not None else (eos_token_id if eos_token_id is not None else 0)
    if isinstance(idx, (list, tuple)) and attention_mask is None:
        idx, attention_mask = left_pad(idx, pad)
    idx = check_idx(idx).astype(np.int64)
    if num_return_sequences > 1:
        idx = np.repeat(idx, num_return_sequences, axis=0)
        if attention_mask is not None:
            attention_mask = np.repeat(np.asarray(attention_mask), num_return_sequences, axis=0)
    new = list(iter_tokens(model, idx, max_new_tokens, temperature, top_k, top_p, seed, use_cache,
                           attention_mask=attention_mask, eos_token_id=eos_token_id,
                           pad_token_id=pad, repetition_penalty=repetition_penalty))
    out = np.full((idx.shape[0], idx.shape[1] + max_new_tokens), pad, dtype=np.int64)
    out[:, :idx.shape[1]] = idx
    for i, ids in enumerate(new):  # fewer than max_new_tokens when every row met eos early
        out[:, idx.shape[1] + i] = ids
    return out


# ---------------------------------------------------------------------------------------------
# Text in, text out
# ---------------------------------------------------------------------------------------------


def encode_prompt(tokenizer, prompt):
    """prompt str -> ids (at least one), or a ValueError saying why the prompt cannot be used."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    try:
        ids = tokenizer.encode(prompt)
    except ValueError as e:
        raise ValueError(f"the prompt cannot be encoded by this model's tokenizer: {e}") from None
    if not ids:
        raise ValueError(f"the prompt {prompt!r} encodes to no tokens, so there is nothing to "
                         f"continue; give a prompt with at least one known word or character")
    return ids


def default_prompt(tokenizer):
    """What to start from when no prompt is given: a newline (nanoGPT's sample.py) when the
    vocabulary has one, else the first token of the vocabulary that is some text (a text with no
    newline, a tokenizer that drops whitespace)."""
    try:
        if tokenizer.encode("\n"):
            return "\n"
    except ValueError:  # a character vocabulary without "\n"
        pass
    for token_id in range(tokenizer.vocab_size):
        text = tokenizer.decode([token_id])
        if text.strip() and tokenizer.encode(text):
            return text
    raise ValueError(f"default_prompt: no token of this {tokenizer.vocab_size}-token vocabulary "
                     f"decodes to text; pass a prompt")


def _check_stops(stop):
    stops = [stop] if isinstance(stop, str) else list(stop or ())
    for s in stops:
        if not isinstance(s, str) or not s:
            raise ValueError(f"each stop string must be a non-empty str, got {s!r}")
    return stops


def _held_back(text, stops):
    """How many trailing characters of `text` could be the start of a stop string."""
    for n in range(min(len(text), max(map(len, stops), default=1) - 1), 0, -1):
        if any(s.startswith(text[-n:]) for s in stops):
            return n
    return 0


def stream_text(model, tokenizer, prompt, max_new_tokens=200, temperature=1.0, top_k=None,
                top_p=None, seed=None, stop=(), use_cache=True):
    """prompt str -> an iterator of pieces of the continuation (the prompt is not repeated).

    A piece is emitted as soon as it is complete text that cannot be the start of a stop string;
    generation ends at max_new_tokens or right before the first stop string, which is not emitted.
    Bad arguments raise here, before the first piece is asked for."""
    ids = encode_prompt(tokenizer, prompt)
    stops = _check_stops(stop)
    check_sampling(temperature, top_k, top_p, max_new_tokens)
    idx = np.array([ids], dtype=np.int64)  # (1, T)
    new_ids = iter_tokens(model, idx, max_new_tokens, temperature, top_k, top_p, seed, use_cache)
    return _pieces(tokenizer, ids, new_ids, stops)


def _pieces(tokenizer, prompt_ids, new_ids, stops):
    decoder = tokenizer.decoder()
    for id in prompt_ids:  # the decoder must know what came before (a word tokenizer adds spaces)
        decoder.feed(id)
    pending = ""  # decoded, not yet emitted
    for next_ids in new_ids:
        pending += decoder.feed(int(next_ids[0]))
        hits = [pending.find(s) for s in stops if s in pending]
        if hits:
            if min(hits):
                yield pending[:min(hits)]
            return
        keep = _held_back(pending, stops)
        if len(pending) > keep:
            yield pending[:len(pending) - keep]
            pending = pending[len(pending) - keep:]
    pending += decoder.flush()
    hits = [pending.find(s) for s in stops if s in pending]
    if hits:
        pending = pending[:min(hits)]
    if pending:
        yield pending


def generate_text(model, tokenizer, prompt, max_new_tokens=200, temperature=1.0, top_k=None,
                  top_p=None, seed=None, stop=(), use_cache=True):
    """prompt str -> the continuation as one str (stream_text, joined)."""
    return "".join(stream_text(model, tokenizer, prompt, max_new_tokens, temperature, top_k,
                               top_p, seed, stop, use_cache))
