"""save_weights / load_weights: a model's weights as a tinygpt.checkpoint pair, `<stem>.safetensors`
(the arrays, named as Keras names them: `lstm_1/kernel`) and `<stem>.json` (the architecture:
each layer's class, config and weight shapes), both written atomically.

NOTE: Keras-style paths are accepted but the format is ours, not HDF5: only the last suffix is
swapped, so 'model.weights.h5' writes 'model.weights.safetensors' + 'model.weights.json' (and
warns, naming them); 'w.safetensors' keeps its name with 'w.json' beside it. load_weights with
the same path reads that same pair. A file tinygpt.keras did not write is never replaced.
Layers are matched by position among the layers that have weights (as Keras' load_weights does),
and any difference in class or shape raises an error naming the layer.
Whole models (model.save('m.keras') / load_model) are model_saving.py's; the names Keras keeps in
keras.saving (load_model, save_model, register_keras_serializable) are reachable from here.
Not here: optimizer state, or reading Keras' own HDF5 files (use get_weights/set_weights).
"""

import json
import warnings
from pathlib import Path

import numpy as np

from tinygpt.checkpoint import FORMAT as CHECKPOINT_FORMAT
from tinygpt.checkpoint import load_checkpoint, save_checkpoint

FORMAT = "tinygpt-keras-weights"
SWAPPED_SUFFIXES = (".h5", ".hdf5", ".keras", ".json", ".safetensors")  # replaced, not appended to


def weights_paths(path):
    """'w.h5' -> (w.safetensors, w.json); 'm.weights.h5' -> (m.weights.safetensors, m.weights.json).

    Only the last suffix is swapped, and only a known one: 'run.v2' -> run.v2.safetensors."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in SWAPPED_SUFFIXES else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def _legacy_stem(path):
    """The stem earlier versions used: '.weights.h5' dropped whole ('m.weights.h5' -> 'm')."""
    text = str(path)
    return Path(text[: -len(".weights.h5")]) if text.endswith(".weights.h5") else None


def _written_by_us(json_file):
    """Is json_file a save_weights record? Its checkpoint format and its meta format say so."""
    try:
        record = json.loads(Path(json_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (isinstance(record, dict) and record.get("format") == CHECKPOINT_FORMAT
            and isinstance(record.get("meta"), dict) and record["meta"].get("format") == FORMAT)


def _check_targets(arrays_file, json_file, overwrite):
    """Refuse to replace anything with overwrite=False, and anything we did not write with True."""
    for target in (arrays_file, json_file):
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists and save_weights was called with overwrite=False; "
                                  f"pass overwrite=True to replace it, or choose another path")
    if json_file.exists() and not _written_by_us(json_file):
        raise FileExistsError(f"{json_file} exists and was not written by tinygpt.keras save_weights "
                              f"(no format {FORMAT!r} in it), so it is left alone; save_weights writes "
                              f"{arrays_file.name} + {json_file.name}: choose another path or move the file")
    if arrays_file.exists() and not json_file.exists():
        raise FileExistsError(f"{arrays_file} exists without the {json_file.name} that save_weights "
                              f"writes beside it, so it was not written by tinygpt.keras and is left "
                              f"alone: choose another path or move the file")


def _layer_records(model):
    """One record per layer that has weights: what load_weights compares, in get_weights() order."""
    return [{"name": layer.name, "class": type(layer).__name__, "config": layer.get_config(),
             "weights": {name: list(param.shape) for name, param in layer.named_weights()}}
            for layer in model.layers if layer.named_weights()]


def save_weights(model, path, overwrite=True):
    """-> the path of the .json written (the .safetensors sits beside it); see weights_paths."""
    if not model.built:
        raise ValueError(f"{model.name!r} has no weights yet: it is built on its first batch of "
                         f"data (fit, predict, or model.build(input_shape)) or from an Input / "
                         f"Embedding(input_length=...)")
    given = Path(path)
    if given.is_dir():
        raise IsADirectoryError(f"save_weights path {str(path)!r} is a directory; give a file path "
                                f"such as {str(given / 'model.weights.h5')!r}")
    arrays_file, json_file = weights_paths(path)
    _check_targets(arrays_file, json_file, overwrite)
    tensors = {f"{layer.name}/{name}": param.data
               for layer in model.layers for name, param in layer.named_weights()}
    meta = {"format": FORMAT, "model": type(model).__name__, "input_shape": list(model.input_shape),
            "layers": _layer_records(model)}
    written = save_checkpoint(json_file, tensors, meta)  # json_file names its stem: never a directory's ckpt
    if given.suffix != ".safetensors":
        instead = "" if given == json_file else f", not {given.name}"
        warnings.warn(f"save_weights wrote {arrays_file} and {json_file}{instead}: tinygpt.keras "
                      f"saves safetensors + JSON, never HDF5 or pickle (load_weights with the same path "
                      f"reads them)", UserWarning, stacklevel=3)
    return written


def _first_bytes(path, n=4):
    with open(path, "rb") as f:
        return f.read(n)


def _describe(record):
    return f"{record['class']} {record['name']!r}"


def load_weights(model, path):
    """Copy the weights saved by save_weights into `model`, building it first if it is not built."""
    arrays_file, json_file = weights_paths(path)
    given = Path(path)
    if given.is_file() and _first_bytes(given) == b"\x89HDF":
        raise ValueError(f"{given} is an HDF5 file (written by Keras?); tinygpt.keras reads only the "
                         f"safetensors + JSON pair that its save_weights writes. To bring Keras weights "
                         f"over, call keras_model.get_weights() there and model.set_weights(...) here")
    if not json_file.is_file():
        legacy = _legacy_stem(path)
        hint = (f"; {legacy}.json, where earlier tinygpt versions saved {path!s}, exists: rename it and "
                f"{legacy}.safetensors to {json_file.name} and {arrays_file.name}"
                if legacy is not None and _written_by_us(legacy.with_name(legacy.name + ".json")) else "")
        raise FileNotFoundError(f"no weights at {path!s}: load_weights looks for {json_file} and "
                                f"{arrays_file}, the pair save_weights({str(path)!r}) writes{hint}")
    tensors, meta = load_checkpoint(json_file)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{json_file} is a tinygpt checkpoint but not a tinygpt.keras weights file "
                         f"(format {meta.get('format')!r}); load it with tinygpt.checkpoint instead")
    if not model.built:
        model.build(tuple(meta["input_shape"]))
    saved, own = meta["layers"], _layer_records(model)
    if len(saved) != len(own):
        raise ValueError(f"{json_file} holds weights for {len(saved)} layers "
                         f"[{', '.join(map(_describe, saved))}], but this model has {len(own)} layers "
                         f"with weights [{', '.join(map(_describe, own))}]: a different architecture")
    for position, (file_layer, layer) in enumerate(zip(saved, own), start=1):
        where = f"layer {position} with weights ({_describe(layer)} here, {_describe(file_layer)} in the file)"
        if file_layer["class"] != layer["class"]:
            raise ValueError(f"{json_file} does not fit this model: {where} differ in type")
        for name, shape in layer["weights"].items():
            if file_layer["weights"].get(name) != shape:
                raise ValueError(f"{json_file} does not fit this model: {where}: weight {name!r} has "
                                 f"shape {tuple(file_layer['weights'].get(name) or ())} in the file and "
                                 f"{tuple(shape)} here (file config {file_layer['config']}, this "
                                 f"model's {layer['config']})")
    weights = [np.asarray(tensors[f"{file_layer['name']}/{name}"])
               for file_layer in saved for name in file_layer["weights"]]
    model.set_weights(weights)


# ----- keras.saving: whole models (model_saving.py) --------------------------------------------
CUSTOM_OBJECTS = {}  # class name -> class, filled by register_keras_serializable


def register_keras_serializable(package="Custom", name=None):
    """@keras.saving.register_keras_serializable(): load_model may rebuild this class by its name."""
    def register(cls):
        CUSTOM_OBJECTS[name or cls.__name__] = cls
        return cls
    return register


def save_model(model, filepath, overwrite=True, zipped=None):
    """keras.saving.save_model(model, 'm.keras'): the same as model.save('m.keras')."""
    if zipped is False:
        raise NotImplementedError("save_model(zipped=False): tinygpt.keras writes the zipped .keras file only")
    from tinygpt.keras import model_saving  # noqa: PLC0415  (it imports the models, which import this module)
    return model_saving.save_model(model, filepath, overwrite)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):  # noqa: A002  (Keras' name)
    """keras.models.load_model('m.keras') / keras.saving.load_model: see model_saving.load_model."""
    from tinygpt.keras import model_saving  # noqa: PLC0415  (it imports the models, which import this module)
    return model_saving.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)
