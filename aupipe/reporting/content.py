"""What the report shows, as plain data (no HTML): the overview, the timeline's data for the page's
script, and one panel per AU. Event cards are in ``aupipe.reporting.cards``.

The timeline's data is small on purpose (docs/report.md): each AU's intensity as one byte per
sample (0-250 = 0-5 in steps of 0.02, 255 = no face) on a regular time grid, per frame when the
frame table is there (max over the frames in a grid step), else per window; one AU after the
other, deflated (zlib) and base64. An hour at 30 fps is 108,000 samples x 19 AUs, 2 MB of bytes
and about 0.5 MB of text (1 MB with the sided peaks and the ribbon); the page's script inflates it (``DecompressionStream``), max-pools it
to the screen's pixels for the overview and shows the samples themselves when zoomed in.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aupipe.reporting.tables import ReportTables, duration_ms
from aupipe.rules.mapping_types import Mapping
from aupipe.signal.facs import AU_DESCRIPTIONS, AU_NAMES, SIDED_AUS
from aupipe.signal.video import VideoInfo

__all__ = ["NO_FACE", "SCALE", "Grid", "au_panels", "colour_of", "core_colours", "grid_of", "label_order",
           "overview", "packed", "quantize", "timeline_data", "window_grid"]  # fmt: skip

#: Bytes per intensity unit (0-5 -> 0-250) and the byte that means "no face".
SCALE = 50.0
NO_FACE = 255
#: A head turned further than this (deg) makes a window uncertain (the mapping's default).
TURN_DEG = 35.0
_KNOWN = {"happ": "#e8a800", "sad": "#3b6fb6", "ang": "#d1342b", "fear": "#7b4fa6", "scared": "#7b4fa6",
          "disg": "#4e9a3a", "surpr": "#f28e2b", "contempt": "#8c564b", "embarrass": "#e377c2", "play": "#17becf",
          "confident": "#9a9b1f", "love": "#ff6f91", "repress": "#6b6b6b"}  # fmt: skip
_SPARE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
NEUTRAL_COLOUR, UNCERTAIN_COLOUR = "#dedede", "#ffffff"


@dataclass(frozen=True)
class Grid:
    """A regular time grid: sample k covers [t0_ms + k * step_ms, t0_ms + (k + 1) * step_ms)."""

    t0_ms: float
    step_ms: float
    n: int


def quantize(values: np.ndarray) -> np.ndarray:
    """Intensities (0-5, NaN = no face) as bytes: round(value x 50), 255 for NaN."""
    scaled = np.floor(np.clip(np.nan_to_num(values, nan=0.0), 0.0, 5.0) * SCALE + 0.5 + 1e-9)
    return np.where(np.isnan(values), NO_FACE, scaled).astype(np.uint8)


def packed(values: np.ndarray) -> str:
    """A byte table (n samples x k rows, or n) as the page reads it: row after row, deflated, base64."""
    rows = np.atleast_2d(np.asarray(values, dtype=np.uint8).T) if np.ndim(values) == 2 else np.asarray(values, np.uint8)
    return base64.b64encode(zlib.compress(np.ascontiguousarray(rows).tobytes(), 9)).decode("ascii")


def window_grid(windows: pd.DataFrame) -> Grid:
    """The windows' grid: each window stands for one stride around its centre (as the ELAN labels)."""
    if not len(windows):
        return Grid(0.0, 100.0, 0)
    start = windows["start_ms"].to_numpy(dtype=float)
    length = float(np.median(windows["end_ms"].to_numpy(dtype=float) - start))
    stride = float(np.median(np.diff(start))) if len(start) > 1 else length
    return Grid(float(start[0]) + length / 2.0 - stride / 2.0, stride, len(start))


def grid_of(times_ms: np.ndarray) -> Grid:
    """A frame grid: the first frame's time and the mean frame interval (ms) over the intervals
    under 1.5 times the median (gaps left out; whole-ms container times average out)."""
    gaps = np.diff(times_ms)
    regular = gaps[(gaps > 0) & (gaps < 1.5 * np.median(gaps))] if len(gaps) else gaps
    step = float(regular.mean()) if len(regular) else 1000.0 / 30.0
    n = int(np.floor((times_ms[-1] - times_ms[0]) / step + 0.5)) + 1 if len(times_ms) else 0
    return Grid(float(times_ms[0]) if len(times_ms) else 0.0, step, n)


def _pooled(times_ms: np.ndarray, values: np.ndarray, grid: Grid) -> np.ndarray:
    """(grid.n, k) max of ``values`` (n, k) over the samples in each grid step; NaN where none has a
    value (no face); a step no frame falls in (a gap) repeats the step before it."""
    slot = np.clip(np.floor((times_ms - grid.t0_ms) / grid.step_ms + 0.5).astype(np.int64), 0, max(grid.n - 1, 0))
    out = np.full((grid.n, values.shape[1]), -1.0)
    np.maximum.at(out, slot, np.nan_to_num(values, nan=-1.0))
    filled = np.zeros(grid.n, dtype=bool)
    filled[slot] = True
    source = np.maximum.accumulate(np.where(filled, np.arange(grid.n), 0)) if grid.n else np.zeros(0, np.int64)
    out = out[source]
    return np.where(out < 0, np.nan, out)


def label_order(windows: pd.DataFrame, mapping: Mapping | None) -> list[str]:
    """Core emotions in the mapping's order (those seen, then any others), neutral and uncertain last."""
    seen = list(dict.fromkeys(windows["core_emotion"].astype(str))) if len(windows) else []
    neutral, uncertain = (mapping.neutral, mapping.uncertainty.label) if mapping else ("neutral", "uncertain")
    parents = list(mapping.parents) if mapping else []
    first = [p for p in parents if p in seen] + sorted(
        s for s in seen if s not in parents and s not in (neutral, uncertain)
    )
    return first + [s for s in (neutral, uncertain) if s in seen]


def colour_of(label: str, index: int, neutral: str = "neutral", uncertain: str = "uncertain") -> str:
    """A fixed colour per core emotion (by name: happiness gold, sadness blue, anger red ...)."""
    if label == neutral:
        return NEUTRAL_COLOUR
    if label == uncertain:
        return UNCERTAIN_COLOUR
    for key, colour in _KNOWN.items():
        if key in label.lower():
            return colour
    return _SPARE[index % len(_SPARE)]


def core_colours(labels: list[str], mapping: Mapping | None) -> dict[str, str]:
    """``colour_of`` for every label."""
    neutral, uncertain = (mapping.neutral, mapping.uncertainty.label) if mapping else ("neutral", "uncertain")
    return {label: colour_of(label, i, neutral, uncertain) for i, label in enumerate(labels)}


def _lut() -> list[str]:
    """The heat map's 256 colours as hex: bytes 0-250 (0-5) along matplotlib's ``magma_r`` (from
    0.1 to 0.95 of it), faded to white below 0.5 so a resting face reads as blank; 251-255 (no
    face) grey."""
    from matplotlib import colormaps

    t = np.linspace(0.0, 1.0, 251)
    colours = colormaps["magma_r"](0.1 + 0.85 * t)[:, :3]
    white = np.clip(1.0 - t / 0.1, 0.0, 1.0)[:, None]
    colours = white + (1.0 - white) * colours
    hexes = ["#" + "".join(f"{int(round(c * 255)):02x}" for c in rgb) for rgb in colours]
    return hexes + ["#c8c8c8"] * 5


def timeline_data(tables: ReportTables, mapping: Mapping | None, info: VideoInfo) -> dict[str, Any]:
    """The page script's data: heat map bytes, sided peaks, the emotion ribbon, event bands, colours."""
    windows, frames = tables.windows, tables.frames
    wgrid = window_grid(windows)
    if frames is not None and len(frames) and all(f"{au}_r" in frames for au in AU_NAMES):
        times = frames["time_ms"].to_numpy(dtype=float)
        grid = grid_of(times)
        heat = _pooled(times, frames[[f"{au}_r" for au in AU_NAMES]].to_numpy(dtype=float), grid)
        source = "frames"
    else:
        grid = wgrid
        heat = windows[[f"{au}_peak" for au in AU_NAMES]].to_numpy(dtype=float) if len(windows) else np.zeros((0, 19))
        source = "windows"
    sided = [au for au in SIDED_AUS if f"{au}_left_peak" in windows and f"{au}_right_peak" in windows]
    left = windows[[f"{au}_left_peak" for au in sided]].to_numpy(dtype=float)
    right = windows[[f"{au}_right_peak" for au in sided]].to_numpy(dtype=float)
    labels = label_order(windows, mapping)
    codes = {label: i for i, label in enumerate(labels)}
    fine = list(dict.fromkeys(windows["emotion"].astype(str)))
    fine_codes = {label: i for i, label in enumerate(fine)}
    events = [
        {"id": int(row.event), "onset": float(row.onset_ms), "apex": float(row.apex_ms), "offset": float(row.offset_ms),
         "kind": str(row.kind), "label": str(getattr(row, "emotion", "")), "aus": str(row.aus)}
        for row in tables.events.sort_values("onset_ms").itertuples()
    ] if len(tables.events) else []  # fmt: skip
    end = max(float(windows["end_ms"].max()) if len(windows) else 0.0, grid.t0_ms + grid.n * grid.step_ms)
    return {
        "duration_ms": max(end, duration_ms(info) if info.frame_count else 0.0),
        "aus": list(AU_NAMES),
        "names": {au: AU_DESCRIPTIONS[au] for au in AU_NAMES},
        "heat": {"t0": grid.t0_ms, "step": grid.step_ms, "n": grid.n, "source": source, "data": packed(quantize(heat))},
        "sided": {"aus": sided, "left": packed(quantize(left)), "right": packed(quantize(right))},
        "windows": {"t0": wgrid.t0_ms, "step": wgrid.step_ms, "n": wgrid.n},
        "ribbon": {
            "labels": labels, "colours": list(core_colours(labels, mapping).values()),
            "codes": packed(np.array([codes[s] for s in windows["core_emotion"].astype(str)], dtype=np.uint8)),
            "fine_labels": fine,
            "fine": packed(np.array([fine_codes[s] for s in windows["emotion"].astype(str)], dtype=np.uint8)),
        },
        "events": events,
        "lut": _lut(),
        "scale": SCALE,
    }  # fmt: skip


def _share(mask: np.ndarray) -> float:
    return float(mask.mean()) if len(mask) else 0.0


def overview(tables: ReportTables, mapping: Mapping | None, info: VideoInfo) -> dict[str, Any]:
    """The overview's figures: length, face coverage and quality, time per core emotion, settings."""
    windows, frames = tables.windows, tables.frames
    grid = window_grid(windows)
    length = duration_ms(info) if info.frame_count else float(windows["end_ms"].max()) if len(windows) else 0.0
    if frames is not None and len(frames):
        coverage = _share(frames["face_found"].to_numpy(dtype=bool))
        n_frames, no_face = len(frames), int((~frames["face_found"].to_numpy(dtype=bool)).sum())
    else:
        coverage = float(windows["face_coverage"].mean()) if len(windows) else 0.0
        n_frames, no_face = info.frame_count, None
    turn = windows["head_turn_deg"].to_numpy(dtype=float) if "head_turn_deg" in windows else np.array([])
    speaking = windows["speaking"].to_numpy(dtype=float) if "speaking" in windows else np.array([])
    confidence = windows["emotion_confidence"].to_numpy(dtype=float) if "emotion_confidence" in windows else None
    labels = label_order(windows, mapping)
    colours = core_colours(labels, mapping)
    counts = windows["core_emotion"].astype(str).value_counts()
    emotions = []
    for label in labels:
        within = windows[windows["core_emotion"].astype(str) == label]["emotion"].astype(str).value_counts()
        fine = ", ".join(f"{name} {n / len(windows):.0%}" for name, n in within.head(3).items() if name != label)
        emotions.append({"label": label, "share": float(counts.get(label, 0)) / max(len(windows), 1),
                         "colour": colours[label], "fine": fine})  # fmt: skip
    emotions.sort(key=lambda e: -e["share"])
    finite_turn = turn[np.isfinite(turn)]
    finite_speech = speaking[np.isfinite(speaking)]
    quality = {
        "face_coverage": coverage,
        "no_face_frames": no_face,
        "head_turn_median": float(np.median(finite_turn)) if len(finite_turn) else None,
        "head_turned_share": _share(finite_turn > TURN_DEG) if len(finite_turn) else None,
        "speaking_share": float(finite_speech.mean()) if len(finite_speech) else None,
        "mean_confidence": float(np.nanmean(confidence)) if confidence is not None and len(confidence) else None,
        "baseline_confidence": float(windows["baseline_confidence"].iloc[0])
        if "baseline_confidence" in windows and len(windows) else None,
    }  # fmt: skip
    window_ms = float(np.median(windows["end_ms"] - windows["start_ms"])) if len(windows) else 0.0
    settings = [
        ("video", f"{Path(info.path).name or info.path} · {info.width}×{info.height} px · {info.fps:.2f} fps"
                  + (" (image folder)" if info.is_image_folder else "")),
        ("windows", f"{window_ms:g} ms every {grid.step_ms:g} ms ({len(windows)} windows)"),
        ("mapping", (mapping.name if mapping else "unknown (not a shipped mapping; pass --mapping to show its rules)")),
        ("heat map", "per frame" if frames is not None and len(frames) else "per window (no frame table)"),
    ]  # fmt: skip
    return {"length_ms": length, "n_frames": n_frames, "n_windows": len(windows), "quality": quality,
            "emotions": emotions, "settings": settings, "n_events": len(tables.events)}  # fmt: skip


def au_panels(tables: ReportTables, events: pd.DataFrame) -> list[dict[str, Any]]:
    """One panel per AU: presence share (face frames at FACS A, 1.0, or more; per window without a
    frame table), its mean and top intensity when present, its events, and for the nine one-sided
    AUs the left/right asymmetry of the window peaks where either side is at A or more."""
    windows, frames = tables.windows, tables.frames
    panels = []
    for au in AU_NAMES:
        if frames is not None and len(frames) and f"{au}_r" in frames:
            values = frames[f"{au}_r"].to_numpy(dtype=float)
            unit = "frames"
        else:
            values = windows[f"{au}_peak"].to_numpy(dtype=float) if f"{au}_peak" in windows else np.array([])
            unit = "windows"
        finite = values[np.isfinite(values)]
        present = finite[finite >= 1.0]
        in_events = int(events["aus"].astype(str).str.split().apply(lambda names, a=au: a in names).sum()) if len(
            events) and "aus" in events else 0  # fmt: skip
        panel: dict[str, Any] = {
            "au": au, "name": AU_DESCRIPTIONS[au], "presence": _share(finite >= 1.0), "unit": unit,
            "mean_present": float(present.mean()) if len(present) else None,
            "top": float(finite.max()) if len(finite) else None, "events": in_events, "asymmetry": None,
        }  # fmt: skip
        if au in SIDED_AUS and f"{au}_left_peak" in windows:
            left = windows[f"{au}_left_peak"].to_numpy(dtype=float)
            right = windows[f"{au}_right_peak"].to_numpy(dtype=float)
            active = np.isfinite(left) & np.isfinite(right) & (np.maximum(left, right) >= 1.0)
            diff = (left - right)[active]
            panel["asymmetry"] = {
                "active": int(active.sum()),
                "mean": float(diff.mean()) if len(diff) else None,
                "left": _share(diff >= 1.0), "right": _share(diff <= -1.0),
            }  # fmt: skip
        panels.append(panel)
    return panels
