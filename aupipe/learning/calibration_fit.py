"""Fit an AU calibration (``aupipe.signal.calibration``) to reference AU codes, with person-grouped CV.

``fit_calibration`` takes prepared videos (raw frame tables + aligned reference codes + a person
label), learns the population neutral, then per AU cross-validates four forms over people —
"hand" (the hand scales), "linear" (non-negative weights over the AU's own signals), "ramp"
(linear, then a monotone piecewise-linear curve) and "face" (the face scores' own prediction) — keeps the best held-out one (by pooled r,
``CalibrationSettings``) and refits it on every person. Before that, ``fit_appearance`` fits the
face-score directions (``calibration.AuAppearance``, on every frame and its mirror image, ``mirror``) whose
scores are signals of every AU.
``calibrate`` runs it end to end on videos and reference files and writes
``OUT/au_calibration.json`` and ``OUT/agreement.csv``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.learning import agreement
from aupipe.signal import aus
from aupipe.signal.calibration import (
    CALIBRATION_FILE, RAMP_KNOTS, SIGNALS, AuAppearance, AuCalibration, AuMap, Population, apply_map,
    signal_values,
)  # fmt: skip
from aupipe.errors import InputError

#: "face": the face scores' own prediction (``a:face`` + ``ad:faced``, weights 1, no intercept),
#: the ridge's fit with nothing refitted on top; only for AUs that read both face scores.
FORMS: tuple[str, ...] = ("hand", "linear", "ramp", "face")
#: Bumped whenever the raw frame table's columns change (cached tables of another version are not reused).
FRAME_FEATURES = 6
MIN_SIGNAL_SD = 1e-3  # in the signal's units (blendshape score 0..1, face widths, or 0-5)
#: A ramp segment gets its own slope only when this many training frames (and this share of them)
#: reach its midpoint; a segment fewer frames reach shares the slope of the one below it. Without
#: this a few extreme frames fit a cliff: the shipped AU26 once rose 546 per z unit over z 3..5,
#: fitted on 3 crying frames of one clip out of 10,019.
MIN_RAMP_FRAMES = 50
MIN_RAMP_SHARE = 0.005


@dataclass(frozen=True)
class CalibrationSettings:
    """min_gain: a fitted form must beat the hand scales' held-out pooled r by this much (and, with
    ``person_rule``, not lower the median per-person r; the shipped fit turns both off,
    ``scripts/fit_au_calibration.py``); max_folds: leave-one-person-out up to this many people,
    grouped folds beyond; min_frames: reference frames an AU needs before it is fitted; keep_hand:
    AUs whose reference is known to be unreliable: cross-validated and reported, never fitted;
    face_ridge: the face-score directions' ridge penalty (per frame, on standardised descriptor
    values; 0 = no face scores); face_folds: person-grouped folds of their out-of-fold scores
    (``fit_appearance``); face_min_people: fewer people than this fit no face scores (a direction
    in thousands of dimensions learned from one or two faces learns those faces); face_mirror: fit
    the directions on every frame and its mirror image too (``mirror.mirrored_descriptor``; the
    reference is the same), so a face score reads a mirrored face as it reads the face;
    face_sd_floor: a descriptor value's SD in the standardisation is at least this fraction of the
    median SD of its block (``descriptor_blocks``): values the training faces barely move (HOG cells
    at the edge of the face mask) get no large weight that a new face, which moves them, would blow
    up on (one held-out face read AU01 = 5 through two such cells without the floor). Held out on the
    corpus (face form, 5 person folds), median r over 16 AUs: floor 0 0.47, 0.1 0.53, 0.3 0.54, 1 0.54."""

    min_gain: float = 0.02
    max_folds: int = 40
    min_frames: int = 200
    keep_hand: tuple[str, ...] = ()
    person_rule: bool = True
    face_ridge: float = 3.0
    face_folds: int = 5
    face_min_people: int = 10
    face_mirror: bool = True
    face_sd_floor: float = 1.0
    aus: aus.AuSettings = dataclasses.field(default_factory=lambda: aus.AuSettings(calibration="hand"))


@dataclass(frozen=True)
class PreparedVideo:
    """One video ready for fitting: ``key``, ``person``, the raw frame rows and the reference
    codes aligned to them (AUxx columns, 0-5; NaN where not coded or not valid)."""

    key: str
    person: str
    raw: pd.DataFrame
    reference: pd.DataFrame


@dataclass(frozen=True)
class _Features:
    """A video's per-frame inputs of the maps under one population neutral."""

    hand: pd.DataFrame
    blendshapes: pd.DataFrame
    measures: pd.DataFrame
    baseline: aus.Baseline
    face: np.ndarray


@dataclass(frozen=True)
class CalibrationResult:
    """What ``calibrate`` produced: the calibration, held-out agreement per AU and form
    (columns au, form, r, icc, f1, person_r, n_frames, chosen), and where it was written."""

    calibration: AuCalibration
    agreement: pd.DataFrame
    out_dir: Path | None = None


def _neutral(
    raw: pd.DataFrame, settings: aus.AuSettings, population: Population | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, aus.Baseline, np.ndarray]:
    """A video's signals (``aus.signals``), its baseline from the first ``calibration_s`` as the
    pipeline would estimate it (shrunk when ``population`` is given), and those rows' mask."""
    bs_au, measures, blendshapes = aus.signals(raw, settings)
    time_ms = raw["time_ms"].to_numpy()
    rows = time_ms <= time_ms[0] + settings.calibration_s * 1000 if len(time_ms) else np.zeros(0, bool)
    baseline = aus.estimate_baseline(
        bs_au[rows], measures[rows], time_ms[rows], settings, blendshapes=blendshapes[rows], population=population
    )
    return bs_au, measures, blendshapes, baseline, rows


def _person_baselines(
    videos: Sequence[PreparedVideo], settings: aus.AuSettings
) -> tuple[pd.DataFrame, pd.DataFrame, list[float]]:
    raws, geometries, expressiveness = [], [], []
    for video in videos:
        bs_au, _, _, baseline, rows = _neutral(video.raw, settings)
        if baseline.n_frames == 0 or baseline.raw_blendshape is None:
            continue
        raws.append(baseline.raw_blendshape.rename(video.person))
        geometries.append(baseline.geometry.rename(video.person))
        scores = aus.expressiveness(bs_au[rows])
        expressiveness.append(float(np.nanmedian(np.sort(scores[np.isfinite(scores)])[: baseline.n_frames])))
    return pd.DataFrame(raws), pd.DataFrame(geometries), expressiveness


def population_neutral(videos: Sequence[PreparedVideo], settings: aus.AuSettings) -> Population:
    """Medians over people (each person's videos averaged first) of their own neutral faces."""
    raws, geometries, expressiveness = _person_baselines(videos, settings)
    if raws.empty:
        raise InputError("no face found in the calibration videos")
    raw_by_person = raws.groupby(level=0).median()
    geometry_by_person = geometries.groupby(level=0).median()
    geometry, raw = geometry_by_person.median(), raw_by_person.median()
    spread = pd.concat([(geometry_by_person - geometry).abs().median(), (raw_by_person - raw).abs().median()]) * 1.4826
    return Population(raw, geometry, spread.clip(lower=1e-4), float(np.median(expressiveness)))


def features(raw: pd.DataFrame, population: Population, settings: aus.AuSettings) -> _Features:
    """The hand-scaled intensities and raw signals of one video against its (shrunk) baseline."""
    bs_au, measures, blendshapes, baseline, _ = _neutral(raw, settings, population)
    hand = aus.intensity(bs_au, measures, baseline, settings).reset_index(drop=True)
    face = raw["face_found"].to_numpy(dtype=bool)
    return _Features(hand, blendshapes.reset_index(drop=True), measures.reset_index(drop=True), baseline, face)


def design(feature: _Features, au: str, signals: Sequence[str], side: str | None = None) -> np.ndarray:
    """(n, len(signals)) signal values of one video (``calibration.signal_values``)."""
    b = feature.baseline
    neutral_raw = (
        b.raw_blendshape if b.raw_blendshape is not None else pd.Series(0.0, index=feature.blendshapes.columns)
    )
    columns = [signal_values(s, au, side, feature.blendshapes, feature.measures, neutral_raw, b.geometry, feature.hand)
               for s in signals]  # fmt: skip
    return np.stack(columns, axis=1)


def _nnls(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    return nnls(a, y, maxiter=50 * a.shape[1])[0]


def fit_map(form: str, x: np.ndarray, y: np.ndarray, weight: np.ndarray, signals: Sequence[str]) -> AuMap:
    """One AU's map of ``form`` from (n, k) signals ``x`` to reference ``y`` (n,), frame weights (n,).

    Non-negative least squares on the standardised signals; the intercept may only lower z (a
    face at its neutral reads 0, "absent", whatever the reference's resting bias). Signals that
    barely vary (SD below ``MIN_SIGNAL_SD``) are left out: their weight would only scale noise.
    """
    if form == "hand":
        return AuMap()
    if form == "face":
        face = tuple(x for x in signals if x.startswith(("a:face_", "ad:faced_")))
        return AuMap("linear", face, (1.0,) * len(face), 0.0) if len(face) == 2 else AuMap()
    root = np.sqrt(weight)[:, None]
    scale = x.std(axis=0)
    usable = np.flatnonzero(scale >= MIN_SIGNAL_SD)
    if not len(usable):
        return AuMap()
    minus_one = -np.ones((len(x), 1))
    coef = _nnls(np.hstack([x[:, usable] / scale[usable], minus_one]) * root, y * root[:, 0])
    weights = np.zeros(x.shape[1])
    weights[usable] = coef[:-1] / scale[usable]
    intercept = -float(coef[-1])
    kept = [i for i, w in enumerate(weights) if w > 1e-9] or [int(usable[0])]
    if form == "linear":
        return AuMap("linear", tuple(signals[i] for i in kept), tuple(float(weights[i]) for i in kept), intercept)
    z = x @ weights + intercept
    ramp = fit_ramp(z, y, weight)
    return AuMap("ramp", tuple(signals[i] for i in kept), tuple(float(weights[i]) for i in kept), intercept, ramp)


def ramp_segments(z: np.ndarray) -> list[tuple[int, int]]:
    """Groups ``(first, end)`` of ``RAMP_KNOTS`` intervals that share one slope, bottom up.

    An interval is supported when ``MIN_RAMP_FRAMES`` (and ``MIN_RAMP_SHARE``) of the frames ``z``
    (n,) reach its midpoint; the count can only fall with z, so the intervals above the highest
    supported one join it in one straight piece (one piece over all when none is supported).
    """
    knots = np.asarray(RAMP_KNOTS)
    needed = max(MIN_RAMP_FRAMES, MIN_RAMP_SHARE * len(z))
    reached = [np.count_nonzero(z >= (a + b) / 2) >= needed for a, b in zip(knots[:-1], knots[1:], strict=True)]
    top = max((i for i, ok in enumerate(reached) if ok), default=0)
    return [(i, i + 1) for i in range(top)] + [(top, len(knots) - 1)]


def fit_ramp(z: np.ndarray, y: np.ndarray, weight: np.ndarray) -> tuple[float, ...]:
    """The monotone ramp (increments over ``RAMP_KNOTS``, offset last) from ``z`` (n,) to ``y`` (n,).

    Non-negative least squares over the supported groups of ``ramp_segments``; a group's increment
    is spread over its intervals in proportion to their width, so it is one straight piece.
    """
    knots = np.asarray(RAMP_KNOTS)
    groups = ramp_segments(z)
    basis = np.stack([np.clip((z - knots[a]) / (knots[b] - knots[a]), 0.0, 1.0) for a, b in groups], axis=1)
    root = np.sqrt(weight)[:, None]
    coef = _nnls(np.hstack([basis, -np.ones((len(z), 1))]) * root, y * root[:, 0])
    increments = np.zeros(len(knots) - 1)
    for (a, b), c in zip(groups, coef[:-1], strict=True):
        increments[a:b] = c * np.diff(knots[a : b + 1]) / (knots[b] - knots[a])
    return (*(float(c) for c in increments), -float(coef[-1]))


def _training_rows(
    au: str, features_by_video: dict[str, _Features], videos: Sequence[PreparedVideo], signals: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, ws = [], [], []
    for video in videos:
        if au not in video.reference:
            continue
        x = design(features_by_video[video.key], au, signals)
        y = video.reference[au].to_numpy(dtype=np.float64)
        keep = np.isfinite(x).all(axis=1) & np.isfinite(y)
        if keep.any():
            xs.append(x[keep])
            ys.append(y[keep])
            ws.append(np.full(int(keep.sum()), 1.0 / np.sqrt(keep.sum())))  # long clips count, but not linearly
    if not xs:
        return np.zeros((0, len(signals))), np.zeros(0), np.zeros(0)
    return np.vstack(xs), np.concatenate(ys), np.concatenate(ws)


def predict(m: AuMap, feature: _Features, au: str) -> np.ndarray:
    """Filtered intensity (n,) of one AU of a video under map ``m`` (NaN without face)."""
    values = apply_map(m, design(feature, au, m.signals))
    values[~feature.face] = np.nan
    return aus.smooth(values[:, None])[:, 0]


def rows_of(rows: list[dict[str, object]], au: str, form: str) -> dict[str, object]:
    """The agreement row of ``au`` and ``form``."""
    return next(row for row in rows if row["au"] == au and row["form"] == form)


def _beats(candidate: dict[str, object], incumbent: dict[str, object], margin: float, person_rule: bool = True) -> bool:
    """A form wins when its held-out pooled r is higher by ``margin`` and (``person_rule``) its per-person r is not lower."""
    r, person_r = float(candidate["r"]), float(candidate["person_r"])  # type: ignore[arg-type]
    best_r, best_person_r = float(incumbent["r"]), float(incumbent["person_r"])  # type: ignore[arg-type]
    if not (np.isfinite(r) and np.isfinite(person_r)):
        return False
    if not (np.isfinite(best_r) and np.isfinite(best_person_r)):
        return True
    return r >= best_r + margin and (person_r >= best_person_r or not person_rule)


def _folds(people: list[str], max_folds: int) -> list[list[str]]:
    if len(people) <= max_folds:
        return [[p] for p in people]
    return [people[i::max_folds] for i in range(max_folds)]


def _descriptor_design(raw: pd.DataFrame, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2 DESCRIPTOR_DIMS) float32 face descriptor (of the mirror image with ``mirrored``) and its
    change from the clip's median over face frames, and the face mask (n,)."""
    from aupipe.learning.mirror import mirrored_descriptor
    from aupipe.signal.appearance import DESCRIPTOR_DIMS

    descriptor = raw[[f"desc_{j:04d}" for j in range(DESCRIPTOR_DIMS)]].to_numpy(dtype=np.float32)
    if mirrored:
        descriptor = mirrored_descriptor(descriptor)
    face = np.isfinite(descriptor).all(axis=1)
    median = np.median(descriptor[face], axis=0) if face.any() else np.zeros(DESCRIPTOR_DIMS, np.float32)
    return np.hstack([descriptor, descriptor - median]), face


def descriptor_blocks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the face descriptor's blocks: HOG, normalised mesh, blendshapes (``appearance.face_descriptor``)."""
    from aupipe.signal.appearance import DESCRIPTOR_DIMS, HOG_DIMS, N_BLENDSHAPES

    return np.arange(HOG_DIMS), np.arange(HOG_DIMS, DESCRIPTOR_DIMS - N_BLENDSHAPES), np.arange(DESCRIPTOR_DIMS - N_BLENDSHAPES, DESCRIPTOR_DIMS)


def fit_appearance(
    videos: Sequence[PreparedVideo], aus_fitted: Sequence[str], settings: CalibrationSettings
) -> tuple[AuAppearance | None, dict[str, dict[str, np.ndarray]]]:
    """Face-score directions per AU: ridge regression of each AU's reference on the standardised
    face descriptor and its change from the clip's median (``_descriptor_design``; frames weighted
    as the maps', penalty ``face_ridge`` x frames; frames where every AU in ``aus_fitted`` is
    coded), fitted on every video; and each video's scores out of fold (person-grouped
    ``face_folds``): the maps are fitted on those, so they weigh the face scores as they will work
    on people the directions never saw. None (and no scores) without descriptor columns."""
    from aupipe.signal.appearance import DESCRIPTOR_DIMS

    measured = all("desc_0000" in v.raw.columns for v in videos)
    few = len({v.person for v in videos}) < settings.face_min_people
    if settings.face_ridge <= 0 or not aus_fitted or not measured or few:
        return None, {}
    designs = {v.key: _descriptor_design(v.raw) for v in videos}
    copies = {v.key: [designs[v.key][0]] + ([_descriptor_design(v.raw, mirrored=True)[0]] if settings.face_mirror else [])
              for v in videos}  # fmt: skip
    codes = {v.key: v.reference.reindex(columns=list(aus_fitted)).to_numpy(dtype=np.float64) for v in videos}
    rows = {v.key: designs[v.key][1] & np.isfinite(codes[v.key]).all(axis=1) for v in videos}
    n_rows = sum(int(r.sum()) for r in rows.values())
    if n_rows < settings.min_frames:
        return None, {}
    total = np.zeros(2 * DESCRIPTOR_DIMS)
    square = np.zeros(2 * DESCRIPTOR_DIMS)
    weight_sum = 0.0
    for v in videos:
        for copy in copies[v.key]:
            x = copy[rows[v.key]].astype(np.float64)
            w = 1.0 / np.sqrt(max(len(x), 1))
            total += w * x.sum(axis=0)
            square += w * (x**2).sum(axis=0)
            weight_sum += w * len(x)
    mean = total / max(weight_sum, 1e-12)
    scale = np.sqrt(np.maximum(square / max(weight_sum, 1e-12) - mean**2, 0.0))
    blocks = descriptor_blocks()
    for block in (*blocks, *(b + DESCRIPTOR_DIMS for b in blocks)):  # raw, then change
        scale[block] = np.maximum(scale[block], settings.face_sd_floor * np.median(scale[block]))
    scale += 1e-6

    def moments(group: Sequence[PreparedVideo]) -> tuple[np.ndarray, np.ndarray, float]:
        gram = np.zeros((2 * DESCRIPTOR_DIMS + 1, 2 * DESCRIPTOR_DIMS + 1))
        cross = np.zeros((2 * DESCRIPTOR_DIMS + 1, len(aus_fitted)))
        frames = 0.0
        for v in group:
            keep = rows[v.key]
            if not keep.any():
                continue
            for copy in copies[v.key]:
                z = np.hstack([(copy[keep] - mean) / scale, np.ones((int(keep.sum()), 1))])
                w = 1.0 / np.sqrt(len(z))
                z *= np.sqrt(w)  # weighted rows: one (d, d) temporary per video, not two
                gram += z.T @ z
                cross += z.T @ (np.sqrt(w) * codes[v.key][keep])
                frames += w * len(z)
        return gram, cross, frames

    def solve(gram: np.ndarray, cross: np.ndarray, frames: float) -> np.ndarray:
        """Ridge coefficients; ``gram`` is overwritten (one (d, d) matrix of 2 x 5,472 + 1 is 0.96 GB)."""
        from scipy.linalg import cho_factor, cho_solve

        penalty = np.full(len(gram), settings.face_ridge * frames)
        penalty[-1] = 1e-6 * frames  # the intercept is barely penalised
        gram[np.diag_indices_from(gram)] += penalty
        return cho_solve(cho_factor(gram, overwrite_a=True, check_finite=False), cross, check_finite=False)

    people = sorted({v.person for v in videos})
    folds = [people[i :: settings.face_folds] for i in range(min(settings.face_folds, len(people)))]
    gram, cross, frames = moments(videos)

    def directions(coef: np.ndarray) -> AuAppearance:
        weights = coef[:-1] / scale[:, None]  # per descriptor unit, (2 DESCRIPTOR_DIMS, k)
        raw, delta = weights[:DESCRIPTOR_DIMS], weights[DESCRIPTOR_DIMS:]
        # the change part was centred on its own mean in the fit; at run time it is measured from the neutral
        offset = coef[-1] - mean[DESCRIPTOR_DIMS:] @ delta
        return AuAppearance(tuple(aus_fitted), mean[:DESCRIPTOR_DIMS].astype(np.float32),
                            raw.T.astype(np.float32), delta.T.astype(np.float32), offset.astype(np.float32))  # fmt: skip

    scores: dict[str, dict[str, np.ndarray]] = {}
    for fold in folds if len(folds) > 1 else []:  # each fold's moments again: two matrices held, not one per fold
        g, c, f = moments([v for v in videos if v.person in fold])
        np.subtract(gram, g, out=g)
        held_out = directions(solve(g, cross - c, frames - f))
        del g
        for v in videos:
            if v.person in fold:
                scores[v.key] = held_out.scores(designs[v.key][0][:, :DESCRIPTOR_DIMS])
    everyone = directions(solve(gram, cross, frames))
    if len(folds) <= 1:
        scores = {v.key: everyone.scores(designs[v.key][0][:, :DESCRIPTOR_DIMS]) for v in videos}
    return everyone, scores


def _with_scores(video: PreparedVideo, scores: dict[str, np.ndarray]) -> PreparedVideo:
    """The video with its face-score columns (``a_face_AUxx``, ``a_faced_AUxx``), without its descriptor."""
    raw = video.raw.drop(columns=[c for c in video.raw.columns if c.startswith("desc_")])
    return dataclasses.replace(video, raw=raw.assign(**scores))


def fit_calibration(
    videos: Sequence[PreparedVideo], settings: CalibrationSettings = CalibrationSettings(),
    source: str = "aupipe calibrate", log: Callable[[str], None] | None = None,
) -> CalibrationResult:  # fmt: skip
    """Face-score directions (``fit_appearance``), the population neutral, then per AU the best
    held-out form, refitted on every person."""
    to_fit = [au for au in aus.AU_NAMES if any(au in v.reference for v in videos) and au not in settings.keep_hand]
    appearance, scores = fit_appearance(videos, to_fit, settings)
    if log and appearance is not None:
        log(f"face-score directions fitted for {len(appearance.aus)} AUs (out-of-fold scores over {settings.face_folds} person folds)")
    videos = [_with_scores(v, scores.get(v.key, {})) for v in videos]
    population = population_neutral(videos, settings.aus)
    by_video = {v.key: features(v.raw, population, settings.aus) for v in videos}
    people = sorted({v.person for v in videos})
    maps: dict[str, AuMap] = {}
    rows = []
    coded = [au for au in aus.AU_NAMES if any(au in v.reference for v in videos)]
    for au in coded:
        signals = SIGNALS[au]
        x, y, w = _training_rows(au, by_video, videos, signals)
        if len(y) < settings.min_frames or np.nanstd(y) < 1e-6:
            if log:
                log(f"{au}: {len(y)} coded frames with a face, too few or constant: hand scales kept")
            continue
        has_face = appearance is not None and au in appearance.aus and fit_map("face", x, y, w, signals).form != "hand"
        forms = [form for form in FORMS if form != "face" or has_face]
        for form in forms:
            predicted: dict[str, list[np.ndarray]] = {"p": [], "r": [], "who": []}
            for held_out in _folds(people, settings.max_folds) if len(people) >= 3 else []:
                train = [v for v in videos if v.person not in held_out]
                m = fit_map(form, *_training_rows(au, by_video, train, signals), signals)
                for v in videos:
                    if v.person in held_out and au in v.reference:
                        predicted["p"].append(predict(m, by_video[v.key], au))
                        predicted["r"].append(v.reference[au].to_numpy(dtype=np.float64))
                        predicted["who"].append(np.full(len(v.reference), v.person, dtype=object))
            if predicted["p"]:
                p, r = np.concatenate(predicted["p"]), np.concatenate(predicted["r"])
                table = agreement.au_agreement({au: p}, {au: r}, np.concatenate(predicted["who"]))
                row = table.loc[au].to_dict()
            else:
                row = {"r": np.nan, "icc": np.nan, "f1": np.nan, "person_r": np.nan, "n_frames": 0}
            rows.append({"au": au, "form": form, **row})
        best = "hand"
        for form in forms[1:]:
            margin = settings.min_gain if best == "hand" else 0.0
            if _beats(rows_of(rows, au, form), rows_of(rows, au, best), margin, settings.person_rule):
                best = form
        if au in settings.keep_hand:
            best = "hand"
            if log:
                log(f"{au}: kept on the hand scales (keep_hand)")
        elif len(people) < 3:
            best = "ramp"  # nothing to cross-validate on: trust the data (said in the log)
            if log:
                log(f"{au}: fewer than 3 people, no held-out check; fitted ramp kept")
        maps[au] = fit_map(best, x, y, w, signals)
        for row in rows:
            if row["au"] == au:
                row["chosen"] = row["form"] == best
    meta = {
        "source": source, "n_videos": len(videos), "n_people": len(people),
        "reference_aus": coded, "aupipe_version": _version(),
    }  # fmt: skip
    calibration = AuCalibration(maps, population, source, meta, appearance)
    table = pd.DataFrame(rows, columns=["au", "form", "r", "icc", "f1", "person_r", "n_frames", "chosen"])
    return CalibrationResult(calibration, table)


def _version() -> str:
    from aupipe.version import __version__

    return __version__


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def raw_frames(video: Path, cache_dir: Path | None = None) -> pd.DataFrame:
    """The raw frame table of ``video`` (no landmark columns), cached by content in ``cache_dir``."""
    from aupipe.chain.settings import PipelineSettings
    from aupipe.chain.frames import stream_frames

    settings = PipelineSettings(include_landmarks=False, include_descriptor=True, aus=aus.AuSettings(calibration="hand"))
    target = None
    if cache_dir is not None:
        target = Path(cache_dir) / f"{_file_digest(video)[:24]}-{_version()}-f{FRAME_FEATURES}.parquet"
        if target.exists():
            return pd.read_parquet(target)
    table = pd.concat(list(stream_frames(video, settings)), ignore_index=True)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_suffix(".part")
        table.to_parquet(part)
        part.replace(target)
    return table


def write(result: CalibrationResult, out_dir: str | Path) -> Path:
    """``OUT/au_calibration.json`` and ``OUT/agreement.csv``, each written whole or not at all."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = result.calibration.to_json()
    for name, text in ((CALIBRATION_FILE, json.dumps(data, indent=1, sort_keys=True) + "\n"),
                       ("agreement.csv", result.agreement.to_csv(index=False, float_format="%.4f"))):  # fmt: skip
        part = out / f".{name}.part"
        part.write_text(text, encoding="utf-8")
        part.replace(out / name)
    return out


def _check_output(out_dir: Path, inputs: Sequence[Path]) -> None:
    """Refuse an output folder that is a file, or whose files would replace an input (links,
    hard links and case followed: ``io.writers.check_outputs``)."""
    from aupipe.errors import OutputError
    from aupipe.io.writers import check_outputs

    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder; give a folder for the calibration")
    check_outputs(list(inputs), {"calibration": out_dir / CALIBRATION_FILE, "agreement": out_dir / "agreement.csv"})


def read_groups(path: str | Path) -> dict[str, str]:
    """Person of each video from a CSV with columns ``video`` (file name or stem) and ``person``."""
    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: cannot read the person groups ({err})") from None
    if not {"video", "person"} <= set(table.columns):
        raise InputError(f"{path}: person groups need the columns video and person (found: {', '.join(table.columns)})")
    if table[["video", "person"]].isna().any().any():
        raise InputError(f"{path}: every row needs a video and a person")
    return {Path(v).stem: p for v, p in zip(table["video"], table["person"], strict=True)}


def calibrate(
    videos: Sequence[str | Path], reference: str | Path, out_dir: str | Path | None = None, kind: str = "auto",
    groups: str | Path | dict[str, str] | None = None, cache_dir: str | Path | None = None,
    settings: CalibrationSettings = CalibrationSettings(), log: Callable[[str], None] | None = None,
) -> CalibrationResult:  # fmt: skip
    """Fit an AU calibration of ``videos`` (files or folders) to their reference codes.

    reference: a folder with one CSV per video (same stem) or one CSV for one video; ``kind``
    "auto", "facs", "openface" or "pyfeat" (``aupipe.learning.references``). groups: which videos show
    the same person (a CSV ``video,person`` or a dict stem -> person); by default each video is
    its own person. Held-out agreement is person-grouped. ``cache_dir`` keeps the landmark
    stage's tables (by video content) for refits. Writes ``out_dir`` when given.
    """
    from aupipe.learning import references
    from aupipe.signal.video import find_videos
    from aupipe.signal.video import probe

    found = find_videos(list(videos))
    pairs = references.pair_references(found, reference)
    if out_dir is not None:
        _check_output(Path(out_dir), [p for pair in pairs for p in pair])
    people = read_groups(groups) if isinstance(groups, str | Path) else dict(groups or {})
    prepared = []
    for video, reference_path in pairs:
        info = probe(video)
        table = references.read_reference(reference_path, kind, n_frames=info.frame_count or None, fps=info.fps)
        if log:
            log(
                f"{video.name}: {table.attrs.get('kind', kind)} reference {reference_path.name}, {int(table['valid'].sum())} coded frames"
            )
        raw = raw_frames(video, Path(cache_dir) if cache_dir else None)
        aligned = references.align(table, raw["frame"].to_numpy())
        keep = aligned["valid"].to_numpy(dtype=bool) & raw["face_found"].to_numpy(dtype=bool)
        codes = aligned[[c for c in aligned.columns if c in aus.AU_NAMES]].reset_index(drop=True)
        codes = codes.where(pd.Series(keep), np.nan)
        prepared.append(PreparedVideo(video.stem, people.get(video.stem, video.stem), raw, codes))
    source = f"aupipe calibrate: {len(prepared)} videos, reference {Path(reference).name}"
    result = fit_calibration(prepared, settings, source, log)
    if out_dir is not None:
        return CalibrationResult(result.calibration, result.agreement, write(result, out_dir))
    return result


def agreement_text(table: pd.DataFrame) -> str:
    """The held-out agreement table as text: one row per AU, r / person-median r per form, the choice."""
    lines = [f"{'AU':<5} {'form':<7} {'r':>6} {'ICC':>6} {'F1':>6} {'person r':>9}   (held out, person-grouped)"]
    for au, rows in table.groupby("au", sort=False):
        for _, row in rows.iterrows():
            mark = " <- chosen" if row.get("chosen") else ""
            lines.append(
                f"{au:<5} {row['form']:<7} {row['r']:6.2f} {row['icc']:6.2f} {row['f1']:6.2f} {row['person_r']:9.2f}{mark}"
            )
    chosen = table[table["chosen"].fillna(False).astype(bool)]
    if len(chosen):
        lines.append(
            f"median over AUs (chosen forms): r {chosen['r'].median():.2f}, person r {chosen['person_r'].median():.2f}"
        )
    return "\n".join(lines)
