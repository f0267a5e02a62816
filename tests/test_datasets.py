"""Dataset readers: CREMA-D names and metadata, labelled folders and CSV files (no video decoding)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aupipe.learning.datasets import load_dataset
from aupipe.learning.datasets.cremad import parse_name
from aupipe.errors import InputError

from .conftest import CREMAD, clip


@pytest.fixture()
def cremad_root(tmp_path: Path) -> Path:
    """A CREMA-D layout (VideoFlash/) with the six real clips of actor 1001 plus a stray file."""
    flash = tmp_path / "cremad" / "VideoFlash"
    flash.mkdir(parents=True)
    for emotion in CREMAD:
        shutil.copy(clip(emotion), flash)
    (flash / "notes.flv").write_bytes(b"x")
    return tmp_path / "cremad"


def test_parse_name_reads_the_four_parts_and_refuses_others() -> None:
    name = parse_name("1076_MTI_SAD_XX.flv")
    assert (name.actor, name.sentence, name.emotion, name.level) == ("1076", "MTI", "SAD", "XX")
    assert parse_name("1001_IEO_HAP_HI").level == "HI"
    for bad in ("1001_DFA_XYZ_XX", "1001_DFA_ANG_ZZ", "101_DFA_ANG_XX", "clip"):
        with pytest.raises(InputError, match="not a CREMA-D file name"):
            parse_name(bad)


def test_cremad_intended_labels_actor_groups_and_demographics(cremad_root: Path) -> None:
    data = load_dataset(cremad_root)
    assert data.name == "cremad" and data.label_key == "cremad"
    assert [c.label for c in data.clips] == list(CREMAD)
    assert data.subjects == ("1001",)
    assert all(c.clip_id == c.path.stem for c in data.clips)
    first = data.clips[0].meta
    assert (first["Sex"], first["Age"], first["AgeGroup"], first["sentence"]) == ("Male", "51", "50-59", "DFA")
    assert any("notes.flv" in path for path in data.skipped)


def test_cremad_face_vote_labels_come_from_the_summary_table(cremad_root: Path) -> None:
    data = load_dataset(cremad_root, label_source="face_vote")
    votes = {c.meta["intended"]: c.label for c in data.clips}
    # summaryTable.csv: NEU->N, HAP->H, SAD->N, ANG->A, FEA->D, DIS->A (see data/samples/ATTRIBUTION.md)
    assert votes == {"NEU": "NEU", "HAP": "HAP", "SAD": "NEU", "ANG": "ANG", "FEA": "DIS", "DIS": "ANG"}


def test_cremad_tied_face_votes_are_skipped(tmp_path: Path) -> None:
    flash = tmp_path / "VideoFlash"
    flash.mkdir()
    shutil.copy(clip("HAP"), flash / "1001_DFA_HAP_XX.flv")
    shutil.copy(clip("ANG"), flash / "1001_DFA_ANG_XX.flv")
    (tmp_path / "summaryTable.csv").write_text(
        '"","FileName","VoiceVote","VoiceLevel","FaceVote","FaceLevel"\n'
        '"1","1001_DFA_HAP_XX","H","60","H","70"\n"2","1001_DFA_ANG_XX","A","50","A:D","40"\n'
    )
    data = load_dataset(tmp_path, label_source="face_vote")
    assert [c.clip_id for c in data.clips] == ["1001_DFA_HAP_XX"]
    assert "tie" in data.skipped[str(flash / "1001_DFA_ANG_XX.flv")]


def test_labelled_folder_and_csv(tmp_path: Path) -> None:
    for label, names in {"happy": ["s01_a.flv", "s02_b.flv"], "sad": ["s01_c.flv"]}.items():
        (tmp_path / "folder" / label).mkdir(parents=True)
        for name in names:
            shutil.copy(clip("HAP"), tmp_path / "folder" / label / name)
    (tmp_path / "folder" / "sad" / "p9").mkdir()
    shutil.copy(clip("SAD"), tmp_path / "folder" / "sad" / "p9" / "take.flv")
    data = load_dataset(tmp_path / "folder")
    assert data.name == "folder" and data.labels == ("happy", "sad")
    assert sorted((c.label, c.subject) for c in data.clips) == [
        ("happy", "s01"), ("happy", "s02"), ("sad", "p9"), ("sad", "s01"),
    ]  # fmt: skip

    (tmp_path / "list.csv").write_text(
        "path,label,subject,site\nfolder/happy/s01_a.flv,joy,A,x\nfolder/sad/s01_c.flv,grief,B,y\nmissing.mp4,joy,C,z\n"
    )
    listed = load_dataset(tmp_path / "list.csv")
    assert [(c.label, c.subject, c.meta["site"]) for c in listed.clips] == [("joy", "A", "x"), ("grief", "B", "y")]
    assert any("missing.mp4" in path for path in listed.skipped)


def test_unusable_sources_are_one_line_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="dataset not found"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no labelled clip found"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "bad.csv").write_text("file,class\n")
    with pytest.raises(InputError, match="needs a header"):
        load_dataset(tmp_path / "bad.csv")
