"""save_weights / load_weights: a model's weights as a tinygpt.checkpoint pair, `<stem>.safetensors`
(the arrays, named as Keras names them: `lstm_1/kernel`) and `<stem>.json` (the architecture:
each layer's class, config and weight shapes), both written atomically.

NOTE: Keras-style paths are accepted but the format is ours, not HDF5: for 'gpt_model_weights.h5'
(or '.weights.h5', '.hdf5', '.keras') the suffix is dropped and 'gpt_model_weights.safetensors' +
'gpt_model_weights.json' are written; load_weights('gpt_model_weights.h5') reads that same pair.
Layers are matched by position among the layers that have weights (as Keras' load_weights does),
and any difference in class or shape raises an error naming the layer.
Not here: optimizer state, or reading Keras' own HDF5 files (use get_weights/set_weights).
"""

from pathlib import Path

import numpy as np

from tinygpt.checkpoint import load_checkpoint, save_checkpoint

FORMAT = "tinygpt-keras-weights"
KERAS_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras", ".json", ".safetensors")  # longest first


def weights_stem(path):
    """'w.h5', 'w.weights.h5', 'w.json', 'w.safetensors' and 'w' all name the pair w.json + w.safetensors."""
    text = str(path)
    for suffix in KERAS_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            return Path(text[: -len(suffix)])
    return Path(text)


def _layer_records(model):
    """One record per layer that has weights: what load_weights compares, in get_weights() order."""
    return [{"name": layer.name, "class": type(layer).__name__, "config": layer.get_config(),
             "weights": {name: list(param.shape) for name, param in layer.named_weights()}}
            for layer in model.layers if layer.named_weights()]


def save_weights(model, path):
    """-> the path of the .json written (the .safetensors sits beside it)."""
    if not model.built:
        raise ValueError(f"{model.name!r} has no weights yet: it is built on its first batch of "
                         f"data (fit, predict, or model.build(input_shape)) or from an Input / "
                         f"Embedding(input_length=...)")
    tensors = {f"{layer.name}/{name}": param.data
               for layer in model.layers for name, param in layer.named_weights()}
    meta = {"format": FORMAT, "model": type(model).__name__, "input_shape": list(model.input_shape),
            "layers": _layer_records(model)}
    return save_checkpoint(weights_stem(path), tensors, meta)


def _first_bytes(path, n=4):
    with open(path, "rb") as f:
        return f.read(n)


def _describe(record):
    return f"{record['class']} {record['name']!r}"


def load_weights(model, path):
    """Copy the weights saved by save_weights into `model`, building it first if it is not built."""
    stem = weights_stem(path)
    given = Path(path)
    if given.is_file() and _first_bytes(given) == b"\x89HDF":
        raise ValueError(f"{given} is an HDF5 file (written by Keras?); tinygpt.keras reads only the "
                         f"safetensors + JSON pair that its save_weights writes. To bring Keras weights "
                         f"over, call keras_model.get_weights() there and model.set_weights(...) here")
    if not stem.with_name(stem.name + ".json").is_file():
        raise FileNotFoundError(f"no weights at {path!s}: load_weights looks for {stem}.json and "
                                f"{stem}.safetensors, the pair save_weights({str(path)!r}) writes")
    tensors, meta = load_checkpoint(stem)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{stem}.json is a tinygpt checkpoint but not a tinygpt.keras weights file "
                         f"(format {meta.get('format')!r}); load it with tinygpt.checkpoint instead")
    if not model.built:
        model.build(tuple(meta["input_shape"]))
    saved, own = meta["layers"], _layer_records(model)
    if len(saved) != len(own):
        raise ValueError(f"{stem}.json holds weights for {len(saved)} layers "
                         f"[{', '.join(map(_describe, saved))}], but this model has {len(own)} layers "
                         f"with weights [{', '.join(map(_describe, own))}]: a different architecture")
    for position, (file_layer, layer) in enumerate(zip(saved, own), start=1):
        where = f"layer {position} with weights ({_describe(layer)} here, {_describe(file_layer)} in the file)"
        if file_layer["class"] != layer["class"]:
            raise ValueError(f"{stem}.json does not fit this model: {where} differ in type")
        for name, shape in layer["weights"].items():
            if file_layer["weights"].get(name) != shape:
                raise ValueError(f"{stem}.json does not fit this model: {where}: weight {name!r} has "
                                 f"shape {tuple(file_layer['weights'].get(name) or ())} in the file and "
                                 f"{tuple(shape)} here (file config {file_layer['config']}, this "
                                 f"model's {layer['config']})")
    weights = [np.asarray(tensors[f"{file_layer['name']}/{name}"])
               for file_layer in saved for name in file_layer["weights"]]
    model.set_weights(weights)
