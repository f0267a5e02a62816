"""Events for the coders' own tools (issue 16): ELAN .eaf and BORIS import sheets (aupipe.io.annotations).

The layout rules run on small hand-made tables (fast). The end-to-end tests make a 10 s
synthetic clip with known events from a sample clip (aupipe.events.synth), run the real
pipeline once through the CLI, and read the .eaf back with pympi into the same events as the
CSV table of the same run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pympi.Elan import Eaf

from aupipe.errors import OutputError
from aupipe.events import synth
from aupipe.io import annotations

from .conftest import SAMPLES

KINDS = ("micro", "macro")


def aupipe_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aupipe", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def events_table(rows: list[tuple[float, float, str, str]]) -> pd.DataFrame:
    """An events table (the columns the writers read) of (onset_ms, offset_ms, kind, aus) rows at 30 fps."""
    table = pd.DataFrame(rows, columns=["onset_ms", "offset_ms", "kind", "aus"])
    table.insert(0, "event", np.arange(len(table)))
    table["apex_ms"] = (table["onset_ms"] + table["offset_ms"]) / 2
    for column in ("onset", "apex", "offset"):
        table[f"{column}_frame"] = np.rint(table[f"{column}_ms"] * 30 / 1000).astype(int)
    table["peaks"] = [" ".join(f"{au}=2.0" for au in aus.split()) for aus in table["aus"]]
    table["within_macro"] = False
    table["emotion"], table["core_emotion"], table["emotion_score"] = "annoyed", "anger", 0.6
    return table


def tier_annotations(eaf: Eaf, kind: str) -> list[tuple[int, int, str]]:
    """Every annotation of ``kind``'s lanes (tiers ``micro``, ``micro 2``, ...), by start."""
    lanes = [t for t in eaf.get_tier_names() if t == kind or (t.startswith(f"{kind} ") and t.split()[-1].isdigit())]
    return sorted(a for t in lanes for a in eaf.get_annotation_data_for_tier(t))


def assert_no_overlaps(eaf: Eaf) -> None:
    for tier in eaf.get_tier_names():
        spans = sorted(a[:2] for a in eaf.get_annotation_data_for_tier(tier))
        assert all(end > start for start, end in spans), tier
        if eaf.get_parameters_for_tier(tier).get("PARENT_REF") is None:
            assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:], strict=False)), tier


def boris_pairing(sheet: pd.DataFrame) -> list[str]:
    """START / STOP of each row as BORIS derives it (project_functions.events_start_stop): a row is a
    STOP when an odd number of earlier rows (time strictly before) share its subject, code and modifier."""
    keys = list(zip(sheet["subject"], sheet["code"], sheet["modifier"], strict=True))
    times = sheet["time"].to_numpy(float)
    return [
        "STOP" if sum(1 for j, k in enumerate(keys) if k == key and times[j] < times[i]) % 2 else "START"
        for i, key in enumerate(keys)
    ]


# ---------------------------------------------------------------------------------------------
# layout rules on hand-made tables
# ---------------------------------------------------------------------------------------------

# one-frame (zero-length) event, two overlapping micro events with the same AUs, one touching them
TRICKY = [
    (1000.0, 1000.0, "micro", "AU12"),
    (2000.0, 2300.0, "micro", "AU04 AU07"),
    (2100.0, 2400.0, "micro", "AU04 AU07"),
    (2300.0, 2600.0, "micro", "AU04 AU07"),
    (2500.0, 4000.0, "macro", "AU06 AU12"),
    (3000.4, 3000.6, "micro", "AU01"),
]


def test_eaf_lanes_keep_every_tier_free_of_overlaps(tmp_path: Path) -> None:
    events = events_table(TRICKY)
    path = tmp_path / "x.eaf"
    with annotations.AtomicEafWriter(path, None, stride_ms=100.0) as writer:
        writer.write(events)
        writer.commit()
    eaf = Eaf(str(path))
    assert_no_overlaps(eaf)
    names = eaf.get_tier_names()
    assert {"micro", "micro 2", "micro details", "micro 2 details", "macro", "macro details", "labels"} <= set(names)
    micro = tier_annotations(eaf, "micro")
    assert [a[:2] for a in micro] == [(1000, 1001), (2000, 2300), (2100, 2400), (2300, 2600), (3000, 3001)]
    assert micro[1][2] == "AU04+AU07 \u00b7 annoyed"
    details = eaf.get_annotation_data_for_tier("micro details") + eaf.get_annotation_data_for_tier("micro 2 details")
    assert len(details) == 5 and all(d[2].startswith("event ") and "AU04=2.0" in d[2] for d in details if d[0] == 2000)
    assert eaf.media_descriptors == []  # no media (images)


def test_label_track_merges_runs_and_never_overlaps() -> None:
    start = np.arange(0, 2000, 100.0)  # 500 ms windows, 100 ms stride
    labels = ["neutral"] * 5 + ["happy"] * 3 + ["neutral"] * 12
    track = annotations.LabelTrack(stride_ms=100.0)
    for part in (slice(0, 7), slice(7, 20)):  # in two chunks, as a run streams them
        track.add(pd.DataFrame({"start_ms": start[part], "end_ms": start[part] + 500, "emotion": labels[part]}))
    runs = track.annotations()
    assert runs == [(0, 700, "neutral"), (700, 1000, "happy"), (1000, 2400, "neutral")]  # centres 250, 350, ...
    gaps = annotations.LabelTrack(stride_ms=1000.0)  # windows shorter than the stride keep their own span
    gaps.add(pd.DataFrame({"start_ms": [0.0, 1000.0], "end_ms": [300.0, 1300.0], "emotion": ["a", "a"]}))
    assert gaps.annotations() == [(0, 300, "a"), (1000, 1300, "a")]


def test_boris_sheet_pairs_every_event_the_way_boris_does(tmp_path: Path) -> None:
    events = events_table(TRICKY)
    sheet = annotations.boris_table(events, tmp_path / "clip.mp4", 30.0)
    assert list(sheet.columns) == list(annotations.BORIS_COLUMNS)
    assert (np.diff(sheet["time"].to_numpy()) >= 0).all()
    assert boris_pairing(sheet) == list(sheet["status"])  # BORIS reads the START / STOP we mean
    per_event = sheet.groupby("event")["status"].agg(list)
    assert all(sorted(v) == ["START", "STOP"] for v in per_event) and len(per_event) == len(events)
    start = sheet[sheet["status"] == "START"].set_index("event").sort_index()
    stop = sheet[sheet["status"] == "STOP"].set_index("event").sort_index()
    assert (stop["time"] > start["time"]).all()  # the one-frame event too
    assert start.loc[2, "code"] == "micro 2" and start.loc[1, "code"] == "micro"  # overlap, same AUs
    assert set(sheet["subject"]) == {"face"} and start.loc[1, "modifier"] == "AU04+AU07"
    assert set(sheet["media_file"]) == {str((tmp_path / "clip.mp4").resolve())} and set(sheet["fps"]) == {30.0}


def test_boris_xlsx_and_atomic_writing(tmp_path: Path) -> None:
    pytest.importorskip("openpyxl")
    path = tmp_path / "b.xlsx"
    with annotations.AtomicBorisWriter(path, tmp_path / "clip.mp4", 30.0) as writer:
        writer.write(events_table(TRICKY))
        assert not path.exists() and len(list(tmp_path.glob(".b.xlsx.*.part"))) == 1
        writer.commit()
    sheet = pd.read_excel(path)
    assert list(sheet.columns) == list(annotations.BORIS_COLUMNS) and len(sheet) == 2 * len(TRICKY)
    with annotations.AtomicEafWriter(tmp_path / "dropped.eaf", None, 100.0) as writer:
        writer.write(events_table(TRICKY))  # left without commit (an error): nothing stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.xlsx"]
    with pytest.raises(OutputError, match="BORIS"):
        annotations.boris_format(tmp_path / "b.txt")


# ---------------------------------------------------------------------------------------------
# end to end: real model on synthetic footage with known events
# ---------------------------------------------------------------------------------------------

# twice synth's usual amplitudes: clear events (the spotter finds a micro, a macro and a micro one)
SYNTH_EVENTS = (
    synth.SynthEvent(1200.0, 250.0, (("AU01", 0.14), ("AU02", 0.14))),
    synth.SynthEvent(2500.0, 300.0, (("AU04", 0.14), ("AU07", 0.08))),
    synth.SynthEvent(4500.0, 1500.0, (("AU01", 0.16), ("AU02", 0.16)), rise=0.25, hold=0.5),
    synth.SynthEvent(7500.0, 300.0, (("AU12", 0.16), ("AU06", 0.08))),
)


@pytest.fixture(scope="module")
def coded_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 10 s synthetic clip and one ``aupipe run`` of it with the table, the .eaf and the BORIS sheet."""
    folder = tmp_path_factory.mktemp("coders")
    clip = folder / "clip.avi"
    synth.synthesize(SAMPLES / "1001_DFA_NEU_XX.flv", clip, SYNTH_EVENTS, duration_s=10)
    out = {"clip": clip, "windows": folder / "w.csv", "table": folder / "e.csv", "eaf": folder / "review" / "e.eaf",
           "boris": folder / "b.csv"}  # fmt: skip
    out["eaf"].parent.mkdir()
    done = aupipe_cli("run", clip, "-o", out["windows"], "--events", out["table"], "--events", out["eaf"],
                      "--boris", out["boris"], "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{out['eaf']}" in done.stderr and f"{out['boris']}" in done.stderr
    return out


def test_eaf_holds_the_events_of_the_table_aligned_to_the_video(coded_run: dict[str, Path]) -> None:
    table = pd.read_csv(coded_run["table"])
    assert len(table) >= 2 and set(table["kind"]) <= set(KINDS), table[["onset_ms", "offset_ms", "kind"]]
    eaf = Eaf(str(coded_run["eaf"]))
    assert_no_overlaps(eaf)
    for kind in KINDS:
        got = tier_annotations(eaf, kind)
        want = table[table["kind"] == kind].sort_values("onset_ms")
        assert len(got) == len(want), kind
        np.testing.assert_allclose([a[0] for a in got], want["onset_ms"], atol=1.0)
        np.testing.assert_allclose([a[1] for a in got], want["offset_ms"], atol=1.0)
        assert [a[2].split(" \u00b7 ")[0] for a in got] == ["+".join(a.split()) for a in want["aus"]]
    details = [d for t in eaf.get_tier_names() if t.endswith(" details") for d in eaf.get_annotation_data_for_tier(t)]
    assert sorted(int(d[2].split()[1]) for d in details) == sorted(table["event"])
    (media,) = eaf.media_descriptors
    assert media["MEDIA_URL"] == coded_run["clip"].resolve().as_uri() and media["RELATIVE_MEDIA_URL"] == "../clip.avi"
    assert media["MIME_TYPE"].startswith("video/")
    windows = pd.read_csv(coded_run["windows"])
    labels = eaf.get_annotation_data_for_tier("labels")
    assert labels[0][0] == round(windows["start_ms"].iloc[0]) and labels[-1][1] == round(windows["end_ms"].iloc[-1])
    assert all(b[0] == a[1] for a, b in zip(labels, labels[1:], strict=False))  # contiguous, no overlap
    assert all(a[2] != b[2] for a, b in zip(labels, labels[1:], strict=False))  # runs merged
    assert {a[2] for a in labels} == set(windows["emotion"])


def test_boris_sheet_has_one_start_and_one_stop_per_event(coded_run: dict[str, Path]) -> None:
    table = pd.read_csv(coded_run["table"])
    sheet = pd.read_csv(coded_run["boris"])
    assert list(sheet.columns) == list(annotations.BORIS_COLUMNS)
    assert len(sheet) == 2 * len(table) and boris_pairing(sheet) == list(sheet["status"])
    start = sheet[sheet["status"] == "START"].set_index("event").loc[table["event"]]
    stop = sheet[sheet["status"] == "STOP"].set_index("event").loc[table["event"]]
    np.testing.assert_allclose(start["time"], table["onset_ms"] / 1000, atol=0.001)
    np.testing.assert_allclose(stop["time"], table["offset_ms"] / 1000, atol=0.001)
    assert [c.split()[0] for c in start["code"]] == list(table["kind"])
    assert set(sheet["media_file"]) == {str(coded_run["clip"].resolve())}
    assert sheet["fps"].between(29.9, 30.1).all()


def test_an_interrupted_run_keeps_the_events_found_in_every_format(
    tmp_path: Path, coded_run: dict[str, Path], ctrl_c_as_in_a_terminal: None
) -> None:
    import dataclasses

    from aupipe.chain.settings import PipelineSettings
    from aupipe.running.run import run

    seen = [0]

    def interrupt_once(n: int) -> None:  # the first Ctrl-C, once about 5 s of the clip are processed
        seen[0] += n
        if seen[0] >= 150 and seen[0] - n < 150:
            os.kill(os.getpid(), signal.SIGINT)

    table, eaf_path, sheet_path = tmp_path / "e.parquet", tmp_path / "e.eaf", tmp_path / "b.csv"
    # a given neutral range lets frames through at once (an estimated one waits for the first 30 s)
    settings = PipelineSettings()
    settings = dataclasses.replace(settings, aus=dataclasses.replace(settings.aus, neutral_range_s=(0.0, 1.0)))
    result = run(coded_run["clip"], tmp_path / "w.csv", events_out=[table, eaf_path], boris_out=sheet_path,
                 settings=settings, progress=False, on_frames=interrupt_once)  # fmt: skip
    assert result.interrupted and 150 <= result.n_frames < 300
    assert result.events_paths == (table, eaf_path) and result.boris_path == sheet_path
    events = pd.read_parquet(table)
    assert len(events) >= 1
    eaf = Eaf(str(eaf_path))
    assert sum(len(tier_annotations(eaf, kind)) for kind in KINDS) == len(events)
    assert len(pd.read_csv(sheet_path)) == 2 * len(events)
    assert not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize("clash", ["input", "boris"])
def test_an_eaf_over_the_input_or_another_output_is_refused(tmp_path: Path, clash: str) -> None:
    clip = SAMPLES / "1001_DFA_HAP_XX.flv"
    eaf = tmp_path / "clip.eaf"
    if clash == "input":
        eaf.symlink_to(clip)  # the .eaf name is the input video itself
        args = ["--events", eaf]
    else:
        args = ["--events", eaf, "--boris", eaf]
    result = aupipe_cli("run", clip, "-o", tmp_path / "w.csv", *args)
    assert result.returncode == 4, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("aupipe: error: ") and "Traceback" not in result.stderr
    assert ("the input" if clash == "input" else "the events output") in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == (["clip.eaf"] if clash == "input" else [])


def test_batch_can_write_each_videos_events_for_elan(tmp_path: Path) -> None:
    from aupipe.running.batch_job import BatchJob, output_paths

    table, eaf = BatchJob(events=True), BatchJob(events=True, events_format="eaf")
    assert output_paths(tmp_path, "clip", eaf)["events"].name == "clip.events.eaf"
    assert output_paths(tmp_path, "clip", table)["events"].name == "clip.events.csv"
    assert eaf.settings_hash() != table.settings_hash()  # a changed format re-runs the videos
