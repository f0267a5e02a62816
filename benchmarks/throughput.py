"""Throughput and memory of the pipeline (a benchmark that prints its figures; not a test).

In one run, on one sample clip looped to a longer video:
- frames per second of the landmark stage alone (decode + the direct backend),
- frames per second of the whole ``aupipe.analyze`` and of ``aupipe.run`` (streaming to CSV),
- the share of each later stage (normalise, AUs, windows, mapping) in the run time,
- peak memory (RSS) of ``aupipe.run`` on a short and on a 4x longer video, each in a fresh
  process, to show that memory stays flat with video length.

Scale (issue 7), on the clip looped to ``--minutes`` minutes (default 10), each in a fresh process:
- the landmark stage alone in one process (the reference),
- ``aupipe.run`` with 1 worker and with ``--workers`` (default: every core) on the long video,
  their frames/s as a multiple of the landmark stage's (target >= 1.7x with 2 workers),
- ``aupipe.batch`` over a folder of ``--batch-clips`` short clips (the samples, copied), all workers,
- peak RSS of the parent and of the largest worker process.

Backends (issue 20), first, on the same long video, each job in a fresh process pinned to one core:
- decode + each backend alone (landmarks, blendshapes, head pose; no appearance features),
- the landmark stage (``landmarks.detect``: the backend plus the region textures and the face HOG
  the AU stage reads) with ``backend="mediapipe"`` and with ``backend="direct"`` (target >= 1.5x),
- ``aupipe.run`` with 1 worker with each backend (target >= 1.4x), and the direct one on every core,
- with a CUDA GPU seen by ONNX Runtime: the direct backend's frames/s at batch 1, 32 and 256 lanes.

Usage: python benchmarks/throughput.py [--clip data/samples/1001_DFA_HAP_XX.flv] [--loops 8]
       [--minutes 10] [--workers 0] [--batch-clips 60] [--repeats 1]
       [--only-scale | --only-backends | --only-gpu]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_clip(clip: Path) -> tuple[list, float]:
    """Every frame of ``clip`` (BGR arrays) and its fps (30 when the container says nothing)."""
    import cv2

    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def looped_video(clip: Path, loops: int, out: Path) -> Path:
    """Write ``clip`` ``loops`` times in a row into an .avi (MJPG) file."""
    import cv2

    frames, fps = read_clip(clip)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for _ in range(loops):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return out


def landmark_stage_fps(path: Path, backend: str = "direct") -> tuple[int, float]:
    """Frames and frames/s of decode + landmark detection alone (chunks of 64, as the pipeline)."""
    from aupipe.signal import landmarks
    from aupipe.signal import video
    from aupipe.signal.native import quiet_native_stderr
    from aupipe.chain import batched

    with quiet_native_stderr(), landmarks.open_landmarker(landmarks.LandmarkSettings(backend=backend)) as landmarker:
        start = time.perf_counter()
        n, timestamp = 0, -1
        for frames in batched(iter(video.iter_frames(path)), 64):
            batch = landmarks.detect(landmarker, frames, timestamp)
            timestamp = max(int(round(batch.time_ms[-1])), timestamp + len(batch))
            n += len(batch)
        return n, n / (time.perf_counter() - start)


def landmarker_fps(path: Path, backend: str = "direct") -> tuple[int, float]:
    """Frames and frames/s of decode + the backend alone: landmarks, blendshapes and head pose of
    each frame, without the appearance features (region textures, face HOG) that
    ``landmarks.detect`` adds for the AU stage; the backends' own share of the landmark stage."""
    from aupipe.signal import landmarks
    from aupipe.signal import video
    from aupipe.signal.native import quiet_native_stderr

    with quiet_native_stderr(), landmarks.open_landmarker(landmarks.LandmarkSettings(backend=backend)) as landmarker:
        mp = None if backend == "direct" else landmarks.import_mediapipe()
        start = time.perf_counter()
        n, timestamp = 0, -1
        for frame in video.iter_frames(path):
            timestamp = max(int(round(frame.time_ms)), timestamp + 1)
            if mp is None:
                landmarker.detect_rgb(frame.rgb, timestamp)  # type: ignore[attr-defined]
            else:
                landmarks.face_rows(landmarker, mp, frame.rgb, timestamp)
            n += 1
        return n, n / (time.perf_counter() - start)


def stage_shares(path: Path) -> dict[str, float]:
    """Seconds spent in each stage over the whole video (the same calls ``aupipe.run`` makes)."""
    from aupipe.signal import aus
    from aupipe.signal import landmarks
    from aupipe.rules import mapping
    from aupipe.chain import frames as chain_frames
    from aupipe.chain.labels import label_windows
    from aupipe.chain.settings import PipelineSettings
    from aupipe.signal import video
    from aupipe.signal import windows
    from aupipe.signal.native import quiet_native_stderr

    emotion_map = mapping.load_mapping()
    settings = PipelineSettings()
    names = ["decode+landmarks", "normalise+measures", "AUs", "windows", "mapping"]
    spent = dict.fromkeys(names, 0.0)
    au_state, window_state = aus.AuState(), windows.WindowState()
    with quiet_native_stderr(), landmarks.open_landmarker() as landmarker:
        timestamp = -1
        clock = time.perf_counter()
        batches = video.batched(iter(video.iter_frames(path)), settings.chunk_frames)
        for frames in [*batches, None]:
            marks = [clock]
            raw = None
            if frames is not None:
                batch = landmarks.detect(landmarker, frames, timestamp)
                timestamp = max(int(round(batch.time_ms[-1])), timestamp + len(batch))
                marks.append(time.perf_counter())
                raw = chain_frames.frame_table(batch, settings)
            else:
                marks.append(time.perf_counter())
            marks.append(time.perf_counter())
            rows, au_state = aus.step(au_state, raw, settings.aus, final=frames is None)
            rows = chain_frames.order_columns(rows) if len(rows) else None
            marks.append(time.perf_counter())
            done, window_state = windows.step(window_state, rows, settings.windows, final=frames is None)
            marks.append(time.perf_counter())
            label_windows(done, emotion_map)
            marks.append(time.perf_counter())
            for key, begin, end in zip(names, marks[:-1], marks[1:], strict=True):
                spent[key] += end - begin
            clock = marks[-1]
    return spent


def _peak_rss_child(path: str, with_frames: bool, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    import aupipe
    from aupipe.signal import landmarks
    from aupipe.rules import mapping

    landmarks.import_mediapipe()  # imports are not the run's cost
    mapping.load_mapping()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        frames_out = Path(tmp) / "f.csv" if with_frames else None
        summary = aupipe.run(path, Path(tmp) / "w.csv", frames_out, progress=False)
        seconds = time.perf_counter() - start
    queue.put((summary.n_frames, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def peak_rss_mib(path: Path, with_frames: bool = True) -> tuple[int, float, float]:
    """Frames, seconds and peak RSS (MiB) of ``aupipe.run`` in a fresh process."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_peak_rss_child, args=(str(path), with_frames, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _scale_child(
    kind: str, path: str, workers: int, queue: mp.Queue, backend: str = "direct", one_core: bool = False,  # type: ignore[type-arg]
) -> None:  # fmt: skip
    """In a fresh process: one measured job; puts (frames, seconds, parent peak MiB, largest child peak MiB).
    ``one_core``: the process (and any thread it starts) may use only the first CPU."""
    import os
    import warnings

    import aupipe
    from aupipe.chain.settings import PipelineSettings
    from aupipe.signal import landmarks
    from aupipe.rules import mapping

    if one_core:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    warnings.simplefilter("ignore", aupipe.AupipeWarning)
    if backend == "mediapipe":
        landmarks.import_mediapipe()  # imports are not the job's cost
    mapping.load_mapping()
    settings = PipelineSettings(landmarks=landmarks.LandmarkSettings(backend=backend))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if kind == "landmarks":
            frames, _ = landmark_stage_fps(Path(path), backend)
        elif kind == "landmarker":
            frames, _ = landmarker_fps(Path(path), backend)
        elif kind == "run":
            frames = aupipe.run(path, Path(tmp) / "w.csv", progress=False, workers=workers, settings=settings).n_frames
        else:
            summary = aupipe.batch(path, Path(tmp) / "out", workers=workers, progress=False)
            frames = int(summary.manifest["frames"].sum())
        seconds = time.perf_counter() - start
    queue.put((
        frames, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    ))  # fmt: skip


def scale_job(
    kind: str, path: Path, workers: int = 1, backend: str = "direct", one_core: bool = False
) -> tuple[int, float, float, float]:
    """``kind`` = landmarks | run | batch on ``path`` in a fresh process (see ``_scale_child``)."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_scale_child, args=(kind, str(path), workers, queue, backend, one_core))
    process.start()
    result = queue.get()
    process.join()
    return result


def scale_figures(clip: Path, minutes: float, workers: int, batch_clips: int) -> None:
    """Print the issue-7 figures: one long video on 1 and on all workers, and a batch over a folder."""
    import shutil

    import cv2

    from aupipe.chain.parallel import available_cores, resolve_workers

    n_workers = resolve_workers(workers or None)
    capture = cv2.VideoCapture(str(clip))
    clip_frames, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS) or 30.0
    capture.release()
    loops = max(1, round(minutes * 60 * fps / clip_frames))
    with tempfile.TemporaryDirectory() as tmp:
        long_video = looped_video(clip, loops, Path(tmp) / "long.avi")
        folder = Path(tmp) / "clips"
        folder.mkdir()
        samples = sorted((ROOT / "data" / "samples").glob("*.flv"))
        for i in range(batch_clips):
            shutil.copy(samples[i % len(samples)], folder / f"clip{i:04d}{samples[i % len(samples)].suffix}")
        base_n, base_s, base_rss, _ = scale_job("landmarks", long_video)
        one_n, one_s, one_rss, _ = scale_job("run", long_video, 1)
        all_n, all_s, all_rss, all_child = scale_job("run", long_video, n_workers)
        batch_n, batch_s, batch_rss, batch_child = scale_job("batch", folder, n_workers)
    base_fps = base_n / base_s
    print(f"scale: {clip.name} looped to {base_n} frames ({base_n / fps / 60:.1f} min); "
          f"{available_cores()} cores, {n_workers} workers")  # fmt: skip
    print(f"  landmark stage alone, 1 process:  {base_fps:7.1f} frames/s  (peak RSS {base_rss:6.1f} MiB)")
    print(f"  aupipe run, 1 worker:             {one_n / one_s:7.1f} frames/s  {one_n / one_s / base_fps:5.2f}x"
          f"  (peak RSS {one_rss:6.1f} MiB)")  # fmt: skip
    print(f"  aupipe run, {n_workers} workers:            {all_n / all_s:7.1f} frames/s  {all_n / all_s / base_fps:5.2f}x"
          f"  (target >= 1.7x with 2; peak RSS parent {all_rss:6.1f} MiB, per worker {all_child:6.1f} MiB)")  # fmt: skip
    print(f"  aupipe batch, {batch_clips} clips, {n_workers} workers: {batch_n / batch_s:7.1f} frames/s, "
          f"{batch_clips / batch_s:5.2f} videos/s  (peak RSS parent {batch_rss:6.1f} MiB, per worker {batch_child:6.1f} MiB)")  # fmt: skip
    sys.stdout.flush()


def backend_figures(clip: Path, minutes: float, repeats: int = 1) -> None:
    """Issue 20: the direct backend against MediaPipe Tasks, each in a fresh process pinned to one
    core (per-core figures), on ``clip`` looped to ``minutes``; then the direct ``aupipe run`` on
    every core; then, where ONNX Runtime sees a CUDA GPU, the lanes' frames/s at batch 1, 32, 256.
    ``repeats`` > 1: each per-core job that many times, the backends' order alternating, and the
    fastest of each kept (on a shared machine the slow runs are the neighbours' load)."""
    import os

    import cv2

    from aupipe.chain.parallel import resolve_workers

    capture = cv2.VideoCapture(str(clip))
    clip_frames, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS) or 30.0
    capture.release()
    loops = max(1, round(minutes * 60 * fps / clip_frames))
    n_workers = resolve_workers(None)
    with tempfile.TemporaryDirectory() as tmp:
        long_video = looped_video(clip, loops, Path(tmp) / "long.avi")
        best: dict[tuple[str, str], tuple[int, float, float, float]] = {}
        for repeat in range(repeats):
            for kind in ("landmarker", "landmarks", "run"):
                for backend in ("mediapipe", "direct")[:: 1 if repeat % 2 == 0 else -1]:
                    job = scale_job(kind, long_video, 1, backend, one_core=True)
                    if (kind, backend) not in best or job[1] < best[kind, backend][1]:
                        best[kind, backend] = job
        alone, stage, runs = ({b: best[kind, b] for b in ("mediapipe", "direct")} for kind in ("landmarker", "landmarks", "run"))
        every = scale_job("run", long_video, n_workers, "direct")
    alone_of = {k: v[0] / v[1] for k, v in alone.items()}
    fps_of = {k: v[0] / v[1] for k, v in stage.items()}
    run_of = {k: v[0] / v[1] for k, v in runs.items()}
    print(f"backends: {clip.name} looped to {stage['direct'][0]} frames ({stage['direct'][0] / fps / 60:.1f} min); one core each "
          f"({len(os.sched_getaffinity(0))} here); {'fastest of ' + str(repeats) + ', order alternating' if repeats > 1 else 'one run each'}")  # fmt: skip
    print(f"  decode + backend alone, mediapipe: {alone_of['mediapipe']:7.1f} frames/s   direct: {alone_of['direct']:7.1f} frames/s   "
          f"{alone_of['direct'] / alone_of['mediapipe']:.2f}x  (landmarks, blendshapes, pose; no appearance features)")  # fmt: skip
    print(f"  landmark stage, mediapipe: {fps_of['mediapipe']:7.1f} frames/s   direct: {fps_of['direct']:7.1f} frames/s   "
          f"{fps_of['direct'] / fps_of['mediapipe']:.2f}x  (target >= 1.5x; with the textures and face HOG)")  # fmt: skip
    print(f"  aupipe run --workers 1, mediapipe: {run_of['mediapipe']:7.1f} frames/s   direct: {run_of['direct']:7.1f} frames/s   "
          f"{run_of['direct'] / run_of['mediapipe']:.2f}x  (target >= 1.4x)")  # fmt: skip
    print(f"  aupipe run direct, {n_workers} workers on every core: {every[0] / every[1]:7.1f} frames/s")
    sys.stdout.flush()
    gpu_figures(clip)


def gpu_figures(clip: Path, seconds: float = 10.0) -> None:
    """Frames/s of the direct backend's networks on ONNX Runtime's CUDA provider with 1, 32 and 256
    lanes stepped together (each lane replays the clip's decoded frames, so decoding is not
    counted); prints one line saying why when there is no CUDA provider."""
    try:
        import onnxruntime
    except ImportError:
        print("  gpu: onnxruntime is not installed (pip install aupipe[gpu])")
        return
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        print("  gpu: ONNX Runtime has no CUDA provider here; no GPU figures")
        return
    from aupipe.signal import landmarks, video
    from aupipe.signal.direct import DirectLandmarker

    frames = [f.rgb for f in video.iter_frames(clip)]
    for lanes in (1, 32, 256):
        with DirectLandmarker(landmarks.model_bytes(), runtime="onnx", device="cuda", threads=4) as landmarker:
            landmarker.detect_lanes([(lane, frames[0], 0.0) for lane in range(lanes)])  # warm-up, regions found
            steps, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                step = steps + 1
                rgb = frames[step % len(frames)]
                landmarker.detect_lanes([(lane, rgb, step * 33.3) for lane in range(lanes)])
                steps = step
            elapsed = time.perf_counter() - start
        print(f"  gpu, batch {lanes:3d}: {steps * lanes / elapsed:8.1f} frames/s (networks and crops; decoding not counted)")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=ROOT / "data" / "samples" / "1001_DFA_HAP_XX.flv")
    parser.add_argument("--loops", type=int, default=8, help="how many times to loop the clip")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long video of the scale figures")
    parser.add_argument("--workers", type=int, default=0, help="workers of the scale figures (0 = every core)")
    parser.add_argument("--batch-clips", type=int, default=60, help="clips in the batch folder")
    parser.add_argument("--only-scale", action="store_true", help="print only the scale figures")
    parser.add_argument("--only-backends", action="store_true", help="print only the backend (and GPU) figures")
    parser.add_argument("--only-gpu", action="store_true", help="print only the GPU figures")
    parser.add_argument("--repeats", type=int, default=1, help="per-core backend jobs: run each this many times, keep the fastest")
    args = parser.parse_args()
    import warnings

    import aupipe

    warnings.simplefilter("ignore", aupipe.AupipeWarning)
    if args.only_gpu:
        gpu_figures(args.clip)
        return
    backend_figures(args.clip, args.minutes, max(1, args.repeats))
    if args.only_backends:
        return
    scale_figures(args.clip, args.minutes, args.workers, args.batch_clips)
    if args.only_scale:
        return
    with tempfile.TemporaryDirectory() as tmp:
        long_video = looped_video(args.clip, args.loops, Path(tmp) / "long.avi")
        longer_video = looped_video(args.clip, args.loops * 4, Path(tmp) / "longer.avi")
        n, landmark_fps = landmark_stage_fps(long_video)
        start = time.perf_counter()
        result = aupipe.analyze(long_video)
        analyze_fps = len(result.frames) / (time.perf_counter() - start)
        spent = stage_shares(long_video)
        short_frames, short_s, short_rss = peak_rss_mib(long_video)
        long_frames, long_s, long_rss = peak_rss_mib(longer_video)
        plain_frames, plain_s, _ = peak_rss_mib(longer_video, with_frames=False)
    total = sum(spent.values())
    print(f"clip: {args.clip.name} looped {args.loops}x = {n} frames")
    print(f"landmark stage alone (decode + direct backend):  {landmark_fps:7.1f} frames/s")
    print(f"whole aupipe.analyze:                            {analyze_fps:7.1f} frames/s")
    print(f"ratio analyze / landmark stage:                  {analyze_fps / landmark_fps:7.2f}x  (target >= 0.8x)")
    print(f"aupipe.run, windows CSV only:     {plain_frames / plain_s:7.1f} frames/s ({plain_frames} frames)")
    print(f"aupipe.run, with --frames CSV:    {long_frames / long_s:7.1f} frames/s (1,581 columns a row)")
    print("time per stage (share of the staged run):")
    for key, seconds in spent.items():
        print(f"  {key:18s} {seconds:7.2f} s  {100 * seconds / total:5.1f}%")
    print(f"peak RSS of aupipe.run: {short_rss:7.1f} MiB at {short_frames} frames, "
          f"{long_rss:7.1f} MiB at {long_frames} frames ({long_rss / short_rss:.2f}x for {long_frames / short_frames:.0f}x the video)")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
