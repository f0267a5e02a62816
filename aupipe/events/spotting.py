"""Spotting: find expression events (onset, apex, offset) in long videos, micro versus macro.

Signal. Each spotted AU has up to two channels on the 0-5 intensity scale: its intensity
``AUxx_r`` (relative to the person's neutral face, filtered; docs/aus.md) and a landmark-motion
channel, the AU's geometric measure (``g_*``, on the face-width-normalised, rigidly aligned
mesh, so head rotation and translation are removed) divided by the displacement that reaches
FACS E (``aus.GEOMETRY_AUS``). Each channel is compared with its own statistics over a centred
window of ``context_s`` seconds: its resting level (``rest_percentile``) and the top of its usual
activity (the larger of its ``range_percentile`` and the ``envelope_percentile`` of its 1 s
upper envelope, so brief movements that keep coming back, like speech sounds, count as usual):

    r = (value - rest) / threshold,
    threshold = max(onset_threshold, range_factor * (top - rest), [motion channel] min_motion_px on this face)

An AU's activation is the mean of its channels' r. An event needs r >= 1: the AU rises above its
resting level by ``onset_threshold`` intensity units and beyond what it usually does around
then (``range_factor`` times its usual range), and the landmarks move more than their jitter.

Events (per piece of the stream, see below):

1. Cores, per AU: runs above the AU's boundary, usual + ``usual_margin`` * (1 - usual) in r
   units (at least ``boundary_level``), with dips of up to ``merge_gap_ms`` bridged, that reach 1.
2. Onset and offset: each core widens on both sides while r keeps falling (by ``fall`` within
   ``fall_ms``, for at most ``descent_ms``), down to ``peak_fraction`` of its peak (at least
   ``boundary_level``): the half-height of the movement, or where it meets a plateau of other
   activity. Cores of one AU that touch or never drop back below ``boundary_level`` between them
   are one segment; its apex is its highest frame. Segments shorter than ``min_ms`` or longer
   than ``max_ms``, or whose onset or offset was not seen (the video's ends), are dropped.
3. Grouping (``_group``): segments of different AUs are one event when they overlap enough;
   a micro-length segment inside a macro event joins it only when it is one of its AUs, lies
   in its onset or offset phase or peaks with it; otherwise it is a micro event within the
   macro one (``within_macro``).
4. Kind: ``micro`` when offset - onset <= ``micro_max_ms``, else ``macro``. An event spans its
   segments of at least ``extent_share`` of its strongest one's activation (only its strongest
   segment when all are micro-length). Its AUs are listed strongest first; ``AUxx_peak`` are
   the highest ``AUxx_r`` between onset and offset.

Blinks: frames where ``AU43_r`` >= ``blink_level`` (widened by ``blink_pad_ms``) do not count
for the eyelid AUs (AU05, AU07); AU43 itself is spotted only with ``blinks=True``. Speech AUs
(AU25, AU26) and the blendshape-only AUs (AU14, AU28) are not spotted by default.

Streaming. ``step`` takes frame rows chunk by chunk and returns the events finished so far. Its
state is a bounded tail (at most about ``context_s`` + ``max_piece_s`` seconds of a few numbers
per frame). The stream is cut into pieces in quiet stretches (no AU above its boundary) or, after
``max_piece_s`` of unbroken activity, at the least active frame, by rules that depend only on
the data, so any chunking gives the same events as ``spot`` on the whole table.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from aupipe.signal import aus
from aupipe.errors import AupipeError, SettingsError

SPEECH_AUS: tuple[str, ...] = ("AU25", "AU26")
BLINK_AU = "AU43"
#: AUs a blink moves (eyelids); they do not count during a blink.
EYELID_AUS: tuple[str, ...] = ("AU05", "AU07")
#: AUs estimated from blendshapes alone (no landmark measure confirms a movement).
BLENDSHAPE_ONLY_AUS: tuple[str, ...] = tuple(a for a, spec in aus.GEOMETRY_AUS.items() if spec is None)
#: Spotted by default: every AU except speech (AU25, AU26), blinks (AU43) and the blendshape-only
#: AUs (AU14, AU28), whose flicker during speech no landmark motion confirms.
DEFAULT_AUS: tuple[str, ...] = tuple(a for a in aus.AU_NAMES if a not in (*SPEECH_AUS, BLINK_AU, *BLENDSHAPE_ONLY_AUS))


def _motion_specs() -> dict[str, tuple[tuple[str, ...], tuple[float, ...], float]]:
    specs: dict[str, tuple[tuple[str, ...], tuple[float, ...], float]] = {}
    for au, spec in aus.GEOMETRY_AUS.items():
        if spec is None or au in ("AU25", "AU26", "AU43"):
            continue
        stem, sign, e_level = spec
        if stem in ("lip_thickness", "chin_y", "jaw_y"):
            specs[au] = ((stem,), (sign,), e_level)
        elif au == "AU04":  # brows down and drawn together (each side's mean of both)
            specs[au] = (
                ("brow_y_right", "brow_y_left", "brow_inner_x_right", "brow_inner_x_left"),
                (-0.5,) * 4,
                e_level,
            )
        else:
            specs[au] = ((f"{stem}_right", f"{stem}_left"), (sign / 2, sign / 2), e_level)
    specs["AU43"] = (("eye_aperture_right", "eye_aperture_left"), (-0.5, -0.5), 0.05)
    return specs


#: AU -> (measures, weight per measure, displacement in face widths that reaches FACS E) of the
#: landmark-motion channel: sum(weight * g_measure) / E * 5 (both sides averaged).
MOTION: dict[str, tuple[tuple[str, ...], tuple[float, ...], float]] = _motion_specs()

EVENT_COLUMNS: tuple[str, ...] = (
    "event", "onset_ms", "apex_ms", "offset_ms", "duration_ms", "onset_frame", "apex_frame", "offset_frame",
    "kind", "aus", "peaks", "within_macro",
)  # fmt: skip
EMOTION_COLUMNS: tuple[str, ...] = ("emotion", "core_emotion", "emotion_score", "emotion_aus")


def peak_columns() -> list[str]:
    """``AUxx_peak`` (and sided ``AUxx_left_peak`` ...) columns of the events table, ``aus.au_columns()`` order."""
    return [c[: -len("_r")] + "_peak" for c in aus.au_columns()]


@dataclass(frozen=True)
class SpottingSettings:
    """How events are spotted (module docstring). Intensities and activations are on the 0-5
    scale (the threshold is activation 1); times in ms unless named ``_s``.

    aus: the AUs that can make an event; blinks: also spot AU43; motion: use the landmark-motion
    channel besides ``AUxx_r``.
    context_s: centred window of the local statistics, evaluated every ``stat_step_ms`` (a frame
    uses the grid point at or before it); rest_percentile: resting level; range_percentile and
    envelope_percentile (of the upper envelope over ``envelope_frames`` frames): top of the usual
    activity.
    onset_threshold: least rise above rest (intensity units); range_factor: the rise must also
    exceed this many usual ranges; min_motion_px: a landmark-motion channel must also move this
    many pixels on this face (landmark jitter).
    usual_margin: where between the usual top and the threshold an event's core starts;
    boundary_level / peak_fraction: an event widens down to the larger of this activation and
    this share of its core's peak, while the activation still falls by ``fall`` within
    ``fall_ms``, for at most ``descent_ms``.
    min_ms / max_ms: shortest and longest event; micro_max_ms: longest micro event.
    merge_gap_ms: dips up to this long do not split an AU's core; merge_overlap: two micro-length
    segments are one event when the shorter lies this much inside the other; apex_join_ms: a
    brief movement peaking this close to a macro event's apex is part of it; extent_share: an
    event spans its segments with at least this share of its strongest one's activation.
    blink_level / blink_pad_ms: ``AU43_r`` that marks a blink, and its widening.
    max_piece_s: longest stretch of unbroken activity before a forced cut (bounds memory).
    """

    aus: tuple[str, ...] = DEFAULT_AUS
    blinks: bool = False
    motion: bool = True
    context_s: float = 120.0
    stat_step_ms: float = 500.0
    rest_percentile: float = 20.0
    range_percentile: float = 95.0
    onset_threshold: float = 0.8
    range_factor: float = 1.2
    min_motion_px: float = 1.0
    envelope_frames: int = 31
    envelope_percentile: float = 80.0
    usual_margin: float = 0.5
    boundary_level: float = 0.3
    peak_fraction: float = 0.4
    fall: float = 0.1
    fall_ms: float = 100.0
    descent_ms: float = 300.0
    min_ms: float = 60.0
    max_ms: float = 4000.0
    micro_max_ms: float = 500.0
    merge_gap_ms: float = 70.0
    merge_overlap: float = 0.5
    apex_join_ms: float = 200.0
    extent_share: float = 0.6
    blink_level: float = 1.0
    blink_pad_ms: float = 70.0
    max_piece_s: float = 12.0

    def __post_init__(self) -> None:
        unknown = [a for a in self.aus if a not in aus.AU_NAMES]
        if unknown:
            raise SettingsError(f"spotting: unknown AU {unknown[0]}; use some of {' '.join(aus.AU_NAMES)}")
        if not self.aus and not self.blinks:
            raise SettingsError("spotting: no AU to spot; give some in aus or set blinks")
        if not (0 < self.boundary_level < 1 and 0 <= self.usual_margin <= 1):
            raise SettingsError("spotting: need 0 < boundary_level < 1 and 0 <= usual_margin <= 1")
        if not (0 <= self.rest_percentile < self.range_percentile <= 100):
            raise SettingsError("spotting: need 0 <= rest_percentile < range_percentile <= 100")
        if min(self.onset_threshold, self.context_s, self.stat_step_ms, self.range_factor) <= 0:
            raise SettingsError("spotting: onset_threshold, context_s, stat_step_ms and range_factor must be > 0")
        if not (0 < self.min_ms <= self.micro_max_ms < self.max_ms):
            raise SettingsError("spotting: need 0 < min_ms <= micro_max_ms < max_ms")
        if self.max_piece_s * 1000.0 < 2 * self.max_ms:
            raise SettingsError("spotting: max_piece_s must be at least twice max_ms")

    @property
    def spotted(self) -> tuple[str, ...]:
        """The AUs that can make an event (``aus`` plus AU43 when ``blinks``)."""
        return tuple(dict.fromkeys((*self.aus, BLINK_AU) if self.blinks else self.aus))


@dataclass(frozen=True)
class Tail:
    """Per-frame signals kept by the stream: frame (n,), time_ms (n,), blink (n,) bool,
    face_px (n,) face width in pixels (NaN when unknown), channels (n, c) on the 0-5 scale (names
    in ``SpottingState.channels``), intensity (n, 37) AU intensities (``aus.au_columns()``)."""

    frame: np.ndarray
    time_ms: np.ndarray
    blink: np.ndarray
    face_px: np.ndarray
    channels: np.ndarray
    intensity: np.ndarray

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


_TAIL_FIELDS = ("frame", "time_ms", "blink", "face_px", "channels", "intensity")


@dataclass(frozen=True)
class Grid:
    """Local statistics at grid points ``index`` (g,) (time = index * stat_step_ms): per channel
    (g, c) the resting level and the usual range (top - rest), 0-5 scale."""

    index: np.ndarray
    rest: np.ndarray
    spread: np.ndarray


@dataclass(frozen=True)
class SpottingState:
    """What ``step`` carries between chunks (bounded: about ``context_s`` + ``max_piece_s`` of frames).

    tail: recent frames' signals; channels: the channel names (fixed by the first chunk);
    done_ms: events before this time are emitted; grid: computed local statistics still needed;
    next_grid: first grid index not yet computed; next_event: number of the next event;
    forced_start: the pending stretch begins at a forced cut.
    """

    tail: Tail | None = None
    channels: tuple[str, ...] = ()
    done_ms: float = -np.inf
    grid: Grid | None = None
    next_grid: int | None = None
    next_event: int = 0
    forced_start: bool = False


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's warnings on all-NaN slices (frames without a face)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# --------------------------------------------------------------------------------------------
# Per-frame signals and local statistics
# --------------------------------------------------------------------------------------------


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
    return Tail(frames["frame"].to_numpy(dtype=np.int64), frames["time_ms"].to_numpy(dtype=np.float64), blink, face_px,
                values, intensity)  # fmt: skip


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
            with _quiet():
                floor = settings.min_motion_px / tail.face_px / MOTION[au][2] * 5.0
            threshold[:, j] = np.fmax(threshold[:, j], floor)
    return threshold


def activation(
    tail: Tail, channels: tuple[str, ...], rest: np.ndarray, spread: np.ndarray, settings: SpottingSettings
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-AU activation and boundary (n, k) of the frames ``tail``, given each frame's channel
    statistics (n, c). Activation: mean over the AU's channels of (value - rest) / threshold
    (``thresholds``); boundary: max(``boundary_level``, usual + ``usual_margin`` * (1 - usual))
    with usual = spread / threshold, the channels' mean. NaN without a face; eyelid AUs are at
    most 0 during blinks. Returns the AU names, the activations and the boundaries."""
    threshold = thresholds(tail, channels, spread, settings)
    usual = spread / threshold
    with _quiet():
        r = (tail.channels - rest) / threshold
    names = [name.split(":")[1] for name in channels]
    spotted = [a for a in settings.spotted if a in names]
    out = np.full((len(tail), len(spotted)), np.nan)
    bound = np.full((len(tail), len(spotted)), settings.boundary_level)
    blinking = _near(tail.blink, tail.time_ms, settings.blink_pad_ms) if tail.blink.any() else None
    for j, au in enumerate(spotted):
        cols = [i for i, name in enumerate(names) if name == au]
        with _quiet():
            out[:, j] = np.nanmean(r[:, cols], axis=1)
            top = np.nanmean(usual[:, cols], axis=1)
        bound[:, j] = np.fmax(settings.boundary_level, top + settings.usual_margin * (1.0 - top))
        if blinking is not None and au in EYELID_AUS:
            out[blinking, j] = np.minimum(out[blinking, j], 0.0)
    return spotted, out, bound


# --------------------------------------------------------------------------------------------
# Pieces, segments and events
# --------------------------------------------------------------------------------------------


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the True runs of a 1-d mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _close_gaps(mask: np.ndarray, times: np.ndarray, gap_ms: float) -> np.ndarray:
    """(n, k) mask with its dips bridged, per column: False frames between two True frames at most
    ``gap_ms`` apart become True."""
    if gap_ms <= 0 or not len(mask):
        return mask
    n = len(mask)
    idx = np.arange(n)[:, None]
    previous = np.maximum.accumulate(np.where(mask, idx, -1), axis=0)
    following = np.minimum.accumulate(np.where(mask, idx, n)[::-1], axis=0)[::-1]
    padded = np.concatenate([times, [np.inf]])
    bridged = (previous >= 0) & (following < n) & (padded[following] - times[np.maximum(previous, 0)] <= gap_ms + 1e-6)
    return mask | bridged


def _cuts(
    r: np.ndarray, bound: np.ndarray, times: np.ndarray, settings: SpottingSettings, final: bool
) -> tuple[list[int], int]:
    """Piece boundaries in frames ``r`` (n, k) at ``times`` (n,), starting at a boundary (index 0).

    A quiet cut lies in a run of frames where no AU is above its boundary, ``descent_ms`` after
    the run's start and at least ``descent_ms`` before its end (so no widened event reaches it),
    in a run that no dip-bridging crosses (the active frames around it are more than
    ``merge_gap_ms`` apart). Where no quiet cut comes within ``max_piece_s`` of the last boundary,
    a forced cut goes to the least active frame of that stretch's last ``max_ms``. Returns the
    forced cuts and the last boundary that is certain (the end when ``final``).
    """
    n = len(r)
    with _quiet():
        level = np.nanmax(r - bound, axis=1) if r.shape[1] else np.full(n, -1.0)
    level = np.where(np.isnan(level), -np.inf, level)
    starts, ends = _runs(level <= 0)
    gap, room = settings.merge_gap_ms, settings.descent_ms
    cut_at = np.searchsorted(times, times[starts] + room - 1e-6, side="left")
    before = times[np.maximum(starts - 1, 0)]
    after = np.where(ends < n, times[np.minimum(ends, n - 1)], np.inf)
    cut_time = times[np.minimum(cut_at, n - 1)]
    known = (ends < n) | final | ((times[-1] >= cut_time + room) & (times[-1] - before >= gap))
    fits = (cut_at < ends) & (after - before > gap + 1e-6) & (after - cut_time >= room - 1e-6)
    qualifies = (starts > 0) & known & (fits | ((ends == n) & final & (cut_at < ends)))
    quiet_cuts = cut_at[qualifies]
    piece = settings.max_piece_s * 1000.0
    forced: list[int] = []
    position, k = 0, 0
    while True:  # one pass per piece, not per frame
        while k < len(quiet_cuts) and quiet_cuts[k] <= position:
            k += 1
        limit = times[position] + piece
        if k < len(quiet_cuts) and times[quiet_cuts[k]] <= limit:
            position = int(quiet_cuts[k])
            continue
        if times[-1] < limit + gap + 2 * room and not (final and times[-1] >= limit):
            break  # too few frames to know whether a quiet cut comes in time
        lo = int(np.searchsorted(times, limit - settings.max_ms, side="left"))
        hi = int(np.searchsorted(times, limit, side="right"))
        lo = min(max(lo, position + 1), hi - 1)
        if lo <= position:
            break
        cut = lo + int(np.argmin(level[lo:hi]))
        forced.append(cut)
        position = cut
    return forced, (n if final else position)


def _descend(values: np.ndarray, distance_ms: np.ndarray, floor: float, settings: SpottingSettings) -> int:
    """How many frames an event widens by on one side. ``values`` (m,): activations read outwards
    from the core's edge; ``distance_ms`` (m,): their distance from it. Widening goes on while the
    activation is above ``floor`` and still falls by ``fall`` within ``fall_ms`` (it stops
    where the signal levels off: the foot of the movement, a plateau of other activity, a valley),
    for at most ``descent_ms``."""
    m = int(np.searchsorted(distance_ms, settings.descent_ms, side="right"))
    if not m:
        return 0
    values = np.nan_to_num(values[:m], nan=-np.inf)
    horizon = np.searchsorted(distance_ms[:m], distance_ms[:m] + settings.fall_ms, side="right")  # exclusive
    reach = horizon - np.arange(m) - 1  # frames ahead within fall_ms
    width = max(int(reach.max()), 1)
    padded = np.concatenate([values, np.full(width + 1, np.inf)])
    ahead = np.lib.stride_tricks.sliding_window_view(padded[1:], width)[:m]  # (m, width)
    ahead = np.where(np.arange(width)[None, :] < reach[:, None], ahead, np.inf)
    with np.errstate(invalid="ignore"):  # -inf - -inf where the face is gone: NaN, and not above floor anyway
        going = (values > floor) & (values - ahead.min(axis=1) >= settings.fall)
    stop = np.flatnonzero(~going)
    if not len(stop):
        return m
    k = int(stop[0])
    return k + 1 if values[k] > floor else k


def _segments(
    r: np.ndarray, bound: np.ndarray, spotted: list[str], times: np.ndarray, settings: SpottingSettings,
    open_start: bool, open_end: bool,
) -> pd.DataFrame:  # fmt: skip
    """Per-AU segments of one piece: activations ``r`` and boundaries ``bound`` (n, k).

    Core: a run above the boundary (dips of up to ``merge_gap_ms`` bridged) that reaches 1; each
    core widens on both sides (``_descend``), and cores of one AU are joined when their widened
    spans touch or the activation stays above ``boundary_level`` between them. Returns au, onset, apex, offset (row indices) and the peak activation. Dropped:
    segments touching an open end of the piece (the video's start or end, a forced cut), whose
    onset or offset was not seen, and those shorter than ``min_ms`` or longer than ``max_ms``."""
    n = len(r)
    low = _close_gaps(np.nan_to_num(r, nan=-np.inf) > bound, times, settings.merge_gap_ms)
    high = np.nan_to_num(r, nan=-np.inf) >= 1.0
    rows = []
    for j, au in enumerate(spotted):
        starts, ends = _runs(low[:, j])
        count = np.concatenate([[0], np.cumsum(high[:, j])])
        keep = count[ends] - count[starts] > 0
        starts, ends = starts[keep], ends[keep]
        rest = np.nan_to_num(r[:, j], nan=-np.inf) <= settings.boundary_level
        above = np.cumsum(rest)  # equal at two frames when the AU stays above boundary_level between them
        spans: list[list[int]] = []
        for k, (s, e) in enumerate(zip(starts, ends, strict=True)):  # per core, not per frame
            left_limit = ends[k - 1] if k else 0
            right_limit = starts[k + 1] if k + 1 < len(starts) else n
            floor = max(settings.boundary_level, settings.peak_fraction * float(np.nanmax(r[s:e, j])))
            onset = s - _descend(r[left_limit:s, j][::-1], times[s] - times[left_limit:s][::-1], floor, settings)
            offset = e - 1 + _descend(r[e:right_limit, j], times[e:right_limit] - times[e - 1], floor, settings)
            if spans and (onset <= spans[-1][1] + 1 or above[s] == above[spans[-1][1]]):
                spans[-1][1] = offset  # touching, or never back to rest in between: one movement
            else:
                spans.append([onset, offset])
        for onset, offset in spans:
            if (onset == 0 and open_start) or (offset == n - 1 and open_end):
                continue
            apex = onset + int(np.argmax(np.nan_to_num(r[onset : offset + 1, j], nan=-np.inf)))
            rows.append((au, onset, apex, offset, float(r[apex, j])))
    table = pd.DataFrame(rows, columns=["au", "onset", "apex", "offset", "activation"])
    table = table.astype({"onset": np.int64, "apex": np.int64, "offset": np.int64, "activation": np.float64})
    if table.empty:
        return table
    duration = times[table["offset"].to_numpy()] - times[table["onset"].to_numpy()]
    keep = (duration >= settings.min_ms - 1e-6) & (duration <= settings.max_ms + 1e-6)
    return table[keep].reset_index(drop=True)


def _group(segments: pd.DataFrame, times: np.ndarray, settings: SpottingSettings) -> list[list[int]]:
    """Group segments into events, macro-length ones (longer than ``micro_max_ms``) first, then
    micro-length ones, each in onset order; a segment joins the group it overlaps best, if any:

    - a macro-length segment joins a group it overlaps at all (one expression's AUs need not
      start and end together);
    - a micro-length segment lying inside a macro group joins it when it is one of the group's
      AUs, falls in the group's onset or offset phase (within ``micro_max_ms`` of its ends) or
      peaks with it (apexes within ``apex_join_ms``): those movements belong to the macro
      expression. Otherwise it starts its own group: a micro event within the macro one;
    - any other micro-length segment joins a group when the shorter of the two lies at least
      ``merge_overlap`` inside the other.
    """
    on = times[segments["onset"].to_numpy()]
    off = times[segments["offset"].to_numpy()]
    apex = times[segments["apex"].to_numpy()]
    strength = segments["activation"].to_numpy()
    names = segments["au"].to_numpy()
    long = off - on > settings.micro_max_ms
    order = [*np.flatnonzero(long), *np.flatnonzero(~long)]  # segments are in onset order already
    groups: list[list[int]] = []
    spans: list[list[float]] = []
    for i in order:  # per segment, not per frame
        best, best_score = -1, 0.0
        for g, (a, b) in enumerate(spans):
            inter = min(b, off[i]) - max(a, on[i])
            if inter < 0:
                continue
            shorter = min(b - a, off[i] - on[i])
            overlap = inter / shorter if shorter > 0 else 1.0
            if long[i]:
                score = max(overlap, 1e-6) if inter > 0 else 0.0
            elif b - a > settings.micro_max_ms and on[i] >= a and off[i] <= b:
                own = names[i] in {names[k] for k in groups[g]}
                phase = on[i] - a <= settings.micro_max_ms or b - off[i] <= settings.micro_max_ms
                peak = groups[g][int(np.argmax(strength[groups[g]]))]
                together = abs(apex[i] - apex[peak]) <= settings.apex_join_ms
                score = 1.0 if own or phase or together else 0.0
            else:
                score = overlap if overlap >= settings.merge_overlap else 0.0
            if score > best_score:
                best, best_score = g, score
        if best < 0:
            groups.append([int(i)])
            spans.append([on[i], off[i]])
        else:
            groups[best].append(int(i))
            spans[best] = [min(spans[best][0], on[i]), max(spans[best][1], off[i])]
    return groups


def _events(
    tail: Tail, segments: pd.DataFrame, settings: SpottingSettings, first_event: int, emotion_map: Any
) -> pd.DataFrame:
    """Events table (``event_columns``) of the grouped ``segments`` over the frames ``tail``."""
    if segments.empty:
        return empty_events(emotion_map)
    times, frame_ids = tail.time_ms, tail.frame
    groups = _group(segments, times, settings)
    seg_on, seg_off = segments["onset"].to_numpy(), segments["offset"].to_numpy()
    seg_apex, seg_act, seg_au = (
        segments["apex"].to_numpy(),
        segments["activation"].to_numpy(),
        segments["au"].to_numpy(),
    )
    # The event spans its strong segments (peak >= extent_share of its strongest): weaker movements
    # that happen to overlap (speech) are listed but do not stretch it.
    # An event of micro-length segments only spans its strongest one (a brief movement with
    # other brief ones around it stays as brief as itself).
    brief = [bool((times[seg_off[g]] - times[seg_on[g]] <= settings.micro_max_ms).all()) for g in groups]
    strong = [[g[int(np.argmax(seg_act[g]))]] if short else [i for i in g if seg_act[i] >= settings.extent_share * seg_act[g].max()]
              for g, short in zip(groups, brief, strict=True)]  # fmt: skip
    onset = np.array([seg_on[g].min() for g in strong])
    offset = np.array([seg_off[g].max() for g in strong])
    apex = np.array([seg_apex[g[int(np.argmax(seg_act[g]))]] for g in groups])
    order = np.argsort(onset, kind="stable")
    groups = [groups[i] for i in order]
    onset, offset, apex = onset[order], offset[order], apex[order]
    padded = np.vstack([tail.intensity, np.full((1, tail.intensity.shape[1]), np.nan)])
    with _quiet():
        peaks = np.fmax.reduceat(padded, np.stack([onset, offset + 1], axis=1).ravel(), axis=0)[::2]
    duration = times[offset] - times[onset]
    kind = np.where(duration <= settings.micro_max_ms + 1e-6, "micro", "macro")
    columns = aus.au_columns()
    au_lists = []
    for g in groups:  # AUs of each event, strongest first
        strongest: dict[str, float] = {}
        for i in g:
            strongest[seg_au[i]] = max(strongest.get(seg_au[i], -np.inf), float(seg_act[i]))
        au_lists.append(sorted(strongest, key=lambda a: -strongest[a]))
    peak_text = [
        " ".join(f"{a}={peaks[k, columns.index(f'{a}_r')]:.1f}" for a in lst) for k, lst in enumerate(au_lists)
    ]
    macro = kind == "macro"
    apex_t = times[apex]
    inside = (apex_t[:, None] >= times[onset][macro][None, :]) & (apex_t[:, None] <= times[offset][macro][None, :])
    table = pd.DataFrame(
        {
            "event": first_event + np.arange(len(groups)),
            "onset_ms": times[onset],
            "apex_ms": apex_t,
            "offset_ms": times[offset],
            "duration_ms": duration,
            "onset_frame": frame_ids[onset],
            "apex_frame": frame_ids[apex],
            "offset_frame": frame_ids[offset],
            "kind": kind.astype(object),
            "aus": [" ".join(lst) for lst in au_lists],
            "peaks": peak_text,
            "within_macro": ~macro & inside.any(axis=1),
        }
    )
    table = pd.concat([table, pd.DataFrame(peaks, columns=peak_columns())], axis=1)
    if emotion_map is not None:
        table = pd.concat([table, _label(peaks, au_lists, emotion_map)], axis=1)
    return table


def _label(peaks: np.ndarray, au_lists: list[list[str]], emotion_map: Any) -> pd.DataFrame:
    """The mapping's winner per event, scored on the peaks (n, 37) of the event's own AUs (others 0),
    so the label explains the movement, not the resting face or speech."""
    from aupipe.rules import mapping

    data = {}
    for j, column in enumerate(aus.au_columns()):
        base = column[: -len("_r")]
        involved = np.array([base[:4] in lst for lst in au_lists])
        data[base] = np.where(involved, np.nan_to_num(peaks[:, j]), 0.0)
    return mapping.score(pd.DataFrame(data), emotion_map)[list(EMOTION_COLUMNS)]


@lru_cache(maxsize=2)
def _empty(with_emotion: bool) -> pd.DataFrame:
    dtypes: dict[str, Any] = {"event": np.int64, "onset_frame": np.int64, "apex_frame": np.int64,
                              "offset_frame": np.int64, "kind": object, "aus": object, "peaks": object,
                              "within_macro": bool, "emotion": object, "core_emotion": object,
                              "emotion_aus": object}  # fmt: skip
    columns = [*EVENT_COLUMNS, *peak_columns(), *(EMOTION_COLUMNS if with_emotion else ())]
    return pd.DataFrame({c: np.array([], dtype=dtypes.get(c, np.float64)) for c in columns})


def empty_events(emotion_map: Any = None) -> pd.DataFrame:
    """An events table with all columns (``event_columns``) and no rows."""
    return _empty(emotion_map is not None).copy()


def event_columns(emotion_map: Any = None) -> list[str]:
    """Column names of the events table; the mapping's four columns come last when a mapping is given."""
    return list(_empty(emotion_map is not None).columns)


# --------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------


def step(
    state: SpottingState,
    chunk: pd.DataFrame | None,
    settings: SpottingSettings = SpottingSettings(),
    final: bool = False,
    emotion_map: Any = None,
) -> tuple[pd.DataFrame, SpottingState]:
    """Feed frame rows (``frame``, ``time_ms``, ``AUxx_r``, optionally ``g_*``; in time order).

    Returns the events finished so far (``event_columns(emotion_map)``, labelled by the mapping
    when one is given) and the new state; ``final`` flushes. Pure: the state passed in is not
    changed. Any chunking gives the same events as ``spot`` on the whole table; an event comes
    out at most about ``context_s / 2 + max_piece_s`` seconds of video after its offset.
    """
    channels = state.channels
    parts = [state.tail] if state.tail is not None and len(state.tail) else []
    if chunk is not None and len(chunk):
        channels = channels or channel_names(settings, chunk.columns)
        parts.append(signals(chunk, channels, settings))
    if not parts:
        return empty_events(emotion_map), state
    tail = Tail.join(parts)
    times = tail.time_ms
    stat, half = settings.stat_step_ms, settings.context_s * 500.0

    # Local statistics on the grid: a grid point is final once the frames up to its window's end are in.
    next_grid = state.next_grid if state.next_grid is not None else int(np.floor(times[0] / stat))
    # (the envelope reaches envelope_frames // 2 frames beyond a window's last frame)
    reach = settings.envelope_frames // 2
    known_until = times[-1] if final or len(times) <= reach else times[-1 - reach]
    last_grid = int(np.floor(times[-1] / stat)) if final else int(np.floor((known_until - half) / stat)) - 1
    grid = state.grid
    if last_grid >= next_grid:
        new = grid_stats(times, tail.channels, np.arange(next_grid, last_grid + 1), settings)
        grid = new if grid is None else Grid(*(np.concatenate([getattr(grid, f), getattr(new, f)])
                                               for f in ("index", "rest", "spread")))  # fmt: skip
        next_grid = last_grid + 1

    # The frames whose statistics are known, from the first frame not yet finalised.
    frame_grid = np.floor(times / stat).astype(np.int64)
    ready = (times >= state.done_ms) & (frame_grid < next_grid)
    if grid is None or not ready.any():
        return empty_events(emotion_map), SpottingState(tail, channels, state.done_ms, grid, next_grid,
                                                        state.next_event, state.forced_start)  # fmt: skip
    begin = int(np.argmax(ready))
    end = begin + int(ready[begin:].sum())  # ready frames are contiguous
    margin = settings.blink_pad_ms + 1.0  # blink widening looks this far around a frame
    lo = int(np.searchsorted(times, times[begin] - margin, side="left"))
    hi = int(np.searchsorted(times, times[end - 1] + margin, side="right"))
    rows = np.searchsorted(grid.index, frame_grid[lo:hi])
    rows = np.minimum(rows, len(grid.index) - 1)
    spotted, r, bound = activation(tail.take(slice(lo, hi)), channels, grid.rest[rows], grid.spread[rows], settings)
    r, bound = r[begin - lo : end - lo], bound[begin - lo : end - lo]
    region = tail.take(slice(begin, end))
    is_final = final and end == len(tail)
    forced, certain = _cuts(r, bound, region.time_ms, settings, is_final)

    events = empty_events(emotion_map)
    next_event = state.next_event
    if certain > 0:
        bounds = [0, *forced] if forced and forced[-1] == certain else [0, *forced, certain]
        found = []
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):  # per piece
            if b > a:
                first = state.forced_start or not np.isfinite(state.done_ms)  # a forced cut, or the video's start
                seg = _segments(r[a:b], bound[a:b], spotted, region.time_ms[a:b], settings,
                                open_start=first if i == 0 else True, open_end=b in forced or (is_final and b == end - begin))  # fmt: skip
                found.append(seg.assign(onset=seg["onset"] + a, apex=seg["apex"] + a, offset=seg["offset"] + a))
        segments = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
        if len(segments):
            segments = segments.sort_values(["onset", "offset", "au"], kind="stable").reset_index(drop=True)
            events = _events(region.take(slice(0, certain)), segments, settings, next_event, emotion_map)
            next_event += len(events)
    if is_final:
        return events, SpottingState(None, channels, np.inf, None, next_grid, next_event, False)
    forced_start = bool(forced) and forced[-1] == certain if certain > 0 else state.forced_start
    done_ms = float(region.time_ms[certain]) if certain < len(region) else state.done_ms
    keep_from = min(done_ms, next_grid * stat - half) - 2 * margin
    first_kept = max(int(np.searchsorted(times, keep_from, side="left")) - reach, 0)  # and the envelope's reach
    tail = tail.take(slice(first_kept, None))
    first_needed = int(np.floor(done_ms / stat)) - 1 if np.isfinite(done_ms) else None
    if first_needed is not None:
        kept = grid.index >= first_needed
        grid = Grid(grid.index[kept], grid.rest[kept], grid.spread[kept])
    return events, SpottingState(tail, channels, done_ms, grid, next_grid, next_event, forced_start)


def spot(
    frames: pd.DataFrame, settings: SpottingSettings = SpottingSettings(), emotion_map: Any = None
) -> pd.DataFrame:
    """Events of a whole frame table at once (the non-streaming form of ``step``)."""
    events, _ = step(SpottingState(), frames, settings, final=True, emotion_map=emotion_map)
    return events


def activation_table(frames: pd.DataFrame, settings: SpottingSettings = SpottingSettings()) -> pd.DataFrame:
    """Per-frame activation (``AUxx``) and boundary (``AUxx_bound``) of each spotted AU for a whole
    frame table: what the spotter sees (an AU can start an event where its activation reaches 1)."""
    channels = channel_names(settings, frames.columns)
    tail = signals(frames, channels, settings)
    index = np.floor(tail.time_ms / settings.stat_step_ms).astype(np.int64)
    grid = grid_stats(tail.time_ms, tail.channels, np.unique(index), settings)
    rows = np.searchsorted(grid.index, index)
    spotted, r, bound = activation(tail, channels, grid.rest[rows], grid.spread[rows], settings)
    table = pd.DataFrame(np.hstack([r, bound]), columns=[*spotted, *(f"{a}_bound" for a in spotted)])
    table.insert(0, "time_ms", tail.time_ms)
    table.insert(0, "frame", tail.frame)
    return table


def flag_windows(windows: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Per window (``start_ms``, ``end_ms``): True when it overlaps an event [``onset_ms``, ``offset_ms``].

    A window [start, end) overlaps an event when start <= offset and onset < end."""
    start = windows["start_ms"].to_numpy(dtype=np.float64)
    end = windows["end_ms"].to_numpy(dtype=np.float64)
    if events.empty:
        return pd.Series(np.zeros(len(windows), bool), index=windows.index, name="in_event")
    order = np.argsort(events["onset_ms"].to_numpy(dtype=np.float64), kind="stable")
    onset = events["onset_ms"].to_numpy(dtype=np.float64)[order]
    latest_offset = np.maximum.accumulate(events["offset_ms"].to_numpy(dtype=np.float64)[order])
    count = np.searchsorted(onset, end, side="left")  # events starting before the window's end
    overlap = (count > 0) & (latest_offset[np.maximum(count - 1, 0)] >= start)
    return pd.Series(overlap, index=windows.index, name="in_event")


@dataclass(frozen=True)
class FlagState:
    """What ``flag_step`` carries: windows not yet flagged (``held``), the events that may still
    overlap a held or later window (``events``: onset_ms, offset_ms) and the latest window start seen."""

    held: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    last_start_ms: float = -np.inf


def flag_step(
    state: FlagState, windows: pd.DataFrame | None, events: pd.DataFrame | None, done_ms: float, final: bool = False
) -> tuple[pd.DataFrame, FlagState]:
    """Streaming ``flag_windows``. Windows (in start order) are held until every event that could
    overlap them is known: their end <= ``done_ms`` (the spotter's ``SpottingState.done_ms``, the
    time before which all events are out), or ``final``. Returns the released windows with an
    ``in_event`` column, and the new state (about ``context_s / 2 + max_piece_s`` of windows)."""
    held = [p for p in (state.held, windows) if p is not None and len(p)]
    if not held:
        columns = [*(windows.columns if windows is not None else ()), "in_event"]
        return pd.DataFrame(columns=columns), state
    table = pd.concat(held, ignore_index=True) if len(held) > 1 else held[0].reset_index(drop=True)
    spans = [p[["onset_ms", "offset_ms"]] for p in (state.events, events) if p is not None and len(p)]
    known = pd.concat(spans, ignore_index=True) if spans else pd.DataFrame({"onset_ms": [], "offset_ms": []})
    ready = np.ones(len(table), bool) if final else table["end_ms"].to_numpy(dtype=np.float64) <= done_ms
    out = table.loc[ready].reset_index(drop=True)
    out["in_event"] = flag_windows(out, known).to_numpy()
    rest = table.loc[~ready].reset_index(drop=True)
    last_start = max(state.last_start_ms, float(table["start_ms"].max()))
    first_start = float(rest["start_ms"].min()) if len(rest) else last_start  # later windows start after this
    known = known.loc[known["offset_ms"].to_numpy(dtype=np.float64) >= first_start].reset_index(drop=True)
    return out, FlagState(rest if len(rest) else None, known if len(known) else None, last_start)
