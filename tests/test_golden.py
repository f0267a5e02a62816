"""Outputs of the sample clips are unchanged by refactoring: every table equals tests/golden/.

The golden tables predate ``face_id`` (issue 18): a one-face run's tables are those tables with
a ``face_id`` column of zeros after the first column, and nothing else changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
CLIPS = ("1001_DFA_HAP_XX.flv", "1001_DFA_ANG_XX.flv", "single_face.mp4")
TABLES = ("windows", "frames", "events", "summary")


def _assert_same_table(got: pd.DataFrame, want: pd.DataFrame, name: str) -> None:
    assert list(got.columns) == list(want.columns), name
    assert len(got) == len(want), name
    for column in want.columns:
        a, b = got[column], want[column]
        if pd.api.types.is_numeric_dtype(b) and pd.api.types.is_numeric_dtype(a):
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-6, atol=1e-9, equal_nan=True,
                                       err_msg=f"{name}: {column}")  # fmt: skip
        else:
            assert a.fillna("").astype(str).tolist() == b.fillna("").astype(str).tolist(), f"{name}: {column}"


@pytest.mark.parametrize(("clip", "backend"), [*((c, "direct") for c in CLIPS), ("1001_DFA_HAP_XX.flv", "mediapipe")])
def test_sample_outputs_equal_the_golden_tables(tmp_path: Path, clip: str, backend: str) -> None:
    """The default (direct) backend against tests/golden/, MediaPipe's against tests/golden/mediapipe/."""
    stem = Path(clip).stem
    golden = GOLDEN if backend == "direct" else GOLDEN / backend
    args = ["-o", f"{stem}.windows.csv", "--frames", f"{stem}.frames.csv", "--no-landmarks",
            "--events", f"{stem}.events.csv", "--summary", f"{stem}.summary.csv", "--quiet", "--backend", backend]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "aupipe", "run", str(ROOT / "data" / "samples" / clip), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for table in TABLES:
        name = f"{stem}.{table}.csv"
        got = pd.read_csv(tmp_path / name)
        assert list(got.columns)[1] == "face_id" and (got["face_id"] == 0).all(), name
        _assert_same_table(got.drop(columns=["face_id"]), pd.read_csv(golden / name), name)
