"""An appearance-level test-footage generator that shares nothing with aupipe's AU model.

``aupipe synth`` moves landmarks by the same AU motions the detector measures, so its footage
rewards agreement with itself. This generator instead blends *real apex frames* of the same
person into neutral base footage: each event cross-fades the face of a real expressive frame
(another clip of the same actor; its wrinkles, furrows and mouth shape are real) into the base
frame, aligned by a similarity transform on rigid landmarks (eye corners, nose bridge, temples)
and feathered over the face's convex hull. The blend weight follows a raised-cosine rise, hold
and fall (``aupipe.events.synth.profile``: only the timing is shared) with an amplitude in
``amplitude`` (0 = base, 1 = the apex frame), so events reach from barely visible to full.

The apex frames are chosen by OpenFace 2.2's AU intensities in ``../shared/corpus/openface``
(the frame with the largest sum of AU intensities, speech AUs left out), never by aupipe's.
Ground truth: the injected interval, micro when it lasts at most 500 ms, and the AUs OpenFace
reads at >= 1 on the apex frame.

Used by benchmarks/spotting_independent.py; usable alone:
    python benchmarks/blend_footage.py BASE.flv OUT.avi --apex HAP.flv --apex ANG.flv --minutes 1
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPUS = ROOT.parent / "shared" / "corpus"
#: Landmarks that expressions barely move: eye corners, nose bridge and tip, temples.
RIGID_LANDMARKS: tuple[int, ...] = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 234, 454, 127, 356)
SPEECH_AUS = ("AU25", "AU26", "AU45")
Source = TypeVar("Source")


@dataclass(frozen=True)
class Apex:
    """A real expressive frame: rgb (H, W, 3) uint8, its landmarks (478, 2) in pixels, and the AUs
    OpenFace reads at >= 1 there (space-separated)."""

    name: str
    rgb: np.ndarray
    landmarks_px: np.ndarray
    aus: str


def openface_table(stem: str, corpus: Path = CORPUS) -> pd.DataFrame:
    """OpenFace 2.2's per-frame table of corpus clip ``stem`` (``corpus/openface/<stem>.csv``)."""
    table = pd.read_csv(corpus / "openface" / f"{stem}.csv", skipinitialspace=True)
    table.columns = table.columns.str.strip()
    return table


def openface_apex_frame(clip: Path, corpus: Path = CORPUS) -> tuple[int, str]:
    """0-based index of ``clip``'s most expressive frame by OpenFace (sum of ``AUxx_r`` without
    speech AUs, successful frames only) and the AUs it reads at >= 1 there."""
    table = openface_table(clip.stem, corpus)
    columns = [c for c in table.columns if c.endswith("_r") and c[:-2] not in SPEECH_AUS]
    total = table[columns].sum(axis=1).where(table["success"] == 1, -1.0)
    row = int(total.to_numpy().argmax())
    aus = " ".join(c[:-2] for c in columns if table[c].iloc[row] >= 1.0)
    return int(table["frame"].iloc[row]) - 1, aus


def load_apex(clip: Path, corpus: Path = CORPUS) -> Apex:
    """The OpenFace-chosen apex frame of ``clip`` with aupipe's landmarks (used only to align it)."""
    from aupipe.signal import landmarks, video

    index, aus = openface_apex_frame(clip, corpus)
    frame = next(iter(video.iter_frames(clip, start=index, stop=index + 1)))
    with landmarks.open_landmarker() as landmarker:
        batch = landmarks.detect(landmarker, [frame])
    if not batch.face_found[0]:
        raise RuntimeError(f"{clip}: no face on apex frame {index}")
    return Apex(clip.stem, frame.rgb, batch.landmarks_px[0, :, :2].astype(np.float64), aus)


def blend(base_rgb: np.ndarray, base_px: np.ndarray, apex: Apex, weight: float) -> np.ndarray:
    """``base_rgb`` with ``apex``'s face cross-faded in at ``weight`` (0..1): the apex frame is
    warped by the similarity transform that maps its rigid landmarks onto ``base_px`` (478, 2)
    and blended inside the base face's convex hull, feathered by about 4 % of the face width."""
    import cv2

    matrix, _ = cv2.estimateAffinePartial2D(
        apex.landmarks_px[list(RIGID_LANDMARKS)].astype(np.float32), base_px[list(RIGID_LANDMARKS)].astype(np.float32)
    )
    if matrix is None:
        return base_rgb
    height, width = base_rgb.shape[:2]
    warped = cv2.warpAffine(apex.rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    hull = cv2.convexHull(base_px.astype(np.int32))
    mask = np.zeros((height, width), np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0)
    face_px = float(np.ptp(base_px[:, 0]))
    sigma = max(1.0, 0.04 * face_px)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=max(1, int(sigma)))
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)[..., None] * float(weight)
    out = base_rgb.astype(np.float32) * (1.0 - mask) + warped.astype(np.float32) * mask
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def move_head(bgr: np.ndarray, time_ms: float, amplitude: float, seed: int = 0) -> np.ndarray:
    """``bgr`` moved as a head sways: a slow rigid motion of the whole frame (shift up to
    ``amplitude`` of the frame width, rotation up to 60 * ``amplitude`` degrees, scale up to
    ``amplitude``), sums of two sinusoids of 3-9 s periods drawn from ``seed``; 0 leaves it."""
    import cv2

    if amplitude <= 0:
        return bgr
    rng = np.random.default_rng(seed)
    periods = rng.uniform(3000.0, 9000.0, (4, 2))
    phases = rng.uniform(0.0, 2 * np.pi, (4, 2))
    sway = (np.sin(2 * np.pi * time_ms / periods + phases).sum(axis=1) / 2.0).tolist()
    height, width = bgr.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 60.0 * amplitude * sway[2], 1.0 + amplitude * sway[3])
    matrix[:, 2] += (amplitude * width * sway[0], amplitude * width * sway[1])
    return cv2.warpAffine(bgr, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def render_footage(
    base_clip: Path,
    out_path: Path,
    sources: Sequence[Source],
    edit: Callable[[np.ndarray, np.ndarray, list[tuple[float, Source]]], np.ndarray],
    minutes: float,
    n_micro: int,
    n_macro: int,
    seed: int,
    amplitude: tuple[float, float],
    micro_ms: tuple[float, float],
    head_motion: float,
) -> tuple[pd.DataFrame, list[Source], np.ndarray]:
    """What both generators share: ``base_clip`` ping-pong looped to ``minutes``, ``n_micro`` +
    ``n_macro`` events scheduled (``synth.schedule``), each given one of ``sources`` and a weight in
    ``amplitude``; on every frame with a face and an active event, ``edit(rgb, landmarks_px (478, 3),
    [(profile level * weight, source), ...])`` changes the picture; the head then sways
    (``move_head``) and the frame goes to ``out_path`` (.avi, MJPG; written beside it and renamed).
    Returns synth's truth table (plus ``weight``), the source of each event and the weights."""
    import tempfile

    import cv2

    from aupipe.events import synth
    from aupipe.signal import landmarks, video

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.avi"
        synth.synthesize(base_clip, base, events=[], duration_s=minutes * 60.0)
        info = video.probe(base)
        settings = synth.SynthSettings(micro_ms=micro_ms)
        events = synth.schedule(info.frame_count * 1000.0 / info.fps, n_micro, n_macro, seed, settings)
        chosen = [sources[int(rng.integers(len(sources)))] for _ in events]
        weights = rng.uniform(*amplitude, len(events))
        writer = None
        tmp_out = out_path.with_name(f".{out_path.name}.part.avi")
        try:
            with landmarks.open_landmarker() as landmarker:
                for frames, batch in landmarks.detect_batches(landmarker, video.iter_frames(base), 64):
                    for k, frame in enumerate(frames):
                        rgb = frame.rgb
                        levels = [float(synth.profile(np.array([frame.time_ms]), e)[0]) for e in events]
                        active = [(lv * w, src) for lv, w, src in zip(levels, weights, chosen, strict=True) if lv > 0]
                        if batch.face_found[k] and active:
                            rgb = edit(rgb, batch.landmarks_px[k].astype(np.float64), active)
                        if writer is None:
                            size = (rgb.shape[1], rgb.shape[0])
                            writer = cv2.VideoWriter(str(tmp_out), cv2.VideoWriter_fourcc(*"MJPG"), info.fps, size)
                        writer.write(move_head(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), frame.time_ms, head_motion, seed))
        finally:
            if writer is not None:
                writer.release()
        tmp_out.replace(out_path)
    truth = synth.truth_table(events, info.fps)
    truth["weight"] = np.round(weights, 3)
    return truth, chosen, weights


def make_footage(
    base_clip: Path,
    apex_clips: Sequence[Path],
    out_path: Path,
    minutes: float = 1.0,
    n_micro: int = 10,
    n_macro: int = 3,
    seed: int = 0,
    amplitude: tuple[float, float] = (0.35, 1.0),
    micro_ms: tuple[float, float] = (70.0, 480.0),
    corpus: Path = CORPUS,
    head_motion: float = 0.03,
) -> pd.DataFrame:
    """Write ``out_path`` (.avi, MJPG): ``base_clip`` ping-pong looped to ``minutes``, the head
    swaying (``move_head`` with ``head_motion``), with ``n_micro`` + ``n_macro`` blended events
    (blended before the sway, so the apex face moves with the head); returns the ground truth
    (synth's truth columns plus ``apex`` and ``weight``)."""

    def edit(rgb: np.ndarray, points_px: np.ndarray, active: list[tuple[float, Apex]]) -> np.ndarray:
        for weight, apex in active:
            rgb = blend(rgb, points_px[:, :2], apex, weight)
        return rgb

    apexes = [load_apex(Path(c), corpus) for c in apex_clips]
    truth, chosen, _ = render_footage(base_clip, out_path, apexes, edit, minutes, n_micro, n_macro, seed,
                                      amplitude, micro_ms, head_motion)  # fmt: skip
    truth.insert(truth.columns.get_loc("weight"), "apex", [apex.name for apex in chosen])
    truth["aus"] = [apex.aus for apex in chosen]
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--apex", type=Path, action="append", required=True, help="clip whose OpenFace apex is blended in"
    )
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--micro", type=int, default=10)
    parser.add_argument("--macro", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth", type=Path)
    args = parser.parse_args()
    truth = make_footage(args.base, args.apex, args.out, args.minutes, args.micro, args.macro, args.seed)
    if args.truth:
        truth.to_csv(args.truth, index=False)
    print(truth.to_string())


if __name__ == "__main__":
    main()
