"""The mapping language's data model: AU terms, categories, a loaded mapping, and how rules relate.

Shared by the parser (``aupipe.rules.mapping_parse``), the scorer (``aupipe.rules.scoring``) and the
façade (``aupipe.rules.mapping``). AU intensities are on the FACS 0-5 scale (1..5 = levels A..E).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field


#: The AUs aupipe estimates (OpenFace-style two-digit names).
KNOWN_AUS: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14",
    "AU15", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43",
)  # fmt: skip
#: AUs that can act on one side of the face (they may have ``AUxx_left`` / ``AUxx_right`` columns).
SIDED_AUS: tuple[str, ...] = ("AU01", "AU02", "AU04", "AU06", "AU07", "AU12", "AU14", "AU15", "AU20")
#: Values of a term's ``side``; ``combined`` (the default) reads the ``AUxx`` column.
SIDES: tuple[str, ...] = ("combined", "left", "right", "either", "both")
#: FACS intensity letters on aupipe's 0-5 scale.
FACS_LEVELS: dict[str, float] = {"A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0, "E": 5.0}
#: Top of the intensity scale.
MAX_INTENSITY = 5.0
#: The mapping used when none is named.
DEFAULT_MAPPING = "micro_emotions"
#: The schema version this module reads.
SCHEMA_VERSION = 1
#: Default minimum intensity of a term: FACS level A (trace).
DEFAULT_MIN = 1.0
#: Default margin (intensity units) by which a one-sided AU must exceed the other side.
DEFAULT_SIDE_MARGIN = 1.0
#: Labels a category may carry for datasets whose label set is known (checked on load).
KNOWN_DATASET_LABELS: dict[str, tuple[str, ...]] = {"cremad": ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")}
#: Largest mapping file read (bytes).
MAX_FILE_BYTES = 1_000_000
#: A window counts as speech when at least this share of its face frames are speaking (aupipe.signal.speech).
DEFAULT_SPEAKING_SHARE = 0.5


def level_text(value: float) -> str:
    """An intensity as its FACS letter (1.0 -> ``A``) or as a number when it is not a whole level."""
    for letter, number in FACS_LEVELS.items():
        if value == number:
            return letter
    return f"{value:g}"


@dataclass(frozen=True)
class Term:
    """One AU condition: ``au`` (e.g. ``AU12``) at ``min_intensity`` (0-5 scale) or more on ``side``.

    side: ``combined`` (the ``AUxx`` column), ``either`` (max of left/right), ``both`` (min of
    left/right), ``left`` / ``right`` (that side active and the other side weaker by at least the
    mapping's ``side_margin``; see docs/mapping.md).
    """

    au: str
    min_intensity: float = DEFAULT_MIN
    side: str = "combined"
    weight: float = 1.0  # share of a graded category's score (docs/mapping.md); plain rules ignore it

    @property
    def label(self) -> str:
        """Name used in explanations: ``AU12`` or ``AU12_left`` / ``AU12_right`` for one-sided terms."""
        return f"{self.au}_{self.side}" if self.side in ("left", "right") else self.au

    def text(self, default_min: float = DEFAULT_MIN) -> str:
        """Readable form, e.g. ``AU12``, ``AU05>=B``, ``AU12(right)>=A``; the level shows when not the default."""
        out = self.au if self.side == "combined" else f"{self.au}({self.side})"
        if self.min_intensity != default_min or self.side in ("left", "right"):
            out += f">={level_text(self.min_intensity)}"
        if self.weight != 1.0:
            out += f"*{self.weight:g}"
        return out


@dataclass(frozen=True)
class Category:
    """One emotion category: its rule over AU terms, its parent (core emotion) and dataset labels.

    supporting: AUs that add to a graded category's score without being required; speech_aus:
    AUs that read 0 in this rule while the window is speech (the mouth movement of talking is
    not evidence); graded: the category is scored as a weighted mean (docs/mapping.md).
    """

    name: str
    parent: str
    all_of: tuple[Term, ...] = ()
    any_of: tuple[Term, ...] = ()
    none_of: tuple[Term, ...] = ()
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    line: int = field(default=0, compare=False)
    supporting: tuple[Term, ...] = ()
    speech_aus: tuple[str, ...] = ()

    @property
    def graded(self) -> bool:
        """True when the category has supporting AUs or weighted terms (scored as a weighted mean)."""
        return bool(self.supporting) or any(t.weight != 1.0 for t in self.all_of + self.any_of)

    @property
    def specificity(self) -> int:
        """Tie-break weight: number of all-of, none-of and supporting terms, plus one for an any-of group."""
        return len(self.all_of) + len(self.none_of) + len(self.supporting) + (1 if self.any_of else 0)

    def rule_text(self, default_min: float = DEFAULT_MIN) -> str:
        """The rule in one line, e.g. ``AU07 without AU12`` or ``AU02 + any of (AU01, AU25)``."""
        parts: list[str] = []
        if self.all_of:
            parts.append(" + ".join(t.text(default_min) for t in self.all_of))
        if self.any_of:
            alternatives = ", ".join(t.text(default_min) for t in self.any_of)
            parts.append(f"any of ({alternatives})" if len(self.any_of) > 1 else alternatives)
        text = " + ".join(parts)
        if self.supporting:
            text += " (+ " + ", ".join(t.text(default_min) for t in self.supporting) + ")"
        if self.none_of:
            excluded = ", ".join(t.text(default_min) for t in self.none_of)
            text += f" without {excluded}" if len(self.none_of) == 1 else f" without any of ({excluded})"
        return text


@dataclass(frozen=True)
class Uncertainty:
    """When a window's label is ``label`` ("uncertain") instead of a category or neutral.

    min_margin: the winner must lead the best candidate of another core emotion (neutral counts
    as scoring 0.5, the firing line) by at least this much (score units); min_face_coverage:
    share of the window's frames with a face; max_head_turn_deg: the head's mean turn (larger of
    |yaw| and |pitch|); min_baseline_confidence: the neutral baseline's confidence (0-1). A
    value of 0 (or 90 for the turn) switches that test off. Defaults in docs/mapping.md.
    """

    label: str = "uncertain"
    min_margin: float = 0.05
    min_face_coverage: float = 0.5
    max_head_turn_deg: float = 35.0
    min_baseline_confidence: float = 0.2


@dataclass(frozen=True)
class Mapping:
    """A loaded, validated mapping file.

    parents: core emotions in order; categories: in file order; neutral: the label of windows
    where nothing fires; sha256: hex digest of the file's bytes; warnings: one-line
    ``path:line:col: message`` notes (identical or nested rules, rules that can never fire).
    """

    name: str
    version: int
    source: str
    description: str
    parents: tuple[str, ...]
    categories: tuple[Category, ...]
    neutral: str
    sha256: str
    reference: str = ""
    neutral_labels: dict[str, str] = field(default_factory=dict, hash=False)
    default_min: float = DEFAULT_MIN
    side_margin: float = DEFAULT_SIDE_MARGIN
    warnings: tuple[str, ...] = field(default=(), compare=False)
    speaking_share: float = DEFAULT_SPEAKING_SHARE
    uncertainty: Uncertainty = field(default_factory=Uncertainty)

    @property
    def category_names(self) -> tuple[str, ...]:
        """Category names in file order."""
        return tuple(c.name for c in self.categories)

    @property
    def score_columns(self) -> tuple[str, ...]:
        """The ``score_<category>`` columns :func:`score` writes, in file order."""
        return tuple(f"score_{c.name}" for c in self.categories)

    def category(self, name: str) -> Category:
        """The category called ``name`` (KeyError if there is none)."""
        for cat in self.categories:
            if cat.name == name:
                return cat
        raise KeyError(name)


# --------------------------------------------------------------------------------------------
# How rules relate (identical rules, nested rules)
# --------------------------------------------------------------------------------------------


def same_rule(a: Category, b: Category) -> bool:
    """The two categories always score the same (same terms, weights and speech handling)."""

    def parts(c: Category) -> tuple[frozenset[Term], ...]:
        return frozenset(c.all_of), frozenset(c.any_of), frozenset(c.none_of), frozenset(c.supporting)

    return parts(a) == parts(b) and set(a.speech_aus) == set(b.speech_aus)


def term_implies(a: Term, b: Term) -> bool:
    """Whenever term ``a`` holds, term ``b`` holds (same AU, a level at least b's, compatible sides)."""
    if a.au != b.au or a.min_intensity < b.min_intensity:
        return False
    return a.side == b.side or (b.side == "either" and a.side in ("left", "right", "both"))


def rule_implies(d: Category, c: Category) -> bool:
    """Whenever ``d`` fires, ``c`` fires (decided from the rules alone; never for graded categories)."""
    if d.graded or c.graded:
        return False
    if not all(any(term_implies(a, b) for a in d.all_of) for b in c.all_of):
        return False
    if c.any_of:
        by_all = any(term_implies(a, b) for a in d.all_of for b in c.any_of)
        by_any = bool(d.any_of) and all(any(term_implies(a, b) for b in c.any_of) for a in d.any_of)
        if not (by_all or by_any):
            return False
    # c's none_of term (au, t_c) is surely absent when d has the same exclusion at t_d <= t_c.
    return all(
        any(a.au == b.au and a.side == b.side and a.min_intensity <= b.min_intensity for a in d.none_of)
        for b in c.none_of
    )


def dominators(categories: Sequence[Category]) -> list[list[int]]:
    """For each category, the indices of categories whose rule strictly contains its rule."""
    return dominators_of(tuple(categories))


@functools.lru_cache(maxsize=16)
def dominators_of(categories: tuple[Category, ...]) -> list[list[int]]:
    return [
        [d for d, other in enumerate(categories)
         if d != c and rule_implies(other, cat) and not rule_implies(cat, other)]
        for c, cat in enumerate(categories)
    ]  # fmt: skip
