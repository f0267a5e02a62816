"""Clip summaries: the dominant emotion per clip and per segment of a long video, with the AUs
behind it and the spotted events.

One row per segment of ``segment_s`` seconds (by window start) and one row, ``segment`` =
``all``, for the whole clip (the only row when the clip fits in one segment). Shares are of the
segment's windows, so they are shares of time (windows are evenly strided). Columns:

- ``segment``, ``start_s``, ``end_s`` (s), ``n_windows``;
- ``core_emotion`` / ``core_share``: the core emotion (neutral included) with most windows,
  leaving out uncertain ones; ``emotion`` / ``emotion_share``: its most frequent fine emotion;
  ``second_core_emotion`` / ``second_core_share``: the runner-up;
- ``neutral_share``, ``uncertain_share``, ``no_face_share`` (face in under half the window);
- ``mean_confidence``: mean ``emotion_confidence`` of the dominant core emotion's windows;
- ``aus``: the AUs behind it: of the AUs its categories' rules name, those whose mean peak over
  its windows is at level A (1.0) or more, strongest first, e.g. ``AU12=2.4 AU06=1.1`` (empty
  for neutral and uncertain);
- ``n_events``, ``events_per_min``, ``event_emotions`` (e.g. ``happiness:3 surprise:1``) and
  ``event_kinds`` (``micro:2 macro:1``) of the spotted events whose apex lies in the segment.

Streaming: ``step`` folds each chunk of windows and events into per-segment counts, so memory
stays bounded by segments x labels, never by the number of windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aupipe.errors import SettingsError
from aupipe.rules.mapping_types import Mapping

__all__ = ["COLUMNS", "SummarySettings", "SummaryState", "step", "summarize", "table"]

COLUMNS: tuple[str, ...] = (
    "segment", "start_s", "end_s", "n_windows", "core_emotion", "core_share", "emotion", "emotion_share",
    "second_core_emotion", "second_core_share", "neutral_share", "uncertain_share", "no_face_share",
    "mean_confidence", "aus", "n_events", "events_per_min", "event_emotions", "event_kinds",
)  # fmt: skip
_MIN_LEVEL = 1.0  # AUs shown in ``aus``: mean peak at FACS A or more


@dataclass(frozen=True)
class SummarySettings:
    """segment_s: segment length in seconds (> 0) for the per-segment rows of a long video;
    neutral / uncertain: the labels the mapping uses for those windows; rule_aus: per core
    emotion, the AUs its categories' rules name (``aus`` lists only those; None = every AU).
    ``for_mapping`` fills the last three from a mapping."""

    segment_s: float = 60.0
    neutral: str = "neutral"
    uncertain: str = "uncertain"
    rule_aus: tuple[tuple[str, tuple[str, ...]], ...] | None = None

    @classmethod
    def for_mapping(cls, mapping: Mapping, segment_s: float = 60.0) -> SummarySettings:
        """Settings that read ``mapping``'s neutral and uncertain labels and rule AUs."""
        aus: dict[str, set[str]] = {}
        for cat in mapping.categories:
            aus.setdefault(cat.parent, set()).update(t.au for t in cat.all_of + cat.any_of + cat.supporting)
        rule_aus = tuple((core, tuple(sorted(names))) for core, names in aus.items())
        return cls(segment_s, mapping.neutral, mapping.uncertainty.label, rule_aus)

    def __post_init__(self) -> None:
        if not self.segment_s > 0:
            raise SettingsError(f"summary segment length must be above 0 s (got {self.segment_s})")


@dataclass(frozen=True)
class SummaryState:
    """Per-segment counts so far: ``labels`` (segment, core, emotion) -> n windows, confidence
    sum and AU peak sums; ``segments`` -> n windows, first start and last end (ms), windows
    without a face; ``events`` (segment, emotion, kind) -> n."""

    labels: pd.DataFrame | None = None
    segments: pd.DataFrame | None = None
    events: pd.DataFrame | None = None


def _au_columns(windows: pd.DataFrame) -> list[str]:
    return [c for c in windows.columns if c.startswith("AU") and c.endswith("_peak") and c.count("_") == 1]


def _add(total: pd.DataFrame | None, part: pd.DataFrame, how: dict[str, str]) -> pd.DataFrame:
    if total is None or total.empty:
        return part
    both = pd.concat([total, part])
    return both.groupby(level=list(range(both.index.nlevels))).agg(how)


def step(
    state: SummaryState, windows: pd.DataFrame | None, events: pd.DataFrame | None,
    settings: SummarySettings = SummarySettings(),
) -> SummaryState:  # fmt: skip
    """Fold a chunk of labelled windows (``start_ms``, ``end_ms``, ``face_coverage``,
    ``core_emotion``, ``emotion``, ``AUxx_peak``...) and of events into the state."""
    segment_ms = settings.segment_s * 1000.0
    labels, segments, counted = state.labels, state.segments, state.events
    if windows is not None and len(windows):
        seg = np.floor(windows["start_ms"].to_numpy(dtype=float) / segment_ms).astype(np.int64)
        au_cols = _au_columns(windows)
        frame = windows[au_cols].astype(float).fillna(0.0)
        frame["segment"] = seg
        frame["core"] = windows["core_emotion"].astype(str).to_numpy()
        frame["emotion"] = windows["emotion"].astype(str).to_numpy()
        frame["n"] = 1
        confidence = (
            windows["emotion_confidence"] if "emotion_confidence" in windows else pd.Series(np.nan, windows.index)
        )
        frame["confidence"] = confidence.astype(float).fillna(0.0).to_numpy()
        part = frame.groupby(["segment", "core", "emotion"]).sum()
        labels = _add(labels, part, dict.fromkeys(part.columns, "sum"))
        no_face = (
            windows["face_coverage"].to_numpy(dtype=float) < 0.5
            if "face_coverage" in windows
            else np.zeros(len(windows), bool)
        )
        info = pd.DataFrame({
            "segment": seg, "n": 1, "no_face": no_face.astype(int),
            "start_ms": windows["start_ms"].to_numpy(dtype=float), "end_ms": windows["end_ms"].to_numpy(dtype=float),
        }).groupby("segment").agg({"n": "sum", "no_face": "sum", "start_ms": "min", "end_ms": "max"})  # fmt: skip
        segments = _add(segments, info, {"n": "sum", "no_face": "sum", "start_ms": "min", "end_ms": "max"})
    if events is not None and len(events):
        seg = np.floor(events["apex_ms"].to_numpy(dtype=float) / segment_ms).astype(np.int64)
        emotion = events["core_emotion"].astype(str) if "core_emotion" in events else pd.Series("", events.index)
        part = pd.DataFrame({"segment": seg, "emotion": emotion.to_numpy(), "kind": events["kind"].astype(str).to_numpy(),
                             "n": 1}).groupby(["segment", "emotion", "kind"]).sum()  # fmt: skip
        counted = _add(counted, part, {"n": "sum"})
    return SummaryState(labels, segments, counted)


def _counts(text: pd.Series) -> str:
    """``a:3 b:1`` from a Series of counts indexed by name (largest first, empty names left out)."""
    text = text[text.index.astype(str) != ""].sort_values(ascending=False, kind="stable")
    return " ".join(f"{name}:{int(n)}" for name, n in text.items() if n > 0)


def _row(name: str, labels: pd.DataFrame, info: pd.Series, events: pd.DataFrame | None,
         settings: SummarySettings) -> dict[str, object]:  # fmt: skip
    n = int(info["n"])
    by_core = labels.groupby(level="core")["n"].sum()
    decided = by_core.drop(settings.uncertain, errors="ignore").sort_values(ascending=False, kind="stable")
    row: dict[str, object] = {
        "segment": name, "start_s": info["start_ms"] / 1000.0, "end_s": info["end_ms"] / 1000.0, "n_windows": n,
        "neutral_share": float(by_core.get(settings.neutral, 0)) / n if n else 0.0,
        "uncertain_share": float(by_core.get(settings.uncertain, 0)) / n if n else 0.0,
        "no_face_share": float(info["no_face"]) / n if n else 0.0,
    }  # fmt: skip
    core = decided.index[0] if len(decided) and decided.iloc[0] > 0 else settings.uncertain
    row["core_emotion"] = core
    row["core_share"] = float(by_core.get(core, 0)) / n if n else 0.0
    won = labels.xs(core, level="core") if core in labels.index.get_level_values("core") else labels.iloc[0:0]
    fine = won.groupby(level="emotion")["n"].sum().sort_values(ascending=False, kind="stable")
    row["emotion"] = fine.index[0] if len(fine) else core
    row["emotion_share"] = float(fine.iloc[0]) / n if len(fine) and n else 0.0
    row["second_core_emotion"] = decided.index[1] if len(decided) > 1 and decided.iloc[1] > 0 else ""
    row["second_core_share"] = float(decided.iloc[1]) / n if len(decided) > 1 and n else 0.0
    total = won.sum()
    n_won = float(total.get("n", 0.0))
    row["mean_confidence"] = float(total["confidence"]) / n_won if n_won else float("nan")
    au_means = (total.drop(["n", "confidence"], errors="ignore") / n_won) if n_won else pd.Series(dtype=float)
    au_means = au_means[au_means >= _MIN_LEVEL].sort_values(ascending=False, kind="stable")
    if settings.rule_aus is not None:
        named = dict(settings.rule_aus).get(str(core), ())
        au_means = au_means[[c.removesuffix("_peak") in named for c in au_means.index]]
    row["aus"] = " ".join(f"{c.removesuffix('_peak')}={v:.1f}" for c, v in au_means.items())
    minutes = max(info["end_ms"] - info["start_ms"], 1.0) / 60000.0
    if events is not None and len(events):
        row["n_events"] = int(events["n"].sum())
        row["event_emotions"] = _counts(events.groupby(level="emotion")["n"].sum())
        row["event_kinds"] = _counts(events.groupby(level="kind")["n"].sum())
    else:
        row["n_events"], row["event_emotions"], row["event_kinds"] = 0, "", ""
    row["events_per_min"] = row["n_events"] / minutes  # type: ignore[operator]
    return row


def table(state: SummaryState, settings: SummarySettings = SummarySettings()) -> pd.DataFrame:
    """The summary rows (module doc): one per segment when there are several, then ``all``."""
    if state.labels is None or state.segments is None or state.segments.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in _TEXT else float) for c in COLUMNS})
    rows = []
    segments = state.segments.sort_index()
    events = state.events
    if len(segments) > 1:
        for seg, info in segments.iterrows():
            labels = state.labels.xs(seg, level="segment")
            part = (
                events.xs(seg, level="segment")
                if events is not None and seg in events.index.get_level_values(0)
                else None
            )
            rows.append(_row(str(int(seg) + 1), labels, info, part, settings))  # type: ignore[call-overload]
    whole = pd.Series({"n": segments["n"].sum(), "no_face": segments["no_face"].sum(),
                       "start_ms": segments["start_ms"].min(), "end_ms": segments["end_ms"].max()})  # fmt: skip
    all_labels = state.labels.groupby(level=["core", "emotion"]).sum()
    all_events = events.groupby(level=["emotion", "kind"]).sum() if events is not None and len(events) else None
    rows.append(_row("all", all_labels, whole, all_events, settings))
    out = pd.DataFrame(rows)[list(COLUMNS)]
    return out.astype({"n_windows": "int64", "n_events": "int64"})


_TEXT = {"segment", "core_emotion", "emotion", "second_core_emotion", "aus", "event_emotions", "event_kinds"}


def summarize(
    windows: pd.DataFrame, events: pd.DataFrame | None = None, settings: SummarySettings = SummarySettings()
) -> pd.DataFrame:
    """The summary of a whole window table (and its events) at once; see the module doc."""
    return table(step(SummaryState(), windows, events, settings), settings)
