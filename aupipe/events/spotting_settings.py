"""Spotting's settings and vocabulary: which AUs are spotted, the event columns, ``SpottingSettings`` (aupipe.events.spotting)."""

from __future__ import annotations


from dataclasses import dataclass


from aupipe.signal import aus
from aupipe.errors import SettingsError


SPEECH_AUS: tuple[str, ...] = ("AU25", "AU26")


BLINK_AU = "AU43"


#: AUs a blink moves (eyelids); they do not count during a blink.
EYELID_AUS: tuple[str, ...] = ("AU05", "AU07")


#: Lower-face AUs: speech moves the lips and jaw through them several times a second.
LOWER_FACE_AUS: tuple[str, ...] = ("AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU23", "AU24", "AU28")


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
    "kind", "aus", "peaks", "within_macro", "confidence",
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
    blink_level / blink_pad_ms: ``AU43_r`` that marks a blink, and its widening; blink_aus: the
    AUs that do not count during a blink (the eyelid AUs).
    speech_factor / speech_aus: on frames the ``speaking`` signal marks, these (lower-face) AUs'
    activation is divided by ``speech_factor`` (1 = speech is not treated apart).
    confidence_scale / min_confidence: an event's confidence is 1 - exp(-(strength - 1) / scale)
    with strength = its strongest AU's peak activation + half that of the strongest other AU;
    events below ``min_confidence`` are not reported (0 reports every event).
    max_piece_s: longest stretch of unbroken activity before a forced cut (bounds memory).
    """

    aus: tuple[str, ...] = DEFAULT_AUS
    blinks: bool = False
    motion: bool = True
    context_s: float = 120.0
    stat_step_ms: float = 500.0
    rest_percentile: float = 20.0
    range_percentile: float = 85.0
    onset_threshold: float = 0.8
    range_factor: float = 1.2
    min_motion_px: float = 1.0
    envelope_frames: int = 31
    envelope_percentile: float = 80.0
    usual_margin: float = 0.5
    boundary_level: float = 0.3
    peak_fraction: float = 0.3
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
    blink_aus: tuple[str, ...] = EYELID_AUS
    speech_factor: float = 1.0
    speech_aus: tuple[str, ...] = LOWER_FACE_AUS
    confidence_scale: float = 0.3
    min_confidence: float = 0.3
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
        if not (0.0 <= self.min_confidence <= 1.0 and self.confidence_scale > 0 and self.speech_factor >= 1.0):
            raise SettingsError("spotting: need 0 <= min_confidence <= 1, confidence_scale > 0 and speech_factor >= 1")
        unknown_gated = [a for a in (*self.blink_aus, *self.speech_aus) if a not in aus.AU_NAMES]
        if unknown_gated:
            raise SettingsError(f"spotting: unknown AU {unknown_gated[0]} in blink_aus or speech_aus")
        if self.max_piece_s * 1000.0 < 2 * self.max_ms:
            raise SettingsError("spotting: max_piece_s must be at least twice max_ms")

    @property
    def spotted(self) -> tuple[str, ...]:
        """The AUs that can make an event (``aus`` plus AU43 when ``blinks``)."""
        return tuple(dict.fromkeys((*self.aus, BLINK_AU) if self.blinks else self.aus))
