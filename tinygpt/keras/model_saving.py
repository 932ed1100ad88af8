"""model.save("m.keras") and keras.models.load_model("m.keras"): the whole model in one zip file.

    tinygpt_keras_model.json    the marker, the architecture, the compile arguments, RNG states
    model.weights.safetensors   every weight, in get_weights() order
    optimizer.safetensors       the optimizer's state arrays (Adam's moments, ...), if it has stepped

The architecture is each layer's get_config() (plus what preprocessing layers learned), and for a
functional Model the graph of layer calls; a subclassed Model is rebuilt from its own get_config()
and class, which must be registered (keras.saving.register_keras_serializable) or passed as
custom_objects. No pickle: JSON and safetensors only, so loading never runs code from the file.
NOTE: the format is tinygpt's own: not byte-compatible with the .keras files Keras writes, which
load_model recognises and refuses. The file is written atomically, and a file tinygpt did not
write is never replaced.
Not here: saving weights alone (saving.py), HDF5, TensorFlow SavedModel.
"""

import inspect
import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from tinygpt.checkpoint import rng_from_json, rng_state_to_json, write_atomically
from tinygpt.keras import layers as layers_module
from tinygpt.keras import losses, metrics, optimizers, saving, schedules
from tinygpt.keras.functional import Model
from tinygpt.keras.layers import Layer
from tinygpt.keras.layers_text import _PreprocessingLayer
from tinygpt.keras.layers_wrappers import Bidirectional, TimeDistributed
from tinygpt.keras.models import Sequential
from tinygpt.keras.symbolic import Input

FORMAT, VERSION = "tinygpt-keras-model", 1
CONFIG, WEIGHTS, OPTIMIZER = "tinygpt_keras_model.json", "model.weights.safetensors", "optimizer.safetensors"
SIMPLE = (bool, int, float, str, type(None))
# attributes a rebuilt layer may differ in without being a different layer
BUILD_STATE = {"built", "input_shape", "auto_named", "seed", "declared_input_shape", "training", "name"}


def _classes(module, base):
    return {name: obj for name in dir(module) if isinstance(obj := getattr(module, name), type)
            and issubclass(obj, base)}


def _lookup(class_name, custom_objects, builtin, what):
    for table in (custom_objects or {}, saving.CUSTOM_OBJECTS, builtin):
        if class_name in table:
            return table[class_name]
    raise ValueError(f"load_model: the file holds a {what} of class {class_name!r}, which tinygpt.keras "
                     f"does not know; pass custom_objects={{{class_name!r}: {class_name}}} or decorate the "
                     f"class with @keras.saving.register_keras_serializable()")


# ----- layers -----------------------------------------------------------------------------------
def layer_config(layer):
    """A layer -> {'class_name', 'config', 'trainable'}; raises if the layer cannot be rebuilt from it."""
    if isinstance(layer, Model):
        return model_config(layer)
    if isinstance(layer, TimeDistributed):
        config = {"layer": layer_config(layer.layer)}
    elif isinstance(layer, Bidirectional):
        config = {"layer": layer_config(layer.forward_layer), "merge_mode": layer.merge_mode}
    else:
        config = dict(layer.get_config())
    if isinstance(layer, _PreprocessingLayer):
        config.update(_preprocessing_config(layer))
    config["name"] = layer.name
    record = {"class_name": type(layer).__name__, "config": config, "trainable": bool(layer.trainable)}
    _check_json(record, f"{type(layer).__name__} {layer.name!r}'s get_config()")
    _check_rebuilds(layer, layer_from_config(record, {type(layer).__name__: type(layer)}))
    return record


def _preprocessing_config(layer):
    """What a TextVectorization / StringLookup learned (its vocabulary) and the arguments it keeps."""
    config = {"vocabulary": None if layer.lookup is None else
              [t for t in layer.lookup.vocabulary if t not in layer.specials]}
    if isinstance(layer, layers_module.TextVectorization):
        for arg in ("standardize", "split"):
            if callable(getattr(layer, arg)):
                raise NotImplementedError(f"TextVectorization {layer.name!r}: a callable {arg}= cannot be "
                                          f"saved by model.save (it would need pickle); use a named one")
            config[arg] = getattr(layer, arg)
    else:
        n_oov = 0 if layer.oov_index is None else 1
        config.update({"max_tokens": layer.max_tokens, "num_oov_indices": n_oov, "oov_token": layer.oov_token,
                       "mask_token": layer.specials[0] if len(layer.specials) > n_oov else None,
                       "invert": layer.invert})
    return config


def _check_json(value, what):
    try:
        json.dumps(value)
    except TypeError as error:
        raise NotImplementedError(f"model.save: {what} holds something that is not JSON ({error}); "
                                  f"tinygpt.keras saves configs as JSON only, never pickle") from None


def _check_rebuilds(layer, rebuilt):
    """The layer rebuilt from its config must agree with it in every plain setting: a setting that
    get_config leaves out would otherwise come back as its default, silently."""
    for key, value in vars(rebuilt).items():
        if key in BUILD_STATE or key not in vars(layer) or not isinstance(value, SIMPLE + (tuple,)):
            continue
        if vars(layer)[key] != value:
            raise NotImplementedError(f"model.save: {type(layer).__name__} {layer.name!r} has {key}="
                                      f"{vars(layer)[key]!r}, which its get_config() does not record "
                                      f"(rebuilt, it would be {value!r}); this layer cannot be saved yet")


def layer_from_config(record, custom_objects=None):
    if record.get("kind") == "model":
        return model_from_config(record, custom_objects)
    builtin = _classes(layers_module, Layer)
    cls = _lookup(record["class_name"], custom_objects, builtin, "layer")
    config = dict(record["config"])
    if isinstance(config.get("layer"), dict):  # a wrapper's inner layer
        config["layer"] = layer_from_config(config["layer"], custom_objects)
    from_config = getattr(cls, "from_config", None)
    layer = from_config(config) if from_config is not None else cls(**config)
    layer.trainable = record.get("trainable", True)
    return layer


# ----- models -----------------------------------------------------------------------------------
def model_config(model):
    """Sequential: its layers; functional: inputs, layers and the calls between them; subclassed:
    its own get_config() and the shapes to build it with."""
    base = {"kind": "model", "class_name": type(model).__name__, "trainable": bool(getattr(model, "trainable", True))}
    if isinstance(model, Sequential):
        return {**base, "type": "sequential", "config": {
            "name": model.name, "layers": [layer_config(layer) for layer in model.layers],
            "input_shape": None if model.input_shape is None else list(model.input_shape)}}
    if not model.functional:
        config = model.get_config()
        _check_json(config, f"{type(model).__name__}.get_config()")
        params = [p for p in inspect.signature(type(model).__init__).parameters.values()
                  if p.name != "self" and p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        missing = [p.name for p in params if p.name not in config]
        if missing:
            raise NotImplementedError(f"model.save: the subclassed model {type(model).__name__} takes "
                                      f"{missing} but its get_config() does not return them; define "
                                      f"get_config(self) returning its constructor arguments, as Keras asks")
        return {**base, "type": "subclassed", "config": config,
                "input_specs": [[list(shape), dtype] for shape, dtype in model.input_specs]}
    node_index = {id(node): i for i, node in enumerate(model.nodes)}

    def ref(t):
        return {"input": t.name} if t.node is None else {"node": node_index[id(t.node)], "index": t.index}

    position = {id(layer): i for i, layer in enumerate(model.layers)}
    nodes = [{"layer": position[id(node.layer)], "inputs": _map(node.inputs, ref), "kwargs": node.kwargs}
             for node in model.nodes]
    return {**base, "type": "functional", "config": {
        "name": model.name, "layers": [layer_config(layer) for layer in model.layers], "nodes": nodes,
        "inputs": [{"name": t.name, "shape": list(t.shape[1:]), "dtype": t.dtype.str if t.dtype.kind != "O"
                    else "string"} for t in model.inputs],
        "input_structure": _map(model.input_structure, ref), "outputs": _map(model.output_structure, ref)}}


def _map(structure, fn):
    """structure (a KerasTensor or ref, or lists / dicts of them) with fn applied to each leaf."""
    if isinstance(structure, dict) and not ({"input"} == set(structure) or {"node", "index"} == set(structure)):
        return {k: _map(v, fn) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [_map(v, fn) for v in structure]
    return fn(structure)


def model_from_config(record, custom_objects=None):
    config, kind = record["config"], record.get("type")
    if kind == "sequential":
        model = Sequential([layer_from_config(r, custom_objects) for r in config["layers"]], name=config["name"])
        if config["input_shape"] is not None:
            model.build(tuple(config["input_shape"]))
    elif kind == "functional":
        layers = [layer_from_config(r, custom_objects) for r in config["layers"]]
        inputs = {spec["name"]: Input(tuple(spec["shape"]), dtype=spec["dtype"], name=spec["name"])
                  for spec in config["inputs"]}
        outputs = []  # outputs[i]: node i's KerasTensors
        for node in config["nodes"]:
            def tensor(r):
                return inputs[r["input"]] if "input" in r else outputs[r["node"]][r["index"]]
            out = layers[node["layer"]](_map(node["inputs"], tensor), **node["kwargs"])
            outputs.append(out if isinstance(out, list) else [out])

        def tensor(r):
            return inputs[r["input"]] if "input" in r else outputs[r["node"]][r["index"]]
        model = Model(_map(config["input_structure"], tensor), _map(config["outputs"], tensor), name=config["name"])
    elif kind == "subclassed":
        cls = _lookup(record["class_name"], custom_objects, {}, "subclassed model")
        from_config = getattr(cls, "from_config", None)
        model = from_config(config) if from_config is not None else cls(**config)
        model.prepare_x([np.zeros([1] + shape, dtype=object if dtype == "|O" else np.dtype(dtype))
                         for shape, dtype in record["input_specs"]])  # the first call builds it
    else:
        raise ValueError(f"load_model: unknown model type {kind!r} in the file")
    model.trainable = record.get("trainable", True)
    return model


# ----- compile arguments: optimizer, losses, metrics ------------------------------------------
def _object_config(obj):
    """A Keras-style object -> {'class_name', 'config'} from its constructor's arguments, each read
    back from the attribute of the same name; raises if one cannot be."""
    cls, config = type(obj), {}
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.name == "learning_rate" and getattr(obj, "schedule", None) is not None:
            config["learning_rate"] = _object_config(obj.schedule)
            continue
        attr = "_learning_rate" if p.name == "learning_rate" else p.name
        if not hasattr(obj, attr) or not isinstance(getattr(obj, attr), SIMPLE):
            raise NotImplementedError(f"{cls.__name__}'s argument {p.name!r} is not kept as a plain value")
        config[p.name] = getattr(obj, attr)
    if isinstance(obj, optimizers.Optimizer):
        config.update({"clipnorm": obj.clipnorm, "global_clipnorm": obj.global_clipnorm})
    return {"class_name": cls.__name__, "config": config}


def _object_from_config(record, table):
    config = dict(record["config"])
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = _object_from_config(config["learning_rate"], _classes(schedules, schedules.LearningRateSchedule))
    return table[record["class_name"]](**config)


def _metric_entry(fn):
    names = [name for name, f in metrics.METRICS.items() if f is fn]
    return names[0] if names else _object_config(fn)


def compile_config(model):
    """The compile arguments as JSON, or None (with a warning) if one of them cannot be saved."""
    if not model.compiled:
        return None
    try:
        if isinstance(model.optimizer, optimizers._Given):
            raise NotImplementedError("a tinygpt.optim optimizer passed to compile() as it is")
        output_losses = getattr(model, "output_losses", [model.loss])
        return {"optimizer": _object_config(model.optimizer),
                "loss": [_object_config(loss) for loss in output_losses],
                "loss_weights": getattr(model, "loss_weights", None),
                "metrics": [_metric_entry(fn) for _, fn in model.compiled_metrics],
                "weighted_metrics": [_metric_entry(fn) for _, fn in model.weighted_metrics]}
    except NotImplementedError as error:
        warnings.warn(f"model.save: the compile() arguments are not saved ({error}); load_model will "
                      f"return an uncompiled model with its weights", UserWarning, stacklevel=4)
        return None


def _compile_from_config(model, config, custom_objects):
    loss_classes = _classes(losses, losses.Loss)
    metric_classes = _classes(metrics, metrics.Metric)
    optimizer = _object_from_config(config["optimizer"], _classes(optimizers, optimizers.Optimizer))
    loss = [_object_from_config(r, loss_classes) for r in config["loss"]]

    def metric(entry):
        return entry if isinstance(entry, str) else _object_from_config(entry, metric_classes)
    kwargs = {"metrics": [metric(m) for m in config["metrics"]] or None,
              "weighted_metrics": [metric(m) for m in config["weighted_metrics"]] or None}
    if isinstance(model, Model):
        kwargs["loss_weights"] = config["loss_weights"]
    model.compile(optimizer=optimizer, loss=loss if len(loss) > 1 else loss[0], **kwargs)


# ----- the file ---------------------------------------------------------------------------------
def _rngs(model):
    """{dotted path: Generator} for every random stream under the model (shuffling, dropout masks)."""
    found = {}
    for path, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                found[f"{path}:{attr}"] = value
    return found


def _written_by_us(path):
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read(CONFIG)).get("format") == FORMAT
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, AttributeError):
        return False


def _check_path(path, what):
    path = Path(path)
    if path.suffix in (".h5", ".hdf5"):
        raise NotImplementedError(f"{what}({str(path)!r}): HDF5 model files are not supported by "
                                  f"tinygpt.keras; use a .keras path (tinygpt's zip of JSON + safetensors)")
    if path.suffix != ".keras":
        raise ValueError(f"{what}: the path must end in .keras, as Keras 3 asks, got {str(path)!r}")
    return path


def save_model(model, filepath, overwrite=True):
    """Write model (architecture, weights, compile arguments, optimizer state) to a .keras zip."""
    path = _check_path(filepath, "model.save")
    if not model.built:
        raise ValueError(f"model.save: {model.name!r} is not built yet, so it has no weights; call it "
                         f"on data (fit, predict) or build it first")
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists and model.save was called with overwrite=False")
        if not _written_by_us(path):
            raise FileExistsError(f"{path} exists and was not written by tinygpt.keras model.save (no "
                                  f"{CONFIG} with format {FORMAT!r} in it), so it is left alone; choose "
                                  f"another path or move the file")
    weights = model.get_weights()
    record = {"format": FORMAT, "version": VERSION, "model": model_config(model),
              "compile": compile_config(model), "n_weights": len(weights),
              "rngs": {key: rng_state_to_json(rng) for key, rng in _rngs(model).items()}}
    arrays = {}
    optimizer = getattr(model, "optimizer", None) if model.compiled and record["compile"] else None
    if optimizer is not None and optimizer.engine is not None:
        saved = optimizer.engine.state_dict()
        scalars = {}
        for index, entry in saved["state"].items():
            for field, value in entry.items():
                if isinstance(value, np.ndarray) and value.shape != ():
                    arrays[f"{index}/{field}"] = value
                else:
                    scalars.setdefault(index, {})[field] = value.item() if hasattr(value, "item") else value
        record["optimizer_state"] = {"groups": saved["param_groups"], "scalars": scalars,
                                     "iterations": optimizer.iterations}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(CONFIG, json.dumps(record, indent=1))
        z.writestr(WEIGHTS, safetensors_save({f"{i:05d}": np.ascontiguousarray(w) for i, w in enumerate(weights)}))
        if arrays:
            z.writestr(OPTIMIZER, safetensors_save({k: np.ascontiguousarray(v) for k, v in arrays.items()}))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, buffer.getvalue())  # a reader sees the old file or the new one, never half
    return path


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):  # noqa: A002  (Keras' name)
    """A .keras file written by model.save -> the model, compiled (and its optimizer state restored)
    unless compile=False. custom_objects maps class names to your own layer / model classes."""
    path = Path(filepath)
    if not path.is_file():
        raise FileNotFoundError(f"load_model: no file at {str(filepath)!r}")
    if path.suffix in (".h5", ".hdf5"):
        _check_path(path, "load_model")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if CONFIG not in names:
                keras_own = "config.json" in names and "model.weights.h5" in names
                raise ValueError(f"load_model: {path} is not a tinygpt.keras model file" +
                                 (" (it is a .keras file written by Keras itself, whose HDF5 weights "
                                  "tinygpt.keras does not read; rebuild the model here and copy the "
                                  "weights with get_weights / set_weights)" if keras_own else ""))
            record = json.loads(z.read(CONFIG))
            weights = safetensors_load(z.read(WEIGHTS))
            state_arrays = safetensors_load(z.read(OPTIMIZER)) if OPTIMIZER in names else {}
    except zipfile.BadZipFile:
        raise ValueError(f"load_model: {path} is not a zip file, so not a .keras model file") from None
    if record.get("format") != FORMAT or record.get("version") != VERSION:
        raise ValueError(f"load_model: {path} has format {record.get('format')!r} version "
                         f"{record.get('version')!r}; this tinygpt reads {FORMAT!r} version {VERSION}")
    model = model_from_config(record["model"], custom_objects)
    model.set_weights([np.array(weights[f"{i:05d}"]) for i in range(record["n_weights"])])
    rngs = _rngs(model)
    for key, state in record["rngs"].items():
        if key in rngs:
            rngs[key].bit_generator.state = rng_from_json(state).bit_generator.state
    if compile and record["compile"] is not None:
        _compile_from_config(model, record["compile"], custom_objects)
        saved = record.get("optimizer_state")
        if saved is not None:
            model.optimizer.build(model.parameters())
            state = {key: dict(scalars) for key, scalars in saved["scalars"].items()}
            for name, array in state_arrays.items():
                index, field = name.split("/", 1)
                state.setdefault(index, {})[field] = np.array(array)
            model.optimizer.engine.load_state_dict({"param_groups": saved["groups"], "state": state})
            model.optimizer.iterations = saved["iterations"]
    return model


__all__ = ["save_model", "load_model", "model_config", "model_from_config", "layer_config", "layer_from_config"]
