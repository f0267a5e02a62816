"""``aupipe import``: OpenFace / py-feat per-frame AU CSVs (written here, in each tool's column layout, with
made-up AU time courses) through windows, mapping and spotting; the same as feeding the AU values by hand."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aupipe
from aupipe.chain.faces import insert_face_id
from aupipe.chain.labels import label_windows
from aupipe.cli import main as cli
from aupipe.errors import AupipeWarning, InputError
from aupipe.events import spotting
from aupipe.rules.mapping import load_mapping
from aupipe.running import imported
from aupipe.signal import aus, windows

# OpenFace 2.2 FeatureExtraction's default output, in its order (``-pose -aus`` keeps the frame ids,
# pose_* and the AU columns).
OF_R = ["01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23", "25", "26", "45"]
OF_C = ["01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23", "25", "26", "28", "45"]
OF_IDS = ["frame", "face_id", "timestamp", "confidence", "success"]
OF_GAZE = [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"] + ["gaze_angle_x", "gaze_angle_y"]
OF_EYE = [f"eye_lmk_{a}_{i}" for a in ("x", "y", "X", "Y", "Z") for i in range(56)]
OF_POSE = [f"pose_{k}" for k in ("Tx", "Ty", "Tz", "Rx", "Ry", "Rz")]
OF_SHAPE = [f"{a}_{i}" for a in ("x", "y", "X", "Y", "Z") for i in range(68)]
OF_PDM = ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty", *(f"p_{i}" for i in range(34))]
OF_AUS = [f"AU{n}_r" for n in OF_R] + [f"AU{n}_c" for n in OF_C]
OPENFACE_FULL = [*OF_IDS, *OF_GAZE, *OF_EYE, *OF_POSE, *OF_SHAPE, *OF_PDM, *OF_AUS]
OPENFACE_POSE_AUS = [*OF_IDS, *OF_POSE, *OF_AUS]
# py-feat's Fex.to_csv: the DataFrame index, face box, 68 landmarks, pose, 20 AUs (0-1), emotions, input, frame.
PF_AUS = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12", "AU14", "AU15", "AU17",
          "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43"]  # fmt: skip
PYFEAT = ["", "FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore",
          *(f"{a}_{i}" for a in "xy" for i in range(68)), "Pitch", "Roll", "Yaw", *PF_AUS,
          "anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral", "input", "frame", "approx_time"]  # fmt: skip
FAILED = range(120, 125)  # OpenFace lost the face: success 0, every value 0


def bump(n: int, start: int, end: int, height: float) -> np.ndarray:
    """A raised-cosine movement from ``start`` to ``end`` (frames), peaking at ``height``."""
    out = np.zeros(n)
    out[start:end] = height * np.sin(np.linspace(0.0, np.pi, end - start)) ** 2
    return out


def openface_text(n: int = 240, columns: list[str] = OPENFACE_FULL) -> str:
    """An OpenFace CSV (", "-separated, as OpenFace writes it) of made-up time courses at 30 fps: a frown,
    a smile with cheek raise and parted lips, a brow raise, blinks (AU45), and 5 lost frames."""
    rng = np.random.default_rng(7)
    r = {name: rng.uniform(0.0, 0.2, n) for name in OF_R}
    r["04"] += bump(n, 20, 50, 1.6)
    r["12"] += bump(n, 60, 150, 3.2)
    r["06"] += 0.6 * bump(n, 60, 150, 3.2)
    r["25"] += bump(n, 70, 140, 1.3)
    r["01"] += bump(n, 170, 200, 2.6)
    r["02"] += bump(n, 172, 200, 2.2)
    for start in (30, 100, 210):
        r["45"][start : start + 3] = (2.1, 3.4, 1.8)
    c = {name: (r[name] >= 1.0).astype(int) if name in r else (rng.uniform(size=n) > 0.9).astype(int) for name in OF_C}
    c["04"][:10] = 1  # OpenFace's classifier says present where its intensity is low: kept as given
    rows = []
    for i in range(n):
        lost = i in FAILED
        value = {
            "frame": str(i + 1), "face_id": "0", "timestamp": f"{i / 30:.3f}",
            "confidence": "0.03" if lost else "0.98", "success": "0" if lost else "1",
            "pose_Rx": f"{0.12 * math.sin(i / 20):.3f}", "pose_Ry": f"{-0.3 * math.sin(i / 35):.3f}",
            "pose_Rz": f"{0.05 * math.cos(i / 15):.3f}",
        }  # fmt: skip
        value.update({f"AU{k}_r": f"{v[i]:.2f}" for k, v in r.items()})
        value.update({f"AU{k}_c": f"{v[i]:.0f}" for k, v in c.items()})
        filler = {name: f"{(i * 7 + j) % 97 / 10:.1f}" for j, name in enumerate(columns)}
        rows.append(
            ", ".join("0" if lost and name not in OF_IDS else value.get(name, filler[name]) for name in columns)
        )
    return ", ".join(columns) + "\n" + "\n".join(rows) + "\n"


def by_hand(text: str, sep: str = ", ") -> pd.DataFrame:
    """The frame table aupipe should make of an OpenFace CSV, built straight from its text."""
    header, *lines = text.strip("\n").split("\n")
    names = header.split(sep)
    cells = [dict(zip(names, line.split(sep), strict=True)) for line in lines]
    face = np.array([row["success"] == "1" for row in cells])

    def column(name: str, factor: float = 1.0) -> np.ndarray:
        return np.where(face, np.array([float(row[name]) * factor for row in cells]), np.nan)

    out: dict[str, np.ndarray] = {
        "frame": np.array([int(row["frame"]) - 1 for row in cells], dtype=np.int64),
        "time_ms": np.array([float(row["timestamp"]) * 1000.0 for row in cells]), "face_found": face,
        "pitch_deg": column("pose_Rx", 180.0 / math.pi), "yaw_deg": column("pose_Ry", -180.0 / math.pi),
        "roll_deg": column("pose_Rz", -180.0 / math.pi),
    }  # fmt: skip
    for name in aus.au_columns():
        out[name] = column(name) if name in names else np.full(len(cells), np.nan)
    for au in aus.AU_NAMES:
        out[f"{au}_c"] = column(f"{au}_c") if f"{au}_c" in names else np.full(len(cells), np.nan)
    return pd.DataFrame(out)


def expected_windows(frames: pd.DataFrame, mapping_name: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The window stage, the mapping and spotting run straight on a frame table (no chain), fed as any
    one-chunk source feeds them: the whole table, then the flush."""
    emotion_map = load_mapping(mapping_name)
    settings = windows.WindowSettings(500.0, 100.0)
    first, state = windows.step(windows.WindowState(), frames, settings)
    rest, _ = windows.step(state, None, settings, final=True)
    table = pd.concat([first, rest], ignore_index=True)
    whole = windows.compute_windows(frames, settings)  # one call: the same up to the running sums' last bits
    pd.testing.assert_frame_equal(table, whole, check_exact=False, rtol=1e-12, atol=1e-12)
    labelled = label_windows(table.assign(baseline_confidence=np.nan), emotion_map)
    events = spotting.spot(frames, spotting.SpottingSettings(), emotion_map)
    flagged = labelled.assign(in_event=spotting.flag_windows(labelled, events).to_numpy())
    return insert_face_id(flagged, 0, after="window"), insert_face_id(events, 0, after="event")  # one face: id 0


def bare(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.attrs = {}
    return out


@pytest.mark.parametrize("layout", ["full", "pose_aus"])
def test_openface_import_equals_the_same_aus_fed_by_hand(tmp_path: Path, layout: str) -> None:
    text = openface_text(columns=OPENFACE_FULL if layout == "full" else OPENFACE_POSE_AUS)
    path = tmp_path / "clip.csv"
    path.write_text(text)
    hand = by_hand(text)

    frames = aupipe.import_frames(path)
    pd.testing.assert_frame_equal(bare(frames), hand, check_exact=True)
    assert frames.attrs["kind"] == "openface" and frames.attrs["ignored_columns"] == ["AU45_r", "AU45_c"]
    assert {"AU24_r", "AU28_r", "AU43_r", "AU12_left_r", "AU24_c"} <= set(frames.attrs["empty_columns"])
    assert "AU28_c" not in frames.attrs["empty_columns"]  # OpenFace gives AU28's presence only
    assert {"speaking", "g_lip_gap", "bs_jawOpen", "a_gx_glabella", "x_0"} <= set(frames.attrs["missing_columns"])
    assert "speaking" in frames.attrs["note"] and "AU43" in frames.attrs["note"]
    assert frames.loc[0, "AU04_c"] == 1.0 and frames.loc[0, "AU04_r"] < 1.0  # presence as OpenFace gave it

    want, want_events = expected_windows(hand)
    result = aupipe.analyze_frames(path)
    streamed = imported.analyze_frames(path, load_mapping(), aupipe.PipelineSettings(), chunk_rows=37)
    for got in (result, aupipe.analyze_frames(hand)):  # one chunk: the very same numbers
        pd.testing.assert_frame_equal(got.windows, want, check_exact=True)
        pd.testing.assert_frame_equal(got.events, want_events, check_exact=True)
    # 37 rows at a time: window means are running sums over other spans, so the last bits may differ
    pd.testing.assert_frame_equal(streamed.windows, want, check_exact=False, rtol=1e-12, atol=1e-12)
    pd.testing.assert_frame_equal(streamed.events, want_events, check_exact=True)
    assert "speaking" not in result.windows.columns and result.windows["head_turn_deg"].notna().all()
    assert result.baseline is None and result.video.frame_count == len(hand)
    smiling = result.windows[(result.windows["start_ms"] > 2300) & (result.windows["end_ms"] < 4700)]
    assert smiling["core_emotion"].isin(["playful", "confident", "loved", "happy"]).any()  # AU12 + AU25: a smile
    lost = result.windows[(result.windows["start_frame"] >= 120) & (result.windows["end_frame"] <= 124)]
    assert (lost["face_coverage"] == 0).all()


def pyfeat_text(n: int = 90) -> tuple[str, pd.DataFrame]:
    """A py-feat Fex CSV at 30 fps (AU12 smile, AU43 blink, frame 40 without a face, frame 41 with two
    faces: the second, lower-scored one must be dropped) and the frame table it should give."""
    rng = np.random.default_rng(3)
    scores = {au: np.round(rng.uniform(0.0, 0.1, n), 3) for au in PF_AUS}
    scores["AU12"] = np.round(np.minimum(1.0, scores["AU12"] + bump(n, 20, 60, 0.8)), 3)
    scores["AU43"][70:73] = (0.5, 0.9, 0.4)
    lines, k = [",".join(PYFEAT)], 0
    for i in range(n):
        for face in (0, 1) if i == 41 else (0,):
            no_face = i == 40
            cells = {"": str(k), "FaceScore": "" if no_face else ("0.99" if face == 0 else "0.41"), "input": "clip.mp4",
                     "frame": str(i), "approx_time": f"00:{i // 30:02d}", "Pitch": f"{5 * math.sin(i / 9):.2f}",
                     "Roll": "1.5", "Yaw": f"{-12 * math.sin(i / 13):.2f}"}  # fmt: skip
            cells.update({au: "0.95" if face else f"{scores[au][i]:g}" for au in PF_AUS})
            if no_face:
                cells.update(dict.fromkeys([*PF_AUS, "Pitch", "Roll", "Yaw"], ""))
            lines.append(",".join(cells.get(name, "12.5") for name in PYFEAT))
            k += 1
    face = np.arange(n) != 40
    hand: dict[str, np.ndarray] = {
        "frame": np.arange(n, dtype=np.int64), "time_ms": np.arange(n) * 1000.0 / 30.0, "face_found": face,
        "pitch_deg": np.where(face, [float(f"{5 * math.sin(i / 9):.2f}") for i in range(n)], np.nan),
        "yaw_deg": np.where(face, [float(f"{-12 * math.sin(i / 13):.2f}") for i in range(n)], np.nan),
        "roll_deg": np.where(face, 1.5, np.nan),
    }  # fmt: skip
    for name in aus.au_columns():
        au = name[:4]
        given = name == f"{au}_r" and au in scores
        hand[name] = np.where(face, [float(f"{v:g}") * 5.0 for v in scores[au]], np.nan) if given else np.nan
    for au in aus.AU_NAMES:
        hand[f"{au}_c"] = np.where(np.isnan(hand[f"{au}_r"]), np.nan, (hand[f"{au}_r"] >= 1.0).astype(float))
    return "\n".join(lines) + "\n", pd.DataFrame(hand)


def test_pyfeat_import_scales_to_0_5_and_equals_the_aus_fed_by_hand(tmp_path: Path) -> None:
    text, hand = pyfeat_text()
    path = tmp_path / "fex.csv"
    path.write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = aupipe.import_frames(path, "pyfeat", fps=30.0)
    assert any("highest FaceScore" in str(w.message) for w in caught)
    pd.testing.assert_frame_equal(bare(frames), hand, check_exact=True)
    assert frames.attrs["ignored_columns"] == ["AU11"] and "AU43" not in frames.attrs["note"]
    for rows in (1, 7):  # the two faces of frame 41 on either side of a chunk boundary
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AupipeWarning)
            pd.testing.assert_frame_equal(bare(imported.import_frames(path, "pyfeat", 30.0, chunk_rows=rows)), hand)
    want, want_events = expected_windows(hand, "basic_emotions")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AupipeWarning)
        result = aupipe.analyze_frames(path, "basic_emotions", kind="pyfeat", fps=30.0)
    pd.testing.assert_frame_equal(result.windows, want, check_exact=True)
    pd.testing.assert_frame_equal(result.events, want_events, check_exact=True)
    with pytest.raises(InputError, match="frame rate"):
        aupipe.import_frames(path, "pyfeat")


def cli_run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str]]:
    """``aupipe ARGS`` in this process: exit code and the non-empty stderr lines."""
    with warnings.catch_warnings():  # main() installs its own warning display
        code = cli.main([str(a) for a in args])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_cli_import_writes_the_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = openface_text()
    path = tmp_path / "clip.csv"
    path.write_text(text)
    code, lines = cli_run(capsys, "import", "openface", path, "-o", tmp_path / "w.csv", "--frames",
                          tmp_path / "f.csv", "--events", tmp_path / "e.csv", "--summary", tmp_path / "s.csv")  # fmt: skip
    assert code == 0, lines
    assert lines[0].startswith("aupipe: note: ") and lines[-1].startswith("aupipe: 240 frames (235 with a face)")
    want, _ = expected_windows(by_hand(text))
    written = pd.read_csv(tmp_path / "w.csv")
    assert list(written.columns) == list(want.columns) and len(written) == len(want)
    pd.testing.assert_series_equal(written["emotion"], want["emotion"])
    assert len(pd.read_csv(tmp_path / "f.csv")) == 240 and (tmp_path / "s.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.csv", "e.csv", "f.csv", "s.csv", "w.csv"]


OF_HEAD = "frame, face_id, timestamp, confidence, success, AU01_r, AU12_r, AU01_c, AU12_c\n"


@pytest.mark.parametrize(
    ("kind", "content", "fragment"),
    [
        (
            "openface",
            "frame, face_id, timestamp, confidence, success, pose_Rx\n1, 0, 0.0, 0.9, 1, 0.1\n",
            "no AU column",
        ),
        (
            "openface",
            OF_HEAD + "1, 0, 0.000, 0.9, 1, 0.5, 1.0, 0, 1\n2, 0, 0.033, 0.9, 1, 0.5, abc, 0, 1\n",
            "line 3, column AU12_r: 'abc' is not a number",
        ),
        ("openface", OF_HEAD + "1, 0, 0.000, 0.9, 1, 0.5, 7.5, 0, 1\n", "7.5 is out of range (OpenFace intensities"),
        ("openface", OF_HEAD + "1, 0, 0.000, 0.9, 1, 0.5, 1.0, 0, 0.5\n", "0.5 is not 0 or 1"),
        ("openface", OF_HEAD + "2, 0, 0.033, 0.9, 1, 0, 0, 0, 0\n1, 0, 0.000, 0.9, 1, 0, 0, 0, 0\n", "goes back"),
        ("openface", OF_HEAD, "no data rows"),
        (
            "pyfeat",
            ",FaceScore,AU01,AU12,input,frame,time_s\n0,0.9,0.2,1.5,a.mp4,0,0\n",
            "1.5 is out of range (py-feat",
        ),
        ("pyfeat", ",FaceScore,AU01,AU12,input,frame\n0,0.9,0.2,0.5,a.mp4,0\n", "frame rate"),
        ("pyfeat", OF_HEAD + "1, 0, 0.000, 0.9, 1, 0.5, 1.0, 0, 1\n", "use aupipe import openface"),
        ("openface", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV text file"),
        ("openface", "OpenFace output of my clip\nsmile at 2 s\n", "not a CSV table"),
    ],
)
def test_bad_files_get_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, content: str | bytes, fragment: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, lines = cli_run(capsys, "import", kind, path, "-o", tmp_path / "w.csv", "--frames", tmp_path / "f.csv")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("aupipe: error: ") and fragment in lines[0], lines[0]
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"]  # nothing written, no temporary file left


def test_an_output_over_the_input_is_refused_with_exit_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "clip.csv"
    path.write_text(openface_text(columns=OPENFACE_POSE_AUS))
    before = path.read_bytes()
    for option in ("-o", "--frames", "--events"):
        extra = [] if option == "-o" else ["-o", tmp_path / "w.csv"]
        code, lines = cli_run(capsys, "import", "openface", path, *extra, option, path)
        assert code == 4 and len(lines) == 1 and "overwrite the input" in lines[0], lines
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["clip.csv"]


def test_a_three_frame_au_burst_is_spotted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n, burst = 600, (300, 301, 302)  # 20 s at 30 fps; a 100 ms smile at 10 s
    rng = np.random.default_rng(11)
    lines = [", ".join(OPENFACE_POSE_AUS)]
    for i in range(n):
        r = {f"AU{k}_r": f"{rng.uniform(0.0, 0.15):.2f}" for k in OF_R}
        if i in burst:
            r.update({"AU12_r": ("1.9", "3.1", "2.0")[i - 300], "AU06_r": ("1.2", "2.0", "1.1")[i - 300]})
        cells = {"frame": str(i + 1), "face_id": "0", "timestamp": f"{i / 30:.3f}", "confidence": "0.98", "success": "1",
                 **r}  # fmt: skip
        lines.append(", ".join(cells.get(name, "0") for name in OPENFACE_POSE_AUS))
    path = tmp_path / "burst.csv"
    path.write_text("\n".join(lines) + "\n")
    events = aupipe.analyze_frames(path).events
    assert len(events) == 1, events[["onset_frame", "apex_frame", "offset_frame", "aus"]]
    event = events.iloc[0]
    assert event["kind"] == "micro" and event["apex_frame"] == 301 and "AU12" in event["aus"].split()
    assert 298 <= event["onset_frame"] <= 300 and 302 <= event["offset_frame"] <= 304
    code, _ = cli_run(capsys, "import", "openface", path, "-o", tmp_path / "w.csv", "--events", tmp_path / "e.csv")
    written = pd.read_csv(tmp_path / "e.csv")
    assert code == 0 and written["apex_frame"].tolist() == [301]
    assert pd.read_csv(tmp_path / "w.csv")["in_event"].any()
