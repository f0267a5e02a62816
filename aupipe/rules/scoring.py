"""Scoring windows against a mapping: plain and graded rules, speech-aware AUs, and "uncertain".

Input: an ``(n, k)`` DataFrame of AU intensities on the FACS 0-5 scale (columns ``AU12``,
``AU12_left`` ...; absent columns read 0, NaN reads 0) and, when present, the window evidence
columns ``speaking`` (share of the window's face frames that are speech, 0-1),
``face_coverage`` (0-1), ``head_turn_deg`` and ``baseline_confidence`` (0-1).

Per category (docs/mapping.md):
- a plain rule scores the fuzzy AND of its terms: min over ``all_of``, max over ``any_of``,
  and ``1 - membership`` of ``none_of``; it fires at >= 0.5, exactly when every term holds;
- a graded rule (``supporting`` AUs or weights) scores the weighted mean of its required and
  supporting terms' memberships; it fires at >= 0.5 and only while every required term holds;
- in a window that is speech (``speaking`` >= the mapping's ``speaking_share``) the category's
  ``speech_aus`` read 0.

The winner is the fired category with the highest score (then the more specific rule, then
file order); a window where none fires is neutral. The window is ``uncertain`` when the winner
leads the best candidate of another core emotion (neutral scoring 0.5) by less than the
mapping's margin, or when the face evidence is poor. ``emotion_confidence`` (0-1) is the lead
over 0.25 (capped at 1) times the evidence quality.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from aupipe.rules.mapping_types import KNOWN_AUS, MAX_INTENSITY, Category, Mapping, Term, dominators, same_rule

__all__ = ["EVIDENCE_COLUMNS", "OUTPUT_COLUMNS", "full_confidence_lead", "membership", "score"]

#: Window columns the scorer reads besides the AUs (each optional).
EVIDENCE_COLUMNS: tuple[str, ...] = ("speaking", "face_coverage", "head_turn_deg", "baseline_confidence")
#: Columns :func:`score` writes after the ``score_<category>`` columns.
OUTPUT_COLUMNS: tuple[str, ...] = ("emotion", "core_emotion", "emotion_score", "emotion_confidence", "emotion_aus")
#: A lead (score units) at which the margin part of the confidence reaches 1.
full_confidence_lead = 0.25
#: Head turn (deg) up to which the evidence is full; it falls linearly to 0 at 45 deg.
_TURN_FULL_DEG, _TURN_ZERO_DEG = 20.0, 45.0

_BELOW_HALF = float(np.nextafter(0.5, 0.0))


def membership(x: np.ndarray, threshold: float) -> np.ndarray:
    """Fuzzy "x is at least ``threshold``": 0 at x=0, 0.5 at the threshold, 1 at 5; shape of ``x``.

    Piecewise linear and non-decreasing; NaN counts as 0, values are clipped to [0, 5]. It is
    >= 0.5 exactly when x >= threshold (values just below are kept strictly under 0.5).
    """
    x = _clean(np.asarray(x, dtype=float))
    below = np.minimum(0.5 * x / threshold, _BELOW_HALF)
    span = MAX_INTENSITY - threshold
    above = 0.5 + 0.5 * (x - threshold) / span if span > 0 else np.ones_like(x)
    return np.where(x >= threshold, above, below)


class AuColumns:
    """Vectorised access to the AU columns of an intensity DataFrame (NaN kept; missing -> 0)."""

    def __init__(self, intensity: pd.DataFrame, speech: np.ndarray | None = None) -> None:
        self.n = len(intensity)
        self._frame = intensity
        self._cache: dict[str, np.ndarray | None] = {}
        self.speech = np.zeros(self.n, dtype=bool) if speech is None else speech
        self._no_face: np.ndarray | None = None

    def column(self, name: str) -> np.ndarray | None:
        if name not in self._cache:
            if name in self._frame.columns:
                try:
                    values = pd.to_numeric(self._frame[name], errors="raise").to_numpy(dtype=float)
                except (ValueError, TypeError) as err:
                    raise ValueError(f"AU column {name!r} is not numeric (0-5 intensities expected)") from err
                self._cache[name] = values
            else:
                self._cache[name] = None
        return self._cache[name]

    def combined(self, au: str) -> np.ndarray:
        values = self.column(au)
        if values is not None:
            return values
        left, right = self.column(f"{au}_left"), self.column(f"{au}_right")
        if left is not None and right is not None:
            return np.fmax(left, right)
        return left if left is not None else right if right is not None else np.zeros(self.n)

    def side(self, au: str, side: str) -> np.ndarray:
        values = self.column(f"{au}_{side}")
        return values if values is not None else self.combined(au)

    def term_value(self, term: Term, silenced: tuple[str, ...] = ()) -> np.ndarray:
        """The intensity a term reads (NaN -> 0, clipped to 0-5): combined, one side, max/min of the
        sides; 0 in speech rows when its AU is in ``silenced``."""
        if term.side == "combined":
            value = _clean(self.combined(term.au))
        elif term.side in ("left", "right"):
            value = _clean(self.side(term.au, term.side))
        else:
            left, right = _clean(self.side(term.au, "left")), _clean(self.side(term.au, "right"))
            value = np.maximum(left, right) if term.side == "either" else np.minimum(left, right)
        return np.where(self.speech, 0.0, value) if term.au in silenced else value

    def term_membership(self, term: Term, margin: float, silenced: tuple[str, ...] = ()) -> np.ndarray:
        """Membership of ``term`` per row, in [0, 1]; >= 0.5 exactly when the term holds."""
        value = self.term_value(term, silenced)
        mu = membership(value, term.min_intensity)
        if term.side in ("left", "right"):
            other = _clean(self.side(term.au, "right" if term.side == "left" else "left"))
            mu = np.minimum(mu, membership(value - other, margin))
        return mu

    def evidence(self, name: str) -> np.ndarray:
        """An evidence column as floats (NaN where absent or unknown)."""
        values = self.column(name)
        if values is None:  # an absent column reads NaN; kept, so per-row reads stay cheap
            values = self._cache[name] = np.full(self.n, np.nan)
        return values

    def no_face(self) -> np.ndarray:
        """Rows where every AU column present is NaN (no face / unknown); computed once."""
        if self._no_face is None:
            names = [c for c in self._frame.columns if isinstance(c, str) and _is_au_column(c)]
            present = np.zeros(self.n, dtype=bool)
            for name in names:
                values = self.column(name)
                present |= ~np.isnan(values)  # type: ignore[operator]
            self._no_face = ~present if names else np.zeros(self.n, dtype=bool)
        return self._no_face


def _clean(values: np.ndarray) -> np.ndarray:
    """Intensities as used by rules: NaN -> 0, clipped to [0, 5]."""
    return np.clip(np.nan_to_num(values, nan=0.0, posinf=MAX_INTENSITY, neginf=0.0), 0.0, MAX_INTENSITY)


def _is_au_column(name: str) -> bool:
    base = name.removesuffix("_left").removesuffix("_right")
    return base in KNOWN_AUS


def category_score(cols: AuColumns, cat: Category, mapping: Mapping) -> np.ndarray:
    """One category's fuzzy score per row, in [0, 1]; >= 0.5 exactly when it fires (module doc)."""
    margin, silenced = mapping.side_margin, cat.speech_aus

    def mu(term: Term) -> np.ndarray:
        return cols.term_membership(term, margin, silenced)

    parts: list[np.ndarray] = []
    if cat.graded:
        required = [mu(t) for t in cat.all_of]
        weights = [t.weight for t in cat.all_of]
        if cat.any_of:
            group = np.array([mu(t) for t in cat.any_of])
            best = np.argmax(group, axis=0)
            required.append(group.max(axis=0))
            weights.append(np.array([t.weight for t in cat.any_of])[best])
        supporting = [mu(t) for t in cat.supporting]
        total = np.sum([np.broadcast_to(w, (cols.n,)) for w in weights + [t.weight for t in cat.supporting]], axis=0)
        weighted = np.sum([w * m for w, m in zip(weights + [t.weight for t in cat.supporting], required + supporting,
                                                 strict=True)], axis=0)  # fmt: skip
        graded = weighted / total
        holds = np.min(required, axis=0) >= 0.5
        parts.append(np.where(holds, graded, np.minimum(graded, _BELOW_HALF)))
    else:
        if cat.all_of:
            parts.append(np.min([mu(t) for t in cat.all_of], axis=0))
        if cat.any_of:
            parts.append(np.max([mu(t) for t in cat.any_of], axis=0))
    if cat.none_of:
        present = np.max([mu(t) for t in cat.none_of], axis=0)
        parts.append(np.where(present >= 0.5, np.minimum(1.0 - present, _BELOW_HALF), 1.0 - present))
    return np.min(parts, axis=0) if parts else np.zeros(cols.n)


def _explain(cols: AuColumns, cat: Category, mapping: Mapping, rows: np.ndarray) -> np.ndarray:
    """Explanations of ``cat``'s wins in ``rows``: the AUs that made it, with weights when graded,
    e.g. ``AU12=2.6 AU06=0.9`` or ``AU12=2.6x2 AU06=0.9x1``; a speech-silenced AU shows as ``(speech)``."""
    text = np.full(rows.size, "", dtype=object)
    speech = cols.speech[rows]
    for term in cat.all_of + cat.any_of + cat.supporting:
        value = cols.term_value(term)[rows]
        piece = np.char.add(f"{term.label}=", np.char.mod("%.1f", value)).astype(object)
        if cat.graded:
            piece = piece + f"x{term.weight:g}"
        if term.au in cat.speech_aus:
            piece = np.where(speech, f"{term.label}=(speech)", piece)
        if term not in cat.all_of:  # an alternative or a supporting AU shows only when it adds something
            mu = cols.term_membership(term, mapping.side_margin, cat.speech_aus)[rows]
            piece = np.where(mu >= (0.5 if term in cat.any_of else 0.25), piece, "")
        text = _join(text, piece)
    return text


def _join(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Element-wise 'left right' of two string arrays, skipping empty strings."""
    both = left + " " + right
    return np.where(right == "", left, np.where(left == "", right, both))


def _evidence_quality(cols: AuColumns, mapping: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """(quality in [0, 1], poor evidence: bool) per row from the evidence columns (module doc).

    Missing evidence counts as good, except that rows without any AU value have no face."""
    limits = mapping.uncertainty
    coverage = cols.evidence("face_coverage")
    no_face = cols.no_face()
    coverage = np.where(np.isnan(coverage), np.where(no_face, 0.0, 1.0), coverage)
    turn = cols.evidence("head_turn_deg")
    turn_quality = np.clip((_TURN_ZERO_DEG - np.nan_to_num(turn, nan=0.0)) / (_TURN_ZERO_DEG - _TURN_FULL_DEG), 0, 1)
    baseline = np.nan_to_num(cols.evidence("baseline_confidence"), nan=1.0)
    quality = np.clip(np.minimum.reduce([coverage, turn_quality, baseline]), 0.0, 1.0)
    poor = (coverage < limits.min_face_coverage) | (baseline < limits.min_baseline_confidence) | no_face
    with np.errstate(invalid="ignore"):
        poor |= np.nan_to_num(turn, nan=0.0) > limits.max_head_turn_deg
    if limits.min_face_coverage == 0.0:  # uncertainty switched off: no face stays neutral
        poor &= ~no_face
    return quality, poor


def score(intensity: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    """Score every row (window) of ``intensity`` against every category of ``mapping``.

    intensity: (n, k) DataFrame of AU intensities on the 0-5 scale, columns ``AU12`` and optionally
    ``AU12_left`` / ``AU12_right``, plus the optional ``EVIDENCE_COLUMNS``; absent AU columns count
    as 0, NaN counts as 0, and rows where every AU column is NaN (no face) score 0.
    Returns an (n, C + 5) DataFrame with the same index: ``score_<category>`` (float in [0, 1], file
    order), ``emotion`` (winner, the neutral label or the uncertain label), ``core_emotion`` (the
    winner's parent, or neutral / uncertain), ``emotion_score`` (the top category's score, 0.0 for
    neutral), ``emotion_confidence`` (0-1) and ``emotion_aus`` (e.g. ``AU12=2.8 AU06=0.9``; for
    uncertain windows, why). Vectorised over rows; see the module doc and docs/mapping.md.
    """
    speaking = pd.to_numeric(intensity["speaking"], errors="coerce").to_numpy(dtype=float) \
        if "speaking" in intensity.columns else np.zeros(len(intensity))  # fmt: skip
    cols = AuColumns(intensity, np.nan_to_num(speaking, nan=0.0) >= mapping.speaking_share)
    n, cats = cols.n, mapping.categories
    scores = np.zeros((n, len(cats)))
    for j, cat in enumerate(cats):
        scores[:, j] = category_score(cols, cat, mapping)
    scores[cols.no_face()] = 0.0
    fired = scores >= 0.5

    # Nested rules: a category is set aside when a category whose rule strictly contains its rule fired.
    eligible = fired.copy()
    for j, nested_in in enumerate(dominators(cats)):
        for d in nested_in:
            eligible[:, j] &= ~fired[:, d]
    # Winner: highest score, then more specific rule, then file order.
    masked = np.where(eligible, scores, -1.0)
    best = masked.max(axis=1, initial=-1.0)
    candidates = eligible & (masked == best[:, None])
    specificity = np.array([c.specificity for c in cats], dtype=int)
    spec = np.where(candidates, specificity[None, :], -1)
    candidates &= spec == spec.max(axis=1, initial=-1)[:, None]
    any_fired = candidates.any(axis=1)
    winner = np.where(any_fired, np.argmax(candidates, axis=1), -1)

    # Lead over the best candidate of another core emotion; neutral is a candidate scoring 0.5.
    parent_ids = np.array([mapping.parents.index(c.parent) if c.parent in mapping.parents else -1 for c in cats])
    top_any = scores.max(axis=1, initial=0.0)
    if len(cats):
        winner_parent = parent_ids[np.maximum(winner, 0)]
        # Competitors: another core emotion, and not a copy of the winner's rule (it can never win).
        # Nested rules set aside by the winner's stronger rule do not compete either.
        rival = (parent_ids[None, :] != winner_parent[:, None]) & ~_copies(cats)[np.maximum(winner, 0)]
        rival &= ~(fired & ~eligible)
        other = np.where(rival, scores, 0.0).max(axis=1)
        lead = np.where(any_fired, scores[np.arange(n), np.maximum(winner, 0)] - np.maximum(other, 0.5),
                        0.5 - top_any)  # fmt: skip
    else:
        lead = np.full(n, 0.5)
    quality, poor = _evidence_quality(cols, mapping)
    limits = mapping.uncertainty
    close = lead < limits.min_margin
    uncertain = close | poor
    confidence = np.clip(lead / full_confidence_lead, 0.0, 1.0) * quality

    names = np.array([c.name for c in cats] + [mapping.neutral], dtype=object)
    parents = np.array([c.parent for c in cats] + [mapping.neutral], dtype=object)
    emotion = names[winner]
    core = parents[winner]
    top_index = np.argmax(scores, axis=1) if len(cats) else np.zeros(n, dtype=int)
    emotion_score = np.where(any_fired, scores[np.arange(n), np.maximum(winner, 0)] if n else 0.0,
                             np.where(uncertain, top_any, 0.0))  # fmt: skip
    explanation = np.full(n, "", dtype=object)
    for j, cat in enumerate(cats):
        rows = np.flatnonzero((winner == j) & ~uncertain)
        if rows.size:
            explanation[rows] = _explain(cols, cat, mapping, rows)
    for row in np.flatnonzero(uncertain):
        explanation[row] = _why_uncertain(row, cols, mapping, scores, winner, top_index, lead, poor)
    emotion[uncertain] = limits.label
    core[uncertain] = limits.label
    out: dict[str, Any] = {f"score_{c.name}": scores[:, j] for j, c in enumerate(cats)}
    out["emotion"] = emotion
    out["core_emotion"] = core
    out["emotion_score"] = emotion_score.astype(float)
    out["emotion_confidence"] = confidence.astype(float)
    out["emotion_aus"] = explanation
    return pd.DataFrame(out, index=intensity.index)


@functools.lru_cache(maxsize=16)
def _copies(cats: tuple[Category, ...]) -> np.ndarray:
    """(C, C) bool: category j has the same rule as category i (i != j); once per mapping (not to be modified)."""
    out = np.zeros((len(cats), len(cats)), dtype=bool)
    for i, a in enumerate(cats):
        for j, b in enumerate(cats):
            out[i, j] = i != j and same_rule(a, b)
    return out


def _why_uncertain(
    row: int, cols: AuColumns, mapping: Mapping, scores: np.ndarray, winner: np.ndarray, top: np.ndarray,
    lead: np.ndarray, poor: np.ndarray,
) -> str:  # fmt: skip
    """One row's reason for "uncertain", e.g. ``close: happiness 0.52 vs neutral 0.50``."""
    limits = mapping.uncertainty
    if poor[row]:
        reasons = []
        coverage = cols.evidence("face_coverage")[row]
        if cols.no_face()[row]:
            return "no face"
        if np.isfinite(coverage) and coverage < limits.min_face_coverage:
            reasons.append(f"face in {coverage:.0%} of frames")
        turn = cols.evidence("head_turn_deg")[row]
        if np.isfinite(turn) and turn > limits.max_head_turn_deg:
            reasons.append(f"head turned {turn:.0f} deg")
        baseline = cols.evidence("baseline_confidence")[row]
        if np.isfinite(baseline) and baseline < limits.min_baseline_confidence:
            reasons.append(f"baseline confidence {baseline:.2f}")
        return "poor evidence: " + ", ".join(reasons)
    cats = mapping.categories
    if winner[row] >= 0:
        first = cats[winner[row]]
        others = [j for j, c in enumerate(cats) if c.parent != first.parent and not same_rule(c, first)]
        second = max(others, key=lambda j: scores[row, j]) if others else None
        if second is None or scores[row, second] < 0.5:
            return f"close: {first.name} {scores[row, winner[row]]:.2f} vs {mapping.neutral} 0.50"
        return f"close: {first.name} {scores[row, winner[row]]:.2f} vs {cats[second].name} {scores[row, second]:.2f}"
    if not cats:
        return ""
    return f"close: {mapping.neutral} 0.50 vs {cats[top[row]].name} {scores[row, top[row]]:.2f}"
