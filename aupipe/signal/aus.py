"""AUs: per-frame FACS Action Unit intensities on the 0-5 scale.

0 = absent, 1 = FACS A (trace) ... 5 = FACS E (maximum). Columns are named OpenFace-style:
``AU12_r`` (intensity, both sides), ``AU12_left_r`` / ``AU12_right_r`` (the person's own left
and right side, for AUs that can be one-sided). Frames without a face are NaN.

Estimator: the hand scales — MediaPipe's blendshape scores (0..1) through the FACS-grounded table
``BLENDSHAPE_AUS`` mixed with geometric measures of the normalised mesh, both relative to the
person's neutral (``estimate_baseline``, shrunk towards a population neutral) — then, per AU,
the fitted monotone map of ``aupipe.signal.calibration`` where one beat the hand scales on held-out
people. Everything is vectorised over frames (docs/aus.md).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from aupipe.errors import AupipeWarning
from aupipe.signal.facs import (  # the FACS vocabulary, also read as aus.AU_NAMES, aus.GEOMETRY_AUS ...
    AU_NAMES, BLENDSHAPE_AUS, BROW_ALL, BROW_INNER, BROW_OUTER, CHEEK, CHIN_BOSS, GEOMETRY_AUS, JAW, LIP_CORNER,
    LOWER_LID, LOWER_LIP_INNER, LOWER_LIP_OUTER, MEASURES, NOSE_WING, SIDED_AUS, SIDES, UPPER_LID, UPPER_LIP_INNER,
    UPPER_LIP_OUTER, UPPER_LIP_SIDE,
)  # fmt: skip
from aupipe.signal.landmarks import BLENDSHAPE_NAMES

if TYPE_CHECKING:
    from aupipe.signal.calibration import Population


@dataclass(frozen=True)
class AuSettings:
    """How AU intensities are made.

    gain: blendshape score (0..1) -> intensity (0..5); 5 maps a score of 1 to FACS E.
    blendshape_weight: share of the blendshape signal in the combined intensity (the rest is
        geometry); AUs with one signal use it alone.
    calibration_s: the neutral baseline is estimated from the first ``calibration_s`` seconds
        (the whole video when shorter); output starts once it is known.
    neutral_fraction: the least expressive fraction of calibration frames taken as neutral.
    max_resting_offset: cap (0-5) on how much of a blendshape AU the baseline may remove beyond
        what the population's resting faces read (with a calibration; without one, from 0): a
        resting face can look like a trace of an AU, a stronger one is an expression.
    neutral_range_s: explicit (start_s, end_s) of a neutral stretch; replaces the estimate.
    presence_threshold: ``AUxx_c`` is 1 where ``AUxx_r`` >= this (1.0 = FACS A, trace).
    smooth: temporal filter on/off (a 3-frame median, then [1, 2, 1] / 4 smoothing).
    calibration: the per-AU maps and population neutral (``aupipe.signal.calibration``): None = the
        shipped one, "hand" = the hand scales above with the person's own neutral unshrunk,
        or a file / folder written by ``aupipe calibrate``.
    neutral_half_s: seconds of face in the calibration span at which an estimated neutral
        gets half its weight against the population neutral (short clips lean on the population).
    max_shift_sd: how far (in between-person SDs) a person's neutral signal may sit from the
        population's. unsure_geometry / unsure_blendshape: how much expression an unsure neutral
        may hold, as a multiple of each measure's FACS-E displacement / in blendshape scores.
    """

    gain: float = 5.0
    blendshape_weight: float = 0.6
    calibration_s: float = 30.0
    neutral_fraction: float = 0.2
    max_resting_offset: float = 1.0
    neutral_range_s: tuple[float, float] | None = None
    presence_threshold: float = 1.0
    smooth: bool = True
    calibration: str | None = None
    neutral_half_s: float = 1.0
    max_shift_sd: float = 2.5
    unsure_geometry: float = 0.5
    unsure_blendshape: float = 0.0


@dataclass(frozen=True)
class Baseline:
    """A person's neutral face: per blendshape-AU offsets (0-5) and per geometric measure values.

    blendshape: Series over ``au_columns()`` (subtracted from blendshape intensities);
    geometry: Series over ``MEASURES`` (face widths); source: how it was obtained;
    n_frames: how many frames it rests on; raw_blendshape: Series over ``BLENDSHAPE_NAMES``
    (scores 0..1, the calibrated AUs' neutral); confidence: 0..1, how far the person's own frames
    are trusted against the population neutral (short or never-relaxed spans score low).
    """

    blendshape: pd.Series
    geometry: pd.Series
    source: str
    n_frames: int
    raw_blendshape: pd.Series | None = None
    confidence: float = 1.0

    def table(self) -> pd.DataFrame:
        """Long form for output: columns signal, kind, value, source, n_frames, confidence."""
        parts = [
            pd.DataFrame({"signal": self.blendshape.index, "kind": "blendshape_au", "value": self.blendshape.values}),
            pd.DataFrame({"signal": self.geometry.index, "kind": "geometry", "value": self.geometry.values}),
        ]
        if self.raw_blendshape is not None:
            raw = self.raw_blendshape
            parts.append(pd.DataFrame({"signal": raw.index, "kind": "blendshape", "value": raw.values}))
        table = pd.concat(parts, ignore_index=True)
        table["source"] = self.source
        table["n_frames"] = self.n_frames
        table["confidence"] = self.confidence
        return table


def au_columns(sided: bool = True) -> list[str]:
    """Intensity column names of the frame table, in output order."""
    columns = [f"{au}_r" for au in AU_NAMES]
    if sided:
        columns += [f"{au}_{side}_r" for au in SIDED_AUS for side in ("left", "right")]
    return columns


def presence_columns() -> list[str]:
    """Presence column names (``AU01_c`` ...), one per AU."""
    return [f"{au}_c" for au in AU_NAMES]


def blendshape_intensity(blendshapes: np.ndarray, settings: AuSettings = AuSettings()) -> pd.DataFrame:
    """AU intensities (n rows, ``au_columns()``) from (n, 52) blendshape scores; NaN rows stay NaN."""
    index = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}
    scores = np.asarray(blendshapes, dtype=np.float64).reshape(-1, len(BLENDSHAPE_NAMES))

    def mean_of(names: tuple[str, ...]) -> np.ndarray | None:
        if not names:
            return None
        return scores[:, [index[name] for name in names]].mean(axis=1)

    columns: dict[str, np.ndarray] = {}
    sides: dict[str, np.ndarray] = {}
    for au, (left_names, right_names, mid_names) in BLENDSHAPE_AUS.items():
        left, right, mid = mean_of(left_names), mean_of(right_names), mean_of(mid_names)
        parts = [p for p in (left, right) if p is not None]
        bilateral = np.mean(parts, axis=0) if parts else None
        if mid is not None and bilateral is not None:
            combined = np.maximum(mid, bilateral)
        else:
            combined = mid if mid is not None else bilateral
        if combined is None:
            raise RuntimeError(f"{au}: BLENDSHAPE_AUS lists no blendshape for it")
        columns[f"{au}_r"] = combined
        if au in SIDED_AUS:
            sides[f"{au}_left_r"] = left if left is not None else combined
            sides[f"{au}_right_r"] = right if right is not None else combined
    columns.update(sides)
    names = au_columns()
    values = np.stack([columns[c] for c in names], axis=1) if len(scores) else np.zeros((0, len(names)))
    return pd.DataFrame(np.clip(values * settings.gain, 0.0, 5.0), columns=names)


def geometric_measures(mesh: np.ndarray) -> pd.DataFrame:
    """Raw geometric signals (n rows, ``MEASURES``) of a normalised mesh (n, 478, 3), face widths.

    Heights are y (up) of landmark means; ``brow_inner_x`` is the inner brow's distance from
    the midline; ``eye_aperture`` upper minus lower lid; ``corner_x`` the lip corner's distance
    from the midline; ``lip_thickness`` the red of both lips; ``lip_gap`` inner upper minus inner
    lower lip (>= 0 when apart).
    """
    mesh = np.asarray(mesh, dtype=np.float64)
    y, x = mesh[..., 1], mesh[..., 0]

    def height(ids: tuple[int, ...]) -> np.ndarray:
        return y[:, list(ids)].mean(axis=1)

    def midline_distance(ids: tuple[int, ...]) -> np.ndarray:
        return np.abs(x[:, list(ids)].mean(axis=1))

    data: dict[str, np.ndarray] = {}
    for stem, sets, fn in (
        ("brow_inner_y", BROW_INNER, height), ("brow_outer_y", BROW_OUTER, height), ("brow_y", BROW_ALL, height),
        ("brow_inner_x", BROW_INNER, midline_distance), ("upper_lid_y", UPPER_LID, height),
        ("lower_lid_y", LOWER_LID, height), ("cheek_y", CHEEK, height), ("nose_wing_y", NOSE_WING, height),
        ("upper_lip_y", UPPER_LIP_SIDE, height), ("corner_y", LIP_CORNER, height),
        ("corner_x", LIP_CORNER, midline_distance),
    ):  # fmt: skip
        for side, ids in zip(SIDES, sets, strict=True):
            data[f"{stem}_{side}"] = fn(ids)
    for side, (upper, lower) in zip(SIDES, zip(UPPER_LID, LOWER_LID, strict=True), strict=True):
        data[f"eye_aperture_{side}"] = height(upper) - height(lower)
    data["lip_thickness"] = (y[:, UPPER_LIP_OUTER] - y[:, UPPER_LIP_INNER]) + (
        y[:, LOWER_LIP_INNER] - y[:, LOWER_LIP_OUTER]
    )
    data["lip_gap"] = y[:, UPPER_LIP_INNER] - y[:, LOWER_LIP_INNER]
    data["chin_y"] = height(CHIN_BOSS)
    data["jaw_y"] = height(JAW)
    return pd.DataFrame(data)[list(MEASURES)]


def geometric_intensity(measures: pd.DataFrame, neutral: pd.Series) -> pd.DataFrame:
    """AU intensities (0-5) from geometric measures relative to the neutral ones.

    Per AU: sign * (measure - neutral) / e_level * 5, clipped to 0..5. Special cases: AU25 uses
    the lip gap beyond the neutral one (a neutral gap below 0 counts as 0); AU43 the relative eye closure 1 - aperture / neutral aperture;
    AU04 adds the inner brows drawing together; AU20 subtracts any lip-corner rise (a smile
    also widens the mouth); AU24 counts only while the lips are closed. Returns the columns of
    ``au_columns()`` that have a geometric signal (AU14 and AU28 have none).
    """

    def scaled(delta: pd.Series | np.ndarray, e_level: float) -> np.ndarray:
        return np.clip(np.asarray(delta, dtype=np.float64) / e_level * 5.0, 0.0, 5.0)

    values = measures.to_numpy(dtype=np.float64)
    column = {name: values[:, j] for j, name in enumerate(measures.columns)}  # array lookups, not Series

    def delta(name: str) -> np.ndarray:
        return column[name] - float(neutral[name])

    out: dict[str, np.ndarray] = {}
    lips_closed = column["lip_gap"] < 0.01
    for au, spec in GEOMETRY_AUS.items():
        if spec is None:
            continue
        stem, sign, e_level = spec
        if au == "AU25":
            out[f"{au}_r"] = scaled(column["lip_gap"] - max(float(neutral["lip_gap"]), 0.0), e_level)
            continue
        if au == "AU43":
            per_side = [
                scaled(1.0 - column[f"eye_aperture_{s}"] / max(float(neutral[f"eye_aperture_{s}"]), 1e-6), e_level)
                for s in SIDES
            ]
        elif stem in ("lip_thickness", "chin_y", "jaw_y"):
            value = scaled(sign * delta(stem), e_level)
            if au == "AU24":
                value = np.where(lips_closed, value, 0.0)
            per_side = [value, value]
        else:
            per_side = []
            for s in SIDES:
                moved = sign * delta(f"{stem}_{s}")
                if au == "AU04":
                    moved = moved - delta(f"brow_inner_x_{s}")
                elif au == "AU20":
                    moved = moved - np.maximum(delta(f"corner_y_{s}"), 0.0)
                per_side.append(scaled(moved, e_level))
        right, left = per_side
        out[f"{au}_r"] = (right + left) / 2.0
        if au in SIDED_AUS:
            out[f"{au}_left_r"] = left
            out[f"{au}_right_r"] = right
    nan_rows = np.isnan(values).any(axis=1)
    names = [c for c in au_columns() if c in out]
    data = np.stack([out[c] for c in names], axis=1) if names else np.zeros((len(values), 0))
    data[nan_rows] = np.nan
    return pd.DataFrame(data, columns=names, index=measures.index)


def expressiveness(blendshape_au: pd.DataFrame) -> np.ndarray:
    """Per-frame sum of blendshape AU intensities (NaN without face): low = close to neutral."""
    values = blendshape_au[[f"{au}_r" for au in AU_NAMES if au not in ("AU25", "AU26", "AU43")]]
    return values.to_numpy(dtype=np.float64).sum(axis=1)


#: Per geometric measure stem: the displacement (face widths) that counts as FACS E for the AUs
#: that read it; how much expression an unsure neutral may hold (``estimate_baseline``).
MEASURE_E_LEVELS: dict[str, float] = {
    "brow_inner_y": 0.06, "brow_outer_y": 0.06, "brow_y": 0.06, "brow_inner_x": 0.06, "upper_lid_y": 0.04,
    "lower_lid_y": 0.03, "eye_aperture": 0.04, "cheek_y": 0.04, "nose_wing_y": 0.04, "upper_lip_y": 0.05,
    "corner_y": 0.05, "corner_x": 0.05, "lip_thickness": 0.06, "lip_gap": 0.08, "chin_y": 0.06, "jaw_y": 0.15,
}  # fmt: skip


def _shrunk(person: pd.Series, population: pd.Series, spread: pd.Series, e_levels: pd.Series, confidence: float,
            settings: AuSettings) -> pd.Series:  # fmt: skip
    """Person's neutral moved towards the population's, per signal: weight tau^2 / (tau^2 + s^2) with
    tau the between-person spread and s = (1 - confidence) * the signal's FACS-E displacement (the
    expression an unsure span may hold); the shift never exceeds ``max_shift_sd`` spreads. Of a
    left/right pair only the mean is shrunk: the person's own left-right difference (face and
    camera asymmetry, which the landmark model also shows) is kept whole."""
    tau = spread.reindex(person.index).fillna(np.inf).clip(lower=1e-6)
    unsure = (1.0 - confidence) * e_levels.reindex(person.index).fillna(1.0)
    weight = tau**2 / (tau**2 + unsure**2)
    shift = (person - population).clip(-settings.max_shift_sd * tau, settings.max_shift_sd * tau)
    shrunk = population + weight * shift
    for left in [n for n in person.index if n.endswith(("_left", "Left"))]:
        right = left[: -len("left")] + ("right" if left.endswith("_left") else "Right")
        if right in person.index:
            mean, half = (shrunk[left] + shrunk[right]) / 2.0, (person[left] - person[right]) / 2.0
            shrunk[left], shrunk[right] = mean + half, mean - half
    return shrunk


#: AU04's neutral signals (no other AU reads them), and the side on which a neutral makes brows look
#: lowered: +1 where a higher neutral reads more AU04 (brow height, inner-brow spread), -1 where a
#: lower one does (browDown). ``_brow_neutral`` and ``_one_sided`` (docs/aus.md#neutral-baseline).
BROW_LOWERING: dict[str, float] = {"brow_y": +1.0, "brow_inner_x": +1.0, "browDown": -1.0}
_GLABELLA = ("a_gx_glabella", "a_gy_glabella")  # AU04's texture: its neutral follows the brows'


def _brow_neutral(blendshape_au: pd.DataFrame, measures: pd.DataFrame, raw_scores: pd.DataFrame, face: np.ndarray,
                  geometry: pd.Series, raw: pd.Series, settings: AuSettings) -> tuple[pd.Series, pd.Series]:  # fmt: skip
    """AU04's neutral signals from the frames whose brows are least active (lowest AU01 + AU02 +
    AU04 blendshape intensity, ``neutral_fraction`` of the face frames), not the least expressive
    face: on a clip that smiles throughout, those are the frames that stop smiling to talk, with the
    brows raised, and brow lowering would be measured from raised brows."""
    score = np.where(face, blendshape_au[["AU01_r", "AU02_r", "AU04_r"]].to_numpy(dtype=np.float64).sum(axis=1), np.inf)
    frames = np.argsort(score, kind="stable")[: int(np.ceil(face.sum() * settings.neutral_fraction))]
    geometry, raw = geometry.copy(), raw.copy()
    stems = tuple(BROW_LOWERING)
    names = [n for n in geometry.index if n.startswith(stems)]
    geometry[names] = measures.iloc[frames][names].median()
    names = [n for n in raw.index if n.startswith(stems) or n in _GLABELLA]
    raw[names] = raw_scores.iloc[frames][names].median()
    return geometry, raw


def _one_sided(neutral: pd.Series, population: pd.Series, confidence: float) -> pd.Series:
    """AU04's neutral signals, one-sided: of an estimated neutral's deviation from the population's
    on the side that inflates brow lowering (brows higher or wider apart, browDown lower), only
    ``confidence`` is kept. The neutral frames are picked for little browDown, so an unsure span is
    biased towards raised brows (talking), never towards lowered ones. A left/right pair moves by
    one amount: its left-right difference is kept."""
    out = neutral.copy()
    for stem, sign in BROW_LOWERING.items():
        names = [n for n in (f"{stem}_right", f"{stem}_left", f"{stem}Right", f"{stem}Left") if n in out.index]
        if names:
            excess = max(sign * float(out[names].mean() - population[names].mean()), 0.0)
            out[names] = out[names] - sign * (1.0 - confidence) * excess
    return out


def estimate_baseline(
    blendshape_au: pd.DataFrame,
    measures: pd.DataFrame,
    time_ms: np.ndarray,
    settings: AuSettings = AuSettings(),
    source: str | None = None,
    blendshapes: pd.DataFrame | None = None,
    given: bool = False,
    population: Population | None = None,
) -> Baseline:
    """The person's neutral face from the given frames.

    With ``settings.neutral_range_s`` (or ``given``: a separate neutral clip) every face frame
    counts as neutral. Otherwise the least expressive ``neutral_fraction`` of the face frames
    (lowest sum of blendshape AUs; speech AUs 25/26 and blinks left out) are taken. The person's
    neutral = their median. With a calibrated population neutral (``AuSettings.calibration``) it
    is then shrunk towards the population (``_shrunk``): confidence = seconds / (seconds +
    ``neutral_half_s``) times how relaxed the chosen frames are; a given neutral is not shrunk.
    AU04's signals get their own neutral (``_brow_neutral``, ``_one_sided``). Blendshape-AU offsets
    are capped at ``max_resting_offset`` above the population neutral's own offsets. No face at
    all -> the population's (or canonical face's) neutral.
    ``blendshapes``: the raw (n, 52) scores, named as ``BLENDSHAPE_NAMES``; ``population``
    replaces the calibration's population neutral (fitting a calibration).
    """
    from aupipe.signal.calibration import load_calibration

    population = population or load_calibration(settings.calibration).population
    face = np.isfinite(expressiveness(blendshape_au)) & measures.notna().all(axis=1).to_numpy()
    given = given or settings.neutral_range_s is not None
    if settings.neutral_range_s is not None:
        start_s, end_s = settings.neutral_range_s
        chosen = face & (time_ms >= start_s * 1000.0) & (time_ms <= end_s * 1000.0)
        label = source or f"neutral range {start_s:g}-{end_s:g} s"
    elif given:
        chosen, label = face, source or "given neutral frames"
    else:
        score = np.where(face, expressiveness(blendshape_au), np.inf)
        count = int(np.ceil(face.sum() * settings.neutral_fraction))
        chosen = np.zeros(len(score), dtype=bool)
        if count:
            chosen[np.argsort(score, kind="stable")[:count]] = True
        seconds = min(settings.calibration_s, (time_ms[-1] - time_ms[0]) / 1000.0 if len(time_ms) else 0.0)
        label = source or f"least expressive {settings.neutral_fraction:.0%} of the first {seconds:.1f} s"
    if not chosen.any():
        if face.any() or settings.neutral_range_s is not None:
            warnings.warn(
                f"no face in the neutral frames ({label}); AUs are measured against a generic face",
                AupipeWarning,
                2,
            )
        if population is not None:
            offsets = blendshape_intensity(population.blendshape[list(BLENDSHAPE_NAMES)].to_numpy()[None], settings)
            return Baseline(offsets.iloc[0], population.geometry[list(MEASURES)],  # within its own cap
                            "population neutral (no face in the neutral frames)", 0,
                            population.blendshape[list(BLENDSHAPE_NAMES)], 0.0)  # fmt: skip
        canonical = geometric_measures(canonical_face_mesh()[None])
        return Baseline(
            pd.Series(0.0, index=au_columns()), canonical.iloc[0], "none (no face in the neutral frames)", 0
        )
    geometry = measures.loc[chosen].median()
    raw = blendshapes.loc[chosen].median() if blendshapes is not None else None
    if raw is not None and not given:  # face-score changes are fitted from the span's median (calibration_fit)
        changes = [c for c in raw.index if c.startswith("a_faced_")]
        raw[changes] = blendshapes.loc[face, changes].median()
    if population is None or raw is None:
        blendshape = blendshape_au.loc[chosen].median().clip(upper=settings.max_resting_offset)
        return Baseline(blendshape, geometry, label, int(chosen.sum()), raw, 1.0)
    if not given:
        geometry, raw = _brow_neutral(blendshape_au, measures, blendshapes, face, geometry, raw, settings)
    steps = np.diff(time_ms[face]) if face.sum() > 1 else np.array([33.3])
    seconds = face.sum() * float(np.median(steps)) / 1000.0  # of face in the calibration span
    duration = seconds / (seconds + settings.neutral_half_s)
    excess = max(float(np.median(expressiveness(blendshape_au)[chosen])) - population.expressiveness, 0.0)
    relaxed = 1.0 if given else float(np.clip(1.0 - excess / max(2.0 * population.expressiveness, 1e-6), 0.0, 1.0))
    confidence = duration * relaxed
    trust = 1.0 if given else confidence
    e_levels = pd.Series({m: MEASURE_E_LEVELS[m.removesuffix("_left").removesuffix("_right")] for m in MEASURES})
    geometry = _shrunk(
        geometry[list(MEASURES)],
        population.geometry[list(MEASURES)],
        population.spread,
        settings.unsure_geometry * e_levels,
        trust,
        settings,
    )
    names = list(BLENDSHAPE_NAMES)
    texture = raw.drop(index=names)  # appearance: the person's own, there is no population texture
    raw = _shrunk(
        raw[names],
        population.blendshape[names],
        population.spread,
        pd.Series(settings.unsure_blendshape, index=names),
        trust,
        settings,
    )
    if trust < 1:
        geometry = _one_sided(geometry, population.geometry, confidence)
        raw = _one_sided(raw, population.blendshape, confidence)
    # the cap counts from what the population's resting faces read (MediaPipe's eyeSquint rests near 0.33)
    resting = blendshape_intensity(population.blendshape[names].to_numpy()[None], settings).iloc[0]
    offsets = blendshape_intensity(raw.to_numpy()[None], settings).iloc[0]
    offsets = offsets.clip(upper=resting + settings.max_resting_offset)
    raw = pd.concat([raw, texture])
    label = f"{label}, shrunk to the population neutral (confidence {confidence:.2f})" if trust < 1 else label
    return Baseline(offsets, geometry, label, int(chosen.sum()), raw, round(confidence, 3))


def canonical_face_mesh() -> np.ndarray:
    """MediaPipe's canonical face as a (478, 3) normalised mesh (the 10 iris points, absent from
    the canonical model and unused by the measures, are set to 0)."""
    from aupipe.signal.normalize import canonical_face

    vertices = canonical_face().vertices
    return np.vstack([vertices, np.zeros((478 - len(vertices), 3))])


def smooth(values: np.ndarray) -> np.ndarray:
    """Temporal filter over frames (axis 0) of (n, k) intensities; NaN frames stay NaN.

    A 3-frame median removes one-frame landmark jitter (33 ms at 30 fps, shorter than any
    micro-expression) yet keeps a 2-frame event whole; a [1, 2, 1] / 4 smoothing then takes off
    the remaining noise: a 3-frame spike keeps its full height at its centre, a 2-frame one 75 %.
    Missing neighbours (video ends, no face) are skipped, not treated as zeros.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return values.copy()
    pad = np.full((1, values.shape[1]), np.nan)
    padded = np.vstack([pad, values, pad])
    stacked = np.stack([padded[:-2], padded[1:-1], padded[2:]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(stacked, axis=0)
    median[np.isnan(values)] = np.nan
    padded = np.vstack([pad, median, pad])
    weights = np.array([1.0, 2.0, 1.0])[:, None, None]
    stacked = np.stack([padded[:-2], padded[1:-1], padded[2:]])
    valid = np.isfinite(stacked)
    total = np.where(valid, stacked, 0.0) * weights
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total.sum(axis=0) / (valid * weights).sum(axis=0)
    out[np.isnan(values)] = np.nan
    return out


def intensity(
    blendshape_au: pd.DataFrame, measures: pd.DataFrame, baseline: Baseline, settings: AuSettings = AuSettings(),
    blendshapes: pd.DataFrame | None = None,
) -> pd.DataFrame:  # fmt: skip
    """AU intensities (``au_columns()``, 0-5, unfiltered) relative to the person's baseline.

    Hand scales: blendshape intensities minus the baseline offsets, and geometric intensities
    relative to the neutral measures, mixed ``blendshape_weight`` : (1 - blendshape_weight)
    where both exist. Then each calibrated AU's map (``settings.calibration``) over its signals,
    which need the raw ``blendshapes`` (n, 52) and ``baseline.raw_blendshape``.
    """
    from aupipe.signal.calibration import calibrated_intensity, load_calibration

    columns = au_columns()
    offsets = baseline.blendshape.reindex(columns).to_numpy(dtype=np.float64)
    from_blendshapes = np.clip(blendshape_au[columns].to_numpy(dtype=np.float64) - offsets, 0.0, 5.0)
    from_geometry = geometric_intensity(measures, baseline.geometry)
    mixed = from_blendshapes.copy()  # arrays, not per-column DataFrame assignments: a live call is 1-2 rows
    w = settings.blendshape_weight
    position = {c: j for j, c in enumerate(columns)}
    geometry = from_geometry.to_numpy(dtype=np.float64)
    for k, column in enumerate(from_geometry.columns):
        j = position[column]
        mixed[:, j] = w * from_blendshapes[:, j] + (1 - w) * geometry[:, k]
    combined = pd.DataFrame(mixed, columns=columns, index=blendshape_au.index)
    calibration = load_calibration(settings.calibration)
    if calibration.maps and blendshapes is not None and baseline.raw_blendshape is not None:
        return calibrated_intensity(
            calibration, blendshapes, measures, baseline.raw_blendshape, baseline.geometry, combined
        )
    return combined


def finish(raw_intensity: pd.DataFrame, settings: AuSettings = AuSettings()) -> pd.DataFrame:
    """Filtered intensities (``AUxx_r`` ...) plus presence columns (``AUxx_c``: 1.0/0.0, NaN w/o face)."""
    columns = au_columns()
    values = raw_intensity[columns].to_numpy(dtype=np.float64)
    if settings.smooth:
        values = smooth(values)
    main = values[:, [columns.index(f"{au}_r") for au in AU_NAMES]]
    with np.errstate(invalid="ignore"):
        presence = np.where(np.isnan(main), np.nan, (main >= settings.presence_threshold).astype(np.float64))
    data = np.concatenate([values, presence], axis=1)  # one block: no column-by-column inserts
    return pd.DataFrame(data, columns=[*columns, *presence_columns()], index=raw_intensity.index)


@dataclass(frozen=True)
class AuState:
    """What ``step`` carries between chunks.

    pending: frame rows (with ``bs_*`` and geometric measure columns) waiting for the baseline;
    baseline: set once calibration ends; context: the last raw intensity rows (filter context)
    and held: how many of them are not yet emitted.
    """

    pending: pd.DataFrame | None = None
    baseline: Baseline | None = None
    context: pd.DataFrame | None = None
    held: int = 0


_CONTEXT_ROWS = 4  # the filter reaches 2 frames each way


def _calibration_end_ms(frames: pd.DataFrame, settings: AuSettings) -> float:
    """Time after which the baseline is known: the neutral range's end, or t0 + calibration_s."""
    if settings.neutral_range_s is not None:
        return settings.neutral_range_s[1] * 1000.0
    return float(frames["time_ms"].iloc[0]) + settings.calibration_s * 1000.0


def _calibrated(frames: pd.DataFrame, settings: AuSettings) -> bool:
    return len(frames) > 0 and float(frames["time_ms"].iloc[-1]) >= _calibration_end_ms(frames, settings)


def _calibration_frames(frames: pd.DataFrame, settings: AuSettings) -> pd.DataFrame:
    """The rows the baseline is estimated from (the same whatever the chunking)."""
    return frames.loc[frames["time_ms"].to_numpy() <= _calibration_end_ms(frames, settings)]


def signals(
    frames: pd.DataFrame, settings: AuSettings = AuSettings()
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Blendshape AU intensities, geometric measures and the raw signals of frame rows with
    ``bs_*`` and ``g_*`` columns: blendshape scores (named as ``BLENDSHAPE_NAMES``) plus the
    appearance textures (``a_*``, ``aupipe.signal.appearance``) where the rows have them."""
    blendshapes = frames[[f"bs_{name}" for name in BLENDSHAPE_NAMES]].set_axis(list(BLENDSHAPE_NAMES), axis=1)
    measures = frames[[f"g_{name}" for name in MEASURES]].set_axis(list(MEASURES), axis=1)
    bs_au = blendshape_intensity(blendshapes.to_numpy(dtype=np.float64), settings).set_axis(frames.index)
    texture = frames[[c for c in frames.columns if c.startswith("a_")]]
    return bs_au, measures, pd.concat([blendshapes, texture], axis=1).astype(np.float64)


def step(
    state: AuState, chunk: pd.DataFrame | None, settings: AuSettings = AuSettings(), final: bool = False,
    baseline: Baseline | None = None,
) -> tuple[pd.DataFrame, AuState]:  # fmt: skip
    """Feed frame rows (``frame``, ``time_ms``, ``bs_*``, ``g_*`` measure columns); get rows with AUs.

    Rows come out once the baseline is known (after ``calibration_s`` of video, or at the end)
    and two frames late (the filter's look-ahead); ``final`` flushes everything. ``baseline``
    fixes the baseline up front (e.g. from a separate neutral clip). Returns the finished rows:
    the input columns plus ``AUxx_r``, sided ``AUxx_left_r`` / ``AUxx_right_r`` and ``AUxx_c``.
    The baseline rests on the frames of the first ``calibration_s`` seconds only (or the
    neutral range), so any chunking gives the same rows as one call with the whole table.
    """
    parts = [p for p in (state.pending, chunk) if p is not None and len(p)]
    pending = pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts[0] if parts else None)
    current = state.baseline or baseline
    if current is None:
        if pending is None:
            return pd.DataFrame(), state
        if not (final or _calibrated(pending, settings)):
            return pd.DataFrame(), AuState(pending=pending)
        calibration = _calibration_frames(pending, settings)
        blendshape_au, measures, blendshapes = signals(calibration, settings)
        current = estimate_baseline(
            blendshape_au, measures, calibration["time_ms"].to_numpy(), settings, blendshapes=blendshapes
        )
    pieces = [state.context] if state.context is not None and len(state.context) else []
    if pending is not None:
        blendshape_au, measures, blendshapes = signals(pending, settings)
        raw_au = intensity(blendshape_au, measures, current, settings, blendshapes).reset_index(drop=True)
        pieces.append(pd.concat([pending.reset_index(drop=True), raw_au], axis=1))
    if not pieces:
        return pd.DataFrame(), AuState(baseline=current)
    joined = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0].reset_index(drop=True)
    n_context = len(state.context) if state.context is not None else 0
    first = n_context - state.held
    last = len(joined) if final else max(len(joined) - 2, first)
    finished = finish(joined[au_columns()], settings).iloc[first:last].reset_index(drop=True)
    rows = joined.iloc[first:last].drop(columns=au_columns()).reset_index(drop=True)
    out = pd.concat([rows, finished], axis=1)
    context = joined.iloc[max(len(joined) - _CONTEXT_ROWS, 0) :].reset_index(drop=True)
    return out, AuState(baseline=current, context=context, held=len(joined) - last)


def compute_aus(
    frames: pd.DataFrame, settings: AuSettings = AuSettings(), baseline: Baseline | None = None
) -> tuple[pd.DataFrame, Baseline | None]:
    """AUs of a whole frame table at once (the non-streaming form of ``step``) and its baseline.
    A table with the face descriptor (``desc_0000``..., ``PipelineSettings.include_descriptor``)
    gets its face-score columns from the calibration first (``calibration.with_appearance_scores``)."""
    from aupipe.signal.calibration import load_calibration, with_appearance_scores

    frames = with_appearance_scores(frames, load_calibration(settings.calibration))
    out, state = step(AuState(), frames, settings, final=True, baseline=baseline)
    return out, state.baseline
