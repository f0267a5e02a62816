"""The command line on real clips and on every kind of bad input: one line, an exit code, no leftovers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aupipe

from .conftest import SAMPLES, clip


def aupipe_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aupipe", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aupipe: error: ")
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_run_writes_windows_and_frames_equal_to_the_api(tmp_path: Path, analysed: dict) -> None:
    result = aupipe_cli("run", clip("HAP"), "-o", tmp_path / "w.csv", "--frames", tmp_path / "f.csv", "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv", "w.csv"]
    windows = pd.read_csv(tmp_path / "w.csv", keep_default_na=False, na_values=[""])
    frames = pd.read_csv(tmp_path / "f.csv")
    api = analysed["HAP"]
    assert list(windows.columns) == list(api.windows.columns)
    assert list(frames.columns) == list(api.frames.columns)
    pd.testing.assert_frame_equal(frames, api.frames, check_dtype=False, rtol=1e-4, atol=1e-4)
    expected = api.windows.copy()
    expected["emotion_aus"] = expected["emotion_aus"].fillna("")
    pd.testing.assert_frame_equal(windows.fillna(""), expected.fillna(""), check_dtype=False, rtol=1e-4, atol=1e-4)


def test_stderr_shows_only_aupipe_lines(tmp_path: Path) -> None:
    result = aupipe_cli("run", clip("NEU"), "-o", tmp_path / "w.csv")
    assert result.returncode == 0
    for line in result.stderr.splitlines():
        assert not line.startswith(("W0000", "I0000", "E0000", "INFO:", "WARNING: Logging")), line
    assert "Traceback" not in result.stderr


def test_no_face_video_is_a_warning_not_an_error(tmp_path: Path) -> None:
    result = aupipe_cli("run", SAMPLES / "no_face.mp4", "-o", tmp_path / "w.csv", "--quiet")
    assert result.returncode == 0
    assert "aupipe: warning:" in result.stderr and "no face found" in result.stderr
    table = pd.read_csv(tmp_path / "w.csv")
    assert len(table) > 0 and (table["face_coverage"] == 0).all()


def test_default_output_name(tmp_path: Path) -> None:
    result = aupipe_cli("run", clip("SAD"), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "1001_DFA_SAD_XX.windows.csv").exists()


def test_other_window_and_stride(tmp_path: Path) -> None:
    result = aupipe_cli("run", clip("SAD"), "-o", tmp_path / "w.csv", "--window-ms", "250", "--stride-ms", "50")
    assert result.returncode == 0
    table = pd.read_csv(tmp_path / "w.csv")
    assert (table["end_ms"] - table["start_ms"] == 250).all() and (np.diff(table["start_ms"]) == 50).all()


@pytest.fixture()
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    import cv2

    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated_flv = tmp_path / "truncated.flv"
    truncated_flv.write_bytes(clip("HAP").read_bytes()[:120_000])
    truncated_mp4 = tmp_path / "truncated.mp4"
    truncated_mp4.write_bytes((SAMPLES / "single_face.mp4").read_bytes()[:100_000])
    zero = tmp_path / "zero.avi"
    writer = cv2.VideoWriter(str(zero), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 64))
    writer.release()
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    return {
        "text": text, "empty": empty, "truncated_flv": truncated_flv, "truncated_mp4": truncated_mp4,
        "zero": zero, "no_images": no_images,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("missing", "no such file"),
        ("text", "not a video"),
        ("empty", "file is empty"),
        ("truncated_flv", "truncated"),
        ("truncated_mp4", "not a video"),
        ("zero", "no frame could be decoded"),
        ("no_images", "holds no images"),
    ],
)
def test_bad_video_gets_one_line_and_exit_2(tmp_path: Path, bad_inputs: dict, kind: str, fragment: str) -> None:
    source = bad_inputs.get(kind, tmp_path / "missing.mp4")
    out = tmp_path / "out"
    out.mkdir()
    result = aupipe_cli("run", source, "-o", out / "w.csv", "--frames", out / "f.csv")
    assert_one_line_error(result, 2, fragment)
    assert list(out.iterdir()) == []  # nothing half-written


def test_malformed_mapping_names_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: broken\nparents: [happy\ncategories: {}\n")
    result = aupipe_cli("run", clip("HAP"), "-o", tmp_path / "w.csv", "--mapping", broken)
    assert_one_line_error(result, 3, f"{broken}:")
    assert not (tmp_path / "w.csv").exists()


def test_contradicting_options_get_one_line_and_exit_2(tmp_path: Path) -> None:
    result = aupipe_cli("run", clip("HAP"), "-o", tmp_path / "w.csv", "--events", tmp_path / "e.csv", "--no-spotting")
    assert_one_line_error(result, 2, "--events needs spotting")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["missing_dir/w.csv", "a_folder", "a_file/w.csv"])
def test_unwritable_output_gets_one_line_and_exit_4(tmp_path: Path, target: str) -> None:
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    result = aupipe_cli("run", clip("HAP"), "-o", tmp_path / target)
    assert_one_line_error(result, 4, "output")


def test_help_is_fast_and_does_not_load_heavy_libraries() -> None:
    code = "import sys, aupipe.cli.main; aupipe.cli.main.build_parser(); print(sorted(m for m in ('mediapipe', 'tensorflow', 'keras', 'pandas', 'cv2') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_mapping_validate_and_show() -> None:
    result = aupipe_cli("mapping", "validate", "micro_emotions")
    assert result.returncode == 0, result.stderr
    assert "24 categories" in result.stdout
    shown = aupipe_cli("mapping", "show", "micro_emotions")
    assert shown.returncode == 0 and "hopeful" in shown.stdout.lower()


def test_version() -> None:
    result = aupipe_cli("--version")
    assert result.stdout.strip() == f"aupipe {aupipe.__version__}"


def test_run_without_a_model_never_imports_tensorflow_or_keras(tmp_path: Path) -> None:
    code = (
        "import sys, aupipe; aupipe.run(sys.argv[1], sys.argv[2], progress=False); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'torch', 'jax') if sys.modules.get(m) is not None))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(clip("NEU")), str(tmp_path / "w.csv")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


BROKEN = sorted((Path(__file__).parent / "broken_mappings").glob("*.yaml"))


def test_every_broken_mapping_gets_one_line_from_the_cli() -> None:
    assert len(BROKEN) >= 15
    # one interpreter for the whole corpus: the same code path as the console script
    code = (
        "import sys, io, contextlib, aupipe.cli.main as cli\n"
        "for path in sys.argv[1:]:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        code = cli.main(['mapping', 'validate', path])\n"
        "    print(code, repr(err.getvalue()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *map(str, BROKEN)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(BROKEN)
    for path, line in zip(BROKEN, lines, strict=True):
        code, message = line.split(" ", 1)
        text = eval(message)  # repr of the captured stderr
        assert code == "3", (path.name, text)
        assert text.count("\n") == 1 and text.startswith(f"aupipe: error: {path}:"), (path.name, text)
        assert "Traceback" not in text


def test_a_new_category_in_a_copied_mapping_shows_up_in_run_output(tmp_path: Path) -> None:
    mine = tmp_path / "my_emotions.yaml"
    from importlib import resources

    text = resources.files("aupipe.mappings").joinpath("micro_emotions.yaml").read_text()
    text += (
        "  beaming:\n"
        "    parent: happy\n"
        "    all_of: [{au: AU12, min: C}, AU06]\n"
        "    description: a broad smile with raised cheeks (added by a user)\n"
    )
    mine.write_text(text)
    validated = aupipe_cli("mapping", "validate", mine)
    assert validated.returncode == 0, validated.stderr
    assert "25 categories" in validated.stdout
    result = aupipe_cli("run", clip("HAP"), "-o", tmp_path / "w.csv", "--mapping", mine)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "w.csv")
    assert "score_beaming" in table.columns
    assert table["score_beaming"].between(0, 1).all() and table["score_beaming"].max() > 0
