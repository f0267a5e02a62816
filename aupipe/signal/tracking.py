"""Face tracking: a ``face_id`` per face found, stable across frames (``--faces N``).

MediaPipe returns up to N faces per frame in no fixed order. Each frame's faces are matched to
the known tracks in two passes, each an optimal assignment (Hungarian, ``scipy``):

1. **Motion**: tracks seen in the last ``motion_s`` seconds and not separated from this frame
   by a shot change. Cost = distance from the track's predicted centre (last centre + velocity
   x frames since) to the face's centre, in face sizes, plus the log size ratio. A pair costing
   over ``motion_gate`` is not a match.
2. **Re-identification**: faces left over, against tracks left over (gone for a while, or cut
   away). Cost = distance between identity signatures (``identity_signature``: ratios of the
   normalised mesh that expressions barely move), in units of their frame-to-frame noise, plus
   (within a shot) a small position term. Over ``reid_gate``: a new id.

A shot change (``shot_change`` above ``shot_change_threshold``, from ``landmarks.shot_change_score``)
ends every track's motion: after a cut faces can only get an old id back by re-identification.

An id can still change (docs/faces.md): when a face is lost for longer than ``motion_s`` and its
signature is closer to another known face's (people who look alike, a strongly turned head),
or when two faces cross so closely that the motion pass cannot tell them apart. Such frames are
counted as *unsure* (the two best costs within ``unsure_margin``, or a re-identification near
its gate) and reported in one warning line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from aupipe.errors import SettingsError

__all__ = [
    "SIGNATURE_COLUMNS", "TRACK_INPUT_COLUMNS", "Track", "TrackSettings", "TrackState", "identity_signature",
    "step", "unsure_message",
]  # fmt: skip

#: Rigid landmarks whose pairwise distances (in face widths) make the identity signature: eye
#: corners, nose bridge, tip and wings, upper forehead, temples.
SIGNATURE_LANDMARKS: tuple[int, ...] = (33, 263, 133, 362, 168, 6, 4, 1, 98, 327, 10, 127, 356)
_PAIRS = np.array(
    [(a, b) for i, a in enumerate(SIGNATURE_LANDMARKS) for b in SIGNATURE_LANDMARKS[i + 1 :]], dtype=np.int64
)
SIGNATURE_COLUMNS: tuple[str, ...] = tuple(f"sig_{i:02d}" for i in range(len(_PAIRS)))
#: Raw frame-table columns the tracker reads and removes (only made with ``num_faces`` > 1).
TRACK_INPUT_COLUMNS: tuple[str, ...] = ("face_slot", "shot_change", *SIGNATURE_COLUMNS)


def identity_signature(mesh: np.ndarray) -> np.ndarray:
    """Distances (n, len(SIGNATURE_COLUMNS)) between pairs of ``SIGNATURE_LANDMARKS`` of a
    normalised mesh (n, 478, 3) in face widths; NaN where no face."""
    return np.linalg.norm(mesh[:, _PAIRS[:, 0]] - mesh[:, _PAIRS[:, 1]], axis=-1).astype(np.float32)


@dataclass(frozen=True)
class TrackSettings:
    """How faces are followed (module doc).

    motion_s: a track unseen for longer is only re-identified, not followed by motion (s).
    motion_gate: largest motion cost of a match (face sizes). reid_gate: largest
    re-identification cost (below). speed_sizes_per_s: how far (face sizes per second) a face
    may have moved while away, up to ``max_away_s`` (s): the position term is the distance
    divided by 1 + speed x time away. signature_noise: typical signature distance between two
    frames of one face (face widths); the signature term is the distance in these units / 5,
    at most 1, weighed by ``signature_weight``. signature_alpha: weight of a new frame in a
    track's running signature. min_hits: frames a new face must be seen in (within
    ``motion_s``) before it gets an id; rows of a face not yet confirmed have face_id -1.
    shot_change_threshold: ``shot_change`` above it is a cut. cut_max_distance / cut_margin: a
    face first seen after a cut takes an earlier shot's id only when its mean signature is within
    this distance (noise units) of that face's and closer by the margin than to any other. unsure_margin: a match whose
    runner-up costs less than this more is unsure. max_turn_deg: faces turned further (yaw or
    pitch) do not update a track's signature.
    """

    motion_s: float = 1.0
    motion_gate: float = 1.0
    reid_gate: float = 2.5
    speed_sizes_per_s: float = 0.5
    max_away_s: float = 4.0
    signature_noise: float = 0.006
    signature_weight: float = 0.5
    signature_alpha: float = 0.05
    min_hits: int = 3
    shot_change_threshold: float = 0.45
    cut_max_distance: float = 2.0
    cut_margin: float = 0.75
    unsure_margin: float = 0.3
    max_turn_deg: float = 25.0

    def __post_init__(self) -> None:
        positive = ("motion_s", "motion_gate", "reid_gate", "signature_noise", "shot_change_threshold")
        if any(not getattr(self, name) > 0 for name in positive) or self.min_hits < 1:
            raise SettingsError(f"tracking settings must be > 0 ({', '.join(positive)}) and min_hits >= 1")


@dataclass(frozen=True)
class Track:
    """One face's track: its id, last centre and size (px), velocity (px per frame), last frame
    seen, running identity signature and the number of frames that built it."""

    face_id: int
    centre_px: tuple[float, float]
    size_px: float
    velocity_px: tuple[float, float]
    last_frame: int
    last_time_ms: float
    signature: np.ndarray
    n_signature: int
    shot: int  # the shot it was last seen in
    hits: int = 1  # frames seen

    @property
    def confirmed(self) -> bool:
        """Whether it has an id (tentative tracks have a negative provisional one)."""
        return self.face_id >= 0


@dataclass(frozen=True)
class TrackState:
    """Tracks so far, the next new id, the current shot number and the unsure frames (count,
    first few)."""

    tracks: tuple[Track, ...] = ()
    next_id: int = 0
    next_tentative: int = -2  # provisional ids of tentative tracks: -2, -3, ...
    shot: int = 0
    n_unsure: int = 0
    unsure_frames: tuple[int, ...] = ()
    previous_frame: int | None = None
    n_frames_with_face: int = 0  # frames where MediaPipe found at least one face


def _hungarian(cost: np.ndarray, gate: float) -> list[tuple[int, int]]:
    from scipy.optimize import linear_sum_assignment

    if cost.size == 0:
        return []
    big = gate * 10 + 1e6
    rows, cols = linear_sum_assignment(np.where(np.isfinite(cost) & (cost <= gate), cost, big))
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= gate]


def _signature_distance(a: np.ndarray, b: np.ndarray, settings: TrackSettings) -> float:
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return np.inf
    return float(np.sqrt(np.mean((a[both] - b[both]) ** 2)) / settings.signature_noise)


def _reid_cost(
    track: Track, centre: np.ndarray, size: float, signature: np.ndarray, time_ms: float, settings: TrackSettings
) -> float:
    """Cost of giving a face back the id of ``track`` of the same shot, not seen for a while (module
    doc); tracks of earlier shots are matched by ``_across_cut`` only."""
    signature_term = min(_signature_distance(signature, track.signature, settings) / 5.0, 1.0)
    cost = settings.signature_weight * signature_term + abs(float(np.log(size / track.size_px)))
    away_s = min((time_ms - track.last_time_ms) / 1000.0, settings.max_away_s)
    distance = float(np.linalg.norm(centre - np.asarray(track.centre_px))) / track.size_px
    return cost + distance / (1.0 + settings.speed_sizes_per_s * max(away_s, 0.0))


def _across_cut(track: Track, earlier: list[Track], settings: TrackSettings) -> Track | None:
    """The track of an earlier shot that a face newly confirmed after a cut is, or None. Sizes and
    places mean nothing across a cut, so only the signature counts: the face's mean signature
    over its first frames must be within ``cut_max_distance`` noise units of that track's, and
    closer by ``cut_margin`` than to any other earlier track; else it gets a new id (a clean
    reset: one person with two ids, never two people with one)."""
    if not earlier or track.n_signature == 0:
        return None
    distances = np.array([_signature_distance(track.signature, t.signature, settings) for t in earlier])
    best = int(np.argmin(distances))
    runner_up = np.delete(distances, best).min(initial=np.inf)
    if distances[best] <= settings.cut_max_distance and runner_up - distances[best] >= settings.cut_margin:
        return earlier[best]
    return None


def _frame(
    state: TrackState, frame: int, time_ms: float, centres: np.ndarray, sizes: np.ndarray,
    signatures: np.ndarray, turned: np.ndarray, cut: bool, settings: TrackSettings,
) -> tuple[np.ndarray, TrackState]:  # fmt: skip
    """Ids (k,) for one frame's k faces (-1: not confirmed yet), and the new state."""
    shot = state.shot + int(cut)
    horizon_ms = settings.motion_s * 1000.0
    tracks = [t for t in state.tracks if t.confirmed or (t.shot == shot and time_ms - t.last_time_ms <= horizon_ms)]
    recent = [i for i, t in enumerate(tracks) if t.shot == shot and time_ms - t.last_time_ms <= horizon_ms]
    ids = np.full(len(centres), np.iinfo(np.int64).min, dtype=np.int64)  # min: not assigned yet
    unsure = False
    # 1. motion
    motion = np.full((len(centres), len(recent)), np.inf)
    for j, i in enumerate(recent):
        t = tracks[i]
        predicted = np.asarray(t.centre_px) + np.asarray(t.velocity_px) * (frame - t.last_frame)
        motion[:, j] = np.linalg.norm(centres - predicted, axis=1) / t.size_px + np.abs(np.log(sizes / t.size_px))
    for d, j in _hungarian(motion, settings.motion_gate):
        ids[d] = tracks[recent[j]].face_id
        runner_up = min(np.delete(motion[d], j).min(initial=np.inf), np.delete(motion[:, j], d).min(initial=np.inf))
        unsure |= bool(tracks[recent[j]].confirmed and runner_up - motion[d, j] < settings.unsure_margin)
    # 2. re-identification, against confirmed tracks of this shot not matched above
    taken = set(ids.tolist())
    left = [i for i, t in enumerate(tracks) if t.confirmed and t.shot == shot and t.face_id not in taken]
    faces_left = np.flatnonzero(ids == np.iinfo(np.int64).min)
    if len(left) and len(faces_left):
        reid = np.array([
            [_reid_cost(tracks[i], centres[d], float(sizes[d]), signatures[d], time_ms, settings) for i in left]
            for d in faces_left
        ])  # fmt: skip
        for a, b in _hungarian(reid, settings.reid_gate):
            ids[faces_left[a]] = tracks[left[b]].face_id
            runner_up = np.delete(reid[a], b).min(initial=np.inf)
            unsure |= bool(reid[a, b] > 0.75 * settings.reid_gate or runner_up - reid[a, b] < settings.unsure_margin)
    next_tentative = state.next_tentative
    for d in np.flatnonzero(ids == np.iinfo(np.int64).min):  # 3. a new, tentative track
        ids[d] = next_tentative
        next_tentative -= 1
    by_id = {t.face_id: t for t in tracks}
    next_id = state.next_id
    for d, face_id in enumerate(ids.tolist()):
        old = by_id.pop(face_id, None)
        centre = (float(centres[d, 0]), float(centres[d, 1]))
        signature = signatures[d]
        if old is None:
            track = Track(face_id, centre, float(sizes[d]), (0.0, 0.0), frame, time_ms,
                          signature.copy(), int(not turned[d]), shot)  # fmt: skip
        else:
            steps = max(frame - old.last_frame, 1)
            moved = (np.asarray(centre) - np.asarray(old.centre_px)) / steps if old.shot == shot else np.zeros(2)
            velocity = tuple((0.5 * np.asarray(old.velocity_px) + 0.5 * moved).tolist()) if steps <= 3 else (0.0, 0.0)
            new_signature, n_signature = old.signature, old.n_signature
            if not turned[d] and np.isfinite(signature).all():
                weight = max(settings.signature_alpha, 1.0 / (old.n_signature + 1))
                base = np.where(np.isfinite(old.signature), old.signature, signature)
                new_signature = (1 - weight) * base + weight * signature
                n_signature += 1
            track = Track(face_id, centre, float(sizes[d]), velocity, frame, time_ms,  # type: ignore[arg-type]
                          new_signature, n_signature, shot, old.hits + 1)  # fmt: skip
        if not track.confirmed and track.hits >= settings.min_hits:
            earlier = _across_cut(track, [t for t in by_id.values() if t.confirmed and t.shot != shot
                                          and t.face_id not in ids], settings)  # fmt: skip
            if earlier is not None:  # seen before the cut: its old id, and what was known of it
                track = replace(track, face_id=earlier.face_id, hits=earlier.hits + track.hits)
                by_id.pop(earlier.face_id)
            else:
                track = replace(track, face_id=next_id)
                next_id += 1
        by_id[track.face_id] = track
        ids[d] = track.face_id if track.confirmed else -1
    new = replace(
        state, tracks=tuple(sorted(by_id.values(), key=lambda t: t.face_id)), next_id=next_id,
        next_tentative=next_tentative, shot=shot, n_unsure=state.n_unsure + int(unsure),
        unsure_frames=state.unsure_frames + ((frame,) if unsure and len(state.unsure_frames) < 5 else ()),
        previous_frame=frame,
    )  # fmt: skip
    return ids, new


def step(
    state: TrackState, raw: pd.DataFrame, settings: TrackSettings = TrackSettings()
) -> tuple[pd.DataFrame, TrackState]:
    """Give each row of a raw frame table (one row per face found, ``face_found`` False rows for
    frames without one; ``TRACK_INPUT_COLUMNS`` present) its ``face_id`` (-1 on rows without a
    face); returns the rows without the tracker's input columns, and the new state. Frames must
    come in order."""
    frames = raw["frame"].to_numpy(dtype=np.int64)
    found = raw["face_found"].to_numpy(dtype=bool)
    centres = np.stack([raw["box_x_px"].to_numpy(float) + raw["box_w_px"].to_numpy(float) / 2,
                        raw["box_y_px"].to_numpy(float) + raw["box_h_px"].to_numpy(float) / 2], axis=1)  # fmt: skip
    sizes = raw["face_width_px"].to_numpy(float)
    signatures = raw[list(SIGNATURE_COLUMNS)].to_numpy(np.float64)
    turn = np.fmax(np.abs(raw["yaw_deg"].to_numpy(float)), np.abs(raw["pitch_deg"].to_numpy(float)))
    turned = ~(turn <= settings.max_turn_deg)
    cut_score = raw["shot_change"].to_numpy(float)
    times = raw["time_ms"].to_numpy(float)
    ids = np.full(len(raw), -1, dtype=np.int64)
    bounds = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        cut = bool(cut_score[lo] > settings.shot_change_threshold) and state.previous_frame is not None
        rows = np.arange(lo, hi)[found[lo:hi] & (sizes[lo:hi] > 0)]
        if not len(rows):
            if cut:
                state = replace(state, shot=state.shot + 1)
            state = replace(state, previous_frame=int(frames[lo]))
            continue
        ids[rows], state = _frame(
            state, int(frames[lo]), float(times[lo]), centres[rows], sizes[rows], signatures[rows], turned[rows],
            cut, settings,
        )  # fmt: skip
        state = replace(state, n_frames_with_face=state.n_frames_with_face + 1)
    out = raw.drop(columns=[c for c in TRACK_INPUT_COLUMNS if c in raw.columns])
    column = pd.DataFrame({"face_id": ids}, index=out.index)
    return pd.concat([out.iloc[:, :1], column, out.iloc[:, 1:]], axis=1), state  # not insert: wide tables


def unsure_message(state: TrackState) -> str | None:
    """The warning line for a run whose tracker was unsure on some frames; None when it never was."""
    if not state.n_unsure:
        return None
    frames = ", ".join(str(f) for f in state.unsure_frames)
    more = ", ..." if state.n_unsure > len(state.unsure_frames) else ""
    return (
        f"face tracking was unsure on {state.n_unsure} frame(s) (frames {frames}{more}): "
        "faces crossed or a returning face looked like another; check face_id there (docs/faces.md)"
    )
