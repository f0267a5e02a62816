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

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aupipe.events.spotting_events import empty_events, event_columns, find_segments, make_events, piece_cuts
from aupipe.events.spotting_settings import (
    DEFAULT_AUS, EMOTION_COLUMNS, EVENT_COLUMNS, SpottingSettings, peak_columns,
)  # fmt: skip
from aupipe.events.spotting_signals import Grid, Tail, activation, channel_names, grid_stats, signals

__all__ = [
    "DEFAULT_AUS", "EMOTION_COLUMNS", "EVENT_COLUMNS", "FlagState", "SpottingSettings", "SpottingState",
    "activation_table", "channel_names", "empty_events", "event_columns", "flag_step", "flag_windows", "peak_columns",
    "spot", "step",
]  # fmt: skip


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


# --------------------------------------------------------------------------------------------
# Per-frame signals and local statistics
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Pieces, segments and events
# --------------------------------------------------------------------------------------------


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
    spotted, r, bound, motion = activation(
        tail.take(slice(lo, hi)), channels, grid.rest[rows], grid.spread[rows], settings
    )
    r, bound, motion = r[begin - lo : end - lo], bound[begin - lo : end - lo], motion[begin - lo : end - lo]
    region = tail.take(slice(begin, end))
    is_final = final and end == len(tail)
    forced, certain = piece_cuts(r, bound, region.time_ms, settings, is_final)

    events = empty_events(emotion_map)
    next_event = state.next_event
    if certain > 0:
        bounds = [0, *forced] if forced and forced[-1] == certain else [0, *forced, certain]
        found = []
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):  # per piece
            if b > a:
                first = state.forced_start or not np.isfinite(state.done_ms)  # a forced cut, or the video's start
                seg = find_segments(r[a:b], bound[a:b], spotted, region.time_ms[a:b], settings,
                                open_start=first if i == 0 else True, open_end=b in forced or (is_final and b == end - begin))  # fmt: skip
                found.append(seg.assign(onset=seg["onset"] + a, apex=seg["apex"] + a, offset=seg["offset"] + a))
        segments = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
        if len(segments):
            segments = segments.sort_values(["onset", "offset", "au"], kind="stable").reset_index(drop=True)
            events = make_events(
                region.take(slice(0, certain)), segments, settings, next_event, emotion_map, motion[:certain], spotted
            )
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
    spotted, r, bound, motion = activation(tail, channels, grid.rest[rows], grid.spread[rows], settings)
    table = pd.DataFrame(
        np.hstack([r, bound, motion]),
        columns=[*spotted, *(f"{a}_bound" for a in spotted), *(f"{a}_motion" for a in spotted)],
    )
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
