"""Spotting: find expression events (onset, apex, offset) in long videos, micro versus macro.

Signal. Per spotted AU two channels, both on the 0-5 intensity scale: the AU intensity
``AUxx_r`` (already relative to the person's neutral face and filtered, see docs/aus.md) and a
landmark-motion channel: the AU's geometric measure (``g_*`` columns: the face-width-normalised,
rigidly aligned mesh, so head rotation and translation are removed) scaled by the displacement
that reaches FACS E (``aus.GEOMETRY_AUS``), without the blendshapes. Each channel is compared with
its local statistics over a centred window of ``context_s`` seconds: its resting level ``rest``
(``rest_percentile``, 20th by default) and its usual range ``range`` = ``range_percentile`` (90th)
minus ``rest``. The channel's activation is

    r = (value - rest) / max(onset_threshold, range_factor * range)

so an AU must rise above its resting level by ``onset_threshold`` intensity units AND beyond
what it usually does in this stretch of video (speech, tics). An AU's activation is the larger
of its two channels.

Events. Per AU, hysteresis: a segment is a run of frames with activation > ``boundary_level``
that contains at least one frame >= 1 (gaps of up to ``merge_gap_ms`` are bridged); onset and
offset are its first and last frames, the apex its highest frame. Segments shorter than
``min_ms`` or longer than ``max_ms`` are dropped. Segments of different AUs whose intervals
overlap with IoU >= ``merge_iou`` are one event (greedy, in onset order). An event is ``micro``
when offset - onset <= ``micro_max_ms``, else ``macro``; ``within_macro`` marks a micro event
whose apex lies inside a macro event. Blinks: frames where ``AU43_r`` >= ``blink_level``
(widened by ``blink_pad_ms``) do not count for the eyelid AUs (AU05, AU07), and AU43 itself is
spotted only with ``blinks=True``.

Streaming. ``step`` takes frame rows chunk by chunk and returns the events finished so far; its
state holds a bounded tail of frames (about ``context_s`` + ``max_piece_s`` seconds of a few
columns). The stream is cut into pieces at quiet gaps (no AU active) or, in long stretches of
activity, at the least active frame, by rules that depend only on the data, so any chunking
gives the same events as ``spot`` on the whole table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import aus
from .errors import AupipeError

SPEECH_AUS: tuple[str, ...] = ("AU25", "AU26")
BLINK_AU = "AU43"
#: AUs a blink moves (eyelids); they do not count during a blink.
EYELID_AUS: tuple[str, ...] = ("AU05", "AU07")
#: AUs estimated from blendshapes alone (no landmark measure to confirm a movement).
BLENDSHAPE_ONLY_AUS: tuple[str, ...] = tuple(a for a, spec in aus.GEOMETRY_AUS.items() if spec is None)
#: Spotted by default: every AU except speech (AU25, AU26), blinks (AU43) and the blendshape-only
#: AUs (AU14, AU28), whose flicker during speech no landmark motion confirms.
DEFAULT_AUS: tuple[str, ...] = tuple(
    a for a in aus.AU_NAMES if a not in (*SPEECH_AUS, BLINK_AU, *BLENDSHAPE_ONLY_AUS)
)

#: AU -> (measures, sign per measure, displacement in face widths that reaches FACS E) of the
#: landmark-motion channel; measures of both sides are averaged.
MOTION: dict[str, tuple[tuple[str, ...], tuple[float, ...], float]] = {}
for _au, _spec in aus.GEOMETRY_AUS.items():
    if _spec is None or _au in ("AU25", "AU26", "AU43"):
        continue
    _stem, _sign, _e = _spec
    if _stem in ("lip_thickness", "chin_y", "jaw_y"):
        MOTION[_au] = ((_stem,), (_sign,), _e)
    elif _au == "AU04":  # brows down and drawn together
        MOTION[_au] = (("brow_y_right", "brow_y_left", "brow_inner_x_right", "brow_inner_x_left"), (-1, -1, -1, -1), _e)
    else:
        MOTION[_au] = ((f"{_stem}_right", f"{_stem}_left"), (_sign, _sign), _e)
MOTION["AU43"] = (("eye_aperture_right", "eye_aperture_left"), (-1.0, -1.0), 0.05)

EVENT_COLUMNS: tuple[str, ...] = (
    "event", "onset_ms", "apex_ms", "offset_ms", "duration_ms", "onset_frame", "apex_frame", "offset_frame",
    "kind", "aus", "peaks", "within_macro",
)  # fmt: skip
EMOTION_COLUMNS: tuple[str, ...] = ("emotion", "core_emotion", "emotion_score", "emotion_aus")


def peak_columns() -> list[str]:
    """``AUxx_peak`` (and sided ``AUxx_left_peak`` ...) columns of the events table, in ``aus.au_columns()`` order."""
    return [c[: -len("_r")] + "_peak" for c in aus.au_columns()]


@dataclass(frozen=True)
class SpottingSettings:
    """How events are spotted (see the module docstring; intensities on the 0-5 scale, times in ms / s).

    aus: the AUs that can make an event (default: all but speech AU25/26 and blink AU43);
    blinks: also spot AU43 (blinks); motion: use the landmark-motion channel besides ``AUxx_r``;
    context_s: centred window of the local statistics; stat_step_ms: they are evaluated every
    ``stat_step_ms`` (a frame uses the last grid point at or before it);
    rest_percentile / range_percentile: resting level and top of the usual range;
    onset_threshold: least rise above rest; range_factor: the rise must also exceed this many
    usual ranges; boundary_level: activation (threshold = 1) that ends an event at onset and offset;
    min_ms / max_ms: shortest and longest event; micro_max_ms: longest micro event;
    merge_gap_ms: dips of at most this long do not split an AU's segment;
    merge_iou: segments of different AUs overlapping this much are one event;
    blink_level / blink_pad_ms: ``AU43_r`` that marks a blink and its widening;
    max_piece_s: longest stretch of continuous activity held before a forced cut (memory bound).
    """

    aus: tuple[str, ...] = DEFAULT_AUS
    blinks: bool = False
    motion: bool = True
    combine: str = "mean"
    context_s: float = 20.0
    stat_step_ms: float = 200.0
    rest_percentile: float = 20.0
    range_percentile: float = 90.0
    onset_threshold: float = 0.75
    range_factor: float = 1.0
    boundary_level: float = 0.3
    peak_fraction: float = 0.4
    min_ms: float = 60.0
    max_ms: float = 4000.0
    micro_max_ms: float = 500.0
    merge_gap_ms: float = 70.0
    merge_iou: float = 0.3
    blink_level: float = 1.0
    blink_pad_ms: float = 70.0
    max_piece_s: float = 12.0

    def __post_init__(self) -> None:
        unknown = [a for a in self.aus if a not in aus.AU_NAMES]
        if unknown:
            raise AupipeError(f"spotting: unknown AU {unknown[0]}; use some of {' '.join(aus.AU_NAMES)}")
        if not (0 < self.boundary_level < 1):
            raise AupipeError(f"spotting: boundary_level must be in (0, 1), got {self.boundary_level}")
        if not (0 <= self.rest_percentile < self.range_percentile <= 100):
            raise AupipeError("spotting: need 0 <= rest_percentile < range_percentile <= 100")
        if self.onset_threshold <= 0 or self.context_s <= 0 or self.stat_step_ms <= 0:
            raise AupipeError("spotting: onset_threshold, context_s and stat_step_ms must be > 0")
        if not (0 < self.min_ms <= self.micro_max_ms < self.max_ms):
            raise AupipeError("spotting: need 0 < min_ms <= micro_max_ms < max_ms")
        if self.max_piece_s * 1000.0 < 2 * self.max_ms:
            raise AupipeError("spotting: max_piece_s must be at least twice max_ms")

    @property
    def spotted(self) -> tuple[str, ...]:
        """The AUs that can make an event (``aus`` plus AU43 when ``blinks``)."""
        return tuple(dict.fromkeys((*self.aus, BLINK_AU) if self.blinks else self.aus))


@dataclass(frozen=True)
class SpottingState:
    """What ``step`` carries between chunks (all bounded by ``context_s`` + ``max_piece_s``).

    buffer: recent frames (``frame``, ``time_ms``, channel and peak columns) from
    ``done_ms`` - context_s / 2 on; done_ms: events before this time are emitted; grid: computed
    local statistics (grid index -> rest and threshold per channel, as a DataFrame);
    next_grid: first grid index not yet computed; next_event: number of the next event;
    forced_start: the pending stretch begins at a forced cut.
    """

    buffer: pd.DataFrame | None = None
    done_ms: float = -np.inf
    grid: pd.DataFrame | None = None
    next_grid: int | None = None
    next_event: int = 0
    forced_start: bool = False


# --------------------------------------------------------------------------------------------
# Per-frame signals
# --------------------------------------------------------------------------------------------


def channel_names(settings: SpottingSettings, columns: pd.Index | list[str]) -> list[tuple[str, str]]:
    """(channel column, AU) pairs available in ``columns``: ``ch_x_AU12`` (intensity) and
    ``ch_m_AU12`` (landmark motion)."""
    present = set(columns)
    out = []
    for au in settings.spotted:
        if f"{au}_r" in present:
            out.append((f"ch_x_{au}", au))
        if settings.motion and au in MOTION and all(f"g_{m}" in present for m in MOTION[au][0]):
            out.append((f"ch_m_{au}", au))
    return out


def compact(frames: pd.DataFrame, settings: SpottingSettings) -> pd.DataFrame:
    """The few columns spotting keeps per frame: ``frame``, ``time_ms``, ``blink`` (0/1), the
    channels (0-5 scale) and the AU intensity columns (for the peaks)."""
    names = channel_names(settings, frames.columns)
    if not any(name.startswith("ch_x_") for name, _ in names):
        raise AupipeError("spotting: the frame table has none of the spotted AU columns (AUxx_r)")
    data: dict[str, np.ndarray] = {
        "frame": frames["frame"].to_numpy(dtype=np.int64),
        "time_ms": frames["time_ms"].to_numpy(dtype=np.float64),
    }
    blink = frames["AU43_r"].to_numpy(dtype=np.float64) if "AU43_r" in frames else np.zeros(len(frames))
    data["blink"] = (blink >= settings.blink_level).astype(np.float64)
    for name, au in names:
        if name.startswith("ch_x_"):
            data[name] = frames[f"{au}_r"].to_numpy(dtype=np.float64)
        else:
            measures, signs, e_level = MOTION[au]
            stacked = np.stack([s * frames[f"g_{m}"].to_numpy(dtype=np.float64) for m, s in zip(measures, signs, strict=True)])
            per_side = len(measures) // 2 if au == "AU04" else 1
            data[name] = stacked.sum(axis=0) / (len(measures) / per_side) / e_level * 5.0
    for column in aus.au_columns():
        data[column] = frames[column].to_numpy(dtype=np.float64) if column in frames else np.full(len(frames), np.nan)
    return pd.DataFrame(data)


def _grid_stats(times: np.ndarray, values: np.ndarray, grid: np.ndarray, settings: SpottingSettings) -> tuple[np.ndarray, np.ndarray]:
    """Rest level and threshold (g, c) of channels ``values`` (n, c) at grid indices ``grid`` (g,):
    percentiles over frames with time in [T - context/2, T + context/2), T = index * stat_step."""
    half = settings.context_s * 500.0
    centre = grid * settings.stat_step_ms
    first = np.searchsorted(times, centre - half, side="left")
    last = np.searchsorted(times, centre + half, side="left")
    rest = np.full((len(grid), values.shape[1]), np.nan)
    top = rest.copy()
    padded = np.vstack([values, np.full((1, values.shape[1]), np.nan)])
    block = max(1, 4_000_000 // max(1, int((last - first).max(initial=1)) * values.shape[1]))
    for start in range(0, len(grid), block):  # blocks bound the memory of a whole-table call
        sl = slice(start, start + block)
        width = int((last[sl] - first[sl]).max(initial=0))
        if width == 0:
            continue
        idx = first[sl, None] + np.arange(width)[None, :]
        idx = np.where(idx < last[sl, None], idx, len(values))
        window = padded[idx]  # (b, width, c)
        with np.errstate(all="ignore"), _quiet():
            q = np.nanpercentile(window, [settings.rest_percentile, settings.range_percentile], axis=1)
        rest[sl], top[sl] = q[0], q[1]
    threshold = np.maximum(settings.onset_threshold, settings.range_factor * (top - rest))
    return rest, threshold


class _quiet:
    """Silence numpy's all-NaN slice warnings (frames without a face)."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def _near(mask: np.ndarray, times: np.ndarray, pad_ms: float) -> np.ndarray:
    """Frames (n,) within ``pad_ms`` of a True frame of ``mask`` (n,)."""
    marked = times[mask]
    if not len(marked):
        return mask.copy()
    idx = np.searchsorted(marked, times)
    before = np.abs(times - marked[np.maximum(idx - 1, 0)])
    after = np.abs(marked[np.minimum(idx, len(marked) - 1)] - times)
    return np.minimum(before, after) <= pad_ms + 1e-6


def activation(
    buffer: pd.DataFrame, rest: np.ndarray, threshold: np.ndarray, settings: SpottingSettings
) -> tuple[list[str], np.ndarray]:
    """Per-AU activation (n, k) of frames ``buffer`` whose per-frame rest / threshold (n, c) are given:
    max over the AU's channels of (value - rest) / threshold; NaN without a face; eyelid AUs are 0
    during blinks. Returns the AU names and the array."""
    names = [c for c in buffer.columns if c.startswith("ch_")]
    values = buffer[names].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        r = (values - rest) / threshold
    spotted = [a for a in settings.spotted if any(n.endswith(f"_{a}") for n in names)]
    out = np.full((len(buffer), len(spotted)), np.nan)
    for j, au in enumerate(spotted):
        cols = [i for i, n in enumerate(names) if n.endswith(f"_{au}")]
        with _quiet():
            out[:, j] = np.nanmean(r[:, cols], axis=1) if settings.combine == "mean" else np.nanmax(r[:, cols], axis=1)
    blinking = _near(buffer["blink"].to_numpy() > 0, buffer["time_ms"].to_numpy(), settings.blink_pad_ms)
    for j, au in enumerate(spotted):
        if au in EYELID_AUS:
            out[blinking, j] = np.minimum(out[blinking, j], 0.0)
    return spotted, out


# --------------------------------------------------------------------------------------------
# Segments, cuts and events
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


def _cuts(r: np.ndarray, times: np.ndarray, settings: SpottingSettings, final: bool) -> tuple[list[int], int]:
    """Piece boundaries in frames ``r`` (n, k) at ``times`` (n,), starting at a boundary (index 0).

    A quiet cut is the first frame of a run where no AU is above ``boundary_level`` and that no
    dip-bridging can cross (the active frames around it are more than ``merge_gap_ms`` apart).
    Where none starts within ``max_piece_s`` of the last boundary, a forced cut goes to the least
    active frame of that stretch's last ``max_ms``. Returns the forced cuts and the last boundary
    that is certain (events before it are final): the end when ``final``.
    """
    n = len(r)
    with _quiet():
        level = np.nanmax(r, axis=1) if r.shape[1] else np.zeros(n)
    level = np.where(np.isnan(level), -np.inf, level)
    starts, ends = _runs(level <= settings.boundary_level)
    gap = settings.merge_gap_ms
    before = times[np.maximum(starts - 1, 0)]
    after = np.where(ends < n, times[np.minimum(ends, n - 1)], np.inf)
    known = (ends < n) | final | (times[-1] - before >= gap)
    qualifies = (starts > 0) & known & (after - before > gap + 1e-6)
    quiet_cuts = starts[qualifies]
    piece = settings.max_piece_s * 1000.0
    forced: list[int] = []
    position, k = 0, 0
    while True:
        while k < len(quiet_cuts) and quiet_cuts[k] <= position:
            k += 1
        limit = times[position] + piece
        if k < len(quiet_cuts) and times[quiet_cuts[k]] <= limit:
            position = int(quiet_cuts[k])
            continue
        if times[-1] < limit + gap and not (final and times[-1] >= limit):
            break  # too few frames to know whether a quiet run starts in time
        lo = int(np.searchsorted(times, limit - settings.max_ms, side="left"))
        hi = int(np.searchsorted(times, limit, side="right"))
        lo = min(max(lo, position + 1), hi - 1)
        if lo <= position:
            break
        cut = lo + int(np.argmin(level[lo:hi]))
        forced.append(cut)
        position = cut
    return forced, (n if final else position)


def _segments(r: np.ndarray, aus_: list[str], times: np.ndarray, settings: SpottingSettings,
              open_start: bool, open_end: bool) -> pd.DataFrame:  # fmt: skip
    """Per-AU hysteresis segments of one piece's activations ``r`` (n, k): au, onset, apex, offset
    (row indices), peak activation. Segments touching an open (forced-cut) end of the piece belong
    to a stretch of activity longer than the piece and are dropped; durations are filtered."""
    low = _close_gaps(np.nan_to_num(r, nan=-np.inf) > settings.boundary_level, times, settings.merge_gap_ms)
    high = np.nan_to_num(r, nan=-np.inf) >= 1.0
    rows = []
    for j, au in enumerate(aus_):
        starts, ends = _runs(low[:, j])
        count = np.concatenate([[0], np.cumsum(high[:, j])])
        keep = (count[ends] - count[starts] > 0) & ~((starts == 0) & open_start) & ~((ends == len(r)) & open_end)
        for s, e in zip(starts[keep], ends[keep], strict=True):
            values = np.nan_to_num(r[s:e, j], nan=-np.inf)
            apex = int(np.argmax(values))
            strong = np.flatnonzero(values >= settings.peak_fraction * values[apex])  # trim weak shoulders
            rows.append((au, s + int(strong[0]), s + apex, s + int(strong[-1]), float(values[apex])))
    table = pd.DataFrame(rows, columns=["au", "onset", "apex", "offset", "activation"])
    table = table.astype({"onset": np.int64, "apex": np.int64, "offset": np.int64, "activation": np.float64})
    if table.empty:
        return table
    duration = times[table["offset"].to_numpy()] - times[table["onset"].to_numpy()]
    keep = (duration >= settings.min_ms - 1e-6) & (duration <= settings.max_ms + 1e-6)
    return table[keep].reset_index(drop=True)


def _group(segments: pd.DataFrame, times: np.ndarray, settings: SpottingSettings) -> list[list[int]]:
    """Greedy grouping (onset order): a segment joins the group it overlaps most when the IoU
    (in ms) is >= ``merge_iou``, or when it is longer than ``micro_max_ms`` and lies inside the
    group (a macro-length movement within a macro event is part of it); else it starts a group.
    A micro-length segment inside a longer group stays apart (a micro event within a macro one)."""
    groups: list[list[int]] = []
    spans: list[list[float]] = []
    on = times[segments["onset"].to_numpy()]
    off = times[segments["offset"].to_numpy()]
    for i in range(len(segments)):
        best, best_score = -1, 0.0
        for g, (a, b) in enumerate(spans):
            inter = min(b, off[i]) - max(a, on[i])
            if inter < 0:
                continue
            union = max(b, off[i]) - min(a, on[i])
            iou = inter / union if union > 0 else 1.0
            inside = on[i] >= a and off[i] <= b and off[i] - on[i] > settings.micro_max_ms
            score = max(iou, 1.0) if inside else iou
            if score >= settings.merge_iou and score > best_score:
                best, best_score = g, score
        if best < 0:
            groups.append([i])
            spans.append([on[i], off[i]])
        else:
            groups[best].append(i)
            spans[best] = [min(spans[best][0], on[i]), max(spans[best][1], off[i])]
    return groups


def _events(frames: pd.DataFrame, segments: pd.DataFrame, settings: SpottingSettings, first_event: int,
            emotion_map: object | None) -> pd.DataFrame:  # fmt: skip
    """Events table of grouped ``segments`` over rows ``frames`` (see ``EVENT_COLUMNS``)."""
    if segments.empty:
        return empty_events(emotion_map)
    times = frames["time_ms"].to_numpy()
    frame_ids = frames["frame"].to_numpy()
    groups = _group(segments, times, settings)
    onset = np.array([segments["onset"].to_numpy()[g].min() for g in groups])
    offset = np.array([segments["offset"].to_numpy()[g].max() for g in groups])
    strongest = [g[int(np.argmax(segments["activation"].to_numpy()[g]))] for g in groups]
    apex = segments["apex"].to_numpy()[strongest]
    order = np.argsort(onset, kind="stable")
    groups = [groups[i] for i in order]
    onset, offset, apex = onset[order], offset[order], apex[order]
    intensity = frames[aus.au_columns()].to_numpy(dtype=np.float64)
    padded = np.vstack([intensity, np.full((1, intensity.shape[1]), np.nan)])
    idx = np.stack([onset, offset + 1], axis=1).ravel()
    with _quiet():
        peaks = np.fmax.reduceat(padded, idx, axis=0)[::2]
    duration = times[offset] - times[onset]
    kind = np.where(duration <= settings.micro_max_ms + 1e-6, "micro", "macro")
    au_lists, peak_text = [], []
    columns = aus.au_columns()
    for g in groups:
        by_au: dict[str, float] = {}
        for i in g:
            au = segments["au"].iat[i]
            by_au[au] = max(by_au.get(au, -np.inf), float(segments["activation"].iat[i]))
        ranked = sorted(by_au, key=lambda a: -by_au[a])
        au_lists.append(ranked)
    for k, ranked in enumerate(au_lists):
        peak_text.append(" ".join(f"{a}={peaks[k, columns.index(f'{a}_r')]:.1f}" for a in ranked))
    macro = kind == "macro"
    apex_t = times[apex]
    within = np.zeros(len(groups), bool)
    if macro.any():
        inside = (apex_t[:, None] >= times[onset][macro][None, :]) & (apex_t[:, None] <= times[offset][macro][None, :])
        within = ~macro & inside.any(axis=1)
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
            "kind": kind,
            "aus": [" ".join(r) for r in au_lists],
            "peaks": peak_text,
            "within_macro": within,
        }
    )
    peak_table = pd.DataFrame(peaks, columns=peak_columns())
    table = pd.concat([table, peak_table], axis=1)
    if emotion_map is not None:
        table = pd.concat([table, _label(table, au_lists, emotion_map)], axis=1)
    return table


def _label(table: pd.DataFrame, au_lists: list[list[str]], emotion_map: object) -> pd.DataFrame:
    """The mapping's winner for each event, scored on the peaks of the event's own AUs (others 0)."""
    from . import mapping

    data = {}
    for column in aus.au_columns():
        base = column[: -len("_r")]
        au = base[:4]
        involved = np.array([au in lst for lst in au_lists])
        data[base] = np.where(involved, np.nan_to_num(table[base + "_peak"].to_numpy()), 0.0)
    scores = mapping.score(pd.DataFrame(data, index=table.index), emotion_map)  # type: ignore[arg-type]
    return scores[list(EMOTION_COLUMNS)]


def empty_events(emotion_map: object | None = None) -> pd.DataFrame:
    """An events table with all columns and no rows."""
    columns = [*EVENT_COLUMNS, *peak_columns(), *(EMOTION_COLUMNS if emotion_map is not None else ())]
    return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})


def event_columns(emotion_map: object | None = None) -> list[str]:
    """Column names of the events table (with the mapping's four columns when a mapping is given)."""
    return list(empty_events(emotion_map).columns)


# --------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------


def step(
    state: SpottingState,
    chunk: pd.DataFrame | None,
    settings: SpottingSettings = SpottingSettings(),
    final: bool = False,
    emotion_map: object | None = None,
) -> tuple[pd.DataFrame, SpottingState]:
    """Feed frame rows (``frame``, ``time_ms``, ``AUxx_r``, optionally ``g_*``; time-ordered).

    Returns the events finished so far (``event_columns()``; labelled by ``emotion_map`` when
    given) and the new state; ``final`` flushes. Pure: the state passed in is not changed. Any
    chunking gives the same events as ``spot`` on the whole table; events come out at most about
    ``context_s / 2 + max_piece_s`` seconds after their offset.
    """
    parts = [p for p in (state.buffer, compact(chunk, settings) if chunk is not None and len(chunk) else None)
             if p is not None and len(p)]  # fmt: skip
    if not parts:
        return empty_events(emotion_map), state
    buffer = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    times = buffer["time_ms"].to_numpy()
    stat = settings.stat_step_ms
    half = settings.context_s * 500.0
    channels = [c for c in buffer.columns if c.startswith("ch_")]

    # Local statistics on the grid: a grid point is final once frames up to its window's end are in.
    next_grid = state.next_grid if state.next_grid is not None else int(np.floor(times[0] / stat))
    last_grid = int(np.floor(times[-1] / stat)) if final else int(np.floor((times[-1] - half) / stat)) - 1
    grid = state.grid
    if last_grid >= next_grid:
        indices = np.arange(next_grid, last_grid + 1)
        rest, threshold = _grid_stats(times, buffer[channels].to_numpy(dtype=np.float64), indices, settings)
        new = pd.DataFrame(np.hstack([rest, threshold]), index=indices,
                           columns=[f"rest:{c}" for c in channels] + [f"thr:{c}" for c in channels])  # fmt: skip
        grid = new if grid is None else pd.concat([grid, new])
        next_grid = last_grid + 1

    # Frames whose statistics are known, from the first frame not yet finalised.
    frame_grid = np.floor(times / stat).astype(np.int64)
    ready = (times >= state.done_ms) & (frame_grid < next_grid)
    if grid is None or not ready.any():
        return empty_events(emotion_map), dataclasses.replace(
            state, buffer=buffer, grid=grid, next_grid=next_grid
        )
    begin = int(np.argmax(ready))
    end = begin + int(ready[begin:].sum())  # ready frames are contiguous
    # Blink widening looks a little around each frame: keep that context in the slice.
    margin = settings.blink_pad_ms + 1.0
    lo = int(np.searchsorted(times, times[begin] - margin, side="left"))
    hi = int(np.searchsorted(times, times[end - 1] + margin, side="right"))
    part = buffer.iloc[lo:hi].reset_index(drop=True)
    stats = grid.reindex(frame_grid[lo:hi])
    spotted, r = activation(
        part, stats[[f"rest:{c}" for c in channels]].to_numpy(), stats[[f"thr:{c}" for c in channels]].to_numpy(),
        settings,
    )  # fmt: skip
    r = r[begin - lo : end - lo]
    region = part.iloc[begin - lo : end - lo].reset_index(drop=True)
    times_r = region["time_ms"].to_numpy()
    is_final = final and end == len(buffer)
    forced, certain = _cuts(r, times_r, settings, is_final)
    events = empty_events(emotion_map)
    next_event = state.next_event
    if certain > 0:
        bounds = [0, *forced, certain] if not forced or forced[-1] != certain else [0, *forced]
        found = []
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if b <= a:
                continue
            seg = _segments(r[a:b], spotted, times_r[a:b], settings,
                            open_start=state.forced_start if i == 0 else True, open_end=b in forced)  # fmt: skip
            seg[["onset", "apex", "offset"]] += a
            found.append(seg)
        segments = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
        if len(segments):
            segments = segments.sort_values(["onset", "offset", "au"], kind="stable").reset_index(drop=True)
        events = _events(region.iloc[:certain].reset_index(drop=True), segments, settings, next_event, emotion_map)
        next_event += len(events)
    forced_start = bool(forced) and forced[-1] == certain if certain > 0 else state.forced_start
    done_ms = float(region["time_ms"].iat[certain]) if certain < len(region) else (
        np.inf if is_final else float(times[end - 1]) + 1e-6)  # fmt: skip
    if is_final:
        return events, SpottingState(None, np.inf, None, next_grid, next_event, False)
    keep_from = min(done_ms, next_grid * stat - half) - 2 * margin
    buffer = buffer.loc[times >= keep_from].reset_index(drop=True)
    grid = grid.loc[grid.index >= int(np.floor(done_ms / stat)) - 1] if np.isfinite(done_ms) else grid
    return events, SpottingState(buffer, done_ms, grid, next_grid, next_event, forced_start)


def spot(
    frames: pd.DataFrame, settings: SpottingSettings = SpottingSettings(), emotion_map: object | None = None
) -> pd.DataFrame:
    """Events of a whole frame table at once (the non-streaming form of ``step``)."""
    events, _ = step(SpottingState(), frames, settings, final=True, emotion_map=emotion_map)
    return events


def flag_windows(windows: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Per window (``start_ms``, ``end_ms``): True when it overlaps an event [onset_ms, offset_ms]."""
    start = windows["start_ms"].to_numpy(dtype=np.float64)
    end = windows["end_ms"].to_numpy(dtype=np.float64)
    if events.empty:
        return pd.Series(np.zeros(len(windows), bool), index=windows.index, name="in_event")
    onset = np.sort(events["onset_ms"].to_numpy(dtype=np.float64))
    offset = events["offset_ms"].to_numpy(dtype=np.float64)[np.argsort(events["onset_ms"].to_numpy(), kind="stable")]
    running_max = np.maximum.accumulate(offset)
    # events starting before the window's end; overlap when the latest of their offsets reaches its start
    count = np.searchsorted(onset, end, side="left")
    overlap = (count > 0) & (running_max[np.maximum(count - 1, 0)] >= start)
    return pd.Series(overlap, index=windows.index, name="in_event")
