"""Throughput of training and evaluation (a benchmark that prints its figures; not a test).

Measures, on this machine:
- feature extraction: seconds per clip and frames per second of one worker (the six real
  CREMA-D sample clips, fresh cache, one process), and the wall time with all cores;
- ReliefF: seconds to rank channels on ``--relief-rows`` windows (skrebate);
- training: windows per second of the CNN (default NetworkConfig, batch 64) on synthetic windows
  shaped like CREMA-D's (16 steps, 24 channels, 6 classes), first epoch (graph tracing) apart;
- inference: windows per second of ``predict`` (batch 1024).

Training and inference are measured on the CPU, and again on the GPU when the backend sees one
(the CPU figures then come from a child process with CUDA_VISIBLE_DEVICES hidden).

Usage: python benchmarks/training.py [--windows 20000] [--epochs 3] [--skip-features] [--cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"


def feature_figures(workers: int) -> dict[str, Any]:
    """Extract the six sample clips into a fresh cache: with one worker, then with ``workers``."""
    from aupipe.learning.datasets import load_dataset
    from aupipe.learning.features import extract_features

    clips = load_dataset([SAMPLES / f"1001_DFA_{e}_XX.flv" for e in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")]).clips
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
        single = extract_features(clips, one, workers=1, progress=False)
        out["one_worker"] = single.summary()
        steady = single.clip_seconds[1:]  # the first clip also pays the landmarker's start-up
        out["seconds_per_clip_steady"] = round(sum(steady) / len(steady), 3)
        parallel = extract_features(clips, many, workers=workers, progress=False)
        out[f"{workers}_workers_wall_seconds"] = round(parallel.seconds, 3)
        resumed = extract_features(clips, many, workers=workers, progress=False)
        out["all_cached_wall_seconds"] = round(resumed.seconds, 3)
    return out


def default_channel_count() -> int:
    """How many input channels the default patterns (``AU*_r``, ``AU*_c``) give with this aupipe."""
    from aupipe.learning.features import SegmentSettings, channel_columns
    from aupipe.chain.frames import frame_table_empty
    from aupipe.chain.settings import PipelineSettings

    columns = list(frame_table_empty(PipelineSettings(include_landmarks=False)).columns)
    return len(channel_columns(columns, SegmentSettings().channels))


def relief_figures(rows: int, channels: int) -> dict[str, Any]:
    """Seconds for ReliefF on ``rows`` synthetic windows of ``channels`` channels (4 summaries each)."""
    import numpy as np

    from aupipe.learning.selection import relieff_select

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 16, channels)).astype(np.float32)
    y = rng.integers(0, 6, rows)
    start = time.perf_counter()
    relieff_select(X, y, [f"C{i}_r" for i in range(channels)], n_select=24, max_rows=rows)
    return {"rows": rows, "summary_features": channels * 4, "seconds": round(time.perf_counter() - start, 2)}


def device_name() -> str:
    """The accelerator the Keras backend would use, or 'cpu'."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return f"gpu ({len(gpus)})" if gpus else "cpu"
        if backend == "jax":
            import jax

            return "gpu" if any(d.platform == "gpu" for d in jax.devices()) else "cpu"
        if backend == "torch":
            import torch

            return "gpu" if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001 - a benchmark reports what it can
        pass
    return "cpu"


def network_figures(n_windows: int, epochs: int) -> dict[str, Any]:
    """Training and inference windows/s of the default CNN on synthetic CREMA-D-shaped windows."""
    import keras
    import numpy as np

    from aupipe.learning.network import NetworkConfig, build_network

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_windows, 16, 24)).astype(np.float32)
    y = rng.integers(0, 6, n_windows)
    config = NetworkConfig()
    keras.utils.set_random_seed(0)
    network = build_network(16, 24, 6, config)
    start = time.perf_counter()
    network.fit(X, y, epochs=1, batch_size=config.batch_size, verbose=0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    network.fit(X, y, epochs=epochs, batch_size=config.batch_size, verbose=0)
    train_seconds = time.perf_counter() - start
    network.predict(X[:1024], batch_size=1024, verbose=0)  # trace once
    start = time.perf_counter()
    network.predict(X, batch_size=1024, verbose=0)
    infer_seconds = time.perf_counter() - start
    return {
        "device": device_name(),
        "backend": keras.backend.backend(),
        "windows": n_windows,
        "first_epoch_seconds": round(first, 2),
        "train_windows_per_second": round(n_windows * epochs / train_seconds, 1),
        "inference_windows_per_second": round(n_windows / infer_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20000, help="synthetic windows for the CNN figures")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the first")
    parser.add_argument("--relief-rows", type=int, default=2000, help="windows given to ReliefF")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the parallel run")
    parser.add_argument("--skip-features", action="store_true", help="leave out feature extraction and ReliefF")
    parser.add_argument("--cpu", action="store_true", help="network figures only, on the CPU, as JSON (child mode)")
    args = parser.parse_args()
    if args.cpu:
        print(json.dumps(network_figures(args.windows, args.epochs)))
        return

    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    if not args.skip_features:
        features = feature_figures(args.workers)
        one = features["one_worker"]
        print(f"features: {one['seconds_per_clip']} s/clip incl. start-up, {features['seconds_per_clip_steady']} s/clip "
              f"steady, {one['frames_per_second_per_worker']} frames/s per worker; 6 clips on {args.workers} workers: "
              f"{features[f'{args.workers}_workers_wall_seconds']} s; all cached: {features['all_cached_wall_seconds']} s")  # fmt: skip
        relief = relief_figures(args.relief_rows, default_channel_count())
        print(f"ReliefF: {relief['seconds']} s for {relief['rows']} windows x {relief['summary_features']} summaries")
    here = network_figures(args.windows, args.epochs)
    runs = [here]
    if here["device"] != "cpu":
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
        child = subprocess.run(
            [sys.executable, __file__, "--cpu", "--windows", str(args.windows), "--epochs", str(args.epochs)],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
    for run in runs:
        print(f"CNN on {run['device']} ({run['backend']}): train {run['train_windows_per_second']} windows/s "
              f"(first epoch {run['first_epoch_seconds']} s incl. tracing), "
              f"inference {run['inference_windows_per_second']} windows/s, {run['windows']} windows")  # fmt: skip


if __name__ == "__main__":
    main()
