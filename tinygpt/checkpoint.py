"""Checkpoints as a pair of files: `<stem>.safetensors` holds the arrays, `<stem>.json` holds
everything else (config, optimizer scalars, schedule, RNG state, step, data position) plus
the SHA-256 of the arrays file. Both are written atomically and the JSON last, so a torn or
mismatched pair is detected on load instead of half-loaded.
pickle is never used: safetensors cannot run code on load and JSON is plain text.
Not here: deciding what to save (train.py does that) or anything that knows about Tensors.
"""

import errno
import hashlib
import json
import os
import re
import secrets
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

FORMAT = "tinygpt-checkpoint"
VERSION = 1
_NAME = re.compile(r"^ckpt(?:_(?P<step>\d+))?\.json$")  # ckpt.json, ckpt_000123.json
_SAVABLE_DTYPES = {np.dtype(t) for t in ("float16", "float32", "float64", "int8", "int16", "int32",
                                          "int64", "uint8", "uint16", "uint32", "uint64", "bool", "complex64")}


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt, or whose two files do not belong together."""


class CheckpointWarning(UserWarning):
    """A damaged or incomplete checkpoint was skipped in favour of an older, intact one."""


def checkpoint_path(run_dir, step=None):
    """run_dir, step -> run_dir/ckpt_000123 (a stem: add .json/.safetensors), or run_dir/ckpt."""
    if step is None:
        return Path(run_dir) / "ckpt"
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be None or an int >= 0, got {step!r}")
    return Path(run_dir) / f"ckpt_{int(step):06d}"  # zero-padded so names also sort by step


def _stem(path):
    """A directory means its ckpt; `x`, `x.json` and `x.safetensors` all mean the pair `x`."""
    path = Path(path)
    if path.is_dir():
        return path / "ckpt"
    return path.with_suffix("") if path.suffix in (".json", ".safetensors") else path


def _check_meta(value, where="meta"):
    """Refuse what JSON would change or reject, naming where it sits: meta['opt']['lr']."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                # NOTE: json.dumps would silently turn {1: ...} into {"1": ...}.
                raise TypeError(f"{where} has key {key!r} of type {type(key).__name__}; JSON keys must be str")
            _check_meta(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_meta(item, f"{where}[{i}]")
    elif isinstance(value, np.ndarray):
        raise TypeError(f"{where} is an array of shape {value.shape}; put arrays in tensors, not meta")
    elif isinstance(value, np.generic):
        raise TypeError(f"{where} is a NumPy scalar {value!r}; convert it with .item(), e.g. float(lr)")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise TypeError(f"{where} has type {type(value).__name__}, which JSON cannot store")


def _create_temp_beside(path):
    """path -> (fd, name) of a new, empty temp file in path's directory, mode 0o666 minus the umask.

    NOTE: not tempfile.mkstemp: it makes 0o600 files, so every saved file would be private
    whatever the user's umask says (0o644 under the usual 022)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temp file beside {path}: 100 names taken")


def write_atomically(path, data):
    """bytes -> path via a temp file in the same directory (so os.replace is a rename, not a copy),
    fsync, replace: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    fd, tmp = _create_temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes reach the disk before the name points at them
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(error.errno, f"no space left to write {path} ({len(data):,} bytes); "
                                       f"{path.name} is unchanged if it existed, and earlier "
                                       f"checkpoints are intact: free some space and resume") from None
        raise


def _fsync_directory(directory):
    """Make the renames themselves durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path, tensors, meta):
    """path, {name: array}, JSON-able meta -> path of the written .json.

    path is an existing directory (saved as dir/ckpt) or a stem such as run/ckpt_000123; the
    parent directories are created. Tuples in meta come back as lists.

    Order matters: arrays first, then the JSON that names their hash. A crash before the JSON
    is replaced leaves the previous JSON, whose hash no longer matches: load refuses the pair.
    Saving each step under its own stem (checkpoint_path) keeps the previous checkpoint whole.
    """
    if not isinstance(tensors, dict):
        raise TypeError(f"tensors must be a dict of name -> np.ndarray, got {type(tensors).__name__}")
    for name, array in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r}")
        if not isinstance(array, np.ndarray):
            raise TypeError(f"tensors[{name!r}] must be a np.ndarray, got {type(array).__name__}")
        if array.dtype not in _SAVABLE_DTYPES:
            raise TypeError(f"tensors[{name!r}] has dtype {array.dtype}; "
                            f"safetensors stores {sorted(d.name for d in _SAVABLE_DTYPES)}")
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    _check_meta(meta)

    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    # NOTE: safetensors copies raw memory from the data pointer, so a strided view (x.T) must be
    # made contiguous first or it would save the wrong numbers. (Not np.ascontiguousarray: it
    # turns a 0-d scalar array into shape (1,).)
    blob = safetensors_save({name: a if a.flags.c_contiguous else a.copy(order="C") for name, a in tensors.items()})
    record = {"format": FORMAT, "version": VERSION,
              "tensors_sha256": hashlib.sha256(blob).hexdigest(), "tensors_bytes": len(blob),
              "meta": meta}
    text = json.dumps(record, indent=2) + "\n"  # serialise before touching disk: fail early
    write_atomically(stem.with_name(stem.name + ".safetensors"), blob)
    write_atomically(stem.with_name(stem.name + ".json"), text.encode("utf-8"))
    _fsync_directory(stem.parent)
    return stem.with_name(stem.name + ".json")


def load_checkpoint(path):
    """path (a stem, its .json or .safetensors, or a run directory: its latest) -> (tensors, meta).

    Raises CheckpointError naming the file and the fault; nothing is returned unless the JSON
    parses, the arrays file has the recorded size and SHA-256, and its header decodes.
    """
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"no checkpoint (ckpt*.json) in directory {path}")
        path = latest
    stem = _stem(path)
    json_file = stem.with_name(stem.name + ".json")
    if not json_file.is_file():
        raise CheckpointError(f"checkpoint record {json_file} is missing: the save never finished, or it was deleted")
    try:
        record = json.loads(json_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint record {json_file} is not valid JSON ({e}); the file is corrupt") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{json_file} is not a tinygpt checkpoint record (no format={FORMAT!r})")
    if record.get("version") != VERSION:
        raise CheckpointError(f"{json_file} has checkpoint version {record.get('version')!r}; "
                              f"this tinygpt reads version {VERSION}")
    missing = {"tensors_sha256", "tensors_bytes", "meta"} - set(record)
    if missing:
        raise CheckpointError(f"checkpoint record {json_file} lacks {sorted(missing)}; the file is corrupt")

    tensors_file = stem.with_name(stem.name + ".safetensors")
    if not tensors_file.is_file():
        raise CheckpointError(f"arrays file {tensors_file} named by {json_file.name} is missing")
    blob = tensors_file.read_bytes()
    if len(blob) != record["tensors_bytes"]:
        raise CheckpointError(f"arrays file {tensors_file} has {len(blob)} bytes, {json_file.name} recorded "
                              f"{record['tensors_bytes']}: truncated, or from a different save")
    if hashlib.sha256(blob).hexdigest() != record["tensors_sha256"]:
        raise CheckpointError(f"arrays file {tensors_file} does not match the SHA-256 in {json_file.name}: "
                              "corrupt, or a save was interrupted between the two files")
    try:
        loaded = safetensors_load(blob)
    except (SafetensorError, ValueError, KeyError) as e:
        raise CheckpointError(f"arrays file {tensors_file} has a bad safetensors header ({e})") from None
    # Copies: arrays over the file's bytes are read-only, and a resumed run updates them in place.
    tensors = {name: np.array(array) for name, array in loaded.items()}
    for name, array in tensors.items():
        # NOTE: the hash proves the file is what was saved, not that what was saved is usable: a run
        # that diverged (or a hand-made file) can hold NaN, and a NaN weight poisons every output.
        if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
            bad = int(np.size(array) - np.isfinite(array).sum())
            raise CheckpointError(f"arrays file {tensors_file}: tensor {name!r} {array.shape} has {bad} "
                                  f"non-finite value(s) (NaN or inf); expected finite numbers")
    if not isinstance(record["meta"], dict):
        raise CheckpointError(f"checkpoint record {json_file}: meta is {type(record['meta']).__name__}, expected an object")
    return tensors, record["meta"]


def step_checkpoints(run_dir):
    """run_dir -> [ckpt_<step>.json paths], newest step first."""
    found = [(int(m["step"]), p) for p in Path(run_dir).iterdir() if (m := _NAME.match(p.name)) and m["step"]]
    return [p for _, p in sorted(found, reverse=True)]


def orphan_arrays(run_dir):
    """ckpt_<step>.safetensors newer than the newest ckpt_<step>.json and without a .json of their
    own: a save killed between its two files (or a deleted .json). Newest first."""
    latest = latest_checkpoint(run_dir)
    newest = int(_NAME.match(latest.name)["step"] or -1) if latest is not None else -1
    orphans = []
    for p in Path(run_dir).glob("ckpt_*.safetensors"):
        step = p.stem[len("ckpt_"):]
        if step.isdigit() and int(step) > newest and not p.with_suffix(".json").exists():
            orphans.append((int(step), p))
    return [p for _, p in sorted(orphans, reverse=True)]


def load_newest_intact(run_dir):
    """run_dir -> (path, tensors, meta, notes): the newest checkpoint that loads, and one note per
    newer one that was skipped (damaged, or arrays without their .json) naming both files.

    For readers (generate, evaluate): a damaged newest save should not hide a good older one.
    A writer must not do this silently (it would train on from an older step); see resume.
    Raises the newest checkpoint's CheckpointError when none loads."""
    notes = [f"{orphan.name} has no {orphan.with_suffix('.json').name} (its save was interrupted, or the "
             f".json was deleted); it is ignored" for orphan in orphan_arrays(run_dir)]
    candidates = step_checkpoints(run_dir) or ([Path(run_dir) / "ckpt.json"] if (Path(run_dir) / "ckpt.json").is_file() else [])
    if not candidates:
        raise CheckpointError(f"no checkpoint (ckpt*.json) in directory {run_dir}")
    first_error, damaged = None, []
    for path in candidates:
        try:
            tensors, meta = load_checkpoint(path)
        except CheckpointError as e:
            first_error = first_error or e
            damaged.append((path, e))
            continue
        notes += [f"{bad.stem} is damaged ({e}); using {path.stem} instead" for bad, e in damaged]
        return path, tensors, meta, notes
    raise first_error


def latest_checkpoint(run_dir):
    """run_dir -> path of the highest-step ckpt_<step>.json, else ckpt.json, else None.

    Only the JSON is looked for: it is written last, so its presence means a save completed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    best_step, best = -1, None
    for candidate in run_dir.iterdir():
        match = _NAME.match(candidate.name)
        if match and match["step"] is not None and int(match["step"]) > best_step:
            best_step, best = int(match["step"]), candidate
    if best is None and (run_dir / "ckpt.json").is_file():
        best = run_dir / "ckpt.json"
    return best


# ---------------------------------------------------------------------------------------------
# RNG state <-> JSON
# ---------------------------------------------------------------------------------------------

_BIT_GENERATORS = ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")


def _arrays_to_json(value):
    if isinstance(value, dict):
        return {key: _arrays_to_json(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):  # MT19937's key, Philox's counter: the dtype must come back
        return {"dtype": value.dtype.name, "values": value.tolist()}
    return value.item() if isinstance(value, np.generic) else value


def _arrays_from_json(value):
    if isinstance(value, dict):
        if set(value) == {"dtype", "values"}:
            return np.array(value["values"], dtype=value["dtype"])
        return {key: _arrays_from_json(item) for key, item in value.items()}
    return value


def rng_state_to_json(rng):
    """np.random.Generator or RandomState -> a JSON-able dict that rng_from_json turns back.

    PCG64's state is two 128-bit ints. Python's json writes and reads ints of any size exactly
    (they never pass through a float), so they stay plain ints; arrays (MT19937's key) become
    {"dtype", "values"}. NOTE: JavaScript or jq would round those ints to 53 bits.
    """
    if isinstance(rng, np.random.Generator):
        return {"kind": "Generator", "state": _arrays_to_json(rng.bit_generator.state)}
    if isinstance(rng, np.random.RandomState):
        return {"kind": "RandomState", "state": _arrays_to_json(rng.get_state(legacy=False))}
    raise TypeError(f"rng must be a np.random.Generator or np.random.RandomState, got {type(rng).__name__}")


def rng_from_json(record):
    """dict from rng_state_to_json -> a new Generator/RandomState that continues the same draws."""
    if not isinstance(record, dict) or record.get("kind") not in ("Generator", "RandomState") or "state" not in record:
        raise ValueError(f"expected a dict from rng_state_to_json with kind 'Generator' or 'RandomState', "
                         f"got {record!r:.100}")
    state = _arrays_from_json(record["state"])
    name = state.get("bit_generator")
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {name!r}; expected one of {_BIT_GENERATORS}")
    bit_generator = getattr(np.random, name)()
    if record["kind"] == "Generator":
        bit_generator.state = state
        return np.random.Generator(bit_generator)
    legacy = np.random.RandomState(bit_generator)
    legacy.set_state(state)  # also restores the cached second Gaussian (has_gauss, gauss)
    return legacy
