"""Multi-face benchmark (prints its figures; not a test): what following 1, 2 and 4 people costs.

Footage: ``faces_footage.grid`` (1, 2 or 4 real people, still, in 320x360 px tiles; MJPG .avi at
30 fps) of ``--duration-s`` seconds (D, default 20), built in a temporary folder. Every figure
comes from a fresh process (multiprocessing "spawn"; aupipe and MediaPipe are imported before
the clock starts), one job at a time, with ``num_faces`` = the number of people:

- run fps: video frames per second of the whole ``aupipe.run`` (windows and frames tables
  written to temporary CSV files, the frames table with its landmark columns as by default;
  ``workers=1``, progress off);
- landmarks fps: video frames per second of the landmark stage alone
  (``aupipe.chain.frames.stream_frames`` iterated to the end: decode, FaceLandmarker, tracking,
  normalised mesh and measures); "lm share" is its part of the run's time;
- faces/frame: from the run's frames table, the rows with ``face_found`` per video frame, mean
  over all frames (= the number of people where every face is found on every frame);
  face_ids: the distinct ``face_id`` of those rows (should equal the number of people);
- peak RSS (MiB, ``ru_maxrss`` of the job's process) of ``aupipe.run`` on D/2 and on D seconds of
  the same footage (the D run is the one timed above), and the difference: close to 0 means memory
  stays flat with video length (a run that kept the 4-face frames table in memory would grow by
  roughly 14 MB per 10 s here). D/2 rather than 2D keeps the default within ~5 minutes on 2 cores.

A last row runs the 1-person grid with ``num_faces=4``: what asking for more faces costs when
there is one (compare with the first row). Warnings raised in the jobs are counted and listed
below the table. ``--quick``: D = 6 s and no D/2 runs (a smoke run, about a minute). The default
(D = 20 s) takes about 4-5 minutes on 2 cores.

Usage: python benchmarks/faces.py [--duration-s 20] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue as queue_module
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _settings(num_faces: int) -> object:
    from aupipe.chain.settings import PipelineSettings
    from aupipe.signal.landmarks import LandmarkSettings

    return PipelineSettings(landmarks=LandmarkSettings(num_faces=num_faces))


def _job(kind: str, video: str, num_faces: int, out_dir: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    """In a fresh process: one measured job (``run`` or ``landmarks``); puts a dict of its figures."""
    import warnings

    try:
        import aupipe
        from aupipe.chain.frames import stream_frames
        from aupipe.rules import mapping
        from aupipe.signal import landmarks

        landmarks.import_mediapipe()  # imports are not the job's cost
        mapping.load_mapping()
        settings = _settings(num_faces)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            if kind == "run":
                out = Path(out_dir)
                aupipe.run(video, out / "w.csv", out / "f.csv", settings=settings, workers=1, progress=False)
                frames = None  # counted from the frames table by the parent
            else:
                seen: set[int] = set()
                for table in stream_frames(video, settings):
                    seen.update(int(f) for f in table["frame"].unique())
                frames = len(seen)
            seconds = time.perf_counter() - start
        found = {}
        for w in caught:
            key = f"{w.category.__name__} at {Path(w.filename).name}:{w.lineno}: {str(w.message).splitlines()[0][:110]}"
            found[key] = found.get(key, 0) + 1
        queue.put({
            "seconds": seconds, "frames": frames, "warnings": found,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        })  # fmt: skip
    except BaseException:  # noqa: BLE001 - the parent prints it
        queue.put({"error": traceback.format_exc()})


def job(kind: str, video: Path, num_faces: int, out_dir: Path) -> dict:
    """``kind`` = run | landmarks on ``video`` with ``num_faces`` in a fresh process (see ``_job``)."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_job, args=(kind, str(video), num_faces, str(out_dir), queue))
    process.start()
    while True:  # a job that dies without a word (a native crash) must not hang the benchmark
        try:
            result = queue.get(timeout=2.0)
            break
        except queue_module.Empty:
            if not process.is_alive():
                result = {"error": f"job process died with exit code {process.exitcode} (no traceback)"}
                break
    process.join()
    return result


def face_counts(frames_csv: Path) -> tuple[int, float, int]:
    """Video frames, mean faces found per frame and distinct face_ids of found faces, from a frames table."""
    import pandas as pd

    table = pd.read_csv(frames_csv, usecols=["frame", "face_id", "face_found"])
    found = table["face_found"].astype(bool)
    per_frame = found.groupby(table["frame"]).sum()
    return len(per_frame), float(per_frame.mean()), int(table.loc[found, "face_id"].nunique())


def measured_run(video: Path, num_faces: int, tmp: Path, tag: str) -> dict:
    """``aupipe.run`` in a fresh process, plus the face counts of its frames table."""
    out = tmp / f"out_{tag}"
    out.mkdir()
    result = job("run", video, num_faces, out)
    if "error" not in result:
        result["frames"], result["faces_per_frame"], result["face_ids"] = face_counts(out / "f.csv")
        for path in out.iterdir():
            path.unlink()  # frames tables are wide (~1,400 columns a row): free the disk
    return result


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=20.0, help="footage length D in seconds (default 20)")
    parser.add_argument("--quick", action="store_true", help="smoke run: D = 6 s, no D/2 memory runs")
    args = parser.parse_args(argv)
    duration = 6.0 if args.quick else args.duration_s
    half_runs = not args.quick

    import faces_footage

    began = time.perf_counter()
    # (people, num_faces): the three grids, then the 1-person grid asking for 4 faces
    cases = [(1, 1), (2, 2), (4, 4), (1, 4)]
    rows, errors, warned = [], [], {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        videos = {}
        for people in (1, 2, 4):
            for seconds in (duration / 2, duration) if half_runs else (duration,):
                path = tmp / f"grid{people}_{seconds:g}s.avi"
                faces_footage.grid(path, people, seconds)
                videos[people, seconds] = path
        print(f"footage: grids of 1, 2, 4 people, {duration:g} s"
              + (f" and {duration / 2:g} s" if half_runs else "")
              + f" at 30 fps (built in {time.perf_counter() - began:.0f} s)", flush=True)  # fmt: skip
        for people, num_faces in cases:
            tag = f"{people}p_{num_faces}f"
            short = measured_run(videos[people, duration], num_faces, tmp, tag)
            marks = job("landmarks", videos[people, duration], num_faces, tmp) if num_faces == people else None
            half = measured_run(videos[people, duration / 2], num_faces, tmp, tag + "_half") if half_runs else None
            for name, result in (("run D", short), ("landmarks", marks), ("run D/2", half)):
                if result is None:
                    continue
                if "error" in result:
                    errors.append((f"{people} people, num_faces={num_faces}, {name}", result["error"]))
                for key, count in result.get("warnings", {}).items():
                    warned[key] = warned.get(key, 0) + count
            ok = "error" not in short
            run_fps = short["frames"] / short["seconds"] if ok else None
            lm_fps = marks["frames"] / marks["seconds"] if marks and "error" not in marks else None
            half_ok = half is not None and "error" not in half
            rows.append({
                "people": people, "num_faces": num_faces, "frames": short.get("frames"),
                "run_fps": run_fps, "lm_fps": lm_fps,
                "lm_share": lm_fps and run_fps and 100 * run_fps / lm_fps,
                "faces_per_frame": short.get("faces_per_frame"), "face_ids": short.get("face_ids"),
                "ids_half": half.get("face_ids") if half_ok else None,
                "peak_d": short.get("peak_mib"), "peak_half": half.get("peak_mib") if half_ok else None,
            })  # fmt: skip
            print(f"  done: {people} people, num_faces={num_faces} ({time.perf_counter() - began:.0f} s)", flush=True)

    print()
    print(f"Multi-face throughput and memory (grid footage, D = {duration:g} s, workers=1, one job per process)")
    header = (
        f"{'people':>6} {'num_faces':>9} {'frames':>6} {'run fps':>8} {'landmarks fps':>13} {'lm share':>8} "
        f"{'faces/frame':>11} {'face_ids':>8} {'peak MiB D/2':>12} {'peak MiB D':>10} {'D - D/2':>7}"
    )
    print(header)
    print("-" * len(header))
    base = rows[0]["run_fps"]
    for row in rows:
        diff = row["peak_d"] - row["peak_half"] if row["peak_half"] is not None and row["peak_d"] is not None else None
        ids = fmt(row["face_ids"], "d") + (f"/{row['ids_half']}" if row["ids_half"] is not None else "")
        print(
            f"{row['people']:>6} {row['num_faces']:>9} {fmt(row['frames'], 'd'):>6} {fmt(row['run_fps'], '.1f'):>8} "
            f"{fmt(row['lm_fps'], '.1f'):>13} {fmt(row['lm_share'], '.0f') + ' %' if row['lm_share'] else '-':>8} "
            f"{fmt(row['faces_per_frame'], '.2f'):>11} {ids:>8} {fmt(row['peak_half'], '.0f'):>12} "
            f"{fmt(row['peak_d'], '.0f'):>10} {fmt(diff, '+.0f'):>7}"
        )
    print()
    print("run fps as a multiple of the 1-face run: " + ", ".join(
        f"{r['people']}p/{r['num_faces']}f {r['run_fps'] / base:.2f}x" for r in rows if r["run_fps"] and base
    ))  # fmt: skip
    print("face_ids: D run" + ("/D/2 run" if half_runs else "") + "; lm share: landmark stage's part of the run time")
    if warned:
        print()
        print("warnings raised in the jobs (count: what):")
        for key, count in sorted(warned.items(), key=lambda item: -item[1]):
            print(f"  {count:>5}: {key}")
    for name, text in errors:
        print()
        print(f"FAILED: {name}")
        print(text.rstrip())
    print()
    print(f"took {time.perf_counter() - began:.0f} s")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
