"""A Keras functional-API text classifier from raw strings, written as a Keras user writes one:
only the import line differs (`import keras` -> `import tinygpt.keras as keras`).

Two string inputs, a review's title and its body, go through TextVectorization and one *shared*
Embedding; each then gets its own Conv1D tower (the body's with MaxPooling1D between two
convolutions), GlobalMaxPooling1D, and the two are concatenated into a Dense classifier. Trained
with Adam, EarlyStopping on validation loss; then evaluated, saved as .keras, reloaded, and asked
about two reviews written by hand.

No download: the reviews are generated. Each body is 20-40 filler words with three to five words
of its sentiment and one to two of the other; a title is three to five words, one of them a
sentiment word that agrees with the body 80% of the time. So neither input alone is perfect, and
reading single words (what a Conv1D + max-pool tower does well) gets most of it.

    python examples/keras_text_classifier.py              # ~20 s on 2 shared cores
    python examples/keras_text_classifier.py --samples 4000 --epochs 10
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import tinygpt.keras as keras  # was: import keras

POSITIVE = "great excellent wonderful loved superb delightful brilliant enjoyable charming perfect".split()
NEGATIVE = "awful terrible boring hated dreadful dull poor disappointing mediocre broken".split()
FILLER = ("the a an this that film story plot actor acting scene music ending camera it was is "
          "and but with very quite rather really somewhat i we they saw watched thought found "
          "its their my our long short old new second first last book cast director script").split()


def make_reviews(n, rng):
    """-> titles (n,), bodies (n,) of raw strings, labels (n,) with 1 = positive."""
    labels = rng.integers(0, 2, n)
    titles, bodies = [], []
    for label in labels:
        own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        words = list(rng.choice(FILLER, rng.integers(20, 41)))
        for pool, count in ((own, rng.integers(3, 6)), (other, rng.integers(1, 3))):
            for word in rng.choice(pool, count):
                words.insert(rng.integers(0, len(words) + 1), word)
        bodies.append(" ".join(words).capitalize() + ".")
        title = list(rng.choice(FILLER, rng.integers(2, 5)))
        title.insert(rng.integers(0, len(title) + 1), rng.choice(own if rng.random() < 0.8 else other))
        titles.append(" ".join(title).title() + "!")
    return np.array(titles, dtype=object), np.array(bodies, dtype=object), labels.astype("float32")


def build_model(titles, bodies, vocab_size=200, embed_dim=32):
    body_vectorizer = keras.layers.TextVectorization(max_tokens=vocab_size, output_sequence_length=48)
    body_vectorizer.adapt(np.concatenate([titles, bodies]))
    title_vectorizer = keras.layers.TextVectorization(output_sequence_length=8,
                                                      vocabulary=body_vectorizer.get_vocabulary())
    embedding = keras.layers.Embedding(vocab_size, embed_dim, name="shared_embedding")

    title_in = keras.Input(shape=(1,), dtype="string", name="title")
    body_in = keras.Input(shape=(1,), dtype="string", name="body")
    t = embedding(title_vectorizer(title_in))  # (None, 8, 32)
    t = keras.layers.Conv1D(32, 3, padding="same", activation="relu")(t)
    t = keras.layers.GlobalMaxPooling1D()(t)
    b = embedding(body_vectorizer(body_in))  # (None, 48, 32): the same embedding weights
    b = keras.layers.Conv1D(32, 5, activation="relu")(b)
    b = keras.layers.MaxPooling1D(2)(b)
    b = keras.layers.Conv1D(32, 3, activation="relu")(b)
    b = keras.layers.GlobalMaxPooling1D()(b)
    h = keras.layers.Concatenate()([t, b])
    h = keras.layers.Dropout(0.3)(h)
    h = keras.layers.Dense(32, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-4))(h)
    out = keras.layers.Dense(1, activation="sigmoid", name="positive")(h)
    return keras.Model(inputs=[title_in, body_in], outputs=out, name="review_classifier")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="where to write the .keras file (default: a temp dir)")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    titles, bodies, labels = make_reviews(args.samples, rng)
    test_titles, test_bodies, test_labels = make_reviews(max(args.samples // 4, 50), rng)

    model = build_model(titles, bodies)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    history = model.fit({"title": titles, "body": bodies}, labels, batch_size=32, epochs=args.epochs,
                        validation_split=0.2, verbose=2,
                        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=2,
                                                                 restore_best_weights=True)])
    print(f"trained {len(history.history['loss'])} epochs in {time.perf_counter() - start:.1f} s")
    loss, accuracy = model.evaluate({"title": test_titles, "body": test_bodies}, test_labels, verbose=0)
    print(f"test loss {loss:.3f}, test accuracy {accuracy:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.save or Path(tmp) / "review_classifier.keras")
        model.save(path)
        restored = keras.models.load_model(path)
        mine = {"title": np.array(["Loved It!", "What A Bore"], dtype=object),
                "body": np.array(["A wonderful film, the acting was superb and the ending perfect.",
                                  "Dull and boring, the plot was awful and the script poor."], dtype=object)}
        same = np.array_equal(restored.predict(mine), model.predict(mine))
        print(f"saved to {path.name}; the reloaded model predicts {'identically' if same else 'DIFFERENTLY'}")
        for title, p in zip(mine["title"], restored.predict(mine)[:, 0]):
            print(f"  {title!r}: P(positive) = {p:.2f}")
    return accuracy


if __name__ == "__main__":
    main()
