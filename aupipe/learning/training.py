"""Train and evaluate the emotion CNN: dataset -> cached features -> window tensors -> ReliefF -> CNN.

Levels (``level``):

- ``core``: every window of a clip gets the clip's label (CREMA-D: the intended emotion or the
  crowd's face-only vote).
- ``micro``: every window gets the mapping's winner for that window (``emotion`` of ``aupipe
  run``): the mapping labels the data the CNN learns from. When the dataset's labels are linked
  to the mapping (CREMA-D: ``labels: {cremad: ...}`` in the YAML), a window is kept only when
  its winner agrees with the clip's label (``hurt`` in a SAD clip, ``neutral`` in a NEU clip);
  windows whose winner contradicts the clip, and clips of classes no category names (CREMA-D
  DIS), are left out. Clip-level results at micro level add up the window probabilities of the
  categories of each dataset label, which joins the two levels.

Windows with face coverage below ``min_coverage`` (default 0.5) are dropped at both levels.

Evaluation is speaker-independent: folds are made of whole subjects (``GroupKFold`` or
leave-one-subject-out), and per fold ReliefF, the normalisation statistics and the CNN see
training rows only. Metrics: accuracy, macro-F1, UAR (balanced accuracy = unweighted mean of
per-class recall), per-class recall and the confusion matrix, at window level and at clip level
(mean of the clip's window probabilities); the rule alone and the fused label are scored too.

Keras, scikit-learn, scikit-rebate and matplotlib are imported inside functions.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aupipe.errors import AupipeError, SettingsError
from aupipe.learning.reports import headline, score_predictions, write_report

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from aupipe.learning.datasets import Dataset
    from aupipe.learning.features import SegmentSettings
    from aupipe.rules.mapping import Mapping
    from aupipe.learning.model import ModelSpec
    from aupipe.learning.network import NetworkConfig
    from aupipe.learning.selection import Selection

__all__ = [
    "LEVELS",
    "CVResult",
    "SegmentData",
    "TrainConfig",
    "cross_validate",
    "evaluate",
    "fit_final",
    "prepare",
    "synthetic_data",
    "train",
]

LEVELS: tuple[str, ...] = ("core", "micro")
#: Clip metadata fields used for per-group reports when present (CREMA-D demographics).


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class SegmentData:
    """Window tensors with their labels and groups, ready for training.

    X: (n, n_steps, n_channels) float32 raw features; y: (n,) int index into ``labels``;
    groups: (n,) subject per window; clip_ids: (n,) clip per window; windows: (n rows) window
    info (``clip_id start_ms end_ms face_coverage score_* emotion core_emotion emotion_score``);
    clips: one row per usable clip (``clip_id label subject`` + metadata); space: how labels
    relate to the mapping (:func:`aupipe.learning.model.label_space`); report: counts of what was kept.
    """

    X: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...]
    channels: tuple[str, ...]
    groups: np.ndarray
    clip_ids: np.ndarray
    windows: pd.DataFrame
    clips: pd.DataFrame
    level: str
    settings: SegmentSettings
    mapping: Mapping
    space: str = "none"
    label_key: str | None = None
    dataset_labels: tuple[str, ...] = ()
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def clip_label(self) -> dict[str, str]:
        """clip_id -> the clip's dataset label."""
        return dict(zip(self.clips["clip_id"], self.clips["label"], strict=True))


def _micro_labels(mapping: Mapping) -> list[str]:
    return [*mapping.category_names, mapping.neutral]


def prepare(
    dataset: str | Path | Sequence[str | Path] | Dataset,
    *,
    level: str = "core",
    mapping: Mapping | str | Path | None = None,
    segment: SegmentSettings | None = None,
    channels: Sequence[str] | None = None,
    label_source: str = "intended",
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> SegmentData:
    """Dataset -> cached per-frame features -> labelled window tensors (module doc for levels).

    channels: exact input columns (a model's); default: the columns matching ``segment.channels``.
    Clips that fail (corrupt, no face, no window with enough face) are listed in
    ``report["skipped_clips"]``. Raises AupipeError when fewer than two classes remain.
    """
    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    from aupipe.learning.datasets import load_dataset
    from aupipe.learning.features import SegmentSettings, channel_columns, clip_segments, extract_features, load_frames
    from aupipe.rules.mapping import Mapping as MappingType
    from aupipe.rules.mapping import load_mapping
    from aupipe.learning.model import label_space, to_dataset_label

    if level not in LEVELS:
        raise SettingsError(f"level '{level}' unknown; use one of: {', '.join(LEVELS)}")
    segment = segment or SegmentSettings()
    data = load_dataset(dataset, label_source=label_source)
    emotion_map = mapping if isinstance(mapping, MappingType) else load_mapping(mapping)
    cache = extract_features(data.clips, cache_dir, workers=workers, progress=progress)
    skipped: dict[str, str] = dict(cache.failed)
    by_id = {c.clip_id: c for c in data.clips}
    link = (
        data.label_key if data.label_key and any(c.labels.get(data.label_key) for c in emotion_map.categories) else None
    )
    tensors: list[np.ndarray] = []
    rows: list[pd.DataFrame] = []
    chosen = list(channels) if channels is not None else None
    dropped_inconsistent = 0
    start = time.perf_counter()
    for clip_id, path in tqdm(sorted(cache.files.items()), desc="segments", unit="clip", file=sys.stderr,
                              disable=not progress, dynamic_ncols=True, mininterval=0.5):  # fmt: skip
        clip = by_id[clip_id]
        try:
            frames = load_frames(path)
        except AupipeError as err:
            Path(path).unlink(missing_ok=True)
            skipped[clip_id] = str(err)
            continue
        if chosen is None:
            chosen = channel_columns(list(frames.columns), segment.channels)
            if not chosen:
                raise SettingsError(f"no per-frame column matches the channel patterns {', '.join(segment.channels)}")
        missing = [c for c in chosen if c not in frames.columns]
        if missing:
            raise AupipeError(f"{clip.path.name}: cached features lack the columns {', '.join(missing[:3])}; retrain")
        X, win = clip_segments(frames, emotion_map, segment, chosen)
        if level == "micro":
            target = win["emotion"].astype(str).to_numpy()
            if link is not None:
                keep = np.array([to_dataset_label(t, emotion_map, link) == clip.label for t in target], dtype=bool)
                dropped_inconsistent += int((~keep).sum())
                X, win, target = X[keep], win.loc[keep].reset_index(drop=True), target[keep]
        else:
            target = np.full(len(win), clip.label, dtype=object)
        if len(win) == 0:
            skipped[clip_id] = f"{clip.path.name}: no window with face coverage >= {segment.min_coverage:g}" + (
                " whose rule label agrees with the clip" if level == "micro" else ""
            )
            continue
        info = win[[c for c in win.columns if c in ("start_ms", "end_ms", "face_coverage", "emotion", "core_emotion",
                                                    "emotion_score") or c.startswith("score_")]].copy()  # fmt: skip
        info.insert(0, "clip_id", clip_id)
        info.insert(1, "subject", clip.subject)
        info["target"] = target
        tensors.append(X)
        rows.append(info)
    if not rows or chosen is None:  # chosen is set by the first clip read, so rows imply it
        raise AupipeError(f"{data.root}: no usable window in the dataset ({len(skipped)} clips skipped)")
    windows = pd.concat(rows, ignore_index=True)
    order = _micro_labels(emotion_map) if level == "micro" else list(data.labels)
    present = set(windows["target"])
    labels = tuple(label for label in order if label in present) + tuple(sorted(present - set(order)))
    if len(labels) < 2:
        raise AupipeError(f"training needs at least two classes; the usable windows only have {', '.join(labels)}")
    index = {label: k for k, label in enumerate(labels)}
    used = set(windows["clip_id"])
    clips = data.table()
    clips = clips[clips["clip_id"].isin(used)].reset_index(drop=True)
    return SegmentData(
        X=np.concatenate(tensors).astype(np.float32),
        y=windows["target"].map(index).to_numpy(dtype=np.int64),
        labels=labels,
        channels=tuple(chosen),
        groups=windows["subject"].astype(str).to_numpy(),
        clip_ids=windows["clip_id"].astype(str).to_numpy(),
        windows=windows,
        clips=clips,
        level=level,
        settings=segment,
        mapping=emotion_map,
        space=label_space(emotion_map, labels, level, data.label_key),
        label_key=data.label_key,
        dataset_labels=tuple(data.labels),
        report={
            "dataset": data.name,
            "root": str(data.root),
            "clips": len(data.clips),
            "subjects": len(data.subjects),
            "usable_clips": len(used),
            "windows": int(len(windows)),
            "windows_per_label": {label: int((windows["target"] == label).sum()) for label in labels},
            "dropped_inconsistent_windows": dropped_inconsistent,
            "skipped_clips": dict(sorted(skipped.items())),
            "skipped_files": dict(sorted(data.skipped.items())),
            "features": cache.summary(),
            "segment_seconds": round(time.perf_counter() - start, 3),
        },
    )


# --------------------------------------------------------------------------------------------
# Metrics and reports
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _default_network() -> NetworkConfig:
    from aupipe.learning.network import NetworkConfig

    return NetworkConfig()


@dataclass(frozen=True)
class TrainConfig:
    """Selection and network settings: ``n_select`` channels kept by ReliefF (fit on at most
    ``relief_max_rows`` training windows, ``relief_neighbors`` neighbours, ``relief_jobs``
    processes), the CNN settings, and the rule weight of the fused label."""

    network: NetworkConfig = field(default_factory=_default_network)
    n_select: int = 24
    relief_max_rows: int = 2000
    relief_neighbors: int = 10
    relief_jobs: int = 1
    rule_weight: float = 0.25


@dataclass
class FoldResult:
    """One split: window positions of train and test rows, the rows ReliefF saw, subjects, probabilities."""

    fold: int
    train_rows: np.ndarray
    test_rows: np.ndarray
    relief_rows: np.ndarray
    train_subjects: list[str]
    test_subjects: list[str]
    selection: Selection
    proba: np.ndarray
    fit: dict[str, Any]


@dataclass
class CVResult:
    """Cross-validation: ``metrics`` (JSON-ready, pooled out-of-fold scores + per fold) and ``folds``."""

    metrics: dict[str, Any]
    folds: list[FoldResult]
    scores: dict[str, Any]


def _fit(
    data: SegmentData, rows: np.ndarray, config: TrainConfig, seed: int
) -> tuple[Any, Selection, np.ndarray, np.ndarray, dict[str, Any]]:
    """ReliefF + normalisation + CNN on ``rows`` only. Returns network, selection, mean, std, fit record."""
    import numpy as np

    from aupipe.learning.network import fit_network
    from aupipe.learning.selection import relieff_select

    selection = relieff_select(
        data.X[rows], data.y[rows], data.channels, n_select=config.n_select, max_rows=config.relief_max_rows,
        n_neighbors=config.relief_neighbors, seed=seed, n_jobs=config.relief_jobs,
    )  # fmt: skip
    X = data.X[rows][:, :, list(selection.indices)]
    mean = X.reshape(-1, X.shape[2]).mean(axis=0)
    std = np.maximum(X.reshape(-1, X.shape[2]).std(axis=0), 1e-6)
    network, record = fit_network(
        (X - mean) / std, data.y[rows], len(data.labels), groups=data.groups[rows], config=config.network, seed=seed
    )
    return network, selection, mean.astype(np.float32), std.astype(np.float32), record


def _splits(groups: np.ndarray, folds: int | str) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Subject-grouped splits: leave-one-subject-out (``loao`` or folds >= subjects) or GroupKFold."""
    import numpy as np
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise AupipeError(f"speaker-independent evaluation needs at least 2 subjects; found {n_groups} (use --folds 0)")
    dummy = np.zeros(len(groups))
    if folds == "loao" or (isinstance(folds, int) and folds >= n_groups):
        return list(LeaveOneGroupOut().split(dummy, dummy, groups)), f"leave-one-subject-out ({n_groups} folds)"
    if not isinstance(folds, int) or folds < 2:
        raise SettingsError(f"folds must be 'loao' or an integer >= 2 (got {folds!r})")
    return list(GroupKFold(n_splits=folds).split(dummy, dummy, groups)), f"GroupKFold by subject ({folds} folds)"


def cross_validate(
    data: SegmentData, *, folds: int | str = 5, config: TrainConfig | None = None, seed: int = 0,
    progress: bool = False,
) -> CVResult:  # fmt: skip
    """Subject-grouped cross-validation; per fold, ReliefF/normalisation/CNN are fit on training rows only.

    Raises AupipeError if a split ever puts one subject on both sides (it cannot with grouped
    splitters; the check guards against a regression). Out-of-fold probabilities are pooled.
    """
    import numpy as np
    from tqdm import tqdm

    from aupipe.learning.network import quiet_backend_logs

    config = config or TrainConfig()
    splits, scheme = _splits(data.groups, folds)
    proba = np.full((len(data), len(data.labels)), np.nan, dtype=np.float32)
    results: list[FoldResult] = []
    per_fold: list[dict[str, Any]] = []
    for fold, (train_rows, test_rows) in enumerate(tqdm(splits, desc="folds", unit="fold", file=sys.stderr,
                                                       disable=not progress, dynamic_ncols=True)):  # fmt: skip
        train_subjects = sorted(set(data.groups[train_rows]))
        test_subjects = sorted(set(data.groups[test_rows]))
        if set(train_subjects) & set(test_subjects):
            raise AupipeError(f"fold {fold}: subjects {set(train_subjects) & set(test_subjects)} on both sides")
        network, selection, mean, std, record = _fit(data, train_rows, config, seed + fold)
        X_test = (data.X[test_rows][:, :, list(selection.indices)] - mean) / std
        with quiet_backend_logs():
            fold_proba = np.asarray(network.predict(X_test, batch_size=1024, verbose=0), dtype=np.float32)
        proba[test_rows] = fold_proba
        relief_rows = train_rows[selection.rows]
        results.append(FoldResult(fold, train_rows, test_rows, relief_rows, train_subjects, test_subjects, selection,
                                  fold_proba, record))  # fmt: skip
        fold_scores = score_predictions(data, test_rows, fold_proba, config.rule_weight)
        per_fold.append({
            "fold": fold, "train_subjects": train_subjects, "test_subjects": test_subjects,
            "train_windows": int(len(train_rows)), "test_windows": int(len(test_rows)),
            "relief_rows": int(len(relief_rows)), "relief_rows_in_test": int(np.isin(relief_rows, test_rows).sum()),
            "selected_channels": list(selection.channels), "fit": record,
            "window": headline(fold_scores["window"]),
            **({"clip": headline(fold_scores["clip"])} if "clip" in fold_scores else {}),
        })  # fmt: skip
    all_rows = np.arange(len(data))
    scores = score_predictions(data, all_rows, proba, config.rule_weight)
    summary = {
        key: {stat: {"mean": float(np.mean(values)), "std": float(np.std(values))}
              for stat in ("accuracy", "macro_f1", "uar")
              if (values := [f[key][stat] for f in per_fold if key in f and stat in f[key]])}
        for key in ("window", "clip")
    }  # fmt: skip
    metrics = {"scheme": scheme, "seed": seed, "pooled": scores, "fold_mean": summary, "folds": per_fold}
    return CVResult(metrics=metrics, folds=results, scores=scores)


def fit_final(
    data: SegmentData, *, config: TrainConfig | None = None, seed: int = 0, training: dict[str, Any] | None = None
) -> tuple[Any, ModelSpec, dict[str, Any]]:
    """Fit the deployable model on all rows; returns (network, spec, fit record)."""
    import numpy as np

    from aupipe.learning.model import ModelSpec

    config = config or TrainConfig()
    network, selection, mean, std, record = _fit(data, np.arange(len(data)), config, seed)
    spec = ModelSpec(
        labels=data.labels, level=data.level, space=data.space, channels=selection.channels, segment=data.settings,
        mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std), mapping_name=data.mapping.name,
        mapping_sha256=data.mapping.sha256, label_key=data.label_key, rule_weight=config.rule_weight,
        mapping_source=data.mapping.source, selection=selection.to_json(),
        training={**(training or {}), "seed": seed, "fit": record, "network": asdict(config.network),
                  "n_select": config.n_select, "relief_max_rows": config.relief_max_rows},
    )  # fmt: skip
    return network, spec, record


def train(
    dataset: str | Path | Sequence[str | Path] | Dataset,
    out_dir: str | Path,
    *,
    level: str = "core",
    label_source: str = "intended",
    mapping: Mapping | str | Path | None = None,
    epochs: int = 30,
    folds: int | str = 5,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    segment: SegmentSettings | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the CNN on ``dataset`` and write the model folder ``out_dir`` with metrics.json + confusion.png.

    folds: ``0`` = no cross-validation; an integer k >= 2 = GroupKFold by subject; ``loao`` =
    leave-one-subject-out. The cross-validated scores estimate how the model does on unseen
    subjects; the saved model is then fit on all data. ``epochs`` overrides ``config``.
    Returns the metrics dict written to ``out_dir/metrics.json``.
    """
    import dataclasses

    from aupipe.learning.features import SegmentSettings
    from aupipe.learning.model import save_model

    config = config or TrainConfig()
    segment = segment or SegmentSettings()
    config = dataclasses.replace(config, network=dataclasses.replace(config.network, epochs=epochs))
    start = time.perf_counter()
    data = prepare(dataset, level=level, mapping=mapping, segment=segment, label_source=label_source,
                   cache_dir=cache_dir, workers=workers, progress=progress)  # fmt: skip
    cv = None if folds in (0, 1, "0", "1", None) else cross_validate(
        data, folds=folds, config=config, seed=seed, progress=progress)  # fmt: skip
    facts = {"dataset": data.report["dataset"], "root": data.report["root"], "level": level,
             "label_source": label_source, "windows": len(data),
             "subjects": sorted(set(data.groups.tolist()))}  # fmt: skip
    network, spec, record = fit_final(data, config=config, seed=seed, training=facts)
    save_model(out_dir, network, spec)
    metrics: dict[str, Any] = {
        "command": "train",
        "model_dir": str(out_dir),
        "level": level,
        "labels": list(data.labels),
        "label_space": data.space,
        "mapping": {"name": data.mapping.name, "sha256": data.mapping.sha256},
        "segment": asdict(segment),
        "data": data.report,
        "cross_validation": cv.metrics if cv else None,
        "final_model": {"selected_channels": list(spec.channels), "fit": record},
        "seconds": round(time.perf_counter() - start, 3),
    }
    title = f"{data.report['dataset']} {level}-level, {cv.metrics['scheme']}" if cv else ""
    write_report(out_dir, metrics, cv.scores if cv else None, title)
    return metrics


def evaluate(
    model_dir: str | Path,
    dataset: str | Path | Sequence[str | Path] | Dataset,
    out_dir: str | Path,
    *,
    label_source: str = "intended",
    mapping: Mapping | str | Path | None = None,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    rule_weight: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score a trained model on ``dataset``; writes ``out_dir/metrics.json`` and ``confusion.png``.

    The dataset's windows are built with the model's settings and labelled at the model's level.
    Only meaningful on subjects the model was not trained on. Returns the metrics dict.
    """
    import numpy as np

    from aupipe.learning.model import load_model, model_mapping

    emotion_map = mapping if mapping is not None else model_mapping(model_dir)
    model = load_model(model_dir, emotion_map)
    spec = model.spec
    data = prepare(dataset, level=spec.level, mapping=model.mapping, segment=spec.segment, channels=spec.channels,
                   label_source=label_source, cache_dir=cache_dir, workers=workers, progress=progress)  # fmt: skip
    # Put the data's labels in the model's order (labels the model never saw are kept: they count as errors).
    labels = spec.labels + tuple(label for label in data.labels if label not in spec.labels)
    names = np.asarray(data.labels, dtype=object)[data.y]
    index = {label: k for k, label in enumerate(labels)}
    data.y = np.array([index[n] for n in names], dtype=np.int64)
    data.labels = labels
    data.space = spec.space
    start = time.perf_counter()
    proba = model.predict_proba(data.X)
    seconds = time.perf_counter() - start
    proba = np.concatenate([proba, np.zeros((len(proba), len(labels) - len(spec.labels)), np.float32)], axis=1)
    weight = spec.rule_weight if rule_weight is None else rule_weight
    scores = score_predictions(data, np.arange(len(data)), proba, weight)
    train_subjects = set(spec.training.get("subjects", []))
    metrics = {
        "command": "evaluate",
        "model_dir": str(model_dir),
        "level": spec.level,
        "labels": list(spec.labels),
        "label_space": spec.space,
        "data": data.report,
        "subjects_seen_in_training": sorted(train_subjects & set(data.groups)),
        "scores": scores,
        "inference": {
            "windows": len(data),
            "seconds": round(seconds, 3),
            "windows_per_second": round(len(data) / seconds, 1) if seconds > 0 else None,
        },  # fmt: skip
    }
    write_report(out_dir, metrics, scores, f"{Path(model_dir).name} on {data.report['dataset']} ({spec.level} level)")
    return metrics


def synthetic_data(
    *,
    n_subjects: int = 4,
    clips_per_class: int = 4,
    windows_per_clip: int = 5,
    n_classes: int = 3,
    n_steps: int = 16,
    n_channels: int = 6,
    n_signal: int = 2,
    noise: float = 0.4,
    seed: int = 0,
) -> SegmentData:
    """A learnable toy dataset with the shapes of real data (for tests and benchmarks).

    Class 0 is a sinusoid (two periods), class 1 a rising ramp, class 2 a falling ramp, further
    classes sinusoids of more periods; all zero-mean over the window, so only the temporal shape
    tells them apart. The pattern (amplitude 1.5) lies in one of the first ``n_signal`` channels;
    every channel gets Gaussian noise and a per-subject offset. Channels are named ``S0_r``...
    Windows of one clip share class and subject. No mapping link (space ``none``).
    """
    import numpy as np
    import pandas as pd

    from aupipe.learning.features import SegmentSettings
    from aupipe.rules.mapping import load_mapping

    rng = np.random.default_rng(seed)
    t = (np.arange(n_steps) + 0.5) / n_steps
    tensors, targets, subjects, clip_ids = [], [], [], []
    for s in range(n_subjects):
        offset = rng.normal(0.0, 0.5, n_channels)
        for k in range(n_classes):
            for c in range(clips_per_class):
                for _ in range(windows_per_clip):
                    x = rng.normal(0.0, noise, (n_steps, n_channels)) + offset
                    phase = rng.uniform(0, 2 * np.pi)
                    if k == 1:
                        pattern = np.linspace(-1.5, 1.5, n_steps)
                    elif k == 2:
                        pattern = np.linspace(1.5, -1.5, n_steps)
                    else:
                        pattern = 1.5 * np.sin(2 * np.pi * (2 + max(0, k - 2)) * t + phase)
                    x[:, rng.integers(0, n_signal)] += pattern
                    tensors.append(x)
                    targets.append(k)
                    subjects.append(f"S{s:02d}")
                    clip_ids.append(f"S{s:02d}_class{k}_clip{c}")
    labels = tuple(f"class{k}" for k in range(n_classes))
    clip_table = pd.DataFrame({"clip_id": clip_ids, "label": [labels[k] for k in targets], "subject": subjects})
    clip_table = clip_table.drop_duplicates("clip_id").reset_index(drop=True)
    return SegmentData(
        X=np.asarray(tensors, dtype=np.float32), y=np.asarray(targets, dtype=np.int64), labels=labels,
        channels=tuple(f"S{j}_r" for j in range(n_channels)), groups=np.asarray(subjects),
        clip_ids=np.asarray(clip_ids), windows=pd.DataFrame({"clip_id": clip_ids, "subject": subjects}),
        clips=clip_table, level="core", settings=SegmentSettings(n_steps=n_steps), mapping=load_mapping(),
        space="none", label_key=None, dataset_labels=labels, report={"dataset": "synthetic", "windows": len(targets)},
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Command line (thin layer: cli.py adds these sub-commands)
# --------------------------------------------------------------------------------------------
