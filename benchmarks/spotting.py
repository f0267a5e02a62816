"""Spotting benchmark (prints its figures; not a test).

1. False positives per minute on uninjected footage: a sample clip ping-pong looped (aupipe.events.synth
   with no events, so there are no jumps) for ``--minutes`` minutes, run through the pipeline and
   the spotter; every event found is a false positive (the footage has speech and blinks, no
   injected expression). Also the F1 on the same footage with injected events, for reference.
2. Spotting's share of the run time: the pipeline's chunks (``aupipe.running.chain.stream``) timed
   with and without ``spotting.step`` on each chunk.
3. Peak memory (RSS) at 1 and at 60 minutes of video, each in a fresh process:
   - the spotter alone, fed 1 or 60 minutes of real frame rows (the analysed minute replayed back
     and forth with shifted times, in the pipeline's 64-frame chunks): flat when its state is bounded;
   - with ``--pipeline-minutes M``, the whole streaming pipeline plus the spotter on a looped
     video of 1 and of M minutes (slow: about 40 s of wall time per minute of video here).

Usage: python benchmarks/spotting.py [--clip data/samples/1001_DFA_NEU_XX.flv] [--minutes 3]
       [--replay-minutes 60] [--pipeline-minutes 0]
The function ``peak_rss_with_spotting(path)`` gives frames, seconds and peak RSS (MiB) of the
streaming pipeline plus the spotter on one video in a fresh process (for benchmarks/throughput.py).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def looped_clip(clip: Path, minutes: float, out: Path, events: list | None = None, seed: int = 0) -> object:
    """``clip`` ping-pong looped to ``minutes`` (mp4v); with ``events=None`` nothing is injected.
    Returns synth's ground-truth table."""
    from aupipe.events import synth

    if events is None:
        return synth.synthesize(clip, out, events=[], duration_s=minutes * 60)
    n_micro, n_macro = events
    return synth.synthesize(clip, out, n_micro=n_micro, n_macro=n_macro, seed=seed, duration_s=minutes * 60)


def stream_timed(path: Path) -> tuple[object, object, float, float]:
    """Frames and events of ``path`` through the streaming pipeline plus the spotter; seconds
    spent in the pipeline's own chunks and in ``spotting.step``."""
    import pandas as pd

    from aupipe.rules import mapping
    from aupipe.chain.stream import stream as stream_chain
    from aupipe.chain.settings import PipelineSettings
    from aupipe.events import spotting

    emotion_map = mapping.load_mapping()
    settings = PipelineSettings(include_landmarks=False)
    state = spotting.SpottingState()
    frames, events = [], []
    spent_spot = 0.0
    start = time.perf_counter()
    for chunk, _ in stream_chain(path, emotion_map, settings):
        t0 = time.perf_counter()
        found, state = spotting.step(state, chunk.frames if len(chunk.frames) else None, emotion_map=emotion_map)
        spent_spot += time.perf_counter() - t0
        frames.append(chunk.frames[["frame", "time_ms"]])
        events.append(found)
    t0 = time.perf_counter()
    found, state = spotting.step(state, None, final=True, emotion_map=emotion_map)
    spent_spot += time.perf_counter() - t0
    events.append(found)
    total = time.perf_counter() - start
    return pd.concat(frames, ignore_index=True), pd.concat(events, ignore_index=True), total - spent_spot, spent_spot


def _replay_child(frames_pkl: str, minutes: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    import pandas as pd

    from aupipe.events import spotting

    table = pd.read_pickle(frames_pkl)
    loop_ms = float(table["time_ms"].iloc[-1]) + float(table["time_ms"].diff().median())
    state = spotting.SpottingState()
    n = found = 0
    largest = 0
    target = minutes * 60_000.0
    k = 0
    while k * loop_ms < target:
        part = table.iloc[::-1].reset_index(drop=True) if k % 2 else table.copy()  # back and forth: no jumps
        part["time_ms"] = table["time_ms"].to_numpy() + k * loop_ms
        part["frame"] = table["frame"].to_numpy() + k * len(table)
        part = part.loc[part["time_ms"] < target]
        for a in range(0, len(part), 64):
            events, state = spotting.step(state, part.iloc[a : a + 64])
            found += len(events)
            largest = max(largest, len(state.tail) if state.tail is not None else 0)
        n += len(part)
        k += 1
    events, state = spotting.step(state, None, final=True)
    queue.put((n, found + len(events), largest, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def in_fresh_process(target: object, *args: object) -> tuple:  # type: ignore[type-arg]
    """Run ``target(*args, queue)`` in a spawned process (a clean peak RSS) and return what it puts."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def replay_peak_rss(frames_pkl: Path, minutes: float) -> tuple[int, int, int, float]:
    """Frames, events, largest tail (frames) and peak RSS (MiB) of the spotter alone fed ``minutes``
    of replayed frame rows, in a fresh process."""
    return in_fresh_process(_replay_child, str(frames_pkl), minutes)


def _pipeline_child(path: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    import aupipe

    warnings.simplefilter("ignore", aupipe.AupipeWarning)
    start = time.perf_counter()
    frames, events, _, _ = stream_timed(Path(path))
    seconds = time.perf_counter() - start
    queue.put((len(frames), seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def peak_rss_with_spotting(path: Path) -> tuple[int, float, float]:
    """Frames, seconds and peak RSS (MiB) of the streaming pipeline plus the spotter on ``path``,
    in a fresh process (the same figures as ``benchmarks/throughput.py``'s ``peak_rss_mib``)."""
    return in_fresh_process(_pipeline_child, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=ROOT / "data" / "samples" / "1001_DFA_NEU_XX.flv")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the uninjected loop")
    parser.add_argument("--replay-minutes", type=float, default=60.0, help="long run of the spotter-only memory test")
    parser.add_argument(
        "--pipeline-minutes", type=float, default=0.0, help="also the whole pipeline at 1 and M minutes"
    )
    args = parser.parse_args()

    import aupipe
    from aupipe.events import spot_eval
    from aupipe.events import spotting

    warnings.simplefilter("ignore", aupipe.AupipeWarning)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain = folder / "plain.mp4"
        looped_clip(args.clip, args.minutes, plain)
        frames, events, pipeline_s, spot_s = stream_timed(plain)
        minutes = (frames["time_ms"].iloc[-1] + 1000 / 30) / 60_000
        print(f"uninjected footage: {args.clip.name} ping-pong looped, {minutes:.1f} min, {len(frames)} frames")
        print(f"  false positives: {len(events)} = {len(events) / minutes:.1f} per minute "
              f"(micro {int((events['kind'] == 'micro').sum())}, macro {int((events['kind'] == 'macro').sum())})")  # fmt: skip
        if len(events):
            print(f"  their AUs: {events['aus'].value_counts().head(8).to_dict()}")
        print(f"  run time: pipeline {pipeline_s:.1f} s, spotting {spot_s:.2f} s = "
              f"{100 * spot_s / pipeline_s:.1f}% added (target < 10%)")  # fmt: skip

        injected = folder / "injected.mp4"
        truth = looped_clip(args.clip, 1.0, injected, events=[10, 3], seed=1)
        _, found, _, _ = stream_timed(injected)
        print("same footage, 1 min with 10 micro + 3 macro injected events (seed 1):")
        print("  " + spot_eval.report(spot_eval.evaluate(found, truth)).replace("\n", "\n  "))

        one_minute = folder / "one_minute.pkl"
        short = folder / "short.mp4"
        looped_clip(args.clip, 1.0, short)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aupipe.analyze(short, settings=aupipe.PipelineSettings(include_landmarks=False)).frames.to_pickle(
                one_minute
            )
        print(
            "peak RSS of the spotter alone (fresh process; one real minute replayed back and forth, 64-frame chunks):"
        )
        for m in (1.0, args.replay_minutes):
            n, count, largest, rss = replay_peak_rss(one_minute, m)
            print(f"  {m:5.0f} min = {n:7d} frames: {rss:7.1f} MiB, largest tail {largest} frames, {count} events")
        print("  (replay events come at the turnarounds on the minute's first frame, where MediaPipe's very first")
        print("  detection of a video differs from its tracking; they are not in the footage)")
        if args.pipeline_minutes > 0:
            long = folder / "long.mp4"
            looped_clip(args.clip, args.pipeline_minutes, long)
            print("peak RSS of the streaming pipeline + spotter (fresh process):")
            for path, m in ((short, 1.0), (long, args.pipeline_minutes)):
                n, seconds, rss = peak_rss_with_spotting(path)
                print(f"  {m:5.0f} min = {n:7d} frames: {rss:7.1f} MiB ({n / seconds:.1f} frames/s)")
    defaults = spotting.SpottingSettings()
    print(f"spotter state bound: about {defaults.context_s + defaults.max_piece_s:.0f} s of frames "
          f"(context_s {defaults.context_s:g} + max_piece_s {defaults.max_piece_s:g})")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
