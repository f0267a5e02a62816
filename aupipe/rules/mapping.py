"""Emotion mapping: a small, validated YAML language from FACS Action Units to emotion categories.

A mapping file (``mappings/*.yaml``, documented in ``docs/mapping.md``) names categories
(e.g. Table 1's micro emotions), each with a parent (core emotion) and a rule made of
``all_of`` / ``any_of`` / ``none_of`` AU terms with a minimum intensity and an optional side;
a graded category adds weighted ``supporting`` AUs, and AUs that speech moves can be set aside
while the person talks.

This module is the façade: finding, loading and describing files. The data model is in
``aupipe.rules.mapping_types``, the parser in ``aupipe.rules.mapping_parse`` and the scorer in
``aupipe.rules.scoring``; their public names are re-exported here.

Units and shapes: AU intensities are floats on the FACS 0-5 scale (0 absent, 1..5 = levels
A..E, NaN = unknown / no face). :func:`score` maps an ``(n_windows, n_AU_columns)`` DataFrame
to a DataFrame of fuzzy scores in [0, 1], the winner, its core emotion, its score, a confidence
and an explanation such as ``AU12=2.8 AU06=0.9``.

Every problem in a file raises :class:`aupipe.errors.MappingError` with one line
``path:line:column: what is wrong; what would be valid``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from aupipe.errors import MappingError
from aupipe.rules.mapping_parse import parse_mapping
from aupipe.rules.mapping_types import (
    DEFAULT_MAPPING, FACS_LEVELS, KNOWN_AUS, MAX_FILE_BYTES, SIDED_AUS, SIDES, Category, Mapping, Term,
    Uncertainty, level_text,
)  # fmt: skip
from aupipe.rules.scoring import membership, score

__all__ = [
    "DEFAULT_MAPPING",
    "FACS_LEVELS",
    "KNOWN_AUS",
    "SIDED_AUS",
    "SIDES",
    "Category",
    "Mapping",
    "Term",
    "Uncertainty",
    "describe",
    "list_mappings",
    "load_mapping",
    "membership",
    "parse_mapping",
    "score",
    "validate_file",
    "validation_warnings",
]


def _shipped_dir() -> Traversable:
    """The folder of shipped mappings: the installed package ``aupipe.mappings`` or ``<repo>/mappings``."""
    try:
        folder = resources.files("aupipe.mappings")
        if any(entry.name.endswith(".yaml") for entry in folder.iterdir()):
            return folder
    except (ImportError, TypeError, OSError, ValueError):
        pass
    return Path(__file__).resolve().parents[2] / "mappings"


def list_mappings() -> list[str]:
    """Names of the shipped mappings (file stems of ``mappings/*.yaml``), sorted."""
    folder = _shipped_dir()
    try:
        return sorted(e.name[: -len(".yaml")] for e in folder.iterdir() if e.name.endswith(".yaml") and e.is_file())
    except OSError:
        return []


def _looks_like_name(text: str) -> bool:
    return "/" not in text and "\\" not in text and not text.lower().endswith((".yaml", ".yml"))


def load_mapping(name_or_path: str | Path | None = None) -> Mapping:
    """Load and validate a mapping: None -> ``micro_emotions``; a bare shipped name; or a YAML path.

    Raises MappingError (one line, ``path:line:col: ...``) for a missing or invalid file.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_MAPPING
    if isinstance(name_or_path, str) and _looks_like_name(name_or_path):
        shipped = list_mappings()
        if name_or_path in shipped:
            entry = _shipped_dir() / f"{name_or_path}.yaml"
            return parse_mapping(entry.read_bytes(), str(entry))
        if not Path(name_or_path).is_file():
            close = difflib.get_close_matches(name_or_path, shipped, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise MappingError(
                f"{name_or_path}: no shipped mapping of that name and no such file; {hint}"
                f"shipped mappings: {', '.join(shipped) or '(none found)'}; or give the path of a YAML file"
            )
    path = Path(name_or_path)
    if not path.exists():
        raise MappingError(
            f"{path}: mapping file not found; give an existing YAML file or a shipped name "
            f"({', '.join(list_mappings())})"
        )
    if not path.is_file():
        raise MappingError(
            f"{path}: is a folder, not a mapping file; give a YAML file such as mappings/basic_emotions.yaml"
        )
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise MappingError(
                f"{path}:1:1: file too large for a mapping ({path.stat().st_size} bytes); "
                f"mapping files are small YAML texts (at most {MAX_FILE_BYTES} bytes)"
            )
        data = path.read_bytes()
    except OSError as err:
        reason = err.strerror or err
        raise MappingError(f"{path}: cannot read the mapping file ({reason}); check its permissions") from err
    return parse_mapping(data, str(path))


def validate_file(name_or_path: str | Path) -> list[str]:
    """Validate a mapping file (or shipped name); return its warnings, raise MappingError on the first error."""
    return list(load_mapping(name_or_path).warnings)


def validation_warnings(mapping: Mapping) -> list[str]:
    """The warnings found when ``mapping`` was loaded, one line each: ``path:line:col: message``."""
    return list(mapping.warnings)


# --------------------------------------------------------------------------------------------
# Description
# --------------------------------------------------------------------------------------------


def _table(rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [list(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def describe(mapping: Mapping) -> str:
    """A readable text table of ``mapping``: header lines, one row per category, then warnings."""

    def labels(d: dict[str, str]) -> str:
        return " ".join(f"{k}={v}" for k, v in d.items())

    neutral_labels = f" ({labels(mapping.neutral_labels)})" if mapping.neutral_labels else ""
    lines = [f"mapping {mapping.name} (version {mapping.version}): {len(mapping.categories)} categories, "
             f"{len(mapping.parents)} core emotions"]  # fmt: skip
    lines.append(f"file: {mapping.source} (sha256 {mapping.sha256[:12]})")
    if mapping.reference:
        lines.append(f"reference: {mapping.reference}")
    if mapping.description:
        lines.append(f"description: {mapping.description}")
    lines.append(f"neutral label (nothing fires): {mapping.neutral}{neutral_labels}")
    lines.append(f"levels: a bare AU means at least {level_text(mapping.default_min)} "
                 f"({mapping.default_min:g} on the 0-5 scale); one-sided terms need that side ahead of the other "
                 f"by {mapping.side_margin:g}; a category fires when its score >= 0.5")  # fmt: skip
    speech = sorted({au for c in mapping.categories for au in c.speech_aus})
    if speech:
        lines.append(f"speech: {' '.join(speech)} read 0 while the window is speech (speaking share >= "
                     f"{mapping.speaking_share:g}) in the categories that list them")  # fmt: skip
    if any(c.graded for c in mapping.categories):
        lines.append("graded rules (with '(+ ...)' supporting AUs or *weights) score the weighted mean of their AUs' "
                     "memberships and fire at >= 0.5 while every required AU holds")  # fmt: skip
    u = mapping.uncertainty
    lines.append(f"uncertain ('{u.label}'): lead over the next core emotion < {u.min_margin:g}, face coverage < "
                 f"{u.min_face_coverage:g}, head turn > {u.max_head_turn_deg:g} deg or baseline confidence < "
                 f"{u.min_baseline_confidence:g}")  # fmt: skip
    lines.append("")
    header = ("core emotion", "category", "rule", "labels", "description")
    body = [(c.parent, c.name, c.rule_text(mapping.default_min), labels(c.labels), c.description)
            for p in mapping.parents for c in mapping.categories if c.parent == p]  # fmt: skip
    lines += _table([header, *body])
    if mapping.warnings:
        lines.append("")
        lines.append(f"warnings ({len(mapping.warnings)}):")
        lines += [f"  {w}" for w in mapping.warnings]
    return "\n".join(lines)
