"""No argument can make aupipe write over an input: synth and calibrate (run's cases are in test_scoring.py)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "samples" / "1001_DFA_NEU_XX.flv"


def _aupipe(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aupipe", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_synth_refuses_to_write_over_its_source(tmp_path: Path) -> None:
    source = tmp_path / "clip.avi"
    done = _aupipe("synth", SAMPLE, "-o", source, "--micro", "1", "--macro", "0", "--seconds", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # a real source to protect
    before = _digest(source)
    (tmp_path / "link.avi").symlink_to(source)
    again = _aupipe("synth", source, "-o", "link.avi", "--micro", "1", "--macro", "0", "--seconds", "4", cwd=tmp_path)
    assert again.returncode == 4, again.stderr
    assert again.stderr.count("\n") == 1 and "would overwrite the input" in again.stderr
    assert _digest(source) == before
    assert not list(tmp_path.glob(".*.part*"))


def test_calibrate_refuses_an_output_folder_that_holds_its_reference(tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    shutil.copy(SAMPLE, tmp_path / "agreement.flv")
    reference = refs / "agreement.csv"
    reference.write_text("frame,AU12\n" + "".join(f"{i},0\n" for i in range(1, 62)))
    before = _digest(reference)
    done = _aupipe("calibrate", "agreement.flv", "--reference", "refs", "-o", "refs", "--quiet", cwd=tmp_path)
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and "would overwrite the input" in done.stderr
    assert _digest(reference) == before
    assert sorted(p.name for p in refs.iterdir()) == ["agreement.csv"]
