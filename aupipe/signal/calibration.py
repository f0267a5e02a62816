"""AU calibration: per-AU monotone maps from an AU's own signals to the 0-5 scale, fitted on data.

A calibration (``AuCalibration``) holds, per AU, a small monotone map (``AuMap``) and a
population neutral face. The shipped one (``models/au_calibration.json``, sha256-checked) was
fitted by ``aupipe calibrate`` on real people against OpenFace 2.2's AU intensities
(``scripts/fit_au_calibration.py`` refits it); a lab can fit its own to its coders' FACS codes.

An AU's signals (``SIGNALS``) are the scores of its own blendshapes (``bs:``, 0..1, as MediaPipe
gives them), the same relative to the person's neutral (``bsd:``), its geometric measures relative
to the neutral (``g:``, face widths, signed so that positive is the AU's direction) and the hand-
scaled intensity of ``aus`` (``hand``, 0-5). A map is

    z = sum_j weight_j * signal_j + intercept          (weights >= 0: monotone in every signal)
    intensity = clip(ramp(z), 0, 5)                     (ramp: piecewise linear, non-decreasing)

``form`` "hand" keeps the hand-scaled intensity unchanged.

Face scores (``AuAppearance``, format version 3; version 2 read an older descriptor): per AU two fitted directions in the space of
the face descriptor (``aupipe.signal.appearance.face_descriptor``: the face's HOG, the normalised
mesh, the blendshapes). The frame table's ``a_face_AUxx`` = (descriptor - mean) . raw direction
+ offset and ``a_faced_AUxx`` = (descriptor - mean) . change direction. They are signals like the others:
``a:face_AUxx`` (as measured) and ``ad:faced_AUxx`` (minus the person's neutral), each with a
weight >= 0 in the AU's map. The directions are a ridge regression of the reference on the
descriptor and its change from the clip's median (``aupipe.learning.calibration_fit``). Sided AUs apply the same map to each
side's signals (``AUxx_left_r`` / ``AUxx_right_r``); ``AUxx_r`` applies it to the mean of the sides.
"""

from __future__ import annotations

from typing import Any

import base64
import binascii
import functools
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.errors import InputError

CALIBRATION_FILE = "au_calibration.json"
#: sha256 of the shipped calibration file (``scripts/fit_au_calibration.py`` prints it).
CALIBRATION_SHA256 = "31ca3fb91784c707e78ee046aee9c28a00487c4762b234c7249f15df3cf37ec0"
FORMAT = "aupipe-au-calibration"
FORMAT_VERSION = 3
#: The first version whose face scores read today's descriptor (Felzenszwalb HOG of the masked 112-pixel face).
DESCRIPTOR_VERSION = 3

#: Knots (on the z scale, 0-5 units) of the monotone output ramp.
RAMP_KNOTS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0)

#: Candidate signals per AU: ``bs:NAME`` blendshape score, ``bsd:NAME`` the same minus the
#: person's neutral, ``g:+MEASURE`` / ``g:-MEASURE`` a geometric measure's change from the
#: neutral (sign: the AU's direction), ``a:KIND_REGION`` a region's texture (``aupipe.signal.appearance``)
#: and ``ad:`` its change from the neutral, ``hand`` the hand-scaled intensity. A blendshape stem
#: with ``Left``/``Right`` variants and a measure or region with ``_left``/``_right`` ones are sided.
SIGNALS: dict[str, tuple[str, ...]] = {
    "AU01": ("hand", "bs:browInnerUp", "bsd:browInnerUp", "g:+brow_inner_y", "bsd:browOuterUp", "ad:gy_forehead"),
    "AU02": ("hand", "bs:browOuterUp", "bsd:browOuterUp", "g:+brow_outer_y", "bsd:browInnerUp", "ad:gy_forehead"),
    "AU04": (
        "hand",
        "bs:browDown",
        "bsd:browDown",
        "g:-brow_y",
        "g:-brow_inner_x",
        "a:gy_glabella",
        "ad:gy_glabella",
        "a:gx_glabella",
        "ad:gx_glabella",
    ),
    "AU05": ("hand", "bs:eyeWide", "bsd:eyeWide", "g:+upper_lid_y", "g:+eye_aperture"),
    "AU06": (
        "hand",
        "bs:cheekSquint",
        "bsd:cheekSquint",
        "g:+cheek_y",
        "bs:eyeSquint",
        "g:+lower_lid_y",
        "ad:gy_lower_lid",
    ),
    "AU07": ("hand", "bs:eyeSquint", "bsd:eyeSquint", "g:+lower_lid_y", "g:-eye_aperture", "a:gy_lower_lid"),
    "AU09": ("hand", "bs:noseSneer", "bsd:noseSneer", "g:+nose_wing_y", "ad:gy_nasal_root"),
    "AU10": (
        "hand",
        "bs:mouthUpperUp",
        "bsd:mouthUpperUp",
        "g:+upper_lip_y",
        "bsd:noseSneer",
        "a:gx_nasolabial",
        "ad:gx_nasolabial",
    ),
    "AU12": (
        "hand",
        "bs:mouthSmile",
        "bsd:mouthSmile",
        "g:+corner_y",
        "g:+corner_x",
        "a:gy_nasolabial",
        "ad:gy_nasolabial",
    ),
    "AU14": (
        "hand",
        "bs:mouthDimple",
        "bsd:mouthDimple",
        "g:+corner_x",
        "bs:mouthPress",
        "bsd:mouthPress",
        "a:gy_corner",
        "ad:gy_corner",
    ),
    "AU15": ("hand", "bs:mouthFrown", "bsd:mouthFrown", "g:-corner_y"),
    "AU17": (
        "hand",
        "bs:mouthShrugLower",
        "bsd:mouthShrugLower",
        "g:+chin_y",
        "bsd:mouthShrugUpper",
        "a:gx_chin",
        "ad:gx_chin",
    ),
    "AU20": ("hand", "bs:mouthStretch", "bsd:mouthStretch", "g:+corner_x"),
    "AU23": (
        "hand",
        "bs:mouthPress",
        "bsd:mouthPress",
        "bsd:mouthRollLower",
        "bsd:mouthRollUpper",
        "g:-lip_thickness",
        "ad:gy_chin",
    ),
    "AU24": ("hand", "bs:mouthPress", "bsd:mouthPress", "g:-lip_thickness"),
    "AU25": ("hand", "bs:jawOpen", "bsd:mouthLowerDown", "g:+lip_gap", "bs:mouthLowerDown"),
    "AU26": ("hand", "bs:jawOpen", "bsd:jawOpen", "g:-jaw_y"),
    "AU28": ("hand", "bs:mouthRollLower", "bs:mouthRollUpper"),
    "AU43": ("hand", "bs:eyeBlink", "bsd:eyeBlink", "g:-eye_aperture"),
}
#: AUs whose maps may read the face score only as a change from the neutral (``ad:faced_``), not
#: as measured (``a:face_``): the lips and jaw, which speech moves syllable by syllable. The
#: measured score carries the face's resting look and holds them up between syllables.
CHANGE_ONLY: tuple[str, ...] = ("AU25", "AU26")
SIGNALS = {au: (*names, *(() if au in CHANGE_ONLY else (f"a:face_{au}",)), f"ad:faced_{au}") for au, names in SIGNALS.items()}


@dataclass(frozen=True)
class AuMap:
    """One AU's map. form: "hand" (unchanged), "linear" (clip(z)) or "ramp" (clip(ramp(z)));
    signals/weights: z's terms (weights >= 0); intercept: z's constant (0-5 units);
    ramp: increments (>= 0) of the ramp over ``RAMP_KNOTS`` and its offset last (len(knots))."""

    form: str = "hand"
    signals: tuple[str, ...] = ("hand",)
    weights: tuple[float, ...] = (1.0,)
    intercept: float = 0.0
    ramp: tuple[float, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"form": self.form, "signals": list(self.signals), "weights": [round(w, 6) for w in self.weights],
                "intercept": round(self.intercept, 6), "ramp": [round(c, 6) for c in self.ramp]}  # fmt: skip


@dataclass(frozen=True)
class Population:
    """The population's neutral face: blendshape scores (0..1) and geometric measures (face widths)
    medians over people, the measures' between-person spread (robust SD) and the median
    expressiveness (sum of blendshape AUs, 0-5 units) of neutral frames."""

    blendshape: pd.Series
    geometry: pd.Series
    spread: pd.Series
    expressiveness: float


@dataclass(frozen=True)
class AuAppearance:
    """Fitted face-descriptor directions: ``aus`` (k,), ``mean`` (DESCRIPTOR_DIMS,), ``raw`` and
    ``delta`` (k, DESCRIPTOR_DIMS), in 0-5 units per descriptor unit, and ``offset`` (k,, 0-5
    units): ``a_face_AUxx`` + the change of ``a_faced_AUxx`` from the neutral is the ridge's
    prediction of the AU (module doc)."""

    aus: tuple[str, ...]
    mean: np.ndarray
    raw: np.ndarray
    delta: np.ndarray
    offset: np.ndarray

    def columns(self) -> list[str]:
        """The frame-table columns these directions give, in order."""
        return [f"a_face{kind}_{au}" for au in self.aus for kind in ("", "d")]

    def scores(self, descriptor: np.ndarray) -> dict[str, np.ndarray]:
        """Frame-table columns (n,) of descriptor (n, DESCRIPTOR_DIMS); NaN rows stay NaN."""
        weights, shift = self._projection
        values = np.asarray(descriptor, dtype=np.float64) @ weights + shift  # float64: equal whatever the chunking
        return {name: values[:, k] for k, name in enumerate(self.columns())}

    @functools.cached_property
    def _projection(self) -> tuple[np.ndarray, np.ndarray]:
        """(DESCRIPTOR_DIMS, 2k) weights and (2k,) shift of ``scores``, columns in ``columns()`` order."""
        weights = np.stack([self.raw, self.delta], axis=1).reshape(-1, self.raw.shape[1]).T.astype(np.float64)
        shift = -self.mean.astype(np.float64) @ weights + np.stack([self.offset, np.zeros_like(self.offset)], axis=1).reshape(-1)
        return weights, shift

    def to_json(self) -> dict[str, object]:
        def packed(values: np.ndarray) -> str:
            return base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")

        return {"aus": list(self.aus), "dtype": "float32-le-base64", "mean": packed(self.mean),
                "raw": packed(self.raw), "delta": packed(self.delta),
                "offset": [round(float(v), 6) for v in self.offset]}  # fmt: skip


def appearance_from_json(data: dict[str, object], source: str) -> AuAppearance:
    """``AuAppearance.to_json``'s inverse; a malformed one is an ``InputError``."""
    from aupipe.signal.appearance import DESCRIPTOR_DIMS

    names = tuple(str(au) for au in data["aus"])  # type: ignore[attr-defined]

    def unpacked(key: str, shape: tuple[int, ...]) -> np.ndarray:
        packed = base64.b64decode(str(data[key]), validate=True)
        if len(packed) % 4:
            raise InputError(f"{source}: appearance {key}: {len(packed)} bytes, not float32 values")
        values = np.frombuffer(packed, dtype="<f4")
        if values.size != int(np.prod(shape)):
            raise InputError(f"{source}: appearance {key}: {values.size} values, expected {int(np.prod(shape))}")
        return values.reshape(shape).astype(np.float32)

    offset = np.asarray([float(v) for v in data["offset"]], dtype=np.float32)  # type: ignore[attr-defined]
    if offset.shape != (len(names),):
        raise InputError(f"{source}: appearance offset: {offset.size} values, expected {len(names)}")
    return AuAppearance(names, unpacked("mean", (DESCRIPTOR_DIMS,)), unpacked("raw", (len(names), DESCRIPTOR_DIMS)),
                        unpacked("delta", (len(names), DESCRIPTOR_DIMS)), offset)  # fmt: skip


@dataclass(frozen=True)
class AuCalibration:
    """Per-AU maps plus the population neutral and (optionally) the fitted HOG directions;
    ``source`` names where it came from."""

    maps: dict[str, AuMap]
    population: Population | None
    source: str = "hand scales"
    meta: dict[str, object] = field(default_factory=dict)
    appearance: AuAppearance | None = None

    def to_json(self) -> dict[str, object]:
        population = None
        if self.population is not None:
            p = self.population
            population = {
                "blendshape": {k: round(float(v), 6) for k, v in p.blendshape.items()},
                "geometry": {k: round(float(v), 6) for k, v in p.geometry.items()},
                "spread": {k: round(float(v), 6) for k, v in p.spread.items()},
                "expressiveness": round(float(p.expressiveness), 6),
            }
        return {"format": FORMAT, "version": FORMAT_VERSION, "meta": self.meta, "population": population,
                "aus": {au: m.to_json() for au, m in self.maps.items()},
                "appearance": self.appearance.to_json() if self.appearance is not None else None}  # fmt: skip


HAND = AuCalibration(maps={}, population=None)


def from_json(data: dict[str, object], source: str) -> AuCalibration:
    """A calibration from its JSON form; a malformed one is an ``InputError`` naming ``source``."""
    from aupipe.signal.facs import AU_NAMES

    try:
        if data.get("format") != FORMAT or int(data["version"]) > FORMAT_VERSION:  # type: ignore[call-overload]
            raise InputError(f"{source}: not an aupipe AU calibration of version <= {FORMAT_VERSION}")
        maps: dict[str, AuMap] = {}
        for au, spec in dict(data["aus"]).items():  # type: ignore[call-overload]
            if au not in AU_NAMES:
                raise InputError(f"{source}: unknown AU {au!r}")
            m = AuMap(str(spec["form"]), tuple(spec["signals"]), tuple(float(w) for w in spec["weights"]),
                      float(spec["intercept"]), tuple(float(c) for c in spec["ramp"]))  # fmt: skip
            _check_map(au, m, source)
            maps[au] = m
        population = None
        if data.get("population"):
            p = dict(data["population"])  # type: ignore[call-overload]
            population = Population(pd.Series(p["blendshape"], dtype=float), pd.Series(p["geometry"], dtype=float),
                                    pd.Series(p["spread"], dtype=float), float(p["expressiveness"]))  # fmt: skip
        appearance = None
        if data.get("appearance"):
            if int(data["version"]) < DESCRIPTOR_VERSION:  # type: ignore[call-overload]
                raise InputError(f"{source}: its face scores were fitted on an earlier aupipe's face descriptor; "
                                 "fit it again with `aupipe calibrate`")  # fmt: skip
            appearance = appearance_from_json(dict(data["appearance"]), source)  # type: ignore[call-overload]
    except (KeyError, TypeError, ValueError, binascii.Error) as err:
        raise InputError(f"{source}: malformed AU calibration ({err})") from None
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    return AuCalibration(maps, population, source, dict(meta), appearance)  # type: ignore[arg-type]


def with_appearance_scores(frames: pd.DataFrame, calibration: AuCalibration) -> pd.DataFrame:
    """A frame table with ``desc_0000``... columns (the face descriptor, ``PipelineSettings.include_descriptor``)
    as the pipeline gives it under ``calibration``: its face-score columns added, the descriptor dropped."""
    descriptor_columns = [c for c in frames.columns if c.startswith("desc_")]
    if not descriptor_columns:
        return frames
    out = frames.drop(columns=descriptor_columns)
    if calibration.appearance is None:
        return out
    scores = calibration.appearance.scores(frames[descriptor_columns].to_numpy(dtype=np.float32))
    return pd.concat([out, pd.DataFrame(scores, index=out.index)], axis=1)  # one block: no fragmented-frame warning


def _check_map(au: str, m: AuMap, source: str) -> None:
    if m.form not in ("hand", "linear", "ramp"):
        raise InputError(f"{source}: {au}: unknown form {m.form!r}")
    if len(m.signals) != len(m.weights) or any(w < 0 for w in m.weights):
        raise InputError(f"{source}: {au}: signals and weights (all >= 0) must pair up")
    if m.form == "ramp" and (len(m.ramp) != len(RAMP_KNOTS) or any(c < 0 for c in m.ramp[:-1])):
        raise InputError(f"{source}: {au}: the ramp needs {len(RAMP_KNOTS)} values, increments >= 0")
    for name in m.signals:
        if name != "hand" and name not in SIGNALS.get(au, ()):
            raise InputError(f"{source}: {au}: unknown signal {name!r}")


@functools.lru_cache(maxsize=8)
def load_calibration(path: str | None = None) -> AuCalibration:
    """The shipped calibration (``path`` None, sha256-checked), "hand" for the hand scales, or a file
    or folder written by ``aupipe calibrate`` (``DIR/au_calibration.json``)."""
    if path == "hand":
        return HAND
    if path is None:
        data = resources.files("aupipe").joinpath("models", CALIBRATION_FILE).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != CALIBRATION_SHA256:
            from aupipe.errors import AupipeError

            raise AupipeError(
                f"bundled {CALIBRATION_FILE} has sha256 {digest[:12]}..., expected {CALIBRATION_SHA256[:12]}...; "
                "reinstall aupipe"
            )
        return from_json(json.loads(data), "shipped AU calibration")
    target = Path(path)
    if target.is_dir():
        target = target / CALIBRATION_FILE
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path}: no AU calibration there (expected {CALIBRATION_FILE}, see aupipe calibrate)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read the AU calibration ({err})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not an aupipe AU calibration")
    return from_json(data, str(target))


def _parse(name: str) -> tuple[str, str, float]:
    """``bs:x`` -> ("bs", "x", 1); ``g:-m`` -> ("g", "m", -1); ``hand`` -> ("hand", "", 1)."""
    if name == "hand":
        return "hand", "", 1.0
    kind, stem = name.split(":", 1)
    sign = -1.0 if stem.startswith("-") else 1.0
    return kind, stem.lstrip("+-"), sign


def _mean_of(table: Any, names: list[str]) -> np.ndarray:
    """Row means (n,) of the columns ``names`` of a DataFrame or a dict of (n,) arrays."""
    if len(names) == 1:
        return np.asarray(table[names[0]], dtype=np.float64)
    return np.stack([np.asarray(table[n], dtype=np.float64) for n in names], axis=1).mean(axis=1)


def signal_values(
    name: str, au: str, side: str | None, blendshapes: Any, measures: Any,
    neutral_blendshape: pd.Series, neutral_geometry: pd.Series, hand: Any,
) -> np.ndarray:  # fmt: skip
    """One signal (n,) for ``side`` ("left", "right" or None = the mean of both sides).

    blendshapes: (n, 52+) raw scores named as MediaPipe (``mouthSmileLeft``...) and appearance
    textures (``a_gx_glabella``...); measures: (n, k)
    ``aus.MEASURES``; neutral_*: the person's neutral of both; hand: hand-scaled ``au_columns()``.
    The tables are DataFrames or dicts of (n,) arrays by column name (the same values either way).
    """
    kind, stem, sign = _parse(name)
    if kind == "hand":
        column = f"{au}_{side}_r" if side and f"{au}_{side}_r" in hand else f"{au}_r"
        return np.asarray(hand[column], dtype=np.float64)
    if kind in ("a", "ad"):
        if stem.startswith("face") and f"a_{stem}" not in blendshapes:  # a table measured without them: 0, no change
            return np.zeros_like(signal_values("hand", au, side, blendshapes, measures, neutral_blendshape, neutral_geometry, hand))
        sided = f"a_{stem}_left" in blendshapes
        names = ([f"a_{stem}_{side}"] if side else [f"a_{stem}_left", f"a_{stem}_right"]) if sided else [f"a_{stem}"]
        value = _mean_of(blendshapes, names)
        if kind == "ad":
            neutral = float(np.mean([neutral_blendshape.get(n, np.nan) for n in names]))
            value = value - (0.0 if stem.startswith("face") and not np.isfinite(neutral) else neutral)
        return value
    if kind in ("bs", "bsd"):
        sided = f"{stem}Left" in blendshapes
        names = ([f"{stem}{side.title()}"] if side else [f"{stem}Left", f"{stem}Right"]) if sided else [stem]
        value = _mean_of(blendshapes, names)
        if kind == "bsd":
            value = value - float(np.mean([neutral_blendshape[n] for n in names]))
        return value
    sided = f"{stem}_left" in measures
    names = ([f"{stem}_{side}"] if side else [f"{stem}_left", f"{stem}_right"]) if sided else [stem]
    value = _mean_of(measures, names)
    return sign * (value - float(np.mean([neutral_geometry[n] for n in names])))


def ramp_basis(z: np.ndarray) -> np.ndarray:
    """(n, len(RAMP_KNOTS)) basis of the monotone ramp: one 0..1 segment per knot interval, then 1."""
    knots = RAMP_KNOTS
    parts = [np.clip((z - knots[i]) / (knots[i + 1] - knots[i]), 0.0, 1.0) for i in range(len(knots) - 1)]
    return np.stack([*parts, np.ones_like(z)], axis=1)


def apply_map(m: AuMap, signals: np.ndarray) -> np.ndarray:
    """Intensity (n,) 0-5 of (n, len(m.signals)) signal values; NaN rows stay NaN."""
    z = signals @ np.asarray(m.weights, dtype=np.float64) + m.intercept
    if m.form == "ramp":
        finite = np.isfinite(z)
        out = np.full(len(z), np.nan)
        out[finite] = ramp_basis(z[finite]) @ np.asarray(m.ramp, dtype=np.float64)
        z = out
    return np.clip(z, 0.0, 5.0)


def calibrated_intensity(
    calibration: AuCalibration, blendshapes: pd.DataFrame, measures: pd.DataFrame,
    neutral_blendshape: pd.Series, neutral_geometry: pd.Series, hand: pd.DataFrame,
) -> pd.DataFrame:  # fmt: skip
    """AU intensities (``aus.au_columns()``, 0-5, unfiltered): each AU's map over its signals.

    AUs without a map, or with form "hand", keep their hand-scaled columns.
    """
    from aupipe.signal.facs import SIDED_AUS

    def arrays(table: pd.DataFrame) -> dict[str, np.ndarray]:  # column lookups in a dict, not a DataFrame
        values = table.to_numpy(dtype=np.float64)
        return {c: values[:, i] for i, c in enumerate(table.columns)}

    shapes, geometry, scaled = arrays(blendshapes), arrays(measures), arrays(hand)
    out = dict(scaled)
    for au, m in calibration.maps.items():
        if m.form == "hand":
            continue
        sides: tuple[str | None, ...] = (None, "left", "right") if au in SIDED_AUS else (None,)
        for side in sides:
            columns = [
                signal_values(name, au, side, shapes, geometry, neutral_blendshape, neutral_geometry, scaled)
                for name in m.signals
            ]
            target = f"{au}_{side}_r" if side else f"{au}_r"
            out[target] = apply_map(m, np.stack(columns, axis=1))
    return pd.DataFrame(out, index=hand.index)
