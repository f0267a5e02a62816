"""Tests of the emotion-mapping stage: shipped files, validation messages, and the fuzzy scorer."""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aupipe.errors import AupipeError, MappingError
from aupipe.rules.mapping import (
    KNOWN_AUS,
    SIDED_AUS,
    Category,
    Mapping,
    Term,
    Uncertainty,
    describe,
    list_mappings,
    load_mapping,
    membership,
    parse_mapping,
    validate_file,
    validation_warnings,
)
from aupipe.rules.mapping import score as score_with_uncertainty

#: The rule engine's tests read every winner as it is; "uncertain" is tested in test_scoring.py.
CERTAIN = Uncertainty(min_margin=0.0, min_face_coverage=0.0, max_head_turn_deg=90.0, min_baseline_confidence=0.0)


def score(frame: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    """``aupipe.rules.mapping.score`` with the uncertain tests switched off (as ``uncertain: false`` does)."""
    import dataclasses

    return score_with_uncertainty(frame, dataclasses.replace(mapping, uncertainty=CERTAIN))


ROOT = Path(__file__).resolve().parents[1]
BROKEN = Path(__file__).resolve().parent / "broken_mappings"
SHIPPED = ("micro_emotions", "basic_emotions", "casme2")

# --------------------------------------------------------------------------------------------
# Shipped files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_mappings_load_and_validate(name: str) -> None:
    mapping = load_mapping(name)
    assert mapping.name == name
    assert mapping.version == 1
    assert mapping.categories
    assert set(c.parent for c in mapping.categories) <= set(mapping.parents)
    assert isinstance(validate_file(ROOT / "mappings" / f"{name}.yaml"), list)
    assert mapping.sha256 == hashlib.sha256((ROOT / "mappings" / f"{name}.yaml").read_bytes()).hexdigest()
    header = (ROOT / "mappings" / f"{name}.yaml").read_text().split("\nversion:")[0]
    assert header.startswith("#") and ("Source:" in header or "Table 1" in header)


def test_list_mappings_and_default() -> None:
    assert set(SHIPPED) <= set(list_mappings())
    assert load_mapping().name == "micro_emotions"
    assert load_mapping(None) == load_mapping("micro_emotions")
    by_path = load_mapping(str(ROOT / "mappings" / "basic_emotions.yaml"))
    by_name = load_mapping("basic_emotions")
    assert by_path.sha256 == by_name.sha256 and by_path.categories == by_name.categories


def test_table1_structure() -> None:
    mapping = load_mapping("micro_emotions")
    assert mapping.parents == ("sad", "scared", "angry", "embarrassed", "playful", "confident", "loved", "happy")
    assert len(mapping.categories) == 24
    per_parent = {p: [c.name for c in mapping.categories if c.parent == p] for p in mapping.parents}
    assert all(len(v) == 3 for v in per_parent.values())
    assert per_parent["happy"] == ["excited", "grateful", "caring"]
    assert mapping.neutral == "neutral"


def test_table1_specific_rules() -> None:
    mapping = load_mapping("micro_emotions")
    bored = mapping.category("bored")
    assert [t.au for t in bored.all_of] == ["AU07"] and [t.au for t in bored.none_of] == ["AU12"]
    excluded = mapping.category("excluded")
    assert [t.au for t in excluded.all_of] == ["AU15"] and [t.au for t in excluded.none_of] == ["AU01"]
    assert [t.au for t in mapping.category("accepted").all_of] == ["AU12", "AU01", "AU02"]
    assert [t.au for t in mapping.category("hurt").all_of] == ["AU01", "AU15"]
    assert [t.au for t in mapping.category("respected").all_of] == ["AU12", "AU07", "AU23"]
    assert all(t.min_intensity == 1.0 and t.side == "combined" for c in mapping.categories for t in c.all_of)
    assert mapping.category("hurt").labels == {"cremad": "SAD"}
    assert mapping.category("ashamed").labels == {}


def test_table1_warnings_name_the_overlapping_pairs() -> None:
    warnings = validation_warnings(load_mapping("micro_emotions"))
    text = "\n".join(warnings)
    assert "'grateful' has the same rule as 'hopeful'" in text
    assert "'caring' has the same rule as 'brave'" in text
    assert "whenever 'accepted' fires" in text and "'hopeful'" in text
    assert "whenever 'respected' fires" in text
    assert all(w.count("\n") == 0 and ":" in w for w in warnings)
    assert all(w.startswith(str(ROOT / "mappings" / "micro_emotions.yaml") + ":") for w in warnings)


def test_basic_and_casme2_rules() -> None:
    basic = load_mapping("basic_emotions")
    contempt = basic.category("contempt")
    expected = {("AU12", "right", 1.0), ("AU14", "right", 1.0)}
    assert {(t.au, t.side, t.min_intensity) for t in contempt.all_of} == expected
    assert {(t.au, t.side) for t in basic.category("contempt_left").all_of} == {("AU12", "left"), ("AU14", "left")}
    surprise = basic.category("surprise")
    prototype = {t.au: t.min_intensity for t in surprise.all_of + surprise.supporting}
    assert prototype == {"AU01": 1.0, "AU02": 1.0, "AU05": 2.0, "AU26": 1.0}  # EMFACS 1+2+5B+26
    assert surprise.graded and set(surprise.speech_aus) == {"AU25", "AU26"}
    assert validation_warnings(basic) == []
    casme = load_mapping("casme2")
    assert casme.neutral == "others"
    assert casme.parents == ("happiness", "disgust", "surprise", "repression")
    assert [t.au for t in casme.category("happiness").any_of] == ["AU06", "AU12"]


def test_describe_is_a_readable_table() -> None:
    mapping = load_mapping("micro_emotions")
    text = describe(mapping)
    assert "AU07 without AU12" in text and "AU15 without AU01" in text
    for cat in mapping.categories:
        assert cat.name in text
    assert "warnings (4)" in text
    assert "AU12(right)>=A + AU14(right)>=A" in describe(load_mapping("basic_emotions"))


# --------------------------------------------------------------------------------------------
# Broken files: each gets its precise one-line message with file:line:column
# --------------------------------------------------------------------------------------------

BROKEN_CASES: list[tuple[str, str, str]] = [
    ("empty.yaml", "1:1", "the file is empty"),
    ("comments_only.yaml", "1:1", "contains no YAML data"),
    ("syntax_unclosed_bracket.yaml", "7:16", "YAML syntax error"),
    ("syntax_tab_indent.yaml", "5:1", "YAML syntax error"),
    ("two_documents.yaml", "5:1", "expected a single document"),
    ("not_utf8.yaml", "3:17", "not UTF-8"),
    ("top_level_list.yaml", "2:1", "the top level is a list"),
    ("missing_version.yaml", "2:1", "missing 'version'"),
    ("unsupported_version.yaml", "2:10", "unsupported version 2; this aupipe reads version 1"),
    ("version_text.yaml", "2:10", "version must be the whole number 1"),
    ("unknown_top_key.yaml", "4:1", "unknown key 'categoris' in the top level; did you mean 'categories'?"),
    ("unknown_category_key.yaml", "7:5", "unknown key 'all_off' in category 'hurt'; did you mean 'all_of'?"),
    ("unknown_term_key.yaml", "7:20", "unknown key 'intensity' in an AU term; did you mean 'min'?"),
    ("unknown_au.yaml", "7:26", "unknown AU 'AU16'"),
    ("not_an_au.yaml", "5:20", "unknown AU 'smile'"),
    ("unknown_au_in_plus_string.yaml", "5:19", "unknown AU 'AU99'"),
    ("duplicate_category.yaml", "11:3", "duplicate category 'hurt' (first defined on line 5)"),
    ("duplicate_key.yaml", "7:5", "duplicate key 'all_of' in categories.hurt"),
    ("missing_parent.yaml", "8:3", "category 'joy' has no parent; add 'parent:' with one of sad, happy"),
    ("parent_not_in_parents.yaml", "6:13", "parent 'hapy' of category 'joy' is not in parents; did you mean 'happy'?"),
    ("threshold_too_high.yaml", "7:25", "intensity 7 is out of range"),
    ("threshold_zero.yaml", "6:25", "intensity 0 is out of range (0 means absent"),
    ("bad_facs_letter.yaml", "6:25", "bad intensity 'F'; give a FACS letter A-E"),
    ("bad_default_level.yaml", "4:8", "bad intensity 'strong'"),
    ("bad_side.yaml", "6:26", "bad side 'top'; valid: left, right, either, both"),
    ("side_on_bilateral_au.yaml", "7:26", "AU25 has no left/right values"),
    ("empty_rule.yaml", "4:3", "category 'hurt' has an empty rule"),
    ("none_of_only.yaml", "4:3", "none_of alone would fire on a neutral face"),
    ("category_without_body.yaml", "4:3", "category 'hurt' has no rule"),
    ("categories_as_list.yaml", "4:3", "'categories' must be a mapping"),
    ("missing_categories.yaml", "2:1", "no categories"),
    ("duplicate_term.yaml", "5:26", "AU01 is listed twice in all_of of 'hurt'"),
    ("neutral_name_clash.yaml", "5:3", "same name as the neutral label"),
    ("bad_cremad_label.yaml", "6:22", "'HAPPY' is not a cremad label; valid: ANG, DIS, FEA, HAP, NEU, SAD"),
    ("bad_category_name.yaml", "4:3", "category name 'feeling hurt' is not a valid name"),
    ("yes_as_name.yaml", "4:3", "put the name in quotes"),
    ("plus_in_any_of.yaml", "5:26", "combines AUs with '+', which only all_of accepts"),
    ("term_without_au.yaml", "6:9", "this term has no 'au'"),
    ("duplicate_parent.yaml", "3:23", "parent 'sad' is listed twice"),
]


def test_broken_corpus_is_covered() -> None:
    files = sorted(p.name for p in BROKEN.glob("*.yaml"))
    assert len(files) >= 15
    assert files == sorted(name for name, _, _ in BROKEN_CASES)


@pytest.mark.parametrize(("filename", "line_col", "fragment"), BROKEN_CASES, ids=[c[0] for c in BROKEN_CASES])
def test_broken_mapping_message(filename: str, line_col: str, fragment: str) -> None:
    path = BROKEN / filename
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line_col}: "), message
    assert fragment in message, message
    assert "\n" not in message
    assert isinstance(info.value, AupipeError) and info.value.exit_code == 3
    with pytest.raises(MappingError):
        validate_file(path)


def test_unknown_au_message_lists_valid_aus() -> None:
    with pytest.raises(MappingError, match="valid AUs: AU01 AU02 AU04 .* AU43"):
        load_mapping(BROKEN / "unknown_au.yaml")


def test_missing_file_and_unknown_name() -> None:
    with pytest.raises(MappingError, match="not found"):
        load_mapping(ROOT / "no" / "such.yaml")
    with pytest.raises(MappingError, match="did you mean 'basic_emotions'"):
        load_mapping("basic_emotion")
    with pytest.raises(MappingError, match="is a folder"):
        load_mapping(BROKEN)


# --------------------------------------------------------------------------------------------
# Schema details
# --------------------------------------------------------------------------------------------


def _mapping(categories: str, header: str = "") -> Mapping:
    return parse_mapping(f"version: 1\n{header}categories:\n{categories}", "<test>")


def test_au_spellings_are_normalised() -> None:
    mapping = _mapping(
        "  a: {all_of: [AU1, au12, R12A, 5b, 14]}\n"
        "  b: {all_of: AU1 + AU15}\n"
        "  c: {all_of: [{au: 4, min: 2.5}, {au: au07, side: Either, min: c}]}\n"
    )
    a, b, c = mapping.categories
    assert a.all_of == (Term("AU01"), Term("AU12"), Term("AU12", 1.0, "right"), Term("AU05", 2.0), Term("AU14"))
    assert [t.au for t in b.all_of] == ["AU01", "AU15"]
    assert [(t.au, t.min_intensity, t.side) for t in c.all_of] == [("AU04", 2.5, "combined"), ("AU07", 3.0, "either")]
    assert mapping.neutral == "neutral" and mapping.parents == ("a", "b", "c")


def test_duplicate_list_item_with_spelling_variant_is_an_error() -> None:
    with pytest.raises(MappingError, match=r"<test>:4:20: AU12 is listed twice"):
        _mapping("  a:\n    all_of: [AU12, 12]\n")


def test_defaults_min_applies_to_bare_aus() -> None:
    mapping = _mapping("  a: {all_of: [AU12, {au: AU06, min: A}]}\n", header="defaults: {min: C, side_margin: 0.5}\n")
    assert [t.min_intensity for t in mapping.categories[0].all_of] == [3.0, 1.0]
    assert mapping.side_margin == 0.5


def test_contradictory_rule_warns() -> None:
    mapping = _mapping("  a: {all_of: [AU12], none_of: [AU12]}\n")
    assert any("can never fire" in w for w in mapping.warnings)


def test_unused_parent_warns() -> None:
    mapping = _mapping("  a: {parent: x, all_of: [AU12]}\n", header="parents: [x, y]\n")
    assert any("parent 'y' has no categories" in w for w in mapping.warnings)


def test_unsafe_yaml_tags_are_refused() -> None:
    with pytest.raises(MappingError, match="YAML syntax error"):
        parse_mapping("version: 1\ncategories: !!python/object/apply:os.system ['echo hi']\n", "<test>")


def test_merge_keys_and_anchors_work() -> None:
    mapping = _mapping("  a: &base {parent: a, all_of: [AU12]}\n  b:\n    <<: *base\n    none_of: [AU06]\n")
    assert mapping.category("b").none_of == (Term("AU06"),)


# --------------------------------------------------------------------------------------------
# Scoring: examples
# --------------------------------------------------------------------------------------------


def test_score_example_explanation_and_columns() -> None:
    mapping = load_mapping("micro_emotions")
    frame = pd.DataFrame({"AU12": [2.8], "AU01": [1.4]}, index=[42])
    out = score(frame, mapping)
    assert list(out.columns) == [f"score_{c.name}" for c in mapping.categories] + [
        "emotion", "core_emotion", "emotion_score", "emotion_confidence", "emotion_aus",
    ]  # fmt: skip
    row = out.loc[42]
    assert row["emotion"] == "hopeful"  # ties with grateful go to the earlier category
    assert row["core_emotion"] == "confident"
    assert row["emotion_aus"] == "AU12=2.8 AU01=1.4"
    assert row["emotion_score"] == pytest.approx(row["score_hopeful"]) and row["emotion_score"] >= 0.5
    assert row["score_grateful"] == row["score_hopeful"]


def test_more_specific_rule_wins() -> None:
    out = score(pd.DataFrame({"AU12": [3.0], "AU01": [2.0], "AU02": [1.2]}), load_mapping())
    assert out["emotion"].iloc[0] == "accepted"
    assert out["core_emotion"].iloc[0] == "loved"
    assert out["emotion_aus"].iloc[0] == "AU12=3.0 AU01=2.0 AU02=1.2"
    assert out["score_hopeful"].iloc[0] > out["score_accepted"].iloc[0] >= 0.5


def test_none_of_suppresses_bored() -> None:
    mapping = load_mapping()
    out = score(pd.DataFrame({"AU07": [2.0, 2.0], "AU12": [0.0, 3.0]}), mapping)
    assert out["emotion"].tolist()[0] == "bored"
    assert out["score_bored"].iloc[1] < 0.5
    assert out["emotion"].tolist()[1] in ("brave", "caring")


def test_no_face_rows_and_missing_columns() -> None:
    mapping = load_mapping()
    frame = pd.DataFrame({"AU12": [np.nan, 2.0, 0.0], "AU07": [np.nan, np.nan, 0.0], "frame": [1, 2, 3]})
    out = score(frame, mapping)
    assert out["emotion"].tolist() == ["neutral", "neutral", "neutral"]
    assert out["core_emotion"].tolist() == ["neutral"] * 3
    assert (out[list(mapping.score_columns)].iloc[0] == 0.0).all()
    assert out["emotion_score"].tolist() == [0.0, 0.0, 0.0]
    assert out["emotion_aus"].tolist() == ["", "", ""]


def test_empty_frame() -> None:
    mapping = load_mapping("casme2")
    out = score(pd.DataFrame(columns=list(KNOWN_AUS), dtype=float), mapping)
    assert len(out) == 0 and "emotion" in out.columns and "score_happiness" in out.columns


def test_casme2_others_fallback_and_any_of_explanation() -> None:
    mapping = load_mapping("casme2")
    out = score(pd.DataFrame({"AU06": [0.0, 2.0], "AU12": [0.2, 0.5]}), mapping)
    assert out["emotion"].tolist() == ["others", "happiness"]
    assert out["core_emotion"].tolist() == ["others", "happiness"]
    assert out["emotion_aus"].tolist() == ["", "AU06=2.0"]


def test_contempt_one_sided_in_basic_emotions() -> None:
    mapping = load_mapping("basic_emotions")
    frame = pd.DataFrame({
        "AU12": [1.0, 1.0, 2.0], "AU12_left": [0.0, 2.0, 2.0], "AU12_right": [2.0, 0.0, 2.0],
        "AU14": [1.0, 1.0, 2.0], "AU14_left": [0.0, 2.0, 2.0], "AU14_right": [2.0, 0.0, 2.0],
    })  # fmt: skip
    out = score(frame, mapping)
    assert out["emotion"].tolist() == ["contempt", "contempt_left", "neutral"]
    assert out["core_emotion"].tolist() == ["contempt", "contempt", "neutral"]
    assert out["emotion_aus"].iloc[0] == "AU12_right=2.0 AU14_right=2.0"


def test_one_sided_without_side_columns_never_fires() -> None:
    out = score(pd.DataFrame({"AU12": [4.0], "AU14": [4.0]}), load_mapping("basic_emotions"))
    # no side columns: contempt cannot fire; the strong symmetric smile is graded happiness
    assert out["score_contempt"].iloc[0] < 0.5 and out["emotion"].iloc[0] == "happiness"


def test_user_adds_category_to_copy_of_shipped_file(tmp_path: Path) -> None:
    copy = tmp_path / "my_emotions.yaml"
    shutil.copy(ROOT / "mappings" / "micro_emotions.yaml", copy)
    with copy.open("a") as handle:
        handle.write(
            "  smirking:\n"
            "    parent: playful\n"
            "    all_of: [{au: AU12, side: left, min: B}, L14A]\n"
            "    description: one-sided smile with dimpler\n"
        )
    mapping = load_mapping(str(copy))
    assert mapping.category_names[-1] == "smirking" and len(mapping.categories) == 25
    frame = pd.DataFrame({"AU12": [1.5, 1.5], "AU12_left": [3.0, 0.0], "AU12_right": [0.0, 3.0],
                          "AU14": [1.0, 1.0], "AU14_left": [2.0, 0.0], "AU14_right": [0.0, 2.0]})  # fmt: skip
    out = score(frame, mapping)
    assert "score_smirking" in out.columns
    assert out["emotion"].tolist()[0] == "smirking"
    assert out["core_emotion"].tolist()[0] == "playful"
    assert out["emotion_aus"].tolist()[0] == "AU12_left=3.0 AU14_left=2.0"
    assert out["score_smirking"].iloc[1] < 0.5


def test_either_and_both_sides() -> None:
    mapping = _mapping(
        "  e: {all_of: [{au: AU12, side: either, min: B}]}\n  b: {all_of: [{au: AU12, side: both, min: B}]}\n"
    )
    frame = pd.DataFrame({"AU12_left": [3.0, 3.0, 0.0], "AU12_right": [0.0, 2.5, 0.0]})
    out = score(frame, mapping)
    assert (out["score_e"] >= 0.5).tolist() == [True, True, False]
    assert (out["score_b"] >= 0.5).tolist() == [False, True, False]
    assert out["emotion"].tolist() == ["e", "b", "neutral"]  # 'both' contains 'either': the nested rule wins
    assert out["emotion_aus"].tolist() == ["AU12=3.0", "AU12=2.5", ""]


def test_membership_shape() -> None:
    x = np.array([0.0, 0.5, 1.0, 3.0, 5.0, 9.0, -1.0, np.nan])
    assert membership(x, 1.0).tolist() == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.0, 0.0])
    assert membership(np.array([4.999, 5.0]), 5.0)[0] < 0.5 <= membership(np.array([5.0]), 5.0)[0]
    assert membership(np.array([np.nextafter(2.0, 0.0)]), 2.0)[0] < 0.5


# --------------------------------------------------------------------------------------------
# Scoring: properties (hypothesis)
# --------------------------------------------------------------------------------------------

LEVELS = st.one_of(st.sampled_from(["A", "B", "C", "D", "E"]), st.floats(0.1, 5.0).map(lambda v: round(v, 2)))
INTENSITY = st.one_of(st.floats(0.0, 5.0), st.just(float("nan")), st.floats(-2.0, 8.0))


@st.composite
def terms(draw: st.DrawFn, aus: list[str]) -> list[dict[str, object]]:
    out = []
    for au in aus:
        sides = ["combined", "either", "both", "left", "right"] if au in SIDED_AUS else ["combined"]
        out.append({"au": au, "min": draw(LEVELS), "side": draw(st.sampled_from(sides))})
    return out


def _render(items: list[dict[str, object]]) -> str:
    """Long-form YAML terms, comma-separated."""
    return ", ".join(f"{{au: {t['au']}, min: {t['min']}, side: {t['side']}}}" for t in items)


@st.composite
def random_mapping(draw: st.DrawFn) -> Mapping:
    n = draw(st.integers(1, 4))
    lines = []
    for i in range(n):
        aus = draw(st.lists(st.sampled_from(KNOWN_AUS), min_size=1, max_size=5, unique=True))
        k_all = draw(st.integers(0, len(aus)))
        k_any = draw(st.integers(0 if k_all else 1, len(aus) - k_all))
        parts = {"all_of": aus[:k_all], "any_of": aus[k_all : k_all + k_any], "none_of": aus[k_all + k_any :]}
        lines.append(f"  c{i}:")
        for key, chosen in parts.items():
            if chosen:
                lines.append(f"    {key}: [{_render(draw(terms(chosen)))}]")
    margin = draw(st.sampled_from([0.5, 1.0, 2.0]))
    return _mapping("\n".join(lines) + "\n", header=f"defaults: {{side_margin: {margin}}}\n")


ALL_COLUMNS = list(KNOWN_AUS) + [f"{au}_{s}" for au in SIDED_AUS for s in ("left", "right")]


@st.composite
def intensity_frame(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    chosen = draw(st.lists(st.sampled_from(ALL_COLUMNS), unique=True, max_size=len(ALL_COLUMNS)))
    return pd.DataFrame({c: draw(st.lists(INTENSITY, min_size=n, max_size=n)) for c in chosen}, index=range(n))


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _value(frame: pd.DataFrame, column: str, row: int, fallback: float) -> float:
    if column not in frame.columns:
        return fallback
    value = float(frame[column].iloc[row])
    return 0.0 if math.isnan(value) else min(max(value, 0.0), 5.0)


def _reference_holds(term: Term, frame: pd.DataFrame, row: int, margin: float) -> bool:
    """A plain-Python reading of docs/mapping.md: does ``term`` hold in ``row``?"""
    combined = _value(frame, term.au, row, math.nan)
    if math.isnan(combined):
        left, right = _value(frame, f"{term.au}_left", row, math.nan), _value(frame, f"{term.au}_right", row, math.nan)
        present = [v for v in (left, right) if not math.isnan(v)]
        combined = max(present) if present else 0.0
    left, right = _value(frame, f"{term.au}_left", row, combined), _value(frame, f"{term.au}_right", row, combined)
    t = term.min_intensity
    if term.side == "combined":
        return combined >= t
    if term.side == "either":
        return max(left, right) >= t
    if term.side == "both":
        return min(left, right) >= t
    own, other = (left, right) if term.side == "left" else (right, left)
    return own >= t and own - other >= margin


def _reference_fires(cat: Category, frame: pd.DataFrame, row: int, margin: float) -> bool:
    values = [c for c in frame.columns if c.split("_")[0] in KNOWN_AUS]
    if values and frame[values].iloc[row].isna().all():
        return False
    holds = [_reference_holds(t, frame, row, margin) for t in cat.all_of]
    anyof = [_reference_holds(t, frame, row, margin) for t in cat.any_of]
    excluded = [_reference_holds(t, frame, row, margin) for t in cat.none_of]
    plain = all(holds) and (not cat.any_of or any(anyof)) and not any(excluded)
    if not cat.graded or not plain:
        return plain

    # graded (docs/mapping.md): the weighted mean of the memberships reaches 0.5
    def mu(term: Term) -> float:
        assert term.side == "combined"  # the shipped graded rules read combined values only
        value = _value(frame, term.au, row, math.nan)
        if math.isnan(value):  # no combined value: the larger side (docs/mapping.md, "Scoring")
            sides = [_value(frame, f"{term.au}_{side}", row, math.nan) for side in ("left", "right")]
            value = max([v for v in sides if not math.isnan(v)], default=0.0)
        return float(membership(np.array([value]), term.min_intensity)[0])

    terms = list(cat.all_of) + list(cat.supporting)
    pairs = [(t.weight, mu(t)) for t in terms]
    if cat.any_of:
        best = max(cat.any_of, key=mu)
        pairs.append((best.weight, mu(best)))
    return sum(w * m for w, m in pairs) / sum(w for w, _ in pairs) >= 0.5


@FAST
@given(
    mapping=st.one_of(st.sampled_from([load_mapping(n) for n in SHIPPED]), random_mapping()),
    frame=intensity_frame(),
)
def test_property_scores_in_unit_interval_and_fire_matches_rules(mapping: Mapping, frame: pd.DataFrame) -> None:
    out = score(frame, mapping)
    values = out[list(mapping.score_columns)].to_numpy()
    assert np.all((values >= 0.0) & (values <= 1.0))
    assert out.index.equals(frame.index)
    for row in range(len(frame)):
        fired = {c.name for c in mapping.categories if _reference_fires(c, frame, row, mapping.side_margin)}
        assert fired == {c.name for c in mapping.categories if out[f"score_{c.name}"].iloc[row] >= 0.5}
        emotion = out["emotion"].iloc[row]
        if fired:
            assert emotion in fired
            assert out["emotion_score"].iloc[row] == out[f"score_{emotion}"].iloc[row]
            assert out["core_emotion"].iloc[row] == mapping.category(emotion).parent
        else:
            assert emotion == mapping.neutral and out["emotion_aus"].iloc[row] == ""
            assert out["emotion_score"].iloc[row] == 0.0


@FAST
@given(data=st.data(), aus=st.lists(st.sampled_from(KNOWN_AUS), min_size=1, max_size=4, unique=True))
def test_property_all_of_never_falls_when_an_included_au_rises(data: st.DataObject, aus: list[str]) -> None:
    mapping = _mapping(f"  c:\n    all_of: [{_render(data.draw(terms(aus)))}]\n")
    columns = sorted({c for au in aus for c in (au, f"{au}_left", f"{au}_right") if c in ALL_COLUMNS})
    n = data.draw(st.integers(1, 5))
    frame = pd.DataFrame({c: data.draw(st.lists(INTENSITY, min_size=n, max_size=n)) for c in columns})
    term = data.draw(st.sampled_from(mapping.categories[0].all_of))
    column = {"combined": term.au, "left": f"{term.au}_left", "right": f"{term.au}_right"}.get(
        term.side, data.draw(st.sampled_from([f"{term.au}_left", f"{term.au}_right"]))
    )
    raised = frame.copy()
    raised[column] = np.maximum(raised[column].fillna(0.0), 0.0) + data.draw(st.floats(0.0, 5.0))
    before = score(frame, mapping)["score_c"].to_numpy()
    after = score(raised, mapping)["score_c"].to_numpy()
    assert np.all(after >= before)


@FAST
@given(
    data=st.data(),
    required=st.sampled_from(KNOWN_AUS),
    excluded=st.sampled_from(KNOWN_AUS),
    level=LEVELS,
)
def test_property_none_of_suppresses(data: st.DataObject, required: str, excluded: str, level: object) -> None:
    assume(required != excluded)
    mapping = _mapping(f"  c:\n    all_of: [{required}]\n    none_of: [{{au: {excluded}, min: {level}}}]\n")
    threshold = mapping.categories[0].none_of[0].min_intensity
    strong = data.draw(st.floats(threshold, 5.0))
    frame = pd.DataFrame({required: [data.draw(st.floats(0.0, 5.0)), 5.0], excluded: [strong, 0.0]})
    out = score(frame, mapping)
    assert out["score_c"].iloc[0] < 0.5 and out["emotion"].iloc[0] == "neutral"
    assert out["score_c"].iloc[1] == 1.0 and out["emotion"].iloc[1] == "c"


@FAST
@given(au=st.sampled_from(SIDED_AUS), side=st.sampled_from(["left", "right"]), level=LEVELS, data=st.data())
def test_property_one_sided_rule_fires_only_on_that_side(
    au: str, side: str, level: object, data: st.DataObject
) -> None:
    mapping = _mapping(f"  c:\n    all_of: [{{au: {au}, side: {side}, min: {level}}}]\n")
    need = max(mapping.categories[0].all_of[0].min_intensity, mapping.side_margin)
    v = data.draw(st.floats(need, 5.0))
    other = "right" if side == "left" else "left"
    frame = pd.DataFrame({
        au: [v / 2, v / 2, v],
        f"{au}_{side}": [v, 0.0, v],
        f"{au}_{other}": [0.0, v, v],
    })  # fmt: skip
    out = score(frame, mapping)
    assert out["emotion"].tolist() == ["c", "neutral", "neutral"]  # this side only / other side only / both sides
    assert out["emotion_aus"].iloc[0] == f"{au}_{side}={v:.1f}"
