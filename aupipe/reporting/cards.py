"""One card per event (onset / apex / offset, kind, confidence, stills, the AUs that rose, the label
and the rule behind it) and the neutral baseline's still, as plain data for the page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aupipe.reporting import stills
from aupipe.reporting.tables import ReportTables
from aupipe.rules.mapping_types import Mapping
from aupipe.signal.facs import AU_DESCRIPTIONS, AU_NAMES

__all__ = ["BaselineStill", "CardSettings", "baseline_still", "cards", "frames_needed", "with_stills"]

#: An AU outside the event's own that rose by this much (intensity units, 0-5) is listed as well.
ALSO_ROSE = 1.0


@dataclass(frozen=True)
class CardSettings:
    """max_stills: events that get face stills, the most confident first (the page stays small:
    about 18 kB of inline JPEG each); stills: their size and quality."""

    max_stills: int = 200
    stills: stills.StillSettings = stills.StillSettings()


@dataclass(frozen=True)
class BaselineStill:
    """Which frame shows the neutral baseline: ``frame`` of the video (or of ``clip``, a separate
    neutral clip), and what it is (``caption``); frame None when no frame is known."""

    frame: int | None
    caption: str
    clip: str | None = None


def _peak(event: pd.Series, au: str) -> float:
    value = event.get(f"{au}_peak", np.nan)
    if pd.isna(value):
        found = re.search(rf"\b{au}=([\d.]+)", str(event.get("peaks", "")))
        return float(found.group(1)) if found else float("nan")
    return float(value)


def with_stills(events: pd.DataFrame, max_stills: int) -> set[int]:
    """Numbers of the events that get stills: the ``max_stills`` most confident (then strongest)."""
    if not len(events) or max_stills <= 0:
        return set()
    confidence = events["confidence"].to_numpy(dtype=float) if "confidence" in events else np.ones(len(events))
    strength = np.array([max([_peak(row, au) for au in str(row.get("aus", "")).split()] or [0.0]) for _, row in
                         events.iterrows()])  # fmt: skip
    order = np.lexsort((events["onset_ms"].to_numpy(dtype=float), -np.nan_to_num(strength), -np.nan_to_num(confidence)))
    return {int(events["event"].iloc[i]) for i in order[:max_stills]}


def frames_needed(events: pd.DataFrame, chosen: set[int]) -> list[int]:
    """Video frames the chosen events' stills need: onset, apex and offset of each."""
    rows = events[events["event"].isin(chosen)] if len(events) else events
    return sorted({int(row[c]) for _, row in rows.iterrows() for c in ("onset_frame", "apex_frame", "offset_frame")})


def _onset_values(tables: ReportTables, event: pd.Series) -> tuple[dict[str, float], str]:
    """Each AU's intensity at the event's onset frame (frame table), else the lowest window peak in
    the 500 ms before the onset (an approximation, said on the card)."""
    frames = tables.frames
    if frames is not None and len(frames) and "onset_frame" in event:
        row = frames[frames["frame"] == int(event["onset_frame"])]
        if len(row) and bool(row["face_found"].iloc[0]):
            return {au: float(row[f"{au}_r"].iloc[0]) for au in AU_NAMES if f"{au}_r" in row}, "at the onset frame"
    windows = tables.windows
    onset = float(event["onset_ms"])
    before = windows[(windows["end_ms"] > onset - 500.0) & (windows["start_ms"] <= onset)]
    return {au: float(before[f"{au}_peak"].min()) for au in AU_NAMES if len(before)}, "lowest window peak before it"


def _rule(mapping: Mapping | None, emotion: str, core: str) -> str:
    if mapping is None:
        return "the mapping is not known (pass --mapping to show its rules)"
    if emotion in mapping.category_names:
        return f"{emotion} ({core}) = {mapping.category(emotion).rule_text(mapping.default_min)}"
    if emotion == mapping.neutral:
        return f"no category of {mapping.name} fires on the event's own AUs"
    return f"{mapping.uncertainty.label}: the top readings are too close or the face evidence is poor"


def _aus(event: pd.Series, onset: dict[str, float]) -> list[dict[str, Any]]:
    own = str(event.get("aus", "")).split()
    rows = []
    for au in own + [a for a in AU_NAMES if a not in own]:
        peak = _peak(event, au)
        start = onset.get(au, float("nan"))
        rise = peak - start if np.isfinite(peak) and np.isfinite(start) else float("nan")
        if au in own or (np.isfinite(rise) and rise >= ALSO_ROSE):
            rows.append({"au": au, "name": AU_DESCRIPTIONS.get(au, ""), "onset": start, "peak": peak, "rise": rise,
                         "own": au in own})  # fmt: skip
    return rows


def _event_stills(tables: ReportTables, event: pd.Series, images: dict[int, np.ndarray],
                  settings: stills.StillSettings) -> list[dict[str, str]]:  # fmt: skip
    marks = ("onset_frame", "apex_frame", "offset_frame")
    indices = [int(event[c]) for c in marks]
    if not all(i in images for i in indices):
        return []
    shape = images[indices[0]].shape
    crop = stills.crop_of(tables.frames, indices, shape, settings.margin)
    onset, apex, offset = (stills.still(images[i], crop, settings.size_px) for i in indices)
    points = stills.region_points(tables.frames, indices[1])
    marked = stills.mark_regions(apex, points, str(event.get("aus", "")).split(), crop)
    pictures = [("onset", onset, "onset_ms"), ("apex", marked, "apex_ms"), ("offset", offset, "offset_ms")]
    out = [
        {"title": t, "time_ms": float(event[c]), "uri": stills.data_uri(p, settings.quality)} for t, p, c in pictures
    ]
    out.append({"title": "change", "time_ms": float(event["apex_ms"]),
                "uri": stills.data_uri(stills.difference(onset, apex, settings.gain), settings.quality)})  # fmt: skip
    return out


def cards(tables: ReportTables, mapping: Mapping | None, images: dict[int, np.ndarray], chosen: set[int],
          colours: dict[str, str], settings: CardSettings = CardSettings()) -> list[dict[str, Any]]:  # fmt: skip
    """One card per event, by onset: times (ms), frames, kind, confidence, the AUs (onset value,
    peak and rise on the 0-5 scale), the label with its explanation and rule, and the stills
    (``images``: video frames by number) of the ``chosen`` events."""
    events = tables.events.sort_values(["onset_ms", "event"], kind="stable") if len(tables.events) else tables.events
    out = []
    for _, event in events.iterrows():
        number = int(event["event"])
        onset, onset_source = _onset_values(tables, event)
        emotion, core = str(event.get("emotion", "")), str(event.get("core_emotion", ""))
        pictures = _event_stills(tables, event, images, settings.stills) if number in chosen else []
        note = "" if pictures else (
            f"no stills: only the {settings.max_stills} most confident events carry them (page size)"
            if number not in chosen else "no stills: the video has no such frames")  # fmt: skip
        out.append({
            "id": number, "kind": str(event["kind"]), "within_macro": bool(event.get("within_macro", False)),
            "onset_ms": float(event["onset_ms"]), "apex_ms": float(event["apex_ms"]),
            "offset_ms": float(event["offset_ms"]), "duration_ms": float(event["offset_ms"] - event["onset_ms"]),
            "frames": tuple(int(event.get(c, -1)) for c in ("onset_frame", "apex_frame", "offset_frame")),
            "confidence": float(event["confidence"]) if "confidence" in event and pd.notna(event["confidence"]) else None,
            "aus": _aus(event, onset), "onset_source": onset_source,
            "emotion": emotion, "core": core, "colour": colours.get(core, "#dedede"),
            "score": float(event["emotion_score"]) if pd.notna(event.get("emotion_score", np.nan)) else None,
            "explanation": str(event.get("emotion_aus", "")), "rule": _rule(mapping, emotion, core),
            "stills": pictures, "stills_note": note,
        })  # fmt: skip
    return out


def baseline_still(tables: ReportTables) -> BaselineStill:
    """The frame that shows the baseline, read from its ``source``: the middle of a given neutral
    range, the first frame of a neutral clip, or, for an estimated baseline, the least expressive
    face frame (lowest sum of ``AUxx_r``) of the span it was estimated on."""
    if tables.baseline is None or not len(tables.baseline):
        return BaselineStill(None, "the baseline table was not given (aupipe run --baseline-out)")
    source = str(tables.baseline["source"].iloc[0])
    frames = tables.frames
    face = frames[frames["face_found"].to_numpy(dtype=bool)] if frames is not None and len(frames) else None
    if source.startswith("neutral clip "):
        clip = source[len("neutral clip ") :]
        return BaselineStill(
            0, f"first frame of the neutral clip {Path(clip).name}", clip if Path(clip).exists() else None
        )
    if face is None or not len(face):
        return BaselineStill(None, "no frame table with a face: no still")
    if match := re.match(r"neutral range ([\d.]+)-([\d.]+) s", source):
        middle = (float(match.group(1)) + float(match.group(2))) * 500.0
        row = face.iloc[int(np.argmin(np.abs(face["time_ms"].to_numpy(dtype=float) - middle)))]
        return BaselineStill(int(row["frame"]), f"the middle of the neutral range ({row['time_ms'] / 1000:.2f} s)")
    if match := re.search(r"first ([\d.]+) s", source):
        span = face[face["time_ms"] <= face["time_ms"].iloc[0] + float(match.group(1)) * 1000.0]
        columns = [f"{au}_r" for au in AU_NAMES if f"{au}_r" in span]
        if len(span) and columns:
            row = span.iloc[int(np.argmin(span[columns].to_numpy(dtype=float).sum(axis=1)))]
            return BaselineStill(int(row["frame"]), f"the least expressive face frame of that span "
                                 f"({row['time_ms'] / 1000:.2f} s, lowest AU sum), one of those it rests on")  # fmt: skip
    return BaselineStill(None, "no still for this baseline")
