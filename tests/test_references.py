"""Reference AU codes for ``aupipe calibrate``: real CSV files written into tmp_path, read back."""

from __future__ import annotations

import re
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aupipe.errors import AupipeWarning, InputError
from aupipe.learning.references import align, pair_references, read_reference
from aupipe.signal.video import probe

ROOT = Path(__file__).resolve().parents[1]
NEU_CLIP = ROOT / "data" / "samples" / "1001_DFA_NEU_XX.flv"

#: The standard table every format below encodes: frames 0-2, AU01 and AU12 on 0-5.
EXPECTED = pd.DataFrame(
    {"frame": np.array([0, 1, 2], dtype=np.int64), "valid": [True, True, True],
     "AU01": [0.0, 1.0, 5.0], "AU12": [2.0, 3.0, 0.5]}
)  # fmt: skip

FACS = """\
frame,AU1,AU12
1,0,2
2,1,3
3,5,0.5
"""
OPENFACE = """\
frame, face_id, timestamp, confidence, success, AU01_r, AU12_r, AU45_r, AU01_c, AU12_c, AU28_c
1, 0, 0.000, 0.98, 1, 0.00, 2.00, 0.10, 0, 1, 0
2, 0, 0.033, 0.98, 1, 1.00, 3.00, 0.20, 1, 1, 0
3, 0, 0.067, 0.97, 1, 5.00, 0.50, 0.00, 1, 0, 0
"""
PYFEAT = """\
,FaceRectX,FaceRectY,FaceRectWidth,FaceRectHeight,FaceScore,AU01,AU12,AU11,anger,input,frame,approx_time
0,10,12,50,60,0.99,0.0,0.4,0.1,0.2,clip.mp4,0,00:00
1,10,12,50,60,0.98,0.2,0.6,0.1,0.2,clip.mp4,1,00:00
2,11,12,50,60,0.99,1.0,0.1,0.1,0.2,clip.mp4,2,00:00
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def read_quiet(path: Path, **kwargs: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AupipeWarning)
        return read_reference(path, **kwargs)  # type: ignore[arg-type]


def warned(path: Path, **kwargs: object) -> tuple[pd.DataFrame, list[str]]:
    """The table and every warning message reading ``path`` gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_reference(path, **kwargs)  # type: ignore[arg-type]
    return table, [str(w.message) for w in caught]


def refused(path: Path, pattern: str, **kwargs: object) -> str:
    """Reading ``path`` raises one InputError line that names the file and matches ``pattern``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AupipeWarning)
        with pytest.raises(InputError) as err:
            read_reference(path, **kwargs)  # type: ignore[arg-type]
    message = str(err.value)
    assert str(path) in message
    assert "\n" not in message
    assert re.search(pattern, message), message
    return message


def standard(table: pd.DataFrame) -> pd.DataFrame:
    return table[["frame", "valid", "AU01", "AU12"]]


@pytest.mark.parametrize(("text", "kind"), [(FACS, "facs"), (OPENFACE, "openface"), (PYFEAT, "pyfeat")])
def test_each_format_parses_to_the_same_standard_table(tmp_path: Path, text: str, kind: str) -> None:
    table = read_quiet(write(tmp_path, f"{kind}.csv", text))
    assert table.attrs["kind"] == kind
    assert list(table.columns) == ["frame", "valid", "AU01", "AU12"]
    assert table["frame"].dtype == np.int64 and table["valid"].dtype == bool
    pd.testing.assert_frame_equal(standard(table), EXPECTED, check_exact=False, atol=1e-9)


def test_explicit_kind_reads_a_pyfeat_file_without_its_marker_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "bare.csv", "frame,AU01,AU12\n0,0.0,0.4\n1,0.2,0.6\n2,1.0,0.1\n")
    assert read_quiet(path)["AU01"].tolist() == [0.0, 0.2, 1.0]  # auto: FACS codes, not scaled
    pd.testing.assert_frame_equal(standard(read_quiet(path, kind="pyfeat")), EXPECTED, check_exact=False)


def test_unreported_aus_are_ignored_and_named(tmp_path: Path) -> None:
    path = write(tmp_path, "of.csv", OPENFACE)
    with pytest.warns(AupipeWarning, match="AU45_r"):
        table = read_reference(path)
    assert table.attrs["ignored_aus"] == ["AU45_r"]
    assert "AU45" not in table.columns and "AU28" not in table.columns  # AU28_c is presence, not intensity


def test_facs_letters_and_blank_cells(tmp_path: Path) -> None:
    path = write(tmp_path, "letters.csv", "frame,AU01,AU06,AU12\n1,A,0,e\n2,B,,C\n3,D,E,\n4,,,\n")
    table = read_quiet(path)
    assert table["AU01"].tolist()[:3] == [1.0, 2.0, 4.0]
    assert table["AU12"].tolist()[:2] == [5.0, 3.0]
    assert table["AU06"].iloc[0] == 0.0 and np.isnan(table["AU06"].iloc[1])
    assert table["valid"].tolist() == [True, True, True, False]  # a row with nothing coded is not valid
    absent = read_quiet(path, blank_absent=True)
    assert absent["AU06"].tolist() == [0.0, 0.0, 5.0, 0.0] and absent["valid"].all()


def test_au_column_spellings(tmp_path: Path) -> None:
    path = write(tmp_path, "names.csv", "Frame,au2,AU04,AU12_r,AU 25\n0,1,2,3,4\n")
    assert list(read_quiet(path).columns) == ["frame", "valid", "AU02", "AU04", "AU12", "AU25"]
    refused(write(tmp_path, "twice.csv", "frame,AU1,AU01\n0,1,2\n"), "AU1 and AU01 both code AU01")


def test_frame_base_detection(tmp_path: Path) -> None:
    zero = write(tmp_path, "zero.csv", "frame,AU12\n0,1\n1,2\n2,3\n")
    one = write(tmp_path, "one.csv", "frame,AU12\n1,1\n2,2\n3,3\n")
    assert read_quiet(zero)["frame"].tolist() == [0, 1, 2]
    assert read_quiet(one)["frame"].tolist() == [0, 1, 2]
    assert read_quiet(one, frame_base=0)["frame"].tolist() == [1, 2, 3]
    late = write(tmp_path, "late.csv", "frame,AU12\n10,1\n11,2\n")
    with pytest.warns(AupipeWarning, match="numbered from 1"):
        assert read_reference(late)["frame"].tolist() == [9, 10]
    assert read_quiet(late, frame_base=0)["frame"].tolist() == [10, 11]
    refused(zero, "before the first frame", frame_base=1)
    refused(one, "frame_base must be 0 or 1", frame_base=2)


def test_openface_spaced_headers_read_like_plain_ones(tmp_path: Path) -> None:
    spaced = read_quiet(write(tmp_path, "spaced.csv", OPENFACE))
    plain = read_quiet(write(tmp_path, "plain.csv", OPENFACE.replace(", ", ",")))
    pd.testing.assert_frame_equal(spaced, plain)
    assert "AU01" in spaced.columns


def test_openface_failed_frames_are_invalid(tmp_path: Path) -> None:
    text = OPENFACE.replace("2, 0, 0.033, 0.98, 1,", "2, 0, 0.033, 0.00, 0,")
    table = read_quiet(write(tmp_path, "failed.csv", text))
    assert table["valid"].tolist() == [True, False, True]
    assert np.isnan(table.loc[1, "AU01"]) and table.loc[2, "AU01"] == 5.0
    refused(write(tmp_path, "zero_frame.csv", OPENFACE.replace("\n1, 0,", "\n0, 0,")), "OpenFace numbers frames from 1")


def test_openface_several_faces(tmp_path: Path) -> None:
    second = "\n".join(f"{i}, 1, 0.0, 0.9, 1, 4.0, 4.0, 0.0, 1, 1, 0" for i in (1, 2, 3))
    path = write(tmp_path, "multi.csv", OPENFACE + second + "\n")
    table, messages = warned(path)
    pd.testing.assert_frame_equal(standard(table), EXPECTED)
    assert any("2 faces tracked; using face_id 0" in m for m in messages)
    assert read_quiet(path, face_id=1)["AU01"].tolist() == [4.0, 4.0, 4.0]
    refused(path, "no face_id 7", face_id=7)


def test_pyfeat_several_faces_keeps_the_best_scored(tmp_path: Path) -> None:
    other = "3,200,12,50,60,0.50,0.9,0.9,0.1,0.2,clip.mp4,1,00:00\n"
    path = write(tmp_path, "pf_multi.csv", PYFEAT + other)
    table, messages = warned(path)
    assert any("highest FaceScore" in m for m in messages)
    pd.testing.assert_frame_equal(standard(table), EXPECTED, check_exact=False, atol=1e-9)
    no_face = PYFEAT.replace("1,10,12,50,60,0.98,0.2,0.6", "1,,,,,,,")
    table = read_quiet(write(tmp_path, "pf_noface.csv", no_face))
    assert table["valid"].tolist() == [True, False, True]


@pytest.mark.parametrize(
    ("header", "times"), [("time_s", "0,0.0334,0.0667"), ("time_ms", "0,33.4,66.7"), ("timestamp", "0,0.0334,0.0667")]
)
def test_time_based_codes_need_fps(tmp_path: Path, header: str, times: str) -> None:
    rows = "".join(f"{t},{a},{b}\n" for t, a, b in zip(times.split(","), (0, 1, 5), (2, 3, 0.5), strict=True))
    path = write(tmp_path, "timed.csv", f"{header},AU01,AU12\n{rows}")
    pd.testing.assert_frame_equal(standard(read_quiet(path, fps=30.0)), EXPECTED)
    assert read_quiet(path, fps=60.0)["frame"].tolist() == [0, 2, 4]
    refused(path, rf"timed by column {header}.*fps")
    refused(path, "fps=0", fps=0.0)


def test_a_real_video_frame_count(tmp_path: Path) -> None:
    n = probe(NEU_CLIP).frame_count
    assert n == 61

    def codes(count: int) -> Path:
        return write(tmp_path, f"codes{count}.csv", "frame,AU12\n" + "".join(f"{i},1\n" for i in range(1, count + 1)))

    assert len(read_quiet(codes(61), n_frames=n)) == 61
    assert len(read_quiet(codes(59), n_frames=n)) == 59  # within 2 frames
    assert len(read_quiet(codes(63), n_frames=n)) == 63
    message = refused(codes(50), "ends well before", n_frames=n)
    assert "frame 50" in message and "61 frames" in message
    message = refused(codes(70), "runs past", n_frames=n)
    assert "frame 70" in message and "61 frames" in message
    assert len(read_quiet(codes(70), n_frames=None)) == 70  # no count, no check


def test_length_tolerance_grows_with_the_video(tmp_path: Path) -> None:
    path = write(tmp_path, "long.csv", "frame,AU12\n" + "".join(f"{i},1\n" for i in range(1, 982)))
    assert len(read_quiet(path, n_frames=1000)) == 981  # 19 short of 1000: within 2 % (20 frames)
    assert len(read_quiet(path, n_frames=1001)) == 981  # 20 short of 1001: tolerance ceil(20.02) = 21
    refused(path, "has 1003 frames .tolerance 21", n_frames=1003)
    short = write(tmp_path, "short.csv", "frame,AU12\n" + "".join(f"{i},1\n" for i in range(1, 980)))
    refused(short, "ends at frame 979.*1000 frames .tolerance 20", n_frames=1000)


@pytest.mark.parametrize(
    ("name", "content", "pattern", "kwargs"),
    [
        ("empty.csv", "", "file is empty", {}),
        ("blank.csv", "\n\n  \n", "file is empty", {}),
        ("header.csv", "frame,AU12\n", "no data rows", {}),
        ("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV text file", {}),
        ("latin1.csv", "frame,AU12,note\n1,2,caf\xe9\n".encode("latin-1"), "not UTF-8", {}),
        ("notes.csv", "Coder notes for clip 1\nsmile at 2 s\n", "not a CSV table .one column", {}),
        ("quote.csv", 'frame,AU12\n1,"2\n', "not a readable CSV", {}),
        ("noframe.csv", "AU12,AU01\n1,2\n", "no frame column.*time column", {}),
        ("noau.csv", "frame,smile\n1,2\n", "no AU column", {}),
        ("onlyau45.csv", "frame,AU45\n1,2\n", "no AU column.*only AU45", {}),
        (
            "text.csv",
            "frame,AU12\n1,2\n2,strong\n",
            r"line 3, column AU12: 'strong' is not a number or FACS letter",
            {},
        ),
        ("letter.csv", "frame,AU12\n1,F\n", "'F' is not a number or FACS letter A-E", {}),
        ("negative.csv", "frame,AU01,AU12\n1,0,1\n2,0,-1\n", "line 3, column AU12: -1 is out of range", {}),
        ("high.csv", "frame,AU12\n1,5\n2,5.5\n", "line 3, column AU12: 5.5 is out of range.*0-5", {}),
        ("inf.csv", "frame,AU12\n1,inf\n", "line 2, column AU12: inf is out of range", {}),
        ("pf_high.csv", PYFEAT.replace("0.6", "3.0"), "line 3, column AU12: 3 is out of range.*py-feat", {}),
        ("dup.csv", "frame,AU12\n1,1\n2,1\n2,3\n", "frame 1 .*coded twice, on lines 3 and 4", {}),
        ("dupcol.csv", "frame,AU12,AU12\n1,1,1\n", "column AU12 appears more than once", {}),
        ("frac.csv", "frame,AU12\n1,1\n1.5,1\n", "line 3.*not a whole number", {}),
        ("noframe_value.csv", "frame,AU12\n1,1\n,2\n", "line 3, column frame: empty", {}),
        ("badframe.csv", "frame,AU12\n1,1\nx,2\n", "column frame: 'x' is not a number", {}),
        ("timedup.csv", "time_ms,AU12\n0,1\n10,2\n", "frame 0 .*coded twice", {"fps": 30.0}),
        ("kind.csv", "frame,AU12\n1,1\n", "unknown reference kind 'dlib'", {"kind": "dlib"}),
    ],
)
def test_bad_files_get_one_clear_line(
    tmp_path: Path, name: str, content: str | bytes, pattern: str, kwargs: dict[str, object]
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    refused(path, pattern, **kwargs)


def test_missing_and_folder_paths(tmp_path: Path) -> None:
    refused(tmp_path / "nope.csv", "no such reference file")
    refused(tmp_path, "is a folder")


def test_semicolon_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "excel.csv", FACS.replace(",", ";"))
    pd.testing.assert_frame_equal(standard(read_quiet(path)), EXPECTED)


def test_pair_references_by_stem(tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    for stem in ("clip1", "clip2", "orphan"):
        (refs / f"{stem}.csv").write_text(FACS)
    (refs / "README.txt").write_text("notes")
    videos = [tmp_path / "v" / "clip2.mp4", tmp_path / "v" / "clip1.mp4"]
    with pytest.warns(AupipeWarning, match="orphan.csv"):
        pairs = pair_references(videos, refs)
    assert pairs == [(videos[0], refs / "clip2.csv"), (videos[1], refs / "clip1.csv")]

    with pytest.raises(InputError, match=r"clip3\.mp4") as err:
        pair_references([*videos, tmp_path / "v" / "clip3.mp4"], refs)
    assert "clip1" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="same name"):
        pair_references([tmp_path / "a" / "clip1.mp4", tmp_path / "b" / "clip1.avi"], refs)


def test_pair_a_single_reference_file(tmp_path: Path) -> None:
    ref = write(tmp_path, "codes.csv", FACS)
    video = tmp_path / "interview.mp4"
    assert pair_references([video], ref) == [(video, ref)]
    with pytest.raises(InputError, match="one reference file for 2 videos"):
        pair_references([video, tmp_path / "other.mp4"], ref)
    with pytest.raises(InputError, match="no such reference file or folder"):
        pair_references([video], tmp_path / "missing")
    with pytest.raises(InputError, match="no videos"):
        pair_references([], ref)


def test_align_reindexes_to_video_frames(tmp_path: Path) -> None:
    table = read_quiet(write(tmp_path, "codes.csv", FACS))
    aligned = align(table, np.array([2, 0, 7, 1]))
    assert list(aligned.columns) == list(table.columns)
    assert aligned["frame"].tolist() == [2, 0, 7, 1]
    assert aligned["valid"].tolist() == [True, True, False, True]
    assert aligned["AU01"].tolist()[:2] == [5.0, 0.0] and np.isnan(aligned.loc[2, "AU12"])
    assert aligned["AU12"].iloc[3] == 3.0
    assert len(align(table, np.array([], dtype=int))) == 0
    with pytest.raises(ValueError, match="whole frame numbers"):
        align(table, np.array([0.5]))
