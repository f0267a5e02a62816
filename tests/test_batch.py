"""Batches of videos: manifest, bad videos, resuming after a kill, Parquet, and the Ray engine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import aupipe
from aupipe.running import batching as batch

from .conftest import CREMAD, SAMPLES, clip
import contextlib


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 clips in two sub-folders (the six CREMA-D samples three times, one other face, one corrupt file)."""
    root = tmp_path_factory.mktemp("batch") / "clips"
    for copy in range(3):
        sub = root / ("actors_a" if copy < 2 else "actors_b")
        sub.mkdir(parents=True, exist_ok=True)
        for emotion in CREMAD:
            shutil.copy(clip(emotion), sub / f"take{copy}_{emotion}.flv")
    shutil.copy(SAMPLES / "single_face.mp4", root / "single_face.mp4")
    (root / "actors_b" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    assert len(batch.find_videos([root])) == 20
    return root


def test_find_videos_from_folders_globs_and_lists(folder: Path, tmp_path: Path) -> None:
    assert len(batch.find_videos([str(folder / "actors_a" / "*.flv")])) == 12
    listed = tmp_path / "videos.txt"
    listed.write_text(f"# two clips\n{folder / 'single_face.mp4'}\n\n{folder / 'actors_b' / 'take2_HAP.flv'}\n")
    assert [p.name for p in batch.find_videos([listed, folder / "single_face.mp4"])] == [
        "single_face.mp4",
        "take2_HAP.flv",
    ]
    keys = batch.output_keys(batch.find_videos([folder]))
    assert "actors_a__take0_ANG" in keys and "single_face" in keys and len(set(keys)) == 20
    with pytest.raises(aupipe.InputError, match="no such file"):
        batch.find_videos([folder / "missing"])


def test_batch_of_20_with_a_corrupt_clip(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = aupipe.batch(folder, out, workers=2, progress=False)
    manifest = summary.manifest
    assert len(manifest) == 20 and summary.n_processed == 20 and not summary.interrupted
    failed = manifest[manifest["status"] != "ok"]
    assert failed["key"].tolist() == ["actors_b__broken"]
    assert failed["status"].tolist() == ["error"] and "broken.mp4" in failed["error"].iloc[0]
    ok = manifest[manifest["status"] == "ok"]
    assert (ok["frames"] > 50).all() and (ok["face_coverage"] > 0.9).all() and (ok["seconds"] > 0).all()
    assert pd.read_csv(out / "manifest.csv")["status"].tolist() == manifest["status"].tolist()
    # same clip, same tables, whichever process ran it
    first = pd.read_csv(out / "actors_a__take0_HAP.windows.csv")
    pd.testing.assert_frame_equal(first, pd.read_csv(out / "actors_b__take2_HAP.windows.csv"))
    dataset = pd.read_parquet(out / "windows.parquet")
    assert dataset["video"].nunique() == 19 and len(dataset) == int(ok["windows"].sum())
    from_dataset = dataset[dataset["video"] == "actors_a__take0_HAP"].drop(columns="video").reset_index(drop=True)
    pd.testing.assert_frame_equal(from_dataset, first, check_dtype=False, rtol=1e-5)
    assert not list(out.glob(".*.part"))
    again = aupipe.batch(folder, out, workers=2, progress=False)  # nothing changed: nothing to do
    assert again.n_processed == 0 and again.n_skipped == 20


def _journal_keys(out: Path) -> list[str]:
    path = out / batch.JOURNAL
    if not path.exists():
        return []
    keys = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError, KeyError):
            keys.append(json.loads(line)["key"])
    return keys


def test_killed_batch_resumes_with_only_the_rest(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "aupipe", "batch", str(folder), "-o", str(out), "--workers", "2", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 180
    while len(_journal_keys(out)) < 6 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the batch and its workers, with no chance to tidy up
    process.wait()
    done_before = set(_journal_keys(out))
    assert 6 <= len(done_before) < 20, "the batch was not stopped half-way"
    written = {key: (out / f"{key}.windows.csv").stat().st_mtime_ns for key in done_before if key != "actors_b__broken"}
    summary = aupipe.batch(folder, out, workers=2, progress=False)
    assert summary.n_skipped == len(done_before) and summary.n_processed == 20 - len(done_before)
    assert all((out / f"{key}.windows.csv").stat().st_mtime_ns == ns for key, ns in written.items())
    assert sorted(_journal_keys(out)) == sorted(summary.manifest["key"])  # every video exactly once
    assert (summary.manifest["status"] == "ok").sum() == 19 and not list(out.glob(".*.part"))


def test_ray_engine_gives_the_same_tables(folder: Path, tmp_path: Path) -> None:
    videos = [folder / "actors_a" / "take0_HAP.flv", folder / "single_face.mp4", folder / "actors_b" / "broken.mp4"]
    local = aupipe.batch(videos, tmp_path / "local", workers=2, progress=False, events=True)
    on_ray = aupipe.batch(videos, tmp_path / "ray", workers=2, progress=False, events=True, engine="ray")
    columns = ["key", "status", "frames", "face_frames", "windows", "events", "error"]
    pd.testing.assert_frame_equal(local.manifest[columns], on_ray.manifest[columns])
    for name in ("take0_HAP.windows.csv", "take0_HAP.events.csv", "single_face.windows.csv", "single_face.events.csv"):
        key = f"actors_a__{name}" if name.startswith("take") else name
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "local" / key), pd.read_csv(tmp_path / "ray" / key))
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "local" / "windows.parquet"), pd.read_parquet(tmp_path / "ray" / "windows.parquet")
    )


def test_parquet_output_matches_csv(tmp_path: Path) -> None:
    csv = aupipe.run(clip("HAP"), tmp_path / "w.csv", tmp_path / "f.csv", progress=False)
    parquet = aupipe.run(clip("HAP"), tmp_path / "w.parquet", tmp_path / "f.parquet", progress=False)
    assert csv.n_windows == parquet.n_windows > 0
    for name in ("w", "f"):
        from_csv = pd.read_csv(tmp_path / f"{name}.csv")
        from_parquet = pd.read_parquet(tmp_path / f"{name}.parquet")
        assert list(from_parquet.columns) == list(from_csv.columns)
        text = list(from_csv.select_dtypes(exclude=["number", "bool"]).columns)  # CSV reads an empty label as NaN
        from_csv[text] = from_csv[text].fillna("")
        from_parquet[text] = from_parquet[text].fillna("")
        pd.testing.assert_frame_equal(from_parquet, from_csv, check_dtype=False, rtol=1e-5, atol=1e-6)
    with pytest.raises(aupipe.OutputError, match="needs a .parquet file name"):
        aupipe.run(clip("HAP"), tmp_path / "x.csv", output_format="parquet", progress=False)
    assert not (tmp_path / "x.csv").exists()
