"""Parity of the ``direct`` landmark backend with MediaPipe Tasks (a benchmark that prints its
figures; not a test). Issue 20's bar: landmarks within 1.5 px mean (99th percentile shown),
blendshapes within 0.03 mean absolute, AUs r >= 0.98, the same events.

For each clip (the bundled samples, and the corpus clips of ``../shared/corpus`` when present)
``aupipe.analyze`` runs twice, ``backend="mediapipe"`` and ``backend="direct"``, with landmarks in
the frame table; on frames where both found the face:
- landmark distance (x, y px, mean over the 478 points): clip mean and 99th percentile over frames,
- blendshapes: mean absolute difference over the 51 used scores,
- head pose: mean absolute difference of pitch, yaw, roll (degrees),
- AU intensities: Pearson r per AU (AUs that vary on the clip), the clip's median and minimum,
- events: spotted events of each run matched (same kind, an AU in common, IoU >= 0.5): matched / MediaPipe's / direct's,
- face coverage of each backend.

Usage: python benchmarks/backend_parity.py [--corpus ../shared/corpus] [--max-clips 40] [--runtime litert]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def clips(corpus: Path | None, max_clips: int) -> list[Path]:
    """The sample clips with a face, then the corpus clips."""
    samples = sorted(p for p in (ROOT / "data" / "samples").iterdir() if p.suffix in (".flv", ".mp4") and p.stem != "no_face")
    folder = corpus / "clips" if corpus is not None else None
    extra = sorted(p for p in folder.iterdir() if p.suffix in (".mp4", ".avi", ".wmv", ".mov")) if folder and folder.is_dir() else []
    return (samples + extra)[:max_clips]


def analyse(clip: Path, backend: str, runtime: str) -> tuple[object, float]:
    """``aupipe.analyze`` with one backend (landmarks in the frame table); (result, seconds)."""
    import aupipe
    from aupipe.chain.settings import PipelineSettings
    from aupipe.signal.landmarks import LandmarkSettings

    settings = PipelineSettings(include_landmarks=True, landmarks=LandmarkSettings(backend=backend, runtime=runtime))
    start = time.perf_counter()
    result = aupipe.analyze(clip, settings=settings, workers=1)
    return result, time.perf_counter() - start


def event_match(a, b) -> int:  # type: ignore[no-untyped-def]
    """Events of ``a`` with an event of ``b`` of the same kind sharing an AU and overlapping by IoU >= 0.5."""
    matched = 0
    for _, x in a.iterrows():
        shared = b["aus"].astype(str).map(lambda aus: bool(set(aus.split()) & set(str(x["aus"]).split())))
        same = b[(b["kind"] == x["kind"]) & shared]
        inter = (np.minimum(same["offset_ms"], x["offset_ms"]) - np.maximum(same["onset_ms"], x["onset_ms"])).clip(lower=0)
        union = (np.maximum(same["offset_ms"], x["offset_ms"]) - np.minimum(same["onset_ms"], x["onset_ms"])).clip(lower=1e-9)
        matched += bool(((inter / union) >= 0.5).any())
    return matched


def compare(clip: Path, runtime: str) -> dict[str, float]:
    """The figures of one clip (module doc)."""
    reference, t_ref = analyse(clip, "mediapipe", runtime)
    direct, t_direct = analyse(clip, "direct", runtime)
    fa, fb = reference.frames, direct.frames  # type: ignore[attr-defined]
    both = (fa["face_found"].to_numpy() & fb["face_found"].to_numpy())
    xs = [f"x_{i}" for i in range(478)]
    ys = [f"y_{i}" for i in range(478)]
    dx = fa.loc[both, xs].to_numpy() - fb.loc[both, xs].to_numpy()
    dy = fa.loc[both, ys].to_numpy() - fb.loc[both, ys].to_numpy()
    per_frame_px = np.hypot(dx, dy).mean(axis=1)
    blend = [c for c in fa.columns if c.startswith("bs_") and c != "bs__neutral"]
    blend_mae = float(np.abs(fa.loc[both, blend].to_numpy() - fb.loc[both, blend].to_numpy()).mean())
    pose = [c for c in ("pitch_deg", "yaw_deg", "roll_deg") if c in fa]
    pose_diff = np.abs(fa.loc[both, pose].to_numpy() - fb.loc[both, pose].to_numpy()).mean(axis=0)
    rs = []
    for column in [c for c in fa.columns if c.startswith("AU") and c.endswith("_r")]:
        a, b = fa.loc[both, column].to_numpy(float), fb.loc[both, column].to_numpy(float)
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() > 10 and a[ok].std() > 0.05 and b[ok].std() > 0:
            rs.append(float(np.corrcoef(a[ok], b[ok])[0, 1]))
    ea, eb = reference.events, direct.events  # type: ignore[attr-defined]
    return {
        "frames": float(len(fa)), "both": float(both.sum()),
        "cover_mp": float(fa["face_found"].mean()), "cover_direct": float(fb["face_found"].mean()),
        "px_mean": float(per_frame_px.mean()) if both.any() else np.nan,
        "px_p99": float(np.percentile(per_frame_px, 99)) if both.any() else np.nan,
        "blend_mae": blend_mae, **{f"d_{p}": float(v) for p, v in zip(pose, pose_diff, strict=True)},
        "au_r_median": float(np.median(rs)) if rs else np.nan, "au_r_min": float(np.min(rs)) if rs else np.nan,
        "n_aus": float(len(rs)),
        "events_matched": float(event_match(ea, eb)), "events_mp": float(len(ea)), "events_direct": float(len(eb)),
        "seconds_mp": t_ref, "seconds_direct": t_direct,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--max-clips", type=int, default=40)
    parser.add_argument("--runtime", default="litert", choices=("litert", "onnx"))
    args = parser.parse_args()
    import pandas as pd

    rows = []
    for clip in clips(args.corpus if args.corpus.exists() else None, args.max_clips):
        figures = compare(clip, args.runtime)
        rows.append({"clip": clip.stem, **figures})
        print(
            f"{clip.stem:28s} px {figures['px_mean']:.2f} (p99 {figures['px_p99']:.2f})  blend {figures['blend_mae']:.4f}  "
            f"AU r med {figures['au_r_median']:.3f} min {figures['au_r_min']:.3f}  "
            f"events {figures['events_matched']:.0f}/{figures['events_mp']:.0f}/{figures['events_direct']:.0f}  "
            f"cover {figures['cover_mp']:.3f}/{figures['cover_direct']:.3f}",
            flush=True,
        )  # fmt: skip
    table = pd.DataFrame(rows)
    frames = table["both"]
    print("\nover all clips (frame-weighted means; percentiles over clips):")
    print(f"  landmarks px mean {np.average(table['px_mean'], weights=frames):.3f}; worst clip mean {table['px_mean'].max():.3f}; "
          f"clip p99: median {table['px_p99'].median():.3f}, max {table['px_p99'].max():.3f}")  # fmt: skip
    print(f"  blendshapes mean abs {np.average(table['blend_mae'], weights=frames):.4f}; worst clip {table['blend_mae'].max():.4f}")
    for p in ("d_pitch_deg", "d_yaw_deg", "d_roll_deg"):
        if p in table:
            print(f"  {p[2:]} mean abs diff {np.average(table[p], weights=frames):.2f}; worst clip {table[p].max():.2f}")
    print(f"  AU r: median of clip medians {table['au_r_median'].median():.3f}; lowest clip median {table['au_r_median'].min():.3f}; "
          f"lowest single AU {table['au_r_min'].min():.3f}")  # fmt: skip
    print(f"  events: {table['events_matched'].sum():.0f} of {table['events_mp'].sum():.0f} MediaPipe-run events matched; direct run has {table['events_direct'].sum():.0f}")
    print(f"  face coverage: mediapipe {np.average(table['cover_mp'], weights=table['frames']):.4f}, direct {np.average(table['cover_direct'], weights=table['frames']):.4f}")
    print(f"  analyze seconds: mediapipe {table['seconds_mp'].sum():.1f}, direct {table['seconds_direct'].sum():.1f}")


if __name__ == "__main__":
    main()
