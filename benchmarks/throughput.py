"""Throughput and memory of the pipeline (a benchmark that prints its figures; not a test).

In one run, on one sample clip looped to a longer video:
- frames per second of the landmark stage alone (decode + MediaPipe FaceLandmarker),
- frames per second of the whole ``aupipe.analyze`` and of ``aupipe.run`` (streaming to CSV),
- the share of each later stage (normalise, AUs, windows, mapping) in the run time,
- peak memory (RSS) of ``aupipe.run`` on a short and on a 4x longer video, each in a fresh
  process, to show that memory stays flat with video length.

Usage: python benchmarks/throughput.py [--clip data/samples/1001_DFA_HAP_XX.flv] [--loops 8]
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


def looped_video(clip: Path, loops: int, out: Path) -> Path:
    """Write ``clip`` ``loops`` times in a row into an .avi (MJPG) file."""
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
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for _ in range(loops):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return out


def landmark_stage_fps(path: Path) -> tuple[int, float]:
    """Frames and frames/s of decode + landmark detection alone (chunks of 64, as the pipeline)."""
    from aupipe import landmarks, video
    from aupipe._native import quiet_native_stderr
    from aupipe.pipeline import _batched

    with quiet_native_stderr(), landmarks.open_landmarker() as landmarker:
        start = time.perf_counter()
        n, timestamp = 0, -1
        for frames in _batched(iter(video.iter_frames(path)), 64):
            batch = landmarks.detect(landmarker, frames, timestamp)
            timestamp = max(int(round(batch.time_ms[-1])), timestamp + len(batch))
            n += len(batch)
        return n, n / (time.perf_counter() - start)


def stage_shares(path: Path) -> dict[str, float]:
    """Seconds spent in each stage over the whole video (the same calls ``aupipe.run`` makes)."""
    from aupipe import aus, landmarks, mapping, pipeline, video, windows
    from aupipe._native import quiet_native_stderr

    emotion_map = mapping.load_mapping()
    settings = pipeline.PipelineSettings()
    names = ["decode+landmarks", "normalise+measures", "AUs", "windows", "mapping"]
    spent = dict.fromkeys(names, 0.0)
    au_state, window_state = aus.AuState(), windows.WindowState()
    with quiet_native_stderr(), landmarks.open_landmarker() as landmarker:
        timestamp = -1
        clock = time.perf_counter()
        batches = pipeline._batched(iter(video.iter_frames(path)), settings.chunk_frames)
        for frames in [*batches, None]:
            marks = [clock]
            raw = None
            if frames is not None:
                batch = landmarks.detect(landmarker, frames, timestamp)
                timestamp = max(int(round(batch.time_ms[-1])), timestamp + len(batch))
                marks.append(time.perf_counter())
                raw = pipeline.frame_table(batch, settings)
            else:
                marks.append(time.perf_counter())
            marks.append(time.perf_counter())
            rows, au_state = aus.step(au_state, raw, settings.aus, final=frames is None)
            rows = pipeline.order_columns(rows) if len(rows) else None
            marks.append(time.perf_counter())
            done, window_state = windows.step(window_state, rows, settings.windows, final=frames is None)
            marks.append(time.perf_counter())
            pipeline.label_windows(done, emotion_map)
            marks.append(time.perf_counter())
            for key, begin, end in zip(names, marks[:-1], marks[1:], strict=True):
                spent[key] += end - begin
            clock = marks[-1]
    return spent


def _peak_rss_child(path: str, with_frames: bool, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    import aupipe
    from aupipe import landmarks, mapping

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=ROOT / "data" / "samples" / "1001_DFA_HAP_XX.flv")
    parser.add_argument("--loops", type=int, default=8, help="how many times to loop the clip")
    args = parser.parse_args()
    import warnings

    import aupipe

    warnings.simplefilter("ignore", aupipe.AupipeWarning)
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
    print(f"landmark stage alone (decode + FaceLandmarker): {landmark_fps:7.1f} frames/s")
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
