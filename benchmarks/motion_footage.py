"""A motion-transfer test-footage generator: real people's expression motion retargeted onto another face.

``aupipe synth`` moves the face by the detector's own AU motions (anchors, directions, fall-off),
so its footage rewards agreement with itself. Here the motion comes from real expressions: for
each source clip of ``../shared/corpus`` OpenFace 2.2 picks the most expressive frame (largest
sum of AU intensities, speech AUs left out) and the least expressive one; the displacement of the
whole normalised mesh between the two (face widths, rigid head motion removed) is that person's
real expression. Each event retargets one such displacement onto the base face (the least-squares
map from the canonical mesh to its image points, ``synth.image_map``) and warps the image
(``synth.warp_frame``), with a raised-cosine rise, hold and fall and an amplitude in ``amplitude``.
Only the renderer and the timing are shared with ``aupipe synth``; what moves, where and how much
comes from the real face.

Ground truth: the injected interval, micro when it lasts at most 500 ms, and the AUs OpenFace
reads at >= 1 on the source's apex frame (minus those at its neutral frame).

Used by benchmarks/spotting_independent.py; usable alone:
    python benchmarks/motion_footage.py BASE.flv OUT.avi --source liveportrait_d6 --source smirk_dafoe
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CORPUS = ROOT.parent / "shared" / "corpus"
SPEECH_AUS = ("AU25", "AU26", "AU45")


@dataclass(frozen=True)
class Motion:
    """One real expression: the normalised-mesh displacement (478, 3) in face widths from the
    source person's least to most expressive frame, and the AUs OpenFace adds there."""

    name: str
    displacement_fw: np.ndarray
    aus: str


def _openface(clip: str, corpus: Path) -> pd.DataFrame:
    table = pd.read_csv(corpus / "openface" / f"{clip}.csv", skipinitialspace=True)
    table.columns = table.columns.str.strip()
    return table


def load_motion(clip: str, corpus: Path = CORPUS) -> Motion:
    """The real expression of corpus clip ``clip`` (file stem), chosen by OpenFace."""
    from aupipe.signal import landmarks, normalize, video

    table = _openface(clip, corpus)
    columns = [c for c in table.columns if c.endswith("_r") and c[:-2] not in SPEECH_AUS]
    ok = (table["success"] == 1).to_numpy()
    total = table[columns].sum(axis=1).to_numpy()
    apex = int(np.where(ok, total, -np.inf).argmax())
    rest = int(np.where(ok, total, np.inf).argmin())
    added = [c[:-2] for c in columns if table[c].iloc[apex] >= 1.0 and table[c].iloc[apex] - table[c].iloc[rest] >= 0.5]
    files = {Path(item["file"]).stem: item["file"] for item in json.loads((corpus / "manifest.json").read_text())}
    path = corpus / "clips" / files[clip]
    meshes = []
    with landmarks.open_landmarker() as landmarker:
        for index in sorted((rest, apex)):
            frame_index = int(table["frame"].iloc[index]) - 1
            frame = next(iter(video.iter_frames(path, start=frame_index, stop=frame_index + 1)))
            batch = landmarks.detect(landmarker, [frame], -1 if not meshes else 10**6)
            if not batch.face_found[0]:
                raise RuntimeError(f"{clip}: no face on frame {frame_index}")
            meshes.append((index, normalize.normalize_mesh(batch.landmarks_px[:1].astype(np.float64))[0]))
    mesh = dict(meshes)
    return Motion(clip, mesh[apex] - mesh[rest], " ".join(added))


def make_footage(
    base_clip: Path,
    sources: Sequence[str],
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
    swaying (``blend_footage.move_head`` with ``head_motion``), with ``n_micro`` + ``n_macro``
    retargeted real expressions; returns the ground truth (synth's truth
    columns plus ``source`` and ``weight``)."""
    import tempfile

    import cv2

    from blend_footage import move_head

    from aupipe.events import synth
    from aupipe.signal import landmarks, normalize, video

    motions = [load_motion(s, corpus) for s in sources]
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.avi"
        synth.synthesize(base_clip, base, events=[], duration_s=minutes * 60.0)
        info = video.probe(base)
        settings = synth.SynthSettings(micro_ms=micro_ms)
        events = synth.schedule(info.frame_count * 1000.0 / info.fps, n_micro, n_macro, seed, settings)
        chosen = [motions[int(rng.integers(len(motions)))] for _ in events]
        weights = rng.uniform(*amplitude, len(events))
        writer = None
        tmp_out = out_path.with_name(f".{out_path.name}.part.avi")
        try:
            with landmarks.open_landmarker() as landmarker:
                for frames, batch in landmarks.detect_batches(landmarker, video.iter_frames(base), 64):
                    for k, frame in enumerate(frames):
                        bgr = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)
                        points = batch.landmarks_px[k].astype(np.float64)
                        level = [float(synth.profile(np.array([frame.time_ms]), e)[0]) for e in events]
                        if batch.face_found[k] and max(level) > 0:
                            delta = sum(
                                lv * w * m.displacement_fw for lv, w, m in zip(level, weights, chosen, strict=True)
                            )
                            mesh = normalize.normalize_mesh(points[None])
                            disp_px = np.einsum("pi,ij->pj", delta, synth.image_map(mesh, points[None])[0])
                            width_px = float(normalize.face_width(points[None])[0])
                            bgr = synth.warp_frame(bgr, points[:, :2], disp_px, 0.035 * width_px)
                        if writer is None:
                            size = (bgr.shape[1], bgr.shape[0])
                            writer = cv2.VideoWriter(str(tmp_out), cv2.VideoWriter_fourcc(*"MJPG"), info.fps, size)
                        writer.write(move_head(bgr, frame.time_ms, head_motion, seed))
        finally:
            if writer is not None:
                writer.release()
        tmp_out.replace(out_path)
    truth = synth.truth_table(events, info.fps)
    truth["aus"] = [m.aus for m in chosen]
    truth["source"] = [m.name for m in chosen]
    truth["weight"] = np.round(weights, 3)
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", action="append", required=True, help="corpus clip stem whose expression moves")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--micro", type=int, default=10)
    parser.add_argument("--macro", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth", type=Path)
    args = parser.parse_args()
    truth = make_footage(args.base, args.source, args.out, args.minutes, args.micro, args.macro, args.seed)
    if args.truth:
        truth.to_csv(args.truth, index=False)
    print(truth.to_string())


if __name__ == "__main__":
    main()
