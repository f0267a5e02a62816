"""Spotting's pieces, segments and events: cores, onsets and offsets, grouping, micro versus macro, labels (aupipe.events.spotting, steps 1-4)."""

from __future__ import annotations


from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from aupipe.signal import aus
from aupipe.events.spotting_settings import EMOTION_COLUMNS, EVENT_COLUMNS, SpottingSettings, peak_columns
from aupipe.events.spotting_signals import Tail, quiet_nan_warnings


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


def piece_cuts(
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
    with quiet_nan_warnings():
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


def find_segments(
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


def event_confidence(motion_peak: float, scale: float) -> float:
    """Confidence 0..1 of an event from its motion evidence: the highest landmark-motion
    activation (threshold units; ``activation``) any of its AUs reaches between onset and
    offset, as 1 - exp(-(peak - 1) / scale), 0 at or below 1. The landmarks must move well beyond
    their usual range: on natural talking footage the blendshape intensities flicker past the
    threshold now and then while the mesh barely moves (docs/spotting.md has the figures)."""
    return float(1.0 - np.exp(-max(motion_peak - 1.0, 0.0) / scale)) if np.isfinite(motion_peak) else 0.0


def make_events(
    tail: Tail, segments: pd.DataFrame, settings: SpottingSettings, first_event: int, emotion_map: Any,
    motion: np.ndarray | None = None, spotted: list[str] | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Events table (``event_columns``) of the grouped ``segments`` over the frames ``tail``;
    ``motion`` (n, k) is the motion evidence of the ``spotted`` AUs (``activation``), for the
    confidence (NaN confidence without it)."""
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
    confidence = np.full(len(groups), np.nan)
    if motion is not None and spotted is not None:
        for k, (g, st) in enumerate(zip(groups, strong, strict=True)):
            lo, hi = min(seg_on[i] for i in st), max(seg_off[i] for i in st) + 1
            with quiet_nan_warnings():
                peak = np.nanmax([np.nanmax(motion[lo:hi, spotted.index(seg_au[i])]) for i in g])
            confidence[k] = event_confidence(peak, settings.confidence_scale)
    order = np.argsort(onset, kind="stable")
    groups = [groups[i] for i in order]
    onset, offset, apex, confidence = onset[order], offset[order], apex[order], confidence[order]
    padded = np.vstack([tail.intensity, np.full((1, tail.intensity.shape[1]), np.nan)])
    with quiet_nan_warnings():
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
            "confidence": np.round(confidence, 3),
        }
    )
    keep = ~(confidence < settings.min_confidence - 1e-9)
    if not keep.all():
        table = table.loc[keep].reset_index(drop=True)
        table["event"] = first_event + np.arange(len(table))
        peaks = peaks[keep]
        au_lists = [lst for lst, k in zip(au_lists, keep, strict=True) if k]
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
    dtypes: dict[str, Any] = {"event": np.int64, "onset_frame": np.int64, "apex_frame": np.int64, "confidence": np.float64,
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
