"""Speech: a per-frame ``speaking`` signal from the mouth's syllable-rate opening and closing.

Talking opens and closes the mouth (AU25, AU26) at the syllable rate, about 3-8 Hz. The mouth
opening (``opening_signal``: lip gap, jaw drop, ``jawOpen``; face widths of lip gap) is read in a
``window_ms`` (1 s) window centred on each face frame by Hann-weighted least squares on the
frames' own timestamps (any frame rate, uneven or missing frames; no resampling):
opening(t) ~ a + b t + A cos(2 pi f t + phi), f on a 0.5 Hz grid over the band below 0.8 of the
window's Nyquist rate. ``speech_level`` is the best fit's A (face widths).

A face frame is *evidence* when A >= ``min_level_fw``, the sinusoid explains >= ``min_share`` of
the variance about a + b t, the opening reverses (rising to falling or back, by >= ``hysteresis``
x A) >= ``min_reversals`` times in the window, and the lip corners twist (one up, one down) less
than ``max_twist`` x the opening moves. It is ``speaking`` when >= ``min_evidence_share`` of the
face frames within half a window are evidence. A sustained opening (surprise, yawn, held jaw
drop) or a smile reverses at most once per window, a blink hardly moves the mouth: none counts.
Frames without a face are NaN and left out of every fit (nothing is interpolated).

Streaming (``step``): a row comes out once a frame one window (1000 ms) later has been seen (half
a window for its fit, half for the evidence around it), with half a window of context kept
before it; any chunking gives exactly the values of ``speaking_table``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aupipe.errors import AupipeError, SettingsError

#: Frame-table columns the stage needs, and the optional lip-corner columns of the twist test.
INPUT_COLUMNS: tuple[str, ...] = ("time_ms", "face_found", "g_lip_gap", "g_jaw_y", "bs_jawOpen")
TWIST_COLUMNS: tuple[str, str] = ("g_corner_y_left", "g_corner_y_right")
#: Columns the stage appends, in this order.
OUTPUT_COLUMNS: tuple[str, ...] = ("speech_level", "speaking")
# Weighted sums per target (w = Hann weight of face frames, t = time, x = opening, y = twist) and
# per target and frequency (c, s = cos, sin).
_SUMS = ("all", "n", "w", "t", "tt", "x", "tx", "xx", "y", "ty", "yy")
_BAND_SUMS = ("c", "s", "tc", "ts", "cc", "ss", "cs", "xc", "xs")


@dataclass(frozen=True)
class SpeechSettings:
    """How ``speaking`` is decided; defaults tuned on 31 real clips (benchmarks/speaking.py).

    band_low_hz, band_high_hz, band_step_hz: syllable band (3-8 Hz), spacing of fitted f (0.5 Hz).
    window_ms: the centred analysis window (1000 ms).
    min_level_fw: least oscillation amplitude A, face widths (0.006).
    min_share: least share of the detrended opening variance the sinusoid explains (0.15).
    min_reversals: least reversals of the opening in the window (2, e.g. open-close-open; one
        opening and closing is 1, a step 0). hysteresis: least reversal, fraction of A (0.5).
    max_twist: most lip-corner twist (std of left minus right corner height about its trend) per
        std of the opening about its trend (0.5); None: no twist test.
    min_evidence_share: least share of evidence frames within half a window (0.4).
    min_coverage, min_face_frames: least Hann-weighted share of the window's frames with a face
        (0.6) and least number of face frames in it (5); else the frame is not measurable.
    nyquist_fraction: f above this fraction of the window's Nyquist rate is not fitted (0.8).
    jaw_open_fw, jaw_drop_gain: lip gap per unit of ``bs_jawOpen`` (0.3 face widths) and per unit
        of jaw drop ``-g_jaw_y`` (1.5), fitted on the corpus; weights: of lip gap, jaw drop and
        ``jawOpen`` in the opening (0.4, 0.2, 0.4).
    """

    band_low_hz: float = 3.0
    band_high_hz: float = 8.0
    band_step_hz: float = 0.5
    window_ms: float = 1000.0
    min_level_fw: float = 0.006
    min_share: float = 0.15
    min_reversals: int = 2
    hysteresis: float = 0.5
    max_twist: float | None = 0.5
    min_evidence_share: float = 0.4
    min_coverage: float = 0.6
    min_face_frames: int = 5
    nyquist_fraction: float = 0.8
    jaw_open_fw: float = 0.3
    jaw_drop_gain: float = 1.5
    weights: tuple[float, float, float] = (0.4, 0.2, 0.4)

    def __post_init__(self) -> None:
        if not (0 < self.band_low_hz < self.band_high_hz and self.band_step_hz > 0 and self.window_ms > 0):
            raise SettingsError("speech settings need 0 < band_low_hz < band_high_hz, band_step_hz > 0, window_ms > 0")

    def frequencies_hz(self) -> np.ndarray:
        """The fitted frequencies (k,), Hz: band_low_hz to band_high_hz in steps of band_step_hz."""
        count = int(np.floor((self.band_high_hz - self.band_low_hz) / self.band_step_hz + 1e-9)) + 1
        return self.band_low_hz + self.band_step_hz * np.arange(count)


@dataclass(frozen=True)
class WindowFit:
    """Per target frame (m,): ``level`` A (face widths) and ``share`` of detrended variance explained
    (0..1), both NaN where not measurable; ``reversals`` (count); ``twist`` ratio (NaN without)."""

    level: np.ndarray
    share: np.ndarray
    reversals: np.ndarray
    twist: np.ndarray


def opening_signal(
    lip_gap: np.ndarray, jaw_y: np.ndarray, jaw_open: np.ndarray, settings: SpeechSettings = SpeechSettings()
) -> np.ndarray:
    """Mouth opening (n,), face widths of lip gap up to a constant, NaN where an input is NaN: the
    weighted mean of lip_gap ``g_lip_gap`` (n,), the jaw drop -``g_jaw_y`` (n,) (face widths) and
    jaw_open ``bs_jawOpen`` (n,, 0..1), each brought to the lip gap's scale."""
    w_gap, w_jaw, w_open = settings.weights
    gap, jaw, bs = (np.asarray(v, dtype=np.float64) for v in (lip_gap, jaw_y, jaw_open))
    total = w_gap * gap - w_jaw * settings.jaw_drop_gain * jaw + w_open * settings.jaw_open_fw * bs
    return total / (w_gap + w_jaw + w_open)


def window_fit(time_ms: np.ndarray, opening: np.ndarray, targets: np.ndarray,
               settings: SpeechSettings = SpeechSettings(), twist: np.ndarray | None = None) -> WindowFit:  # fmt: skip
    """The centred-window fit at rows ``targets`` (m,) of time-ordered frames.

    time_ms (n,) ms; opening (n,) face widths, NaN without face; twist (n,) left minus right
    lip-corner height (face widths) or None (no twist test). Each target's sums run over its
    window's rows in a fixed order (rows outside add exact zeros), so its numbers do not depend
    on what else the arrays hold: streaming gives the one-shot values bit for bit.
    """
    times, x = np.asarray(time_ms, dtype=np.float64), np.asarray(opening, dtype=np.float64)
    tw = np.zeros_like(x) if twist is None else np.asarray(twist, dtype=np.float64)
    targets, n, half = np.asarray(targets, dtype=np.int64), len(times), settings.window_ms / 2.0
    m, freqs, t0, x0, tw0 = len(targets), settings.frequencies_hz(), times[targets], x[targets], tw[targets]
    lo, hi = np.searchsorted(times, t0 - half, side="left"), np.searchsorted(times, t0 + half, side="right")
    reach = int(max(np.max(targets - lo, initial=0), np.max(hi - 1 - targets, initial=0))) + 1  # + 1: rounding
    s = {key: np.zeros(m) for key in _SUMS}
    b = {key: np.zeros((m, len(freqs))) for key in _BAND_SUMS}
    first, last = np.full(m, np.inf), np.full(m, -np.inf)

    def row(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Offset d from each target: time difference (ms), in the window, with a face, row index."""
        j = np.clip(targets + d, 0, n - 1)
        dt = times[j] - t0
        inside = (targets + d >= 0) & (targets + d < n) & (np.abs(dt) < half)
        return dt, inside, inside & np.isfinite(x[j]) & np.isfinite(tw[j]), j

    for d in range(-reach, reach + 1):
        dt, inside, valid, j = row(d)
        hann = np.where(inside, 0.5 + 0.5 * np.cos(np.pi * dt / half), 0.0)
        w, ts = np.where(valid, hann, 0.0), dt / 1000.0
        xd, yd = np.where(valid, x[j] - x0, 0.0), np.where(valid, tw[j] - tw0, 0.0)
        first, last = np.where(valid, np.minimum(first, dt), first), np.where(valid, np.maximum(last, dt), last)
        wt, wx, wy = w * ts, w * xd, w * yd
        terms = (hann, valid, w, wt, wt * ts, wx, wt * xd, wx * xd, wy, wt * yd, wy * yd)
        for key, value in zip(_SUMS, terms, strict=True):
            s[key] += value
        phase = (2.0 * np.pi) * ts[:, None] * freqs[None, :]
        c, sn, tk, xk = np.cos(phase), np.sin(phase), ts[:, None], xd[:, None]
        wc, ws = w[:, None] * c, w[:, None] * sn
        terms = (wc, ws, tk * wc, tk * ws, wc * c, ws * sn, wc * sn, xk * wc, xk * ws)
        for key, value in zip(_BAND_SUMS, terms, strict=True):
            b[key] += value

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # The trend a + b t (weighted least squares): (T'WT)^-1 = [[p, q], [q, r]].
        det_t = s["w"] * s["tt"] - s["t"] ** 2
        p, q, r = s["tt"] / det_t, -s["t"] / det_t, s["w"] / det_t
        resid_x = s["xx"] - (p * s["x"] ** 2 + 2 * q * s["x"] * s["tx"] + r * s["tx"] ** 2)
        resid_y = s["yy"] - (p * s["y"] ** 2 + 2 * q * s["y"] * s["ty"] + r * s["ty"] ** 2)
        pk, qk, rk = p[:, None], q[:, None], r[:, None]

        def cross(u: str, ut: str, v: np.ndarray, vt: np.ndarray) -> np.ndarray:  # u'WT (T'WT)^-1 T'Wv
            return b[u] * (pk * v + qk * vt) + b[ut] * (qk * v + rk * vt)

        # The sinusoid on what the trend leaves (Gram matrix and right-hand side, trend projected out).
        g_cc, g_ss = b["cc"] - cross("c", "tc", b["c"], b["tc"]), b["ss"] - cross("s", "ts", b["s"], b["ts"])
        g_cs = b["cs"] - cross("c", "tc", b["s"], b["ts"])
        sx, stx = s["x"][:, None], s["tx"][:, None]
        r_c, r_s = b["xc"] - cross("c", "tc", sx, stx), b["xs"] - cross("s", "ts", sx, stx)
        det = g_cc * g_ss - g_cs**2
        a_c, a_s = (g_ss * r_c - g_cs * r_s) / det, (g_cc * r_s - g_cs * r_c) / det
        rate_hz = (s["n"] - 1) / ((last - first) / 1000.0)
        usable = freqs[None, :] <= settings.nyquist_fraction * rate_hz[:, None] / 2.0
        explained = np.where(usable & (det > 1e-9 * s["w"][:, None] ** 2), a_c * r_c + a_s * r_s, -np.inf)
        explained = np.where(np.isfinite(explained), explained, -np.inf)
        best, rows = np.argmax(explained, axis=1) if m else np.zeros(0, np.int64), np.arange(m)
        level, explained = np.hypot(a_c[rows, best], a_s[rows, best]), explained[rows, best]
        share = np.clip(explained / resid_x, 0.0, 1.0)
        twist_ratio = np.sqrt(np.maximum(resid_y, 0.0) / np.maximum(resid_x, 1e-30))
    measurable = (
        np.isfinite(x0) & (s["n"] >= settings.min_face_frames) & (s["w"] >= settings.min_coverage * s["all"])
        & (det_t > 0) & np.isfinite(explained) & np.isfinite(level)
    )  # fmt: skip

    # Reversals: the opening turning from rising to falling or back by at least h = hysteresis x A
    # (a zigzag over the window in time order): a step has none, one opening and closing one.
    h = settings.hysteresis * np.where(measurable, level, np.inf)
    heading, top, bottom, turns = np.zeros(m, np.int8), np.full(m, -np.inf), np.full(m, np.inf), np.zeros(m, np.int64)
    for d in range(-reach, reach + 1):
        _, _, valid, j = row(d)
        v = np.where(valid, x[j], np.nan)
        top, bottom = np.where(valid, np.fmax(top, v), top), np.where(valid, np.fmin(bottom, v), bottom)
        fall, rise = valid & (top - v >= h), valid & (v - bottom >= h)
        peak = (heading >= 0) & fall & ~((heading == 0) & rise & (v - bottom > top - v))
        trough = (heading <= 0) & rise & ~peak
        turns += (peak & (heading > 0)) | (trough & (heading < 0))
        heading = np.where(peak, -1, np.where(trough, 1, heading)).astype(np.int8)
        bottom, top = np.where(peak, v, bottom), np.where(trough, v, top)
    nan = np.full(m, np.nan)
    twist_ratio = np.where(measurable & (twist is not None), twist_ratio, nan)
    return WindowFit(np.where(measurable, level, nan), np.where(measurable, share, nan), turns, twist_ratio)


def evidence(fit: WindowFit, settings: SpeechSettings = SpeechSettings()) -> np.ndarray:
    """Per target (m,) bool: the fit shows syllable-like opening and closing (see the module doc)."""
    max_twist = np.inf if settings.max_twist is None else settings.max_twist
    with np.errstate(invalid="ignore"):
        twisted = np.nan_to_num(fit.twist, nan=0.0) > max_twist
        enough = (fit.level >= settings.min_level_fw) & (fit.share >= settings.min_share)
        return enough & (fit.reversals >= settings.min_reversals) & ~twisted


def speaking_from_evidence(time_ms: np.ndarray, face: np.ndarray, proof: np.ndarray, targets: np.ndarray,
                           settings: SpeechSettings = SpeechSettings()) -> np.ndarray:  # fmt: skip
    """``speaking`` (m,) at ``targets``: 1.0 where >= ``min_evidence_share`` of the face frames
    within half a window are evidence (``proof`` (n,) bool), 0.0 otherwise, NaN without face."""
    times, face = np.asarray(time_ms, dtype=np.float64), np.asarray(face, dtype=bool)
    targets, half = np.asarray(targets, dtype=np.int64), settings.window_ms / 2.0
    lo = np.searchsorted(times, times[targets] - half, side="right")  # |dt| < half, as in the fit
    hi = np.searchsorted(times, times[targets] + half, side="left")
    faces = np.concatenate([[0], np.cumsum(face)])
    proofs = np.concatenate([[0], np.cumsum(np.asarray(proof, dtype=bool) & face)])
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (proofs[hi] - proofs[lo]) / (faces[hi] - faces[lo])
    return np.where(face[targets], (share >= settings.min_evidence_share).astype(np.float64), np.nan)


def speech_signals(time_ms: np.ndarray, face: np.ndarray, lip_gap: np.ndarray, jaw_y: np.ndarray, jaw_open: np.ndarray,
                   settings: SpeechSettings = SpeechSettings(), twist: np.ndarray | None = None,
                   ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``speech_level`` (n,, face widths) and ``speaking`` (n,, 1.0/0.0) of whole time-ordered arrays.

    time_ms (n,) ms; face (n,) bool; lip_gap, jaw_y (n,) face widths; jaw_open (n,) 0..1; twist
    (n,) left minus right lip-corner height or None (no twist test). NaN in both without face.
    """
    face = np.asarray(face, dtype=bool)
    opening = np.where(face, opening_signal(lip_gap, jaw_y, jaw_open, settings), np.nan)
    everyone, face = np.arange(len(face)), face & np.isfinite(opening)
    fit = window_fit(time_ms, opening, everyone, settings, twist)
    speaking = speaking_from_evidence(time_ms, face, evidence(fit, settings), everyone, settings)
    return np.where(face, fit.level, np.nan), speaking


@dataclass(frozen=True)
class SpeechState:
    """What ``step`` carries: ``context``, a few numbers per frame (``_compact``) for the last rows
    seen, of which the first ``n_proof`` are fitted, and ``pending``, the rows not yet returned."""

    context: pd.DataFrame | None = None
    pending: pd.DataFrame | None = None
    n_proof: int = 0


def _compact(rows: pd.DataFrame, settings: SpeechSettings) -> pd.DataFrame:
    """The few numbers per frame the stage keeps (``SpeechState.context``)."""
    missing = [c for c in INPUT_COLUMNS if c not in rows.columns]
    if missing:
        raise AupipeError(f"speech stage needs frame columns {', '.join(missing)}")
    face = rows["face_found"].to_numpy(dtype=bool)
    mouth = (rows[c].to_numpy(dtype=np.float64) for c in ("g_lip_gap", "g_jaw_y", "bs_jawOpen"))
    opening = np.where(face, opening_signal(*mouth, settings=settings), np.nan)
    twist = np.zeros(len(rows))
    if all(c in rows.columns for c in TWIST_COLUMNS):
        twist = rows[TWIST_COLUMNS[0]].to_numpy(dtype=np.float64) - rows[TWIST_COLUMNS[1]].to_numpy(dtype=np.float64)
    return pd.DataFrame({"time_ms": rows["time_ms"].to_numpy(dtype=np.float64), "face": face & np.isfinite(opening),
                         "opening": opening, "twist": twist, "level": np.nan, "proof": False})  # fmt: skip


def step(
    state: SpeechState, rows: pd.DataFrame | None, settings: SpeechSettings = SpeechSettings(), final: bool = False
) -> tuple[pd.DataFrame, SpeechState]:
    """Feed frame rows (``INPUT_COLUMNS``, optionally ``TWIST_COLUMNS``; time-ordered) in chunks.

    Returns the finished rows (their columns plus ``speech_level`` and ``speaking``) and the new
    state; pure. A row is finished once a frame ``window_ms`` later has been seen; ``final``
    flushes. Any chunking gives the same values as ``speaking_table`` on the whole table.
    """
    new = rows.reset_index(drop=True) if rows is not None and len(rows) else None
    parts = [p for p in (state.context, None if new is None else _compact(new, settings)) if p is not None]
    waiting = [p for p in (state.pending, new) if p is not None]
    pending = pd.concat(waiting, ignore_index=True) if waiting else None
    if pending is None:
        empty = rows.iloc[:0] if rows is not None else pd.DataFrame()
        return empty.assign(speech_level=pd.Series(dtype=float), speaking=pd.Series(dtype=float)), state
    table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    times, n, half = table["time_ms"].to_numpy(), len(table), settings.window_ms / 2.0
    level, proof = table["level"].to_numpy(copy=True), table["proof"].to_numpy(copy=True)
    done = n if final else int(np.sum(times[-1] - times >= half))  # rows whose window is all seen
    if done > state.n_proof:
        targets = np.arange(state.n_proof, done)
        fit = window_fit(times, table["opening"].to_numpy(), targets, settings, table["twist"].to_numpy())
        level[targets], proof[targets] = fit.level, evidence(fit, settings)
    first = n - len(pending)
    hi = np.searchsorted(times, times[first:] + half, side="left")
    ready = int(np.sum((hi < n) & (hi <= done))) if not final else len(pending)
    targets = np.arange(first, first + ready)
    face = table["face"].to_numpy()
    speaking = speaking_from_evidence(times, face, proof, targets, settings)
    out = pending.iloc[:ready].assign(speech_level=np.where(face[targets], level[targets], np.nan), speaking=speaking)
    # Keep the rows later fits need (half a window before the first unfitted row) and those
    # whose proof later shares need (half a window before the first unfinished row).
    ref_fit = times[done] if done < n else times[-1]
    ref_share = times[first + ready] if first + ready < n else times[-1]
    keep_fit, keep_share = int(np.argmax(ref_fit - times < half)), np.searchsorted(times, ref_share - half, "right")
    cut = min(keep_fit, int(keep_share), first + ready)
    context = table.iloc[cut:].assign(level=level[cut:], proof=proof[cut:]).reset_index(drop=True)
    rest = pending.iloc[ready:].reset_index(drop=True)
    return out.reset_index(drop=True), SpeechState(context, rest if len(rest) else None, done - cut)


def speaking_table(frames: pd.DataFrame, settings: SpeechSettings = SpeechSettings()) -> pd.DataFrame:
    """The whole frame table with ``speech_level`` and ``speaking`` appended (one-shot ``step``)."""
    out, _ = step(SpeechState(), frames, settings, final=True)
    return out
