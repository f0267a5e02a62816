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

from blend_footage import CORPUS, SPEECH_AUS, openface_table, render_footage  # noqa: E402


@dataclass(frozen=True)
class Motion:
    """One real expression: the normalised-mesh displacement (478, 3) in face widths from the
    source person's least to most expressive frame, and the AUs OpenFace adds there."""

    name: str
    displacement_fw: np.ndarray
    aus: str


def load_motion(clip: str, corpus: Path = CORPUS) -> Motion:
    """The real expression of corpus clip ``clip`` (file stem), chosen by OpenFace."""
    from aupipe.signal import landmarks, normalize, video

    table = openface_table(clip, corpus)
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
    retargeted real expressions; returns the ground truth (synth's truth columns plus ``source``
    and ``weight``)."""
    from aupipe.events import synth
    from aupipe.signal import normalize

    def edit(rgb: np.ndarray, points_px: np.ndarray, active: list[tuple[float, Motion]]) -> np.ndarray:
        delta = sum(weight * motion.displacement_fw for weight, motion in active)
        mesh = normalize.normalize_mesh(points_px[None])
        disp_px = np.einsum("pi,ij->pj", delta, synth.image_map(mesh, points_px[None])[0])
        width_px = float(normalize.face_width(points_px[None])[0])
        return synth.warp_frame(rgb, points_px[:, :2], disp_px, 0.035 * width_px)

    motions = [load_motion(s, corpus) for s in sources]
    truth, chosen, _ = render_footage(base_clip, out_path, motions, edit, minutes, n_micro, n_macro, seed,
                                      amplitude, micro_ms, head_motion)  # fmt: skip
    truth.insert(truth.columns.get_loc("weight"), "source", [m.name for m in chosen])
    truth["aus"] = [m.aus for m in chosen]
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
