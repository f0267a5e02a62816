"""``aupipe live`` (issue 19): a sample clip played at real-time pace as the source gives the
windows of ``aupipe run``; events come within the documented bound; every record validates
against ``aupipe/schemas/live.schema.json``; the command line writes whole tables.

Nothing here depends on timing: the real-time test reads with ``drop=False`` (a file's reader
waits rather than drops when the machine is slow), and the event bound is in video time."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

import aupipe
from aupipe.events.spotting import SpottingSettings
from aupipe.running.live import live_pipeline_settings
from tests.conftest import clip


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files("aupipe").joinpath("schemas", "live.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_live_windows_equal_those_of_a_file_run_and_records_follow_the_schema(tmp_path: Path) -> None:
    source = clip("HAP")
    records = list(aupipe.live(source, realtime=True, drop=False, out_dir=tmp_path))
    validator = _validator()
    for record in records:
        validator.validate(record)
    kinds = [r["type"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "end" and records[-1]["dropped"] == 0
    reference = aupipe.analyze(source, settings=live_pipeline_settings())
    assert kinds.count("frame") == len(reference.frames)  # every frame, once its AUs are final
    windows = pd.DataFrame([r for r in records if r["type"] == "window"])
    want = reference.windows
    assert windows["window"].tolist() == want["window"].tolist()
    np.testing.assert_allclose(windows["start_ms"], want["start_ms"])
    np.testing.assert_allclose(windows["emotion_score"], want["emotion_score"], rtol=1e-6, atol=1e-9)
    assert windows["emotion"].tolist() == want["emotion"].tolist()
    frames = pd.DataFrame([r for r in records if r["type"] == "frame"])
    np.testing.assert_allclose(frames["AU12_r"], reference.frames["AU12_r"], rtol=1e-6, atol=1e-9)
    table = pd.read_csv(tmp_path / "live.0001.windows.csv")  # the table, as run writes it (in_event and all)
    got, expected = table.drop(columns=["emotion_aus"]), want.drop(columns=["emotion_aus"])
    assert list(got.columns) == list(expected.columns)
    for column in got.columns:
        if pd.api.types.is_numeric_dtype(expected[column]):
            np.testing.assert_allclose(got[column].to_numpy(float), expected[column].to_numpy(float),
                                       rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=column)  # fmt: skip
        else:
            assert got[column].astype(str).tolist() == expected[column].astype(str).tolist(), column
    labels = [r for r in records if r["type"] == "label"]
    assert labels and labels[0]["previous_emotion"] is None


def test_events_come_within_the_documented_bound(tmp_path: Path) -> None:
    """Bound (docs/live.md): an event comes out by ``context_s / 2 + max_piece_s`` of video after
    its offset, plus the speech stage's 1 s and the AU filter's two frames. A short spotting
    context here (10 s) makes the bound (14.1 s) shorter than the 24-s synthetic clip."""
    from aupipe.events import synth

    video = tmp_path / "synth24.avi"
    synth.synthesize(clip("NEU"), video, n_micro=5, n_macro=2, seed=3, duration_s=24)
    spotting = SpottingSettings(context_s=10.0, max_piece_s=8.0)
    settings = dataclasses.replace(live_pipeline_settings(), spotting=spotting)
    records = list(aupipe.live(video, realtime=False, settings=settings, frames=False))
    events = [r for r in records if r["type"] == "event"]
    assert len(events) >= 3
    bound_ms = (spotting.context_s / 2 + spotting.max_piece_s + 1.0) * 1000 + 2 * 1000 / 30
    assert max(e["delay_ms"] for e in events) <= bound_ms
    end_ms = 24_000.0
    assert any(e["offset_ms"] + e["delay_ms"] < end_ms - 1000 for e in events)  # some came out before the end
    updates = [r for r in records if r["type"] == "window_update"]
    assert updates and all(u["in_event"] for u in updates)  # windows went out at once, then were updated
    validator = _validator()
    for record in records:
        validator.validate(record)


def test_command_line_prints_json_lines_and_ends_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aupipe", "live", "--file", str(clip("NEU")), "--jsonl", "--out", str(tmp_path),
         "--no-spotting", "--rotate-min", "60"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["type"] == "start" and lines[-1]["type"] == "end"
    assert done.stderr.strip().count("\n") == 0 and "the file ended after" in done.stderr
    assert (tmp_path / "live.0001.windows.csv").exists() and not list(tmp_path.glob(".*part"))
    bad = subprocess.run([sys.executable, "-m", "aupipe", "live", "--file", str(tmp_path / "missing.mp4"), "--jsonl"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode != 0 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    nothing = subprocess.run([sys.executable, "-m", "aupipe", "live", "--camera", "0"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert nothing.returncode != 0 and "nothing to show or write" in nothing.stderr
    headless = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    no_window = subprocess.run([sys.executable, "-m", "aupipe", "live", "--file", str(clip("NEU")), "--preview"],
                               capture_output=True, text=True, timeout=120, env=headless)  # fmt: skip
    assert no_window.returncode == 2 and "needs a display" in no_window.stderr, no_window.stderr


@pytest.mark.parametrize("settings", [{"queue_frames": 0}])
def test_bad_source_settings_are_refused(settings: dict[str, int]) -> None:
    from aupipe.signal.live_source import LiveSource, SourceSettings

    with pytest.raises(aupipe.SettingsError):
        SourceSettings(**settings)
    with pytest.raises(aupipe.SettingsError, match="cannot wait"):
        LiveSource(0, SourceSettings(drop=False))


def test_live_follows_several_faces(tmp_path: Path) -> None:
    """``faces=2`` on a two-person composite: frame and window records of both faces, and the
    between-face stage copes with chunks the later stages have not run on yet."""
    from benchmarks import faces_footage

    video = tmp_path / "two.avi"
    faces_footage.two_people(video, 2.5)
    records = list(aupipe.live(video, faces=2, realtime=False, calibration_s=1.0))
    assert records[-1]["type"] == "end"
    frames = [r for r in records if r["type"] == "frame" and r["face_found"]]
    windows = [r for r in records if r["type"] == "window"]
    assert {r["face_id"] for r in frames} == {0, 1} and {r["face_id"] for r in windows} == {0, 1}
