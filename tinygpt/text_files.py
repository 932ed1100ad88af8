"""Reading what users hand in as files: UTF-8 text, strictly (a bad byte is an error naming its
line) unless told otherwise, and labelled examples from CSV (text,label) or JSONL.
Not here: token files (token_files.py) or built-in corpora (corpora.py).
"""

import codecs
import csv
import io
import json
from pathlib import Path

import numpy as np


def read_text(path, errors="strict"):
    """UTF-8 file -> str with universal newlines ("\\r\\n" and "\\r" become "\\n").

    Refuses a missing, empty or binary (NUL bytes) file, and names the byte offset of bad
    UTF-8: training silently on mojibake is worse than failing. errors="replace" relaxes that.
    """
    try:
        codecs.lookup_error(errors)
    except (LookupError, TypeError):
        raise ValueError(f"errors must be a codec error handler such as 'strict' or 'replace', "
                         f"got {errors!r}") from None
    path = Path(path)
    if not path.exists():
        raise ValueError(f"text file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not a regular file: {path}")
    data = path.read_bytes()
    if not data:
        raise ValueError(f"text file is empty: {path}")
    nul = data.find(b"\x00")
    if nul != -1:
        raise ValueError(f"{path} looks binary (NUL byte at offset {nul}), expected a UTF-8 text file")
    try:
        text = data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not valid UTF-8: byte {data[e.start]:#04x} at offset {e.start} ({e.reason}); "
                         "pass errors='replace' to read it anyway") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _label_names(raw_labels):
    """Sorted label names: numerically when every label is an integer, so '10' sorts after '2'."""
    names = sorted(set(raw_labels))
    if all(n.lstrip("-").isdigit() for n in names):
        names.sort(key=int)
    return names


def _rows_from_csv(text, path):
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    columns = [c.strip() for c in header] if header else []
    if "text" not in columns or "label" not in columns:
        raise ValueError(f"{path}: CSV header must name the columns 'text' and 'label', got {columns}; "
                         "add a first line 'text,label'")
    i_text, i_label = columns.index("text"), columns.index("label")
    while True:
        try:
            row = next(reader, None)
        except csv.Error as e:
            raise ValueError(f"{path}: line {reader.line_num} is not valid CSV ({e})") from None
        if row is None:
            return
        if not row:  # blank line
            continue
        if len(row) != len(columns):
            raise ValueError(f"{path}: line {reader.line_num} has {len(row)} fields, expected {len(columns)} "
                             f"({','.join(columns)}); quote text that contains commas")
        yield reader.line_num, row[i_text], row[i_label]


def _rows_from_jsonl(text, path):
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {line_number} is not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict) or "text" not in record or "label" not in record:
            raise ValueError(f'{path}: line {line_number} must be an object with "text" and "label", '
                             f"got {line.strip()[:80]}")
        text_value, label = record["text"], record["label"]
        if not isinstance(text_value, str):
            raise ValueError(f'{path}: line {line_number}: "text" must be a string, got {type(text_value).__name__}')
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise ValueError(f'{path}: line {line_number}: "label" must be a string or an integer, got {label!r}')
        yield line_number, text_value, str(label)


def load_labelled(path):
    """CSV (header with text,label) or JSONL ({"text", "label"}) -> texts, labels (N,) int64, label_names.

    labels[i] indexes label_names, which are sorted (numerically if all are integers), so the
    same file always gives the same ids. Format by extension (.csv / .jsonl, .json, .ndjson),
    else by content: a first character '{' means JSONL.
    """
    path = Path(path)
    text = read_text(path)
    text = text.removeprefix("\ufeff")  # Excel writes a byte-order mark before the header
    if not text.strip():
        raise ValueError(f"labelled file has no rows: {path}")
    suffix = path.suffix.lower()
    is_jsonl = suffix in (".jsonl", ".json", ".ndjson") or (suffix != ".csv" and text.lstrip().startswith("{"))
    rows = _rows_from_jsonl(text, path) if is_jsonl else _rows_from_csv(text, path)
    texts, raw_labels = [], []
    for line_number, text_value, label in rows:
        if not label.strip():
            raise ValueError(f"{path}: line {line_number} has an empty label")
        texts.append(text_value)
        raw_labels.append(label.strip())
    if not texts:
        raise ValueError(f"labelled file has a header but no rows: {path}")
    label_names = _label_names(raw_labels)
    index = {name: i for i, name in enumerate(label_names)}
    labels = np.array([index[name] for name in raw_labels], dtype=np.int64)
    return texts, labels, label_names
