"""Spotting's per-frame signals and local statistics: channels, resting levels, usual ranges and activation (aupipe.events.spotting, steps 0-1)."""

from __future__ import annotations


import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aupipe.signal import aus
from aupipe.errors import AupipeError
from aupipe.events.spotting_settings import MOTION, SpottingSettings


@dataclass(frozen=True)
class Tail:
    """Per-frame signals kept by the stream: frame (n,), time_ms (n,), blink (n,) bool,
    face_px (n,) face width in pixels (NaN when unknown), channels (n, c) on the 0-5 scale (names
    in ``SpottingState.channels``), intensity (n, 37) AU intensities (``aus.au_columns()``),
    speaking (n,) bool (the frame table's ``speaking``; False where it is absent)."""

    frame: np.ndarray
    time_ms: np.ndarray
    blink: np.ndarray
    face_px: np.ndarray
    channels: np.ndarray
    intensity: np.ndarray
    speaking: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)

    def take(self, rows: slice | np.ndarray) -> Tail:
        """The frames ``rows`` (a slice or a boolean mask)."""
        return Tail(*(getattr(self, f)[rows] for f in _TAIL_FIELDS))

    @staticmethod
    def join(parts: list[Tail]) -> Tail:
        """Frames of ``parts`` one after the other."""
        if len(parts) == 1:
            return parts[0]
        return Tail(*(np.concatenate([getattr(p, f) for p in parts]) for f in _TAIL_FIELDS))


_TAIL_FIELDS = ("frame", "time_ms", "blink", "face_px", "channels", "intensity", "speaking")


@dataclass(frozen=True)
class Grid:
    """Local statistics at grid points ``index`` (g,) (time = index * stat_step_ms): per channel
    (g, c) the resting level and the usual range (top - rest), 0-5 scale."""

    index: np.ndarray
    rest: np.ndarray
    spread: np.ndarray


@contextmanager
def quiet_nan_warnings() -> Iterator[None]:
    """Silence numpy's warnings on all-NaN slices (frames without a face)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def channel_names(settings: SpottingSettings, columns: pd.Index | list[str]) -> tuple[str, ...]:
    """The channels available in ``columns``: ``x:AU12`` (intensity ``AU12_r``) and ``m:AU12``
    (landmark motion, when all its ``g_*`` measures are there and ``settings.motion``)."""
    present = set(columns)
    out: list[str] = []
    for au in settings.spotted:
        if f"{au}_r" in present:
            out.append(f"x:{au}")
        if settings.motion and au in MOTION and all(f"g_{m}" in present for m in MOTION[au][0]):
            out.append(f"m:{au}")
    if not any(name.startswith("x:") for name in out):
        raise AupipeError("spotting: the frame table has none of the spotted AU columns (AUxx_r)")
    return tuple(out)


def signals(frames: pd.DataFrame, channels: tuple[str, ...], settings: SpottingSettings) -> Tail:
    """The per-frame signals spotting keeps of frame rows (``frame``, ``time_ms``, ``AUxx_r``,
    ``g_*``): blink flags, channels (0-5 scale) and AU intensities."""
    n = len(frames)
    values = np.empty((n, len(channels)))
    for j, name in enumerate(channels):
        kind, au = name.split(":")
        if f"{au}_r" not in frames.columns:
            raise AupipeError(f"spotting: column {au}_r is missing from this chunk but was in earlier ones")
        if kind == "x":
            values[:, j] = frames[f"{au}_r"].to_numpy(dtype=np.float64)
        else:
            measures, weights, e_level = MOTION[au]
            moved = sum(w * frames[f"g_{m}"].to_numpy(dtype=np.float64) for m, w in zip(measures, weights, strict=True))
            values[:, j] = np.asarray(moved) / e_level * 5.0
    columns = aus.au_columns()
    present = [c for c in columns if c in frames.columns]
    intensity = np.full((n, len(columns)), np.nan)
    if present:
        intensity[:, [columns.index(c) for c in present]] = frames[present].to_numpy(dtype=np.float64)
    blink = (
        frames["AU43_r"].to_numpy(dtype=np.float64) >= settings.blink_level if "AU43_r" in frames else np.zeros(n, bool)
    )
    face_px = frames["face_width_px"].to_numpy(dtype=np.float64) if "face_width_px" in frames else np.full(n, np.nan)
    speaking = (
        np.nan_to_num(frames["speaking"].to_numpy(dtype=np.float64)) >= 0.5
        if "speaking" in frames
        else np.zeros(n, bool)
    )
    return Tail(frames["frame"].to_numpy(dtype=np.int64), frames["time_ms"].to_numpy(dtype=np.float64), blink, face_px,
                values, intensity, speaking)  # fmt: skip


def _nan_percentiles(window: np.ndarray, percentiles: tuple[float, ...]) -> np.ndarray:
    """Percentiles (p, b, c) along axis 1 of (b, w, c), NaN ignored (linear interpolation, as numpy's)."""
    count = np.isfinite(window).sum(axis=1)  # (b, c)
    top = np.maximum(count - 1, 0)
    positions = [q / 100.0 * top for q in percentiles]
    needed = np.unique(np.concatenate([np.r_[np.floor(p).ravel(), np.minimum(np.floor(p) + 1, top).ravel()]
                                       for p in positions]).astype(np.int64))  # fmt: skip
    if len(needed) <= 12:  # a few order statistics: partition (linear) rather than sort
        ordered = np.partition(np.where(np.isnan(window), np.inf, window), needed, axis=1)
    else:
        ordered = np.sort(window, axis=1)  # NaN sorts last
    out = []
    for position in positions:
        lo = np.floor(position).astype(np.int64)
        hi = np.minimum(lo + 1, top)
        low = np.take_along_axis(ordered, lo[:, None, :], axis=1)[:, 0]
        high = np.take_along_axis(ordered, hi[:, None, :], axis=1)[:, 0]
        with np.errstate(invalid="ignore"):  # inf - inf where a column has no value: masked below
            out.append(np.where(count > 0, low + (high - low) * (position - lo), np.nan))
    return np.stack(out)


def envelope(values: np.ndarray, frames: int) -> np.ndarray:
    """Upper envelope (n, c) of ``values`` (n, c): the largest value within ``frames // 2`` frames
    each way (NaN ignored), so a brief movement counts for about ``frames`` frames."""
    h = frames // 2
    if h <= 0 or not len(values):
        return values
    padded = np.vstack([np.full((h, values.shape[1]), -np.inf), np.nan_to_num(values, nan=-np.inf),
                        np.full((h, values.shape[1]), -np.inf)])  # fmt: skip
    out = np.lib.stride_tricks.sliding_window_view(padded, 2 * h + 1, axis=0).max(axis=-1)
    return np.where(np.isneginf(out), np.nan, out)


def grid_stats(times: np.ndarray, values: np.ndarray, index: np.ndarray, settings: SpottingSettings) -> Grid:
    """Local statistics of channels ``values`` (n, c) at grid points ``index`` (g,), from the frames
    with time in [T - context/2, T + context/2), T = index * stat_step_ms: rest
    (``rest_percentile``) and spread = top - rest, where top is the larger of the
    ``range_percentile`` of the values and the ``envelope_percentile`` of their ``envelope``
    (brief movements that come back again and again, such as speech sounds, are usual too)."""
    half = settings.context_s * 500.0
    centre = index * settings.stat_step_ms
    first = np.searchsorted(times, centre - half, side="left")
    last = np.searchsorted(times, centre + half, side="left")
    rest = np.full((len(index), values.shape[1]), np.nan)
    top = rest.copy()
    nan_row = np.full((1, values.shape[1]), np.nan)
    padded = np.vstack([values, nan_row])
    upper = np.vstack([envelope(values, settings.envelope_frames), nan_row])
    block = max(1, 2_000_000 // max(1, int((last - first).max(initial=1)) * values.shape[1]))
    for start in range(0, len(index), block):  # blocks bound the memory of a whole-table call
        sl = slice(start, start + block)
        width = int((last[sl] - first[sl]).max(initial=0))
        if width == 0:
            continue
        rows = first[sl, None] + np.arange(width)[None, :]
        rows = np.where(rows < last[sl, None], rows, len(values))
        rest[sl], top[sl] = _nan_percentiles(padded[rows], (settings.rest_percentile, settings.range_percentile))
        if settings.envelope_frames > 1:
            top[sl] = np.fmax(top[sl], _nan_percentiles(upper[rows], (settings.envelope_percentile,))[0])
    return Grid(index, rest, top - rest)


def _near(mask: np.ndarray, times: np.ndarray, pad_ms: float) -> np.ndarray:
    """Frames (n,) within ``pad_ms`` of a True frame of ``mask`` (n,)."""
    marked = times[mask]
    if not len(marked):
        return mask.copy()
    idx = np.searchsorted(marked, times)
    before = np.abs(times - marked[np.maximum(idx - 1, 0)])
    after = np.abs(marked[np.minimum(idx, len(marked) - 1)] - times)
    return np.minimum(before, after) <= pad_ms + 1e-6


def thresholds(tail: Tail, channels: tuple[str, ...], spread: np.ndarray, settings: SpottingSettings) -> np.ndarray:
    """Per-frame channel thresholds (n, c): max(onset_threshold, range_factor * spread) and, for a
    landmark-motion channel, the displacement ``min_motion_px`` in pixels on this face (landmark
    jitter) expressed on the 0-5 scale."""
    threshold = np.maximum(settings.onset_threshold, settings.range_factor * spread)
    for j, name in enumerate(channels):
        kind, au = name.split(":")
        if kind == "m" and settings.min_motion_px > 0:
            with quiet_nan_warnings():
                floor = settings.min_motion_px / tail.face_px / MOTION[au][2] * 5.0
            threshold[:, j] = np.fmax(threshold[:, j], floor)
    return threshold


def activation(
    tail: Tail, channels: tuple[str, ...], rest: np.ndarray, spread: np.ndarray, settings: SpottingSettings
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Per-AU activation and boundary (n, k) of the frames ``tail``, given each frame's channel
    statistics (n, c). Activation: mean over the AU's channels of (value - rest) / threshold
    (``thresholds``); boundary: max(``boundary_level``, usual + ``usual_margin`` * (1 - usual))
    with usual = spread / threshold, the channels' mean. NaN without a face; eyelid AUs are at
    most 0 during blinks (``SpottingSettings.blink_aus``); the lower-face AUs' activation is
    divided by ``speech_factor`` on speaking frames (speech moves the lips and jaw by about what a
    subtle expression does). Returns the AU names, the activations, the boundaries and the
    motion evidence (n, k): the landmark-motion channel's own (value - rest) / threshold (the
    intensity channel's where an AU has no motion channel), gated like the activation."""
    threshold = thresholds(tail, channels, spread, settings)
    usual = spread / threshold
    with quiet_nan_warnings():
        r = (tail.channels - rest) / threshold
    names = [name.split(":")[1] for name in channels]
    spotted = [a for a in settings.spotted if a in names]
    out = np.full((len(tail), len(spotted)), np.nan)
    motion = np.full((len(tail), len(spotted)), np.nan)
    bound = np.full((len(tail), len(spotted)), settings.boundary_level)
    blinking = _near(tail.blink, tail.time_ms, settings.blink_pad_ms) if tail.blink.any() else None
    for j, au in enumerate(spotted):
        cols = [i for i, name in enumerate(names) if name == au]
        with quiet_nan_warnings():
            out[:, j] = np.nanmean(r[:, cols], axis=1)
            top = np.nanmean(usual[:, cols], axis=1)
        bound[:, j] = np.fmax(settings.boundary_level, top + settings.usual_margin * (1.0 - top))
        moving = [i for i in cols if channels[i].startswith("m:")] or cols
        with quiet_nan_warnings():
            motion[:, j] = np.nanmax(r[:, moving], axis=1)
        if blinking is not None and au in settings.blink_aus:
            out[blinking, j] = np.minimum(out[blinking, j], 0.0)
            motion[blinking, j] = np.minimum(motion[blinking, j], 0.0)
        if settings.speech_factor != 1.0 and au in settings.speech_aus and tail.speaking.any():
            out[tail.speaking, j] /= settings.speech_factor
            motion[tail.speaking, j] /= settings.speech_factor
    return spotted, out, bound, motion
