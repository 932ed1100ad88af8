"""The Conv1D text classifier of Keras' "text classification from scratch" example, trained on
tinygpt.keras and on PyTorch (same architecture, same batch, same initial weights): the
`keras-conv` workload of bench/train.py, in sequences per second.

    Embedding(20000, 128) -> Dropout(0.5) -> Conv1D(128, 7, strides=3, relu) x 2
    -> GlobalMaxPooling1D -> Dense(128, relu) -> Dropout(0.5) -> Dense(1, sigmoid)
One step: forward, binary cross-entropy, backward, Adam step (Keras' defaults on both sides: lr 1e-3,
epsilon 1e-7), through model.train_on_batch on the tinygpt side. Not here: the timing (common.py).
"""

import numpy as np

SPEC = dict(kind="conv", vocab=20_000, emb=128, filters=128, kernel=7, strides=3, hidden=128, T=500,
            batch=32, steps=3, unit="seq/s", torch_ref=None, target=1.0)


def batches(spec, count=4, seed=1):
    """`count` (x, y) pairs: token ids (B, T) and 0/1 labels (B,), shared by both libraries."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, spec["vocab"], (spec["batch"], spec["T"])),
             rng.integers(0, 2, spec["batch"]).astype(np.float32)) for _ in range(count)]


def flops_per_sequence(spec):
    """3x the forward's multiply-adds (2 FLOPs each) in the convolutions and dense layers."""
    T1 = (spec["T"] - spec["kernel"]) // spec["strides"] + 1
    T2 = (T1 - spec["kernel"]) // spec["strides"] + 1
    conv = lambda t, c_in: 2 * t * spec["kernel"] * c_in * spec["filters"]  # noqa: E731
    dense = 2 * spec["filters"] * spec["hidden"] + 2 * spec["hidden"]
    return 3 * (conv(T1, spec["emb"]) + conv(T2, spec["filters"]) + dense)


def keras_model(spec, seed=0):
    from tinygpt import keras
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((spec["T"],), dtype="int64"),
        layers.Embedding(spec["vocab"], spec["emb"]),
        layers.Dropout(0.5),
        layers.Conv1D(spec["filters"], spec["kernel"], padding="valid", activation="relu", strides=spec["strides"]),
        layers.Conv1D(spec["filters"], spec["kernel"], padding="valid", activation="relu", strides=spec["strides"]),
        layers.GlobalMaxPooling1D(),
        layers.Dense(spec["hidden"], activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(1, activation="sigmoid"),
    ], seed=seed)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def tinygpt_keras_conv(spec, seed=0):
    """-> (step, model): one train_on_batch of the Keras code on tinygpt.keras."""
    model = keras_model(spec, seed)
    data, i = batches(spec), [0]

    def step():
        x, y = data[i[0] % len(data)]
        i[0] += 1
        model.train_on_batch(x, y)
    return step, model


def torch_model(spec, weights=None):
    """The same model in PyTorch (it returns logits); weights = the Keras model's get_weights()."""
    import torch
    from torch import nn

    class ConvClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(spec["vocab"], spec["emb"])
            self.conv1 = nn.Conv1d(spec["emb"], spec["filters"], spec["kernel"], stride=spec["strides"])
            self.conv2 = nn.Conv1d(spec["filters"], spec["filters"], spec["kernel"], stride=spec["strides"])
            self.hidden, self.out = nn.Linear(spec["filters"], spec["hidden"]), nn.Linear(spec["hidden"], 1)
            self.dropout = nn.Dropout(0.5)

        def forward(self, idx):
            x = self.dropout(self.embedding(idx)).transpose(1, 2)  # (B, T, C) -> (B, C, T): torch convolves channels first
            x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
            x = x.amax(dim=2)  # GlobalMaxPooling1D
            return self.out(self.dropout(torch.relu(self.hidden(x))))[:, 0]  # logits; the sigmoid is in the loss

    model = ConvClassifier()
    if weights is not None:
        emb, k1, b1, k2, b2, kh, bh, ko, bo = (torch.from_numpy(np.ascontiguousarray(w)) for w in weights)
        with torch.no_grad():
            model.embedding.weight.copy_(emb)
            for conv, k, b in ((model.conv1, k1, b1), (model.conv2, k2, b2)):
                conv.weight.copy_(k.permute(2, 1, 0))  # Keras (K, C_in, C_out) -> torch (C_out, C_in, K)
                conv.bias.copy_(b)
            for lin, k, b in ((model.hidden, kh, bh), (model.out, ko, bo)):
                lin.weight.copy_(k.T)
                lin.bias.copy_(b)
    return model


def torch_conv(spec, weights=None):
    """-> step: one Adam step of torch_model(spec, weights)."""
    import torch
    from torch import nn
    model = torch_model(spec, weights)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches(spec)]
    i = [0]

    def step():
        x, y = data[i[0] % len(data)]
        i[0] += 1
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def build(spec, libs, torch_available, same_weights=True):
    """-> ({side: step}, {side: why missing}) for the sides in libs ('tinygpt', 'torch')."""
    sides, missing, model = {}, {}, None
    if "tinygpt" in libs:
        sides["tinygpt"], model = tinygpt_keras_conv(spec)
    if "torch" in libs:
        if not torch_available:
            missing["torch"] = "torch not installed"
        else:
            weights = (model or keras_model(spec)).get_weights() if same_weights else None
            sides["torch"] = torch_conv(spec, weights)
    return sides, missing
