"""Windows: sliding windows in milliseconds over the per-frame AU table.

Window k covers [t0 + k * stride_ms, t0 + k * stride_ms + window_ms) where t0 is the first
frame's time, so windows do not depend on the frame rate. A frame belongs to a window when its
presentation time falls inside. Per window and per AU: ``peak`` (max), ``mean`` and ``rise``
(peak minus the first valid value in the window), so a 2-3 frame event stays visible in
``peak`` and ``rise`` even when ``mean`` dilutes it. Frames without a face are left out of the
statistics and counted in ``face_coverage``. When the frames have aupipe.signal.speech's ``speaking``
column, each window also gets ``speaking``: the share of its face frames that are speaking; with
head pose, ``head_turn_deg``: the mean of the larger of |yaw| and |pitch| over its face frames.

Streaming: ``step`` takes the frames seen so far in chunks and returns the windows that are
complete, plus a small state (the frames still needed); memory stays bounded by one window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aupipe.errors import SettingsError

STATS: tuple[str, ...] = ("peak", "mean", "rise")
INFO_COLUMNS: tuple[str, ...] = (
    "window", "start_ms", "end_ms", "start_frame", "end_frame", "n_frames", "face_coverage",
)  # fmt: skip


@dataclass(frozen=True)
class WindowSettings:
    """window_ms: window length; stride_ms: step between window starts (both in ms, > 0)."""

    window_ms: float = 500.0
    stride_ms: float = 100.0

    def __post_init__(self) -> None:
        if not (self.window_ms > 0 and self.stride_ms > 0):
            raise SettingsError(f"window_ms and stride_ms must be > 0 (got {self.window_ms}, {self.stride_ms})")


@dataclass(frozen=True)
class WindowState:
    """What ``step`` carries between chunks: pending frames and the next window's number/start."""

    pending: pd.DataFrame | None = None
    next_window: int = 0
    t0_ms: float | None = None
    frame_step_ms: float = field(default=np.nan)


def value_columns(frames: pd.DataFrame) -> list[str]:
    """The per-frame intensity columns that windows summarise (``AUxx_r`` and sided variants)."""
    return [c for c in frames.columns if c.startswith("AU") and c.endswith("_r")]


def _summarise(
    times: np.ndarray, frame_ids: np.ndarray, face: np.ndarray, values: np.ndarray,
    starts: np.ndarray, ends: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Vectorised window statistics. values (m, k) per frame; returns per-window arrays."""
    m, k = values.shape
    first = np.searchsorted(times, starts, side="left")
    last = np.searchsorted(times, ends, side="left")  # exclusive
    count = last - first
    nonempty = count > 0
    # peak: fmax ignores NaN; reduceat over interleaved [first, last) pairs, padded by one row.
    padded = np.vstack([values, np.full((1, k), np.nan)])
    idx = np.stack([first, np.minimum(last, m)], axis=1).ravel()
    idx = np.minimum(idx, m)
    peak = np.fmax.reduceat(padded, idx, axis=0)[::2]
    # mean: cumulative sums of valid values and of valid counts.
    valid = np.isfinite(values)
    csum = np.vstack([np.zeros((1, k)), np.cumsum(np.where(valid, values, 0.0), axis=0)])
    ccount = np.vstack([np.zeros((1, k)), np.cumsum(valid, axis=0)])
    n_valid = ccount[last] - ccount[first]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (csum[last] - csum[first]) / n_valid
    # rise: peak minus the first valid value at or after the window start.
    positions = np.where(valid, np.arange(m)[:, None], m)
    next_valid = np.minimum.accumulate(positions[::-1], axis=0)[::-1]
    next_valid = np.vstack([next_valid, np.full((1, k), m)])
    start_pos = next_valid[first]
    start_value = np.take_along_axis(padded, np.minimum(start_pos, m), axis=0)
    start_value = np.where(start_pos < last[:, None], start_value, np.nan)
    rise = peak - start_value
    no_data = n_valid == 0
    for array in (peak, mean, rise):
        array[no_data | ~nonempty[:, None]] = np.nan
    face_sum = np.concatenate([[0], np.cumsum(face)])
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = np.where(nonempty, (face_sum[last] - face_sum[first]) / np.maximum(count, 1), 0.0)
    start_frame = np.where(nonempty, frame_ids[np.minimum(first, m - 1)], -1)
    end_frame = np.where(nonempty, frame_ids[np.maximum(last - 1, 0)], -1)
    return {"peak": peak, "mean": mean, "rise": rise}, coverage, start_frame, end_frame


def _table(
    numbers: np.ndarray, starts: np.ndarray, ends: np.ndarray, frames: pd.DataFrame, columns: list[str]
) -> pd.DataFrame:
    times = frames["time_ms"].to_numpy(dtype=np.float64)
    stats, coverage, start_frame, end_frame = _summarise(
        times,
        frames["frame"].to_numpy(),
        frames["face_found"].to_numpy(dtype=bool),
        frames[columns].to_numpy(dtype=np.float64),
        starts,
        ends,
    )
    first = np.searchsorted(times, starts, side="left")
    last = np.searchsorted(times, ends, side="left")
    data: dict[str, np.ndarray] = {
        "window": numbers,
        "start_ms": starts,
        "end_ms": ends,
        "start_frame": start_frame,
        "end_frame": end_frame,
        "n_frames": last - first,
        "face_coverage": coverage,
    }
    if "speaking" in frames.columns:  # aupipe.signal.speech's per-frame column
        data["speaking"] = _speaking_share(frames, first, last)
    if "yaw_deg" in frames.columns and "pitch_deg" in frames.columns:
        data["head_turn_deg"] = _head_turn(frames, first, last)
    for j, column in enumerate(columns):
        base = column[: -len("_r")]
        for stat in STATS:
            data[f"{base}_{stat}"] = stats[stat][:, j]
    return pd.DataFrame(data)


def _speaking_share(frames: pd.DataFrame, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Per window [first, last) (row indices): share of its face frames with ``speaking`` 1.0;
    NaN where the window has no face frame."""
    face = frames["face_found"].to_numpy(dtype=bool)
    speaking = face & (frames["speaking"].to_numpy(dtype=np.float64) == 1.0)
    faces = np.concatenate([[0], np.cumsum(face)])
    talking = np.concatenate([[0], np.cumsum(speaking)])
    n_face = faces[last] - faces[first]
    return np.where(n_face > 0, (talking[last] - talking[first]) / np.maximum(n_face, 1), np.nan)


def _head_turn(frames: pd.DataFrame, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Per window [first, last): mean over its face frames of the larger of |yaw| and |pitch| (deg);
    NaN where the window has no face frame."""
    turn = np.fmax(
        np.abs(frames["yaw_deg"].to_numpy(dtype=np.float64)), np.abs(frames["pitch_deg"].to_numpy(dtype=np.float64))
    )
    valid = np.isfinite(turn)
    sums = np.concatenate([[0.0], np.cumsum(np.where(valid, turn, 0.0))])
    counts = np.concatenate([[0], np.cumsum(valid)])
    n_valid = counts[last] - counts[first]
    return np.where(n_valid > 0, (sums[last] - sums[first]) / np.maximum(n_valid, 1), np.nan)


def step(
    state: WindowState, chunk: pd.DataFrame | None, settings: WindowSettings = WindowSettings(), final: bool = False
) -> tuple[pd.DataFrame, WindowState]:
    """Feed the next chunk of frames (columns frame, time_ms, face_found, AU..._r; time-ordered).

    Returns the windows completed so far (a frame at or after their end has been seen, or
    ``final`` is set) and the new state. With ``final``, windows that fit before the video's end
    (last frame time + one frame step) are emitted; a video shorter than one window gets one
    window covering all of it.
    """
    parts = [p for p in (state.pending, chunk) if p is not None and len(p)]
    frames = pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts[0] if parts else None)
    if frames is None:
        return pd.DataFrame(columns=list(INFO_COLUMNS)), state
    columns = value_columns(frames)
    times = frames["time_ms"].to_numpy(dtype=np.float64)
    t0 = state.t0_ms if state.t0_ms is not None else float(times[0])
    frame_step = state.frame_step_ms
    if len(times) > 1:
        frame_step = float(np.median(np.diff(times)))
    if final:
        video_end = times[-1] + (frame_step if np.isfinite(frame_step) else 0.0)
        limit = video_end + 1e-6  # windows must end at or before the video's end
    else:
        limit = times[-1]  # a frame at/after the end has been seen
    count = int(np.floor((limit - settings.window_ms - t0) / settings.stride_ms + 1e-9)) + 1
    numbers = np.arange(state.next_window, max(count, state.next_window), dtype=np.int64)
    starts = t0 + numbers * settings.stride_ms
    ends = starts + settings.window_ms
    if final and state.next_window == 0 and len(numbers) == 0:  # shorter than one window
        numbers = np.array([0], dtype=np.int64)
        starts = np.array([t0])
        ends = np.array([max(video_end, t0 + 1e-3)])
    table = _table(numbers, starts, ends, frames, columns)
    next_window = int(numbers[-1]) + 1 if len(numbers) else state.next_window
    keep_from = t0 + next_window * settings.stride_ms
    pending = frames.loc[times >= keep_from].reset_index(drop=True)
    return table, WindowState(pending=pending, next_window=next_window, t0_ms=t0, frame_step_ms=frame_step)


def compute_windows(frames: pd.DataFrame, settings: WindowSettings = WindowSettings()) -> pd.DataFrame:
    """All windows of a whole per-frame table at once (the non-streaming form of ``step``)."""
    table, _ = step(WindowState(), frames, settings, final=True)
    return table
