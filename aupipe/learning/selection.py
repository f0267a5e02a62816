"""ReliefF feature selection (scikit-rebate) over summarised window features.

Each window tensor (n_steps, n_channels) is summarised per channel by ``SUMMARIES`` (mean,
max, standard deviation and last-minus-first over the window's time steps), giving
``n_channels * 4`` columns named ``AU12_r:mean`` ... ReliefF scores every column; a channel's
score is the best score of its summaries, and the ``n_select`` best channels are kept, so the
CNN still sees them as time series. ReliefF is O(rows^2): it is fit on at most ``max_rows``
rows drawn at random per class (seeded) from the rows it is given, and callers give it the
training rows of a split only. :class:`Selection` records which rows it saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aupipe.errors import AupipeError

__all__ = ["SUMMARIES", "Selection", "relieff_select", "summarise", "summary_names"]

#: Per-channel statistics over a window's time steps, in column order.
SUMMARIES: tuple[str, ...] = ("mean", "max", "std", "delta")


def summarise(X: np.ndarray) -> np.ndarray:
    """(n, n_steps, n_channels) -> (n, n_channels * 4) float64: per channel mean, max, std, last - first."""
    X = np.asarray(X, dtype=np.float64)
    parts = [X.mean(axis=1), X.max(axis=1), X.std(axis=1), X[:, -1, :] - X[:, 0, :]]
    return np.stack(parts, axis=2).reshape(len(X), -1)


def summary_names(channels: Sequence[str]) -> list[str]:
    """Names of the :func:`summarise` columns: ``<channel>:<statistic>``."""
    return [f"{channel}:{stat}" for channel in channels for stat in SUMMARIES]


@dataclass(frozen=True)
class Selection:
    """ReliefF's choice.

    channels: the kept channels in input order; indices: their positions in the input;
    scores: channel -> score (best of its summaries; higher = more relevant);
    summary_scores: summary column -> ReliefF score; rows: positions (into the X given to
    :func:`relieff_select`) of the rows ReliefF was fit on.
    """

    channels: tuple[str, ...]
    indices: tuple[int, ...]
    scores: dict[str, float]
    summary_scores: dict[str, float]
    rows: np.ndarray

    def to_json(self) -> dict[str, object]:
        """JSON-ready form (without the row positions)."""
        return {
            "channels": list(self.channels),
            "channel_scores": {k: round(v, 6) for k, v in self.scores.items()},
            "summary_scores": {k: round(v, 6) for k, v in self.summary_scores.items()},
            "summaries": list(SUMMARIES),
            "relief_rows": len(self.rows),
        }


def _sample_rows(y: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """At most ``max_rows`` row positions, drawn per class in proportion (at least 1 each), sorted."""
    n = len(y)
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = np.maximum(1, np.floor(counts * max_rows / n).astype(int))
    picked = [rng.choice(np.flatnonzero(y == c), size=min(q, k), replace=False)
              for c, q, k in zip(classes, quota, counts, strict=True)]  # fmt: skip
    return np.sort(np.concatenate(picked))


def relieff_select(
    X: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    *,
    n_select: int = 24,
    max_rows: int = 2000,
    n_neighbors: int = 10,
    seed: int = 0,
    n_jobs: int = 1,
) -> Selection:
    """Rank channels with ReliefF on window summaries and keep the ``n_select`` best.

    X: (n, n_steps, n_channels) window tensors of the TRAINING rows only; y: (n,) class ids.
    Constant summary columns score 0 and are not shown to ReliefF. Returns a :class:`Selection`.
    """
    from skrebate import ReliefF

    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 3 or X.shape[2] != len(channels) or len(X) != len(y):
        raise AupipeError(f"ReliefF input of shape {X.shape} does not fit {len(channels)} channels and {len(y)} labels")
    if len(np.unique(y)) < 2:
        raise AupipeError("ReliefF needs at least two classes among the training windows")
    rows = _sample_rows(y, max_rows, seed)
    summary = summarise(X[rows])
    names = summary_names(channels)
    spread = summary.max(axis=0) - summary.min(axis=0)
    varying = np.flatnonzero(spread > 1e-9)
    summary_scores = np.zeros(len(names))
    if len(varying):
        neighbours = max(1, min(n_neighbors, len(rows) - 1))
        relief = ReliefF(n_features_to_select=len(varying), n_neighbors=neighbours, n_jobs=n_jobs)
        relief.fit(summary[:, varying], y[rows])
        summary_scores[varying] = np.nan_to_num(np.asarray(relief.feature_importances_, dtype=np.float64))
    channel_scores = summary_scores.reshape(len(channels), len(SUMMARIES)).max(axis=1)
    k = max(1, min(n_select, len(channels)))
    order = np.argsort(-channel_scores, kind="stable")[:k]
    kept = np.sort(order)
    return Selection(
        channels=tuple(channels[i] for i in kept),
        indices=tuple(int(i) for i in kept),
        scores={channels[i]: float(channel_scores[i]) for i in range(len(channels))},
        summary_scores={names[i]: float(summary_scores[i]) for i in range(len(names))},
        rows=rows,
    )
