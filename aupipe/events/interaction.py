"""Between faces: AU synchrony and mimicry in a video with several tracked faces (docs/faces.md).

One table, ``INTERACTION_COLUMNS``, sorted by start_ms, kind, face_a, face_b, au; two kinds of row:

- ``synchrony``: per window (``window_s`` long, starting at multiples of ``stride_s`` from 0 ms,
  the first at or after the first row; at least one), pair of faces (face_a < face_b) and AU:
  the Pearson r of a's values on the window's frames with b's ``lag`` frames later, maximised
  over lags in [-max_lag_ms, +max_lag_ms]; ``lag_ms`` > 0: b follows a; ``n_frames``: frames
  with both values at that lag. No row under ``min_frames`` of them or where either side is
  flat (std < 1e-6). The maximum is biased upward: with ~100 independent frames and 60 lags,
  r up to ~0.3 arises by chance, and smooth AU series (a 4 s window holds only a few
  independent samples) reach 0.7-0.9 by chance. Anti-phase coupling gives a low r, not a negative one.
- ``mimicry``: a rise of an AU in the leader face_a, then a rise of the same AU in the follower
  face_b within (0, max_lag_ms]; each follower rise is matched to its nearest preceding leader
  rise only (both directions looked for). start_ms / end_ms: the rises, ``lag_ms``: their
  difference, ``n_frames``: frames between, ``r``: NaN. A rise: the first frame of a run at or
  above ``rise_level`` lasting >= ``hold_ms``, right after a frame below it, with no frame at or
  above it in the ``rest_ms`` before and values on at least half of those (durations: frames x step).

Streaming: ``step`` buffers rows by time. A face's rows may trail the newest row of any face by
up to ``late_s`` (its AU stage holds its first calibration seconds); what needs nothing newer is
emitted, in order. Memory: late_s + window + max lag + rest of rows. Any chunking gives the rows
of ``interaction`` on the whole table. Imports numpy, pandas and aupipe.errors only.
"""

from __future__ import annotations

import functools

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aupipe.errors import InputError, SettingsError

__all__ = ["INTERACTION_COLUMNS", "InteractionSettings", "InteractionState", "empty_interaction", "interaction", "step"]

INTERACTION_COLUMNS: tuple[str, ...] = ("kind", "face_a", "face_b", "au", "start_ms", "end_ms", "r", "lag_ms", "n_frames")  # fmt: skip
_TYPES = {"kind": "str", "face_a": "int64", "face_b": "int64", "au": "str", "start_ms": float, "end_ms": float,
          "r": float, "lag_ms": float, "n_frames": "int64"}  # fmt: skip
_SORT = ["start_ms", "kind", "face_a", "face_b", "au"]
_FLAT = 1e-6  # std below this: r undefined
_TOL_MS = 1e-3  # time comparisons
_BATCH = 32  # windows computed together


@dataclass(frozen=True)
class InteractionSettings:
    """aus: AUs compared (columns ``AUxx_r``); window_s / stride_s: synchrony windows (s, > 0);
    max_lag_ms: largest lag tried and largest mimicry delay (ms, >= 0); min_frames: fewest
    frames with both faces for an r (None: one second's worth); rise_level: a rise crosses it
    (0-5 scale, default FACS A); rest_ms / hold_ms: time below before / at or above after a rise
    (ms, >= 0); late_s: how far a face's rows may trail the newest row of any face (s, >= 0)."""

    aus: tuple[str, ...] = ("AU01", "AU04", "AU06", "AU12", "AU15", "AU25")
    window_s: float = 4.0
    stride_s: float = 2.0
    max_lag_ms: float = 1000.0
    min_frames: int | None = None
    rise_level: float = 1.0
    rest_ms: float = 500.0
    hold_ms: float = 100.0
    late_s: float = 40.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "aus", tuple(self.aus))
        names_ok = all(isinstance(a, str) and a.startswith("AU") for a in self.aus)
        if not (self.aus and names_ok and len(set(self.aus)) == len(self.aus)):
            raise SettingsError(f"interaction aus must be distinct AU names like AU12 (got {self.aus})")
        for name in ("window_s", "stride_s", "max_lag_ms", "rest_ms", "hold_ms", "late_s"):
            value, strict = getattr(self, name), name in ("window_s", "stride_s")
            if not (math.isfinite(value) and (value > 0 if strict else value >= 0)):
                raise SettingsError(f"interaction {name} must be {'above 0' if strict else '0 or more'} (got {value})")
        if self.min_frames is not None and not (isinstance(self.min_frames, int) and self.min_frames >= 3):
            raise SettingsError(f"interaction min_frames must be an integer of 3 or more (got {self.min_frames})")
        if not 0 < self.rise_level <= 5:
            raise SettingsError(f"interaction rise_level must be in (0, 5] (got {self.rise_level})")


@dataclass(frozen=True)
class InteractionState:
    """What ``step`` carries: ``rows`` (frame, face_id, time_ms, AU values; only the time still
    needed), ``ready`` (result rows held back to keep the output sorted), newest and first row
    times (ms), the frame step (ms per frame number, from the first two frames), the next
    window's number and the time (ms) before which follower rises are done."""

    rows: pd.DataFrame | None = None
    ready: pd.DataFrame | None = None
    newest_ms: float = -math.inf
    first_ms: float = math.inf
    step_ms: float = math.nan
    next_window: int = 0
    rises_done_ms: float = -math.inf


@functools.lru_cache(maxsize=1)
def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _TYPES.items()})


def empty_interaction() -> pd.DataFrame:
    """The interaction table with no rows, typed (made once; each call gets its own copy)."""
    return _empty().copy()


def _piece(kind: str, face_a: int, face_b: int, au: str, start_ms: np.ndarray, end_ms: np.ndarray, r: np.ndarray,
           lag_ms: np.ndarray, n_frames: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    """Result rows, as columns, of one kind, pair and AU."""
    k = len(start_ms)
    return {"kind": np.full(k, kind, dtype=object), "face_a": np.full(k, face_a, dtype=np.int64),
            "face_b": np.full(k, face_b, dtype=np.int64), "au": np.full(k, au, dtype=object), "start_ms": start_ms,
            "end_ms": end_ms, "r": r, "lag_ms": np.round(lag_ms, 3), "n_frames": n_frames}  # fmt: skip


def _table(pieces: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """One typed table (``INTERACTION_COLUMNS``) of result pieces."""
    if not pieces:
        return empty_interaction()
    return pd.DataFrame({c: np.concatenate([p[c] for p in pieces]) for c in INTERACTION_COLUMNS}).astype(_TYPES)


def _grid(rows: pd.DataFrame, faces: np.ndarray, aus: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame numbers (n,), times (n,) ms and values (n_faces, n, n_aus) on every frame number
    from the first to the last row; NaN where a face has no value (times interpolated there)."""
    frame = rows["frame"].to_numpy(np.int64)
    first = int(frame.min())
    frames = np.arange(first, int(frame.max()) + 1)
    known, at = np.unique(frame, return_index=True)
    times = np.interp(frames, known, rows["time_ms"].to_numpy(float)[at])
    values = np.full((len(faces), len(frames), len(aus)), np.nan)
    ids = rows["face_id"].to_numpy(np.int64)
    mine = ids >= 0
    values[np.searchsorted(faces, ids[mine]), frame[mine] - first] = rows[list(aus)].to_numpy(float)[mine]
    return frames, times, values


def _lagged_r(a: np.ndarray, b: np.ndarray, first: np.ndarray, last: np.ndarray, lags: np.ndarray,
              width: int, min_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per window [first, last) (grid indices, (w,)): best r over ``lags`` (frames, smallest |lag|
    first) of a[i] with b[i + lag]; returns r, lag, n frames (w,) and whether any lag counted."""
    pad = int(np.abs(lags).max()) + width
    a_pad = np.concatenate([np.full(pad, np.nan), a, np.full(pad, np.nan)])
    b_pad = np.concatenate([np.full(pad, np.nan), b, np.full(pad, np.nan)])
    cols = np.arange(width)
    index = first[:, None] + cols + pad  # (w, width)
    x = np.where(cols < (last - first)[:, None], a_pad[index], np.nan)[:, None, :]
    y = b_pad[index[:, None, :] + lags[None, :, None]]  # (w, n_lags, width)
    valid = np.isfinite(x) & np.isfinite(y)
    n = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = np.where(valid, x - (np.where(valid, x, 0.0).sum(-1) / n)[..., None], 0.0)
        dy = np.where(valid, y - (np.where(valid, y, 0.0).sum(-1) / n)[..., None], 0.0)
        sxx, syy = (dx * dx).sum(-1), (dy * dy).sum(-1)
        ok = (n >= min_frames) & (np.sqrt(sxx / n) >= _FLAT) & (np.sqrt(syy / n) >= _FLAT)
        r = np.where(ok, (dx * dy).sum(-1) / np.sqrt(sxx * syy), -np.inf)
    best = np.argmax(r, axis=1)
    pick = np.arange(len(first))
    return r[pick, best], lags[best], n[pick, best], ok.any(axis=1)


def _synchrony(times: np.ndarray, values: np.ndarray, faces: np.ndarray, windows: np.ndarray,
               settings: InteractionSettings, step_ms: float, min_frames: int) -> list[dict[str, np.ndarray]]:  # fmt: skip
    """Synchrony rows of the windows numbered ``windows`` (k: [k stride, k stride + window)) on the
    grid (times (n,) ms, values (n_faces, n, n_aus))."""
    max_lag = int(round(settings.max_lag_ms / step_ms))
    lags = np.array([0] + [s * k for k in range(1, max_lag + 1) for s in (-1, 1)], dtype=np.int64)
    starts = windows * settings.stride_s * 1000.0
    ends = starts + settings.window_s * 1000.0
    first, last = np.searchsorted(times, starts), np.searchsorted(times, ends)
    width = max(int(math.ceil(settings.window_s * 1000.0 / step_ms)) + 2, int((last - first).max(initial=0)))
    out = []
    for p in range(len(faces)):
        for q in range(p + 1, len(faces)):
            for j, au in enumerate(settings.aus):
                a, b = values[p, :, j], values[q, :, j]
                if not (np.isfinite(a).any() and np.isfinite(b).any()):
                    continue
                for lo in range(0, len(windows), _BATCH):
                    part = slice(lo, lo + _BATCH)
                    r, lag, n, has = _lagged_r(a, b, first[part], last[part], lags, width, min_frames)
                    if has.any():
                        out.append(_piece("synchrony", faces[p], faces[q], au, starts[part][has], ends[part][has],
                                          r[has], lag[has] * step_ms, n[has]))  # fmt: skip
    return out


def _rises(x: np.ndarray, times: np.ndarray, step_ms: float, settings: InteractionSettings) -> np.ndarray:
    """Rise frames (n, c) bool of series x (n, c) on the grid (times (n,) ms): see the module doc."""
    n = len(x)
    idx = np.arange(n)[:, None]
    valid = np.isfinite(x)
    above = valid & (x >= settings.rise_level)
    below = valid & (x < settings.rise_level)
    start = np.zeros_like(above)
    start[1:] = above[1:] & below[:-1]
    run_end = np.minimum.accumulate(np.where(above, n, idx)[::-1], axis=0)[::-1] - 1  # last frame of the run
    run_end = np.where(above, np.maximum(run_end, idx), 0)
    held = times[run_end] - times[:, None] + step_ms >= settings.hold_ms - _TOL_MS
    prev_above = np.maximum.accumulate(np.where(above, idx, -1), axis=0)
    prev_above = np.vstack([np.full((1, x.shape[1]), -1), prev_above[:-1]])
    t_prev = np.where(prev_above >= 0, times[np.maximum(prev_above, 0)], -np.inf)
    rested = times[:, None] - t_prev - step_ms >= settings.rest_ms - _TOL_MS
    seen = np.vstack([np.zeros((1, x.shape[1]), np.int64), np.cumsum(valid, axis=0)])
    back = np.searchsorted(times, times - settings.rest_ms - _TOL_MS)  # frames in [t - rest, t)
    watched = (seen[:n] - seen[back]) >= 0.5 * settings.rest_ms / step_ms - 1e-9
    return start & held & rested & watched


def _mimicry(frames: np.ndarray, times: np.ndarray, values: np.ndarray, faces: np.ndarray,
             settings: InteractionSettings, step_ms: float, done_ms: float, limit_ms: float) -> list[dict[str, np.ndarray]]:  # fmt: skip
    """Mimicry rows of follower rises with time in [done_ms, limit_ms)."""
    n_faces, n, n_aus = values.shape
    rises = _rises(values.transpose(1, 0, 2).reshape(n, n_faces * n_aus), times, step_ms, settings)
    rises = rises.reshape(n, n_faces, n_aus)
    out = []
    for j, au in enumerate(settings.aus):
        at = [np.flatnonzero(rises[:, f, j]) for f in range(n_faces)]
        for lead in range(n_faces):
            for follow in range(n_faces):
                if lead == follow or not len(at[lead]):
                    continue
                tb = times[at[follow]]
                mine = at[follow][(tb >= done_ms) & (tb < limit_ms)]
                if not len(mine):
                    continue
                before = np.searchsorted(times[at[lead]], times[mine], side="left") - 1
                ia = at[lead][np.maximum(before, 0)]
                lag = times[mine] - times[ia]
                keep = (before >= 0) & (lag > 0) & (lag <= settings.max_lag_ms + _TOL_MS)
                if keep.any():
                    out.append(_piece("mimicry", faces[lead], faces[follow], au, times[ia][keep], times[mine][keep],
                                      np.full(int(keep.sum()), np.nan), lag[keep],
                                      frames[mine][keep] - frames[ia][keep]))  # fmt: skip
    return out


def _own_rows(chunk: pd.DataFrame, aus: tuple[str, ...]) -> pd.DataFrame:
    """The columns kept of a chunk: frame, face_id, time_ms and the AU values (NaN without a face)."""
    missing = [c for c in ("frame", "face_id", "time_ms") if c not in chunk.columns]
    if missing:
        raise InputError(f"interaction rows lack column(s) {', '.join(missing)}")
    face = chunk["face_found"].to_numpy(bool) if "face_found" in chunk.columns else np.ones(len(chunk), bool)
    data = {"frame": chunk["frame"].to_numpy(np.int64), "face_id": chunk["face_id"].to_numpy(np.int64),
            "time_ms": chunk["time_ms"].to_numpy(float)}  # fmt: skip
    for au in aus:
        column = chunk[f"{au}_r"].to_numpy(float) if f"{au}_r" in chunk.columns else np.full(len(chunk), np.nan)
        data[au] = np.where(face, column, np.nan)
    return pd.DataFrame(data)


def _frame_step(rows: pd.DataFrame) -> float:
    """ms per frame number, from the two lowest frame numbers (NaN with fewer than two)."""
    known, at = np.unique(rows["frame"].to_numpy(np.int64), return_index=True)
    if len(known) < 2:
        return math.nan
    times = rows["time_ms"].to_numpy(float)[at[:2]]
    step_ms = float((times[1] - times[0]) / (known[1] - known[0]))
    if not step_ms > 0:
        raise InputError(f"interaction rows: time_ms must increase with frame (frames {known[0]}, {known[1]})")
    return step_ms


def step(
    state: InteractionState, rows: pd.DataFrame | None, settings: InteractionSettings = InteractionSettings(),
    final: bool = False,
) -> tuple[pd.DataFrame, InteractionState]:  # fmt: skip
    """Feed the next finished per-frame rows of all faces (``frame``, ``face_id``, ``time_ms``,
    ``face_found``, ``AUxx_r``; any order, faces interleaved); returns the interaction rows now
    final (``INTERACTION_COLUMNS``, sorted; module doc) and the new state. ``final`` flushes.
    Rows of ``face_id`` < 0 only mark time. The state passed in is never changed."""
    new_rows = None if rows is None else _own_rows(rows, settings.aus)
    parts = [p for p in (state.rows, new_rows) if p is not None and len(p)]
    buffer = pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts[0] if parts else None)
    newest, first_ms, step_ms = state.newest_ms, state.first_ms, state.step_ms
    if rows is not None and len(rows):
        times = rows["time_ms"].to_numpy(float)
        newest, first_ms = max(newest, float(times.max())), min(first_ms, float(times.min()))
    if buffer is not None and not math.isfinite(step_ms):
        step_ms = _frame_step(buffer)
    out: list[dict[str, np.ndarray]] = []
    next_window, done_ms = state.next_window, state.rises_done_ms
    if buffer is not None and math.isfinite(step_ms):
        window_ms, stride_ms = settings.window_s * 1000.0, settings.stride_s * 1000.0
        frontier = math.inf if final else newest - settings.late_s * 1000.0
        k_first = max(0, math.ceil((first_ms - _TOL_MS) / stride_ms))  # the first window starts at/after row 1
        if final:  # windows that fit before the video's end; at least the first one
            fit = math.floor((newest + step_ms + _TOL_MS - window_ms) / stride_ms) + 1
            k_end = max(fit, k_first + 1, next_window)
        else:
            k_end = max(math.floor((frontier - window_ms - settings.max_lag_ms + _TOL_MS) / stride_ms) + 1, next_window)
        limit = frontier - settings.hold_ms if not final else math.inf
        faces = np.unique(buffer["face_id"].to_numpy(np.int64))
        faces = faces[faces >= 0]
        if len(faces) > 1:
            seen = buffer["time_ms"].to_numpy(float)[buffer[list(settings.aus)].notna().any(axis=1).to_numpy()]
            # windows ending before the first value in the buffer have nothing to correlate
            k_data = math.floor((seen.min() - window_ms) / stride_ms) + 1 if len(seen) else k_end
            k_start = max(next_window, k_first, k_data)
            frames, times, values = _grid(buffer, faces, settings.aus)
            min_frames = settings.min_frames or max(3, int(round(1000.0 / step_ms)))
            if k_end > k_start:
                out += _synchrony(times, values, faces, np.arange(k_start, k_end), settings, step_ms, min_frames)
            if limit > done_ms:
                out += _mimicry(frames, times, values, faces, settings, step_ms, done_ms, limit)
        next_window, done_ms = k_end, max(done_ms, limit)
        keep_from = min(next_window * stride_ms, done_ms - settings.rest_ms) - settings.max_lag_ms - 2 * step_ms
        buffer = buffer.loc[buffer["time_ms"].to_numpy(float) >= keep_from].reset_index(drop=True)
    found = _table(out)
    if state.ready is not None and len(state.ready):
        found = pd.concat([state.ready, found], ignore_index=True) if len(found) else state.ready
    # rows still to come start at or after the next window, or a leader rise max_lag_ms before done_ms
    release = math.inf if final else min(next_window * settings.stride_s * 1000.0, done_ms - settings.max_lag_ms - _TOL_MS)  # fmt: skip
    done = found["start_ms"].to_numpy(float) < release
    emitted = found.loc[done].sort_values(_SORT, kind="stable").reset_index(drop=True)
    held = found.loc[~done].reset_index(drop=True)
    new = InteractionState(buffer, held if len(held) else None, newest, first_ms, step_ms, next_window, done_ms)
    return emitted[list(INTERACTION_COLUMNS)], new


def interaction(frames: pd.DataFrame, settings: InteractionSettings = InteractionSettings()) -> pd.DataFrame:
    """The interaction table of a whole per-frame table of all faces at once (module doc)."""
    table, _ = step(InteractionState(), frames, settings, final=True)
    return table
