"""The temporal CNN: its configuration, construction (Keras 3, backend-neutral) and fitting with early stopping."""

from __future__ import annotations


import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@contextlib.contextmanager
def quiet_backend_logs() -> Iterator[None]:
    """Hide the backend's Python log warnings (e.g. TensorFlow's retracing notes) for a while."""
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl", "jax")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@dataclass(frozen=True)
class NetworkConfig:
    """CNN and training settings: filters per Conv1D layer, kernel size (steps), dropout, Adam
    learning rate, batch size, maximum epochs, early-stopping patience (epochs) and the share of
    training rows held out to decide when to stop (grouped by subject when there are >= 3)."""

    filters: tuple[int, ...] = (32, 64)
    kernel_size: int = 3
    dropout: float = 0.3
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 30
    patience: int = 5
    val_fraction: float = 0.15


def build_network(n_steps: int, n_channels: int, n_classes: int, config: NetworkConfig = NetworkConfig()) -> Any:
    """A compiled Keras model: (batch, n_steps, n_channels) -> (batch, n_classes) softmax."""
    import keras

    inputs = keras.Input(shape=(n_steps, n_channels), name="window")
    x = inputs
    for i, filters in enumerate(config.filters):
        x = keras.layers.Conv1D(filters, config.kernel_size, padding="same", activation="relu", name=f"conv{i + 1}")(x)
    pooled = keras.layers.Concatenate(name="pool")(
        [keras.layers.GlobalAveragePooling1D(name="avg")(x), keras.layers.GlobalMaxPooling1D(name="max")(x)]
    )
    pooled = keras.layers.Dropout(config.dropout, name="dropout")(pooled)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(pooled)
    model = keras.Model(inputs, outputs, name="aupipe_window_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _validation_rows(
    y: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Split training rows into fit / early-stopping rows: by subject when >= 3 subjects, else at random."""
    n = len(y)
    if fraction <= 0 or n < 30:
        return np.arange(n), None, "none (too few rows): early stopping on the training loss"
    if groups is not None and len(np.unique(groups)) >= 3:
        from sklearn.model_selection import GroupShuffleSplit

        fit_rows, val_rows = next(GroupShuffleSplit(1, test_size=fraction, random_state=seed).split(y, y, groups))
        return np.sort(fit_rows), np.sort(val_rows), f"{fraction:.0%} of training subjects"
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = max(1, int(round(fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val]), f"{fraction:.0%} of training windows (random)"


def fit_network(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    groups: np.ndarray | None = None,
    config: NetworkConfig = NetworkConfig(),
    seed: int = 0,
    verbose: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """Train a fresh network on normalised X (n, n_steps, n_channels) and class ids y (n,).

    Seeds are fixed first (same seed + same data -> same weights on the same backend/device).
    Returns the model (best weights restored) and a record: epochs run, validation scheme,
    seconds and training windows per second.
    """
    import time

    import keras
    from sklearn.utils.class_weight import compute_class_weight

    keras.backend.clear_session()  # fresh graph state per model (no retracing of earlier models)
    keras.utils.set_random_seed(seed)
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    fit_rows, val_rows, scheme = _validation_rows(y, groups, config.val_fraction, seed)
    present = np.unique(y[fit_rows])
    weights = compute_class_weight("balanced", classes=present, y=y[fit_rows])
    class_weight = {int(c): float(w) for c, w in zip(present, weights, strict=True)}
    model = build_network(X.shape[1], X.shape[2], n_classes, config)
    monitor = "val_loss" if val_rows is not None else "loss"
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience, restore_best_weights=True)
    start = time.perf_counter()
    with quiet_backend_logs():
        history = model.fit(
            X[fit_rows], y[fit_rows],
            validation_data=(X[val_rows], y[val_rows]) if val_rows is not None else None,
            epochs=config.epochs, batch_size=config.batch_size, class_weight=class_weight,
            callbacks=[stop], shuffle=True, verbose=verbose,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    losses = history.history.get(monitor, [])
    epochs_run = len(history.history.get("loss", []))
    record = {
        "epochs_run": epochs_run,
        "best_epoch": int(np.argmin(losses)) + 1 if losses else 0,
        "validation": scheme,
        "fit_rows": int(len(fit_rows)),
        "validation_rows": int(len(val_rows)) if val_rows is not None else 0,
        "class_weight": class_weight,
        "seconds": round(seconds, 3),
        "windows_per_second": round(len(fit_rows) * epochs_run / seconds, 1) if seconds > 0 else None,
    }
    return model, record
