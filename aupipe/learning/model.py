"""The emotion CNN: a small Keras 3 temporal CNN over window tensors, its artifact folder, and fusion.

Network (backend-neutral Keras 3: TensorFlow by default, ``KERAS_BACKEND=jax`` or ``torch``
also work; a GPU is used when the backend sees one): input (n_steps, n_channels) ->
Conv1D(32, 3, relu) -> Conv1D(64, 3, relu) -> [global average pool, global max pool] ->
dropout -> dense softmax over the labels. Trained with Adam on sparse categorical
cross-entropy, balanced class weights, early stopping on a validation split (restoring the
best weights) and fixed seeds (``keras.utils.set_random_seed``).

Artifact folder (no pickle anywhere)::

    model.keras          Keras 3 native format, loaded with safe_mode=True
    features.json        selected channels, n_steps, window_ms, stride_ms, min_coverage, ReliefF scores
    normalization.json   per-channel mean and std (z-score) of the training windows
    labels.json          class labels in output order, level, label space
    meta.json            mapping name + sha256, aupipe version, keras version + backend, rule weight

Fusion (``predict_windows``): the rule's scores (``score_<category>`` of the window, from the
same mapping) are projected onto the model's labels -- each label takes the best score of the
categories that name it (the category itself at micro level, ``labels: {cremad: X}`` at core
level on CREMA-D, the parent for labels that are the mapping's core emotions) and the neutral
label takes ``1 - best score`` -- and normalised to sum 1, giving ``r``. With the model's
probabilities ``p`` and the rule weight ``w`` (default 0.25):
``final = argmax((1 - w) * p + w * r)``. Windows the model cannot read (face coverage below the
training threshold) get NaN probabilities and the rule-only decision ``argmax r``.

Keras is imported inside functions only: ``aupipe run`` without ``--model`` never loads it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aupipe.errors import AupipeError, AupipeWarning, ModelError, SettingsError
from aupipe.learning.features import SegmentSettings, resample_windows
from aupipe.learning.network import quiet_backend_logs

if TYPE_CHECKING:
    from aupipe.rules.mapping import Category, Mapping

__all__ = [
    "ARTIFACT_FILES",
    "DEFAULT_RULE_WEIGHT",
    "ModelError",
    "ModelSpec",
    "WindowModel",
    "label_space",
    "load_model",
    "model_mapping",
    "predict_windows",
    "rule_probabilities",
    "save_model",
    "to_dataset_label",
]

ARTIFACT_FORMAT = 1
ARTIFACT_FILES: tuple[str, ...] = ("model.keras", "features.json", "normalization.json", "labels.json", "meta.json")
#: Weight of the rule's scores in the fused label (the model's probabilities get 1 - w).
DEFAULT_RULE_WEIGHT = 0.25
#: Tolerance (ms) when comparing a window's length with the model's window_ms.
_LENGTH_TOLERANCE_MS = 1.0


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Labels, rule projection and fusion
# --------------------------------------------------------------------------------------------


def _category_label(category: Category, space: str) -> str | None:
    if space == "micro":
        return category.name
    if space == "parents":
        return category.parent
    if space.startswith("dataset:"):
        return category.labels.get(space.split(":", 1)[1])
    return None


def _neutral_label(mapping: Mapping, space: str) -> str | None:
    if space in ("micro", "parents"):
        return mapping.neutral
    if space.startswith("dataset:"):
        return mapping.neutral_labels.get(space.split(":", 1)[1])
    return None


def label_space(mapping: Mapping, labels: Sequence[str], level: str, label_key: str | None = None) -> str:
    """How the model's labels relate to the mapping's categories (for fusion and clip-level reports).

    ``micro``: labels are category names (+ the neutral label); ``dataset:<key>``: labels are the
    dataset labels categories name under ``labels: {<key>: ...}``; ``parents``: labels are the
    mapping's core emotions; ``none``: no relation (fusion then uses the model alone).
    """
    names = set(mapping.category_names) | {mapping.neutral}
    if level == "micro" or set(labels) <= names:
        return "micro"
    if label_key and any(c.labels.get(label_key) for c in mapping.categories):
        return f"dataset:{label_key}"
    if set(labels) <= set(mapping.parents) | {mapping.neutral}:
        return "parents"
    return "none"


def to_dataset_label(label: str, mapping: Mapping, label_key: str) -> str | None:
    """The dataset label (e.g. CREMA-D ``HAP``) of a micro label (a category or the neutral label)."""
    if label == mapping.neutral:
        return mapping.neutral_labels.get(label_key)
    try:
        return mapping.category(label).labels.get(label_key)
    except KeyError:
        return None


def rule_probabilities(windows: pd.DataFrame, mapping: Mapping, labels: Sequence[str], space: str) -> np.ndarray | None:
    """The rule's scores projected onto ``labels`` and normalised to sum 1: (n_windows, n_labels).

    Each label takes the best ``score_<category>`` among the categories that name it in
    ``space``; the neutral label takes 1 - the best score of all categories. Rows where no
    label gets any score are all 0. None when ``space`` is ``none``.
    """
    if space == "none":
        return None
    index = {label: k for k, label in enumerate(labels)}
    columns = [f"score_{c.name}" for c in mapping.categories]
    missing = [c for c in columns if c not in windows.columns]
    if missing:
        raise ModelError(
            f"the window table has no {missing[0]} column: it was not scored with mapping '{mapping.name}'"
        )
    scores = np.nan_to_num(windows[columns].to_numpy(dtype=np.float64), nan=0.0)
    out = np.zeros((len(windows), len(labels)))
    for j, category in enumerate(mapping.categories):
        k = index.get(_category_label(category, space) or "")
        if k is not None:
            out[:, k] = np.maximum(out[:, k], scores[:, j])
    k = index.get(_neutral_label(mapping, space) or "")
    if k is not None:
        out[:, k] = np.maximum(out[:, k], 1.0 - (scores.max(axis=1) if scores.shape[1] else 0.0))
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


# --------------------------------------------------------------------------------------------
# Artifact
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Everything besides the weights: what the model reads, how to normalise, what it outputs.

    labels: output order; level: ``core`` or ``micro``; space: see :func:`label_space`;
    channels: selected per-frame columns (input order); segment: window/resampling settings;
    mean / std: per-channel z-score statistics of the training windows; selection: ReliefF
    record; training: free-form facts (dataset, seed, epochs...); rule_weight: fusion weight.
    """

    labels: tuple[str, ...]
    level: str
    space: str
    channels: tuple[str, ...]
    segment: SegmentSettings
    mean: tuple[float, ...]
    std: tuple[float, ...]
    mapping_name: str
    mapping_sha256: str
    label_key: str | None = None
    rule_weight: float = DEFAULT_RULE_WEIGHT
    mapping_source: str = ""
    selection: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    training: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def normalise(self, X: np.ndarray) -> np.ndarray:
        """z-score X (..., n_channels) with the training statistics (float32)."""
        return (np.asarray(X, dtype=np.float32) - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def save_model(out_dir: str | Path, network: Any, spec: ModelSpec) -> Path:
    """Write the artifact folder (module doc); returns its path. Overwrites the five files only."""
    import datetime

    import keras

    from aupipe.version import __version__
    from aupipe.learning.features import stage_fingerprint

    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / "model.part.keras"
        network.save(partial)
        os.replace(partial, folder / "model.keras")
        _write_json(folder / "features.json", {
            "channels": list(spec.channels), "n_steps": spec.segment.n_steps,
            "window_ms": spec.segment.window_ms, "stride_ms": spec.segment.stride_ms,
            "min_coverage": spec.segment.min_coverage, "channel_patterns": list(spec.segment.channels),
            "relief": spec.selection,
        })  # fmt: skip
        _write_json(
            folder / "normalization.json",
            {"channels": list(spec.channels), "mean": list(spec.mean), "std": list(spec.std)},
        )
        _write_json(folder / "labels.json",
                    {"labels": list(spec.labels), "level": spec.level, "space": spec.space,
                     "label_key": spec.label_key})  # fmt: skip
        _write_json(folder / "meta.json", {
            "format": ARTIFACT_FORMAT, "aupipe_version": __version__, "stage_fingerprint": stage_fingerprint(),
            "mapping": {"name": spec.mapping_name, "sha256": spec.mapping_sha256, "source": spec.mapping_source},
            "keras_version": keras.__version__, "backend": keras.backend.backend(),
            "rule_weight": spec.rule_weight, "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "training": spec.training,
        })  # fmt: skip
    except OSError as err:
        raise AupipeError(f"{folder}: cannot write the model folder ({err.strerror or err})") from err
    return folder


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{path}: unreadable model file ({err}); retrain the model (aupipe train)") from err
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a model description (expected a JSON object); retrain the model")
    return data


def _mapping_of(mapping: Mapping | str | Path | None) -> Mapping:
    from aupipe.rules.mapping import Mapping as MappingType
    from aupipe.rules.mapping import load_mapping

    return mapping if isinstance(mapping, MappingType) else load_mapping(mapping)


def read_spec(model_dir: str | Path) -> tuple[ModelSpec, dict[str, Any]]:
    """Read and check the JSON files of a model folder; returns the spec and meta.json."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ModelError(f"{folder}: model folder not found; train one with: aupipe train DATASET -o {folder}")
    missing = [name for name in ARTIFACT_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelError(
            f"{folder}: not an aupipe model folder (missing {', '.join(missing)}); train one with aupipe train"
        )
    features = _read_json(folder / "features.json")
    norm = _read_json(folder / "normalization.json")
    labels = _read_json(folder / "labels.json")
    meta = _read_json(folder / "meta.json")
    try:
        if meta.get("format") != ARTIFACT_FORMAT:
            raise ModelError(f"{folder}: model format {meta.get('format')} is not {ARTIFACT_FORMAT}; retrain the model")
        channels = tuple(str(c) for c in features["channels"])
        if (
            tuple(norm["channels"]) != channels
            or len(norm["mean"]) != len(channels)
            or len(norm["std"]) != len(channels)
        ):
            raise ModelError(f"{folder}: normalization.json does not match the channels of features.json; retrain")
        segment = SegmentSettings(
            window_ms=float(features["window_ms"]), stride_ms=float(features["stride_ms"]),
            n_steps=int(features["n_steps"]), min_coverage=float(features["min_coverage"]),
            channels=tuple(features.get("channel_patterns", ())),
        )  # fmt: skip
        spec = ModelSpec(
            labels=tuple(str(x) for x in labels["labels"]), level=str(labels["level"]), space=str(labels["space"]),
            channels=channels, segment=segment,
            mean=tuple(float(x) for x in norm["mean"]), std=tuple(float(x) for x in norm["std"]),
            mapping_name=str(meta["mapping"]["name"]), mapping_sha256=str(meta["mapping"]["sha256"]),
            label_key=labels.get("label_key"), rule_weight=float(meta.get("rule_weight", DEFAULT_RULE_WEIGHT)),
            mapping_source=str(meta["mapping"].get("source", "")),
            selection=dict(features.get("relief") or {}), training=dict(meta.get("training") or {}),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{folder}: incomplete model description ({type(err).__name__}: {err}); retrain") from err
    return spec, meta


def model_mapping(model_dir: str | Path) -> Mapping:
    """The mapping a model was trained with: the shipped mapping of that name, else its source file.

    Raises ModelError when neither is found (then pass the YAML file with --mapping).
    """
    from aupipe.rules.mapping import list_mappings, load_mapping

    spec, _ = read_spec(model_dir)
    if spec.mapping_name in list_mappings():
        return load_mapping(spec.mapping_name)
    if spec.mapping_source and Path(spec.mapping_source).is_file():
        return load_mapping(spec.mapping_source)
    raise ModelError(
        f"{model_dir}: the model's mapping '{spec.mapping_name}' is neither shipped nor at {spec.mapping_source or '?'}; "
        "give its YAML file with --mapping"
    )


@dataclass
class WindowModel:
    """A loaded, checked model: ``predict_proba`` on tensors, ``predict_windows`` on pipeline tables."""

    network: Any
    spec: ModelSpec
    mapping: Mapping
    folder: Path

    def predict_proba(self, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Raw window tensors (n, n_steps, n_channels) -> probabilities (n, n_labels)."""
        if len(X) == 0:
            return np.zeros((0, len(self.spec.labels)), dtype=np.float32)
        with quiet_backend_logs():
            out = self.network.predict(self.spec.normalise(X), batch_size=batch_size, verbose=0)
        return np.asarray(out, dtype=np.float32)

    def _check_windows(self, windows: pd.DataFrame) -> None:
        lengths = (windows["end_ms"] - windows["start_ms"]).to_numpy(dtype=np.float64)
        expected = self.spec.segment.window_ms
        longer = lengths > expected + _LENGTH_TOLERANCE_MS
        shorter = lengths < expected - _LENGTH_TOLERANCE_MS
        if longer.any() or (shorter.any() and len(windows) > 1):
            bad = float(lengths[longer | shorter][0])
            raise ModelError(
                f"{self.folder}: the model was trained on {expected:g} ms windows, these are {bad:g} ms; "
                f"run with --window-ms {expected:g}"
            )

    def predict_windows(
        self, frames: pd.DataFrame, windows: pd.DataFrame, rule_weight: float | None = None
    ) -> pd.DataFrame:
        """``windows`` plus ``prob_<label>``, ``model_label``, ``final_label``, ``final_score`` (module doc).

        frames: the frame rows covering the windows (columns ``time_ms face_found`` and the
        model's channels); windows: the labelled window table of the same mapping.
        """
        weight = self.spec.rule_weight if rule_weight is None else float(rule_weight)
        if not 0.0 <= weight <= 1.0:
            raise SettingsError(f"rule weight must be within 0..1 (got {weight:g})")
        labels = self.spec.labels
        n = len(windows)
        out = windows.reset_index(drop=True).copy()
        probs = np.full((n, len(labels)), np.nan)
        model_label = np.full(n, "", dtype=object)
        final_label = np.full(n, "", dtype=object)
        final_score = np.full(n, np.nan)
        if n:
            missing = [c for c in self.spec.channels if c not in frames.columns]
            if missing:
                raise ModelError(
                    f"{self.folder}: the frame table lacks the model's feature columns {', '.join(missing[:3])}"
                    f"{' ...' if len(missing) > 3 else ''}; retrain the model with this aupipe"
                )
            self._check_windows(out)
            X, ok = resample_windows(
                frames,
                out["start_ms"].to_numpy(),
                out["end_ms"].to_numpy(),
                self.spec.channels,
                self.spec.segment.n_steps,
            )
            usable = ok & (out["face_coverage"].to_numpy(dtype=np.float64) >= self.spec.segment.min_coverage)
            probs[usable] = self.predict_proba(X[usable])
            rule = rule_probabilities(out, self.mapping, labels, self.spec.space)
            fused = np.where(usable[:, None], probs, 0.0) * (1.0 - weight if rule is not None else 1.0)
            if rule is not None:
                fused = np.where(usable[:, None], fused + weight * rule, rule)
            decided = usable | (fused.sum(axis=1) > 0)
            best = np.argmax(fused, axis=1)
            model_label[usable] = np.asarray(labels, dtype=object)[np.argmax(probs[usable], axis=1)]
            final_label[decided] = np.asarray(labels, dtype=object)[best[decided]]
            final_score[decided] = fused[np.arange(n), best][decided]
        for k, label in enumerate(labels):
            out[f"prob_{label}"] = probs[:, k]
        out["model_label"] = model_label
        out["final_label"] = final_label
        out["final_score"] = final_score
        return out


def load_model(
    model_dir: str | Path,
    mapping: Mapping | str | Path | None = None,
    *,
    window_ms: float | None = None,
    frame_columns: Sequence[str] | None = None,
) -> WindowModel:
    """Load a model folder for the run's ``mapping`` (None: the default mapping) and check it fits.

    Refused with one line (:class:`ModelError`): missing or damaged files, a different aupipe
    version, a different mapping (by sha256), feature channels this aupipe's frame table does
    not have (``frame_columns``: default the current pipeline's columns), windows of another
    length than ``window_ms`` (the run's, when given), or a network whose shape disagrees with
    its description. Loads with ``keras.saving.load_model(safe_mode=True)``.
    """
    from aupipe.version import __version__
    from aupipe.learning.features import stage_fingerprint

    folder = Path(model_dir)
    spec, meta = read_spec(folder)
    if meta.get("aupipe_version") != __version__:
        raise ModelError(
            f"{folder}: model trained with aupipe {meta.get('aupipe_version')}, this is aupipe {__version__}; "
            "retrain it with this version (aupipe train)"
        )
    trained_ms = spec.segment.window_ms
    if window_ms is not None and abs(float(window_ms) - trained_ms) > _LENGTH_TOLERANCE_MS:
        raise ModelError(
            f"{folder}: the model was trained on {trained_ms:g} ms windows, this run uses {float(window_ms):g} ms; "
            f"run with --window-ms {trained_ms:g}"
        )
    emotion_map = _mapping_of(mapping)
    if emotion_map.sha256 != spec.mapping_sha256:
        raise ModelError(
            f"{folder}: model trained with mapping '{spec.mapping_name}' (sha256 {spec.mapping_sha256[:12]}), "
            f"this run uses '{emotion_map.name}' (sha256 {emotion_map.sha256[:12]}); "
            f"use --mapping {spec.mapping_name} or retrain"
        )
    if frame_columns is None:
        from aupipe.chain.settings import PipelineSettings
        from aupipe.chain.frames import frame_table_empty

        frame_columns = list(frame_table_empty(PipelineSettings(include_landmarks=False)).columns)
    missing = [c for c in spec.channels if c not in set(frame_columns)]
    if missing:
        raise ModelError(
            f"{folder}: model reads feature columns this aupipe does not produce ({', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}); retrain the model with this aupipe"
        )
    if meta.get("stage_fingerprint") not in (None, stage_fingerprint()):
        warnings.warn(
            f"{folder}: the AU stage changed since this model was trained; its probabilities may be off (retrain)",
            AupipeWarning, 2,
        )  # fmt: skip
    import keras

    try:
        network = keras.saving.load_model(folder / "model.keras", compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - Keras raises many types for a damaged file
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelError(f"{folder / 'model.keras'}: cannot load the network ({detail[:160]}); retrain") from err
    expected_in = (spec.segment.n_steps, len(spec.channels))
    shape_in = tuple(network.input_shape[1:])
    shape_out = network.output_shape[-1]
    if shape_in != expected_in or shape_out != len(spec.labels):
        raise ModelError(
            f"{folder}: network shape {shape_in} -> {shape_out} does not match features.json/labels.json "
            f"{expected_in} -> {len(spec.labels)}; retrain"
        )
    return WindowModel(network=network, spec=spec, mapping=emotion_map, folder=folder)


def predict_windows(
    model_dir: str | Path | WindowModel,
    frames: pd.DataFrame,
    windows: pd.DataFrame,
    *,
    mapping: Mapping | str | Path | None = None,
    rule_weight: float | None = None,
) -> pd.DataFrame:
    """The ``aupipe run --model`` hook: ``windows`` plus model probabilities and the fused label.

    frames / windows: the tables of ``aupipe.analyze`` (or of one streamed chunk: frames must
    cover the windows). mapping: the mapping the windows were scored with (None: default).
    Adds ``prob_<label>`` (0..1, NaN where the face coverage is too low), ``model_label``,
    ``final_label`` and ``final_score`` (fusion rule in the module doc). Pass a loaded
    :class:`WindowModel` instead of a folder to avoid reloading per call.
    """
    model = model_dir if isinstance(model_dir, WindowModel) else load_model(model_dir, mapping)
    return model.predict_windows(frames, windows, rule_weight)


def spec_dict(spec: ModelSpec) -> dict[str, Any]:
    """JSON-ready form of a spec (for reports)."""
    data = asdict(spec)
    data["segment"] = asdict(spec.segment)
    return data
