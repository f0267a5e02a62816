"""Emotion mapping: a small, validated YAML language from FACS Action Units to emotion categories.

A mapping file (``mappings/*.yaml``, documented in ``docs/mapping.md``) names categories
(e.g. Table 1's micro emotions), each with a parent (core emotion) and a rule made of
``all_of`` / ``any_of`` / ``none_of`` AU terms with a minimum intensity and an optional side.

Units and shapes: AU intensities are floats on the FACS 0-5 scale (0 absent, 1..5 = levels
A..E, NaN = unknown / no face). :func:`score` maps an ``(n_windows, n_AU_columns)`` DataFrame
to an ``(n_windows, n_categories + 4)`` DataFrame of fuzzy scores in [0, 1], the winner, its
core emotion, its score and an explanation such as ``AU12=2.8 AU01=1.4``.

Every problem in a file raises :class:`aupipe.errors.MappingError` with one line
``path:line:column: what is wrong; what would be valid``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import yaml

from aupipe.errors import MappingError

__all__ = [
    "DEFAULT_MAPPING",
    "KNOWN_AUS",
    "SIDED_AUS",
    "SIDES",
    "Category",
    "Mapping",
    "Term",
    "describe",
    "list_mappings",
    "load_mapping",
    "parse_mapping",
    "score",
    "validate_file",
    "validation_warnings",
]

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

_TOP_KEYS = ("version", "name", "description", "reference", "neutral", "neutral_labels", "defaults", "parents",
             "categories")  # fmt: skip
_CATEGORY_KEYS = ("parent", "all_of", "any_of", "none_of", "description", "labels")
_TERM_KEYS = ("au", "min", "side")
_DEFAULTS_KEYS = ("min", "side_margin")
_RULE_KEYS = ("all_of", "any_of", "none_of")
#: Common wrong spellings difflib would not catch -> the key that was meant.
_SYNONYMS: dict[str, str] = {
    "intensity": "min", "min_intensity": "min", "threshold": "min", "level": "min", "minimum": "min",
    "aus": "all_of", "and": "all_of", "all": "all_of", "or": "any_of", "any": "any_of",
    "not": "none_of", "without": "none_of", "exclude": "none_of", "excluding": "none_of", "none": "none_of",
    "core": "parent", "core_emotion": "parent", "emotion": "parent", "action_unit": "au", "unit": "au",
    "emotions": "categories", "micro_emotions": "categories", "rules": "categories",
    "core_emotions": "parents", "default": "defaults", "margin": "side_margin", "source": "reference",
}  # fmt: skip
_NAME_RE = re.compile(r"[^\W\d]\w*")
_AU_RE = re.compile(r"(?:AU)?\s*(\d+)", re.IGNORECASE)
_COMPACT_RE = re.compile(r"(?P<side>[LR])?\s*(?:AU)?\s*(?P<num>\d+)\s*(?P<level>[A-E])?", re.IGNORECASE)
_BELOW_HALF = float(np.nextafter(0.5, 0.0))
_VALID_AUS = " ".join(KNOWN_AUS)


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

    @property
    def label(self) -> str:
        """Name used in explanations: ``AU12`` or ``AU12_left`` / ``AU12_right`` for one-sided terms."""
        return f"{self.au}_{self.side}" if self.side in ("left", "right") else self.au

    def text(self, default_min: float = DEFAULT_MIN) -> str:
        """Readable form, e.g. ``AU12``, ``AU05>=B``, ``AU12(right)>=A``; the level shows when not the default."""
        out = self.au if self.side == "combined" else f"{self.au}({self.side})"
        if self.min_intensity != default_min or self.side in ("left", "right"):
            out += f">={_level_text(self.min_intensity)}"
        return out


@dataclass(frozen=True)
class Category:
    """One emotion category: its rule over AU terms, its parent (core emotion) and dataset labels."""

    name: str
    parent: str
    all_of: tuple[Term, ...] = ()
    any_of: tuple[Term, ...] = ()
    none_of: tuple[Term, ...] = ()
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    line: int = field(default=0, compare=False)

    @property
    def specificity(self) -> int:
        """Tie-break weight: number of all-of and none-of terms, plus one for an any-of group."""
        return len(self.all_of) + len(self.none_of) + (1 if self.any_of else 0)

    def rule_text(self, default_min: float = DEFAULT_MIN) -> str:
        """The rule in one line, e.g. ``AU07 without AU12`` or ``AU02 + any of (AU01, AU25)``."""
        parts: list[str] = []
        if self.all_of:
            parts.append(" + ".join(t.text(default_min) for t in self.all_of))
        if self.any_of:
            alternatives = ", ".join(t.text(default_min) for t in self.any_of)
            parts.append(f"any of ({alternatives})" if len(self.any_of) > 1 else alternatives)
        text = " + ".join(parts)
        if self.none_of:
            excluded = ", ".join(t.text(default_min) for t in self.none_of)
            text += f" without {excluded}" if len(self.none_of) == 1 else f" without any of ({excluded})"
        return text


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
# Finding and loading files
# --------------------------------------------------------------------------------------------


def _shipped_dir() -> Traversable:
    """The folder of shipped mappings: the installed package ``aupipe.mappings`` or ``<repo>/mappings``."""
    try:
        folder = resources.files("aupipe.mappings")
        if any(entry.name.endswith(".yaml") for entry in folder.iterdir()):
            return folder
    except (ImportError, TypeError, OSError, ValueError):
        pass
    return Path(__file__).resolve().parent.parent / "mappings"


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
            raise MappingError(f"{path}:1:1: file too large for a mapping ({path.stat().st_size} bytes); "
                               f"mapping files are small YAML texts (at most {MAX_FILE_BYTES} bytes)")
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
# Parsing and validation
# --------------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _show(value: Any) -> str:
    """A user's value as it would appear in YAML, shortened: 'AU16', 7, a list, ..."""
    if isinstance(value, str):
        text = f"'{value}'"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "nothing (null)"
    elif isinstance(value, dict):
        text = "a mapping {" + ", ".join(str(k) for k in list(value)[:4]) + (", ...}" if len(value) > 4 else "}")
    elif isinstance(value, list):
        text = "a list"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _level_text(value: float) -> str:
    for letter, number in FACS_LEVELS.items():
        if value == number:
            return letter
    return f"{value:g}"


def _did_you_mean(key: str, valid: Sequence[str]) -> str:
    lowered = key.lower().strip()
    guess = _SYNONYMS.get(lowered) if _SYNONYMS.get(lowered) in valid else None
    if guess is None:
        close = difflib.get_close_matches(lowered, list(valid), n=1, cutoff=0.6)
        guess = close[0] if close else None
    return f"did you mean '{guess}'? " if guess else ""


class _Positions:
    """Line/column (1-based) of every key and value of a composed YAML tree, by data path."""

    def __init__(self, root: yaml.Node, source: str) -> None:
        self.source = source
        self._keys: dict[tuple[Any, ...], tuple[int, int]] = {}
        self._values: dict[tuple[Any, ...], yaml.Node] = {}
        self._loader = yaml.SafeLoader("")
        self._seen: set[int] = set()
        self._walk(root, ())

    @staticmethod
    def _mark(node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def _key_value(self, node: yaml.Node) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except (yaml.YAMLError, TypeError):
            return getattr(node, "value", None)

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self._values.setdefault(path, node)
        if id(node) in self._seen:
            return
        self._seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i))
        elif isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                    for sub in merged:
                        if isinstance(sub, yaml.MappingNode):
                            for k, v in sub.value:
                                self._keys.setdefault((*path, self._key_value(k)), self._mark(k))
                                self._walk(v, (*path, self._key_value(k)))
                    continue
                key = self._key_value(key_node)
                try:
                    previous = first.get(key)
                except TypeError:  # unhashable key: safe_load already refused it
                    continue
                if previous is not None:
                    self._duplicate(path, key, key_node, previous)
                first[key] = key_node
                self._keys[(*path, key)] = self._mark(key_node)
                self._walk(value_node, (*path, key))

    def _duplicate(self, path: tuple[Any, ...], key: Any, node: yaml.Node, previous: yaml.Node) -> NoReturn:
        line, col = self._mark(node)
        first_line = previous.start_mark.line + 1
        if path == ("categories",):
            what = (f"duplicate category '{key}' (first defined on line {first_line}); "
                    "category names must be unique: rename one of them or merge their rules")
        else:
            where = " in " + ".".join(str(p) for p in path) if path else ""
            what = (f"duplicate key '{key}'{where} (first given on line {first_line}); "
                    "each key may appear only once: keep one of them")
        raise MappingError(_one_line(f"{self.source}:{line}:{col}: {what}"))

    def value(self, path: tuple[Any, ...], offset: int = 0) -> tuple[int, int]:
        """Position of the value at ``path`` (or its nearest ancestor); ``offset`` chars into a plain scalar."""
        for n in range(len(path), -1, -1):
            node = self._values.get(path[:n])
            if node is not None:
                line, col = self._mark(node)
                plain_one_line = isinstance(node, yaml.ScalarNode) and node.style is None
                if n == len(path) and offset and plain_one_line and node.start_mark.line == node.end_mark.line:
                    col += offset
                return line, col
        return 1, 1

    def key(self, path: tuple[Any, ...]) -> tuple[int, int]:
        """Position of the key of the entry at ``path`` (falls back to its value's position)."""
        if path in self._keys:
            return self._keys[path]
        return self.value(path)


class _Builder:
    """Turns safe-loaded YAML data into a :class:`Mapping`, failing at the first error in file order."""

    def __init__(self, data: Any, positions: _Positions, source: str, sha256: str) -> None:
        self.data = data
        self.pos = positions
        self.source = source
        self.sha256 = sha256
        self.default_min = DEFAULT_MIN
        self.side_margin = DEFAULT_SIDE_MARGIN
        self.parents: tuple[str, ...] | None = None

    # -- error helpers ---------------------------------------------------------------------
    def fail(self, path: tuple[Any, ...], message: str, *, at_key: bool = False, offset: int = 0) -> NoReturn:
        line, col = self.pos.key(path) if at_key else self.pos.value(path, offset)
        raise MappingError(_one_line(f"{self.source}:{line}:{col}: {message}"))

    def where(self, path: tuple[Any, ...]) -> str:
        line, col = self.pos.key(path)
        return f"{self.source}:{line}:{col}"

    def check_keys(self, path: tuple[Any, ...], mapping: dict[Any, Any], valid: Sequence[str], what: str) -> None:
        for key in mapping:
            if key not in valid:
                shown = key if isinstance(key, str) else _show(key)
                hint = _did_you_mean(str(key), valid)
                self.fail((*path, key), f"unknown key '{shown}' in {what}; {hint}valid keys: {', '.join(valid)}",
                          at_key=True)

    def name(self, path: tuple[Any, ...], value: Any, what: str, *, at_key: bool = False) -> str:
        if isinstance(value, bool) or value is None:
            self.fail(path, f"{what} {_show(value)} is not a name (YAML reads yes/no/on/off/true/false/null as "
                            f"special values); put the name in quotes", at_key=at_key)
        if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or len(value) > 64:
            self.fail(path, f"{what} {_show(value)} is not a valid name; use letters, digits and _ "
                            f"(starting with a letter, at most 64 characters), e.g. 'hurt' or 'micro_fear'",
                      at_key=at_key)
        return value

    # -- top level -------------------------------------------------------------------------
    def build(self) -> Mapping:
        data = self.data
        if not isinstance(data, dict):
            kind = "a list" if isinstance(data, list) else f"a single value ({_show(data)})"
            optional = ", ".join(k for k in _TOP_KEYS if k not in ("version", "categories"))
            self.fail((), f"the top level is {kind}; a mapping file is a YAML mapping with the keys "
                          f"version, categories (and optionally {optional})")
        self.version(data)
        self.check_keys((), data, _TOP_KEYS, "the top level")
        name = Path(self.source).stem
        if "name" in data:
            name = self.name(("name",), data["name"], "mapping name")
        description = self.text(("description",), data.get("description"))
        reference = self.text(("reference",), data.get("reference"))
        neutral = "neutral"
        if "neutral" in data:
            neutral = self.name(("neutral",), data["neutral"], "neutral label")
        neutral_labels = self.labels(("neutral_labels",), data.get("neutral_labels"))
        if "defaults" in data:
            self.defaults(data["defaults"])
        if "parents" in data:
            self.parents = self.parent_list(data["parents"], neutral)
        if "categories" not in data or data["categories"] is None:
            path = ("categories",) if "categories" in data else ()
            self.fail(path, "no categories; add a 'categories:' mapping, e.g. 'categories: {hurt: {parent: sad, "
                            "all_of: [AU01, AU15]}}'", at_key=True)
        cats = data["categories"]
        if not isinstance(cats, dict):
            self.fail(("categories",), f"'categories' must be a mapping of category name -> rule, not {_show(cats)}; "
                                       "write e.g. 'hurt:' on its own line followed by indented 'all_of: [AU01, AU15]'")
        if not cats:
            self.fail(("categories",), "'categories' is empty; define at least one category, e.g. "
                                       "'hurt: {all_of: [AU01, AU15]}'", at_key=True)
        categories = tuple(self.category(key, body, neutral) for key, body in cats.items())
        parents = self.parents
        if parents is None:
            parents = tuple(dict.fromkeys(c.parent for c in categories))
        mapping = Mapping(
            name=name, version=SCHEMA_VERSION, source=self.source, description=description,
            parents=parents, categories=categories, neutral=neutral, sha256=self.sha256,
            reference=reference, neutral_labels=neutral_labels, default_min=self.default_min,
            side_margin=self.side_margin,
        )  # fmt: skip
        return dataclasses.replace(mapping, warnings=tuple(self.warnings(mapping)))

    def version(self, data: dict[Any, Any]) -> None:
        if "version" not in data:
            self.fail((), f"missing 'version'; add 'version: {SCHEMA_VERSION}' as the first line")
        version = data["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            self.fail(("version",), f"version must be the whole number {SCHEMA_VERSION}, not {_show(version)}; "
                                    f"write 'version: {SCHEMA_VERSION}'")
        if version != SCHEMA_VERSION:
            self.fail(("version",), f"unsupported version {version}; this aupipe reads version {SCHEMA_VERSION} "
                                    f"mapping files")

    def text(self, path: tuple[Any, ...], value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.fail(path, f"{path[-1]} must be text, not {_show(value)}; put it in quotes")
        return value.strip()

    def defaults(self, value: Any) -> None:
        path = ("defaults",)
        if not isinstance(value, dict):
            self.fail(path, f"'defaults' must be a mapping such as '{{min: A, side_margin: 1.0}}', not {_show(value)}")
        self.check_keys(path, value, _DEFAULTS_KEYS, "defaults")
        if "min" in value:
            self.default_min = self.intensity((*path, "min"), value["min"])
        if "side_margin" in value:
            margin = value["side_margin"]
            if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin <= MAX_INTENSITY:
                self.fail((*path, "side_margin"),
                          f"side_margin {_show(margin)} is out of range; give a number above 0 and at most "
                          f"{MAX_INTENSITY:g} (intensity units, default 1 = one FACS level)")
            self.side_margin = float(margin)

    def parent_list(self, value: Any, neutral: str) -> tuple[str, ...]:
        path = ("parents",)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.fail(path, f"'parents' must be a non-empty list of core emotions, e.g. '[sad, happy]', not "
                            f"{_show(value)}", at_key=not value)
        names: list[str] = []
        for i, item in enumerate(value):
            name = self.name((*path, i), item, "parent")
            if name in names:
                self.fail((*path, i), f"parent '{name}' is listed twice in parents; list each core emotion once")
            if name == neutral:
                self.fail((*path, i), f"parent '{name}' has the same name as the neutral label; rename it or set "
                                      "'neutral:' to another label")
            names.append(name)
        return tuple(names)

    def labels(self, path: tuple[Any, ...], value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"labels must be a mapping of dataset -> label such as '{{cremad: HAP}}', "
                            f"not {_show(value)}")
        out: dict[str, str] = {}
        for dataset, label in value.items():
            dataset = self.name((*path, dataset), dataset, "dataset name", at_key=True)
            if isinstance(label, bool) or not isinstance(label, (str, int)):
                self.fail((*path, dataset), f"label for '{dataset}' must be text, not {_show(label)}")
            label = str(label).strip()
            known = KNOWN_DATASET_LABELS.get(dataset.lower())
            if known is not None:
                if label.upper() not in known:
                    self.fail((*path, dataset), f"'{label}' is not a {dataset} label; valid: {', '.join(known)}")
                label = label.upper()
            out[dataset] = label
        return out

    # -- categories --------------------------------------------------------------------------
    def category(self, key: Any, body: Any, neutral: str) -> Category:
        path = ("categories", key)
        name = self.name(path, key, "category name", at_key=True)
        if name == neutral:
            self.fail(path, f"category '{name}' has the same name as the neutral label; rename it or set "
                            "'neutral:' to another label", at_key=True)
        if body is None:
            self.fail(path, f"category '{name}' has no rule; give it all_of and/or any_of, e.g. "
                            "'all_of: [AU01, AU15]'", at_key=True)
        if not isinstance(body, dict):
            self.fail(path, f"category '{name}' must be a mapping with keys {', '.join(_CATEGORY_KEYS)}, not "
                            f"{_show(body)}")
        self.check_keys(path, body, _CATEGORY_KEYS, f"category '{name}'")
        parent = name
        if "parent" in body:
            parent = self.name((*path, "parent"), body["parent"], "parent")
            if self.parents is not None and parent not in self.parents:
                hint = _did_you_mean(parent, self.parents)
                self.fail((*path, "parent"), f"parent '{parent}' of category '{name}' is not in parents; "
                                             f"{hint}valid: {', '.join(self.parents)}")
        elif self.parents is not None:
            self.fail(path, f"category '{name}' has no parent; add 'parent:' with one of {', '.join(self.parents)}",
                      at_key=True)
        rule: dict[str, tuple[Term, ...]] = {}
        for part in _RULE_KEYS:
            rule[part] = self.terms((*path, part), body.get(part), part, name)
        if not rule["all_of"] and not rule["any_of"]:
            extra = " (none_of alone would fire on a neutral face)" if rule["none_of"] else ""
            self.fail(path, f"category '{name}' has an empty rule{extra}; give it at least one AU in all_of or "
                            "any_of, e.g. 'all_of: [AU01, AU15]'", at_key=True)
        description = self.text((*path, "description"), body.get("description"))
        labels = self.labels((*path, "labels"), body.get("labels"))
        return Category(name=name, parent=parent, description=description, labels=labels,
                        line=self.pos.key(path)[0], **rule)  # fmt: skip

    def terms(self, path: tuple[Any, ...], value: Any, part: str, category: str) -> tuple[Term, ...]:
        if value is None:
            return ()
        items: list[tuple[tuple[Any, ...], Any, int]]
        if isinstance(value, list):
            items = [((*path, i), item, 0) for i, item in enumerate(value)]
        elif isinstance(value, str) and "+" in value and part == "all_of":
            items, offset = [], 0
            for token in value.split("+"):
                stripped = token.strip()
                items.append((path, stripped, offset + len(token) - len(token.lstrip())))
                offset += len(token) + 1
        elif isinstance(value, (str, int, dict)) and not isinstance(value, bool):
            items = [(path, value, 0)]
        else:
            self.fail(path, f"{part} of '{category}' must be a list of AUs such as '[AU01, AU15]', not {_show(value)}")
        terms: list[Term] = []
        for item_path, item, offset in items:
            term = self.term(item_path, item, part, offset)
            for other in terms:
                if (other.au, other.side) == (term.au, term.side):
                    self.fail(item_path, f"{term.au}{'' if term.side == 'combined' else ' (' + term.side + ')'} "
                                         f"is listed twice in {part} of '{category}'; list each AU once",
                              offset=offset)
            terms.append(term)
        return tuple(terms)

    def au_number(self, path: tuple[Any, ...], text: str, number: str, offset: int = 0) -> str:
        au = f"AU{int(number):02d}"
        if au not in KNOWN_AUS:
            self.fail(path, f"unknown AU '{text}' ({au} is not an AU aupipe estimates); valid AUs: {_VALID_AUS}",
                      offset=offset)
        return au

    def term(self, path: tuple[Any, ...], item: Any, part: str, offset: int = 0) -> Term:
        if isinstance(item, bool) or not isinstance(item, (str, int, dict)):
            self.fail(path, f"each {part} term is an AU like AU12 (or R12A, 12) or a mapping like "
                            f"'{{au: AU12, min: B, side: left}}', not {_show(item)}", offset=offset)
        if isinstance(item, int):
            return Term(self.au_number(path, str(item), str(item)), self.default_min)
        if isinstance(item, str):
            if "+" in item:
                self.fail(path, f"'{item}' combines AUs with '+', which only all_of accepts; in {part} list single "
                                "AUs, or make a separate category with all_of for the combination", offset=offset)
            match = _COMPACT_RE.fullmatch(item.strip())
            if match is None:
                self.fail(path, f"unknown AU {_show(item)}; write an AU as AU12, 12 or AU1 (optionally with side "
                                f"and level in FACS style, e.g. R12A); valid AUs: {_VALID_AUS}", offset=offset)
            au = self.au_number(path, item.strip(), match["num"], offset)
            side = {"l": "left", "r": "right", None: "combined"}[match["side"] and match["side"].lower()]
            level = FACS_LEVELS[match["level"].upper()] if match["level"] else self.default_min
            if side != "combined" and au not in SIDED_AUS:
                self.fail(path, f"{au} has no left/right values ('{item}' asks for one side); one-sided AUs are "
                                f"{' '.join(SIDED_AUS)}", offset=offset)
            return Term(au, level, side)
        self.check_keys(path, item, _TERM_KEYS, "an AU term")
        if "au" not in item:
            self.fail(path, "this term has no 'au'; write it as '{au: AU12, min: B, side: left}'")
        raw = item["au"]
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            self.fail((*path, "au"), f"au must be an AU name like AU12, not {_show(raw)}")
        match = _AU_RE.fullmatch(str(raw).strip())
        if match is None:
            compact = _COMPACT_RE.fullmatch(str(raw).strip())
            if compact is not None:
                self.fail((*path, "au"), f"au '{raw}' carries a side or level; in the long form write them as keys, "
                                         f"e.g. '{{au: AU{int(compact['num']):02d}, side: right, min: A}}', "
                                         f"or use the short form '{raw}' as the whole term")
            self.fail((*path, "au"), f"unknown AU {_show(raw)}; valid AUs: {_VALID_AUS}")
        au = self.au_number((*path, "au"), str(raw).strip(), match[1])
        level = self.intensity((*path, "min"), item["min"]) if "min" in item else self.default_min
        side = "combined"
        if "side" in item:
            raw_side = item["side"]
            side = raw_side.strip().lower() if isinstance(raw_side, str) else ""
            if side not in SIDES:
                self.fail((*path, "side"), f"bad side {_show(raw_side)}; valid: left, right, either, both "
                                           "(or leave 'side' out for the combined value)")
            if side != "combined" and au not in SIDED_AUS:
                self.fail((*path, "side"), f"{au} has no left/right values, so it cannot have 'side: {side}'; "
                                           f"one-sided AUs are {' '.join(SIDED_AUS)}; remove 'side'")
        return Term(au, level, side)

    def intensity(self, path: tuple[Any, ...], value: Any) -> float:
        if isinstance(value, str):
            letter = value.strip().upper()
            if letter in FACS_LEVELS:
                return FACS_LEVELS[letter]
            self.fail(path, f"bad intensity {_show(value)}; give a FACS letter A-E (A trace ... E maximum) or a "
                            f"number above 0 and at most {MAX_INTENSITY:g}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"bad intensity {_show(value)}; give a FACS letter A-E or a number above 0 and at most "
                            f"{MAX_INTENSITY:g}")
        if not 0 < value <= MAX_INTENSITY:
            low = " (0 means absent; to require absence use none_of)" if value == 0 else ""
            self.fail(path, f"intensity {value:g} is out of range{low}; give a number above 0 and at most "
                            f"{MAX_INTENSITY:g}, or a FACS letter A-E (A=1 ... E=5)")
        return float(value)

    # -- warnings ----------------------------------------------------------------------------
    def warnings(self, mapping: Mapping) -> list[str]:
        out: list[str] = []
        cats = mapping.categories
        path_of = {c.name: ("categories", c.name) for c in cats}
        for i, cat in enumerate(cats):
            for earlier in cats[:i]:
                if _same_rule(cat, earlier):
                    out.append(f"{self.where(path_of[cat.name])}: category '{cat.name}' has the same rule as "
                               f"'{earlier.name}' (line {earlier.line}): {cat.rule_text(mapping.default_min)}; "
                               f"they always score the same and ties go to the earlier category, so '{cat.name}' "
                               "is never the winner")
                    break
        dominators = _dominators(cats)
        for d, cat in enumerate(cats):
            nested = [cats[c].name for c in range(len(cats)) if d in dominators[c]]
            if nested:
                quoted = [f"'{n}'" for n in nested]
                names = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
                out.append(f"{self.where(path_of[cat.name])}: whenever '{cat.name}' fires, {names} "
                           f"{'fires' if len(nested) == 1 else 'fire'} too (its rule contains theirs); "
                           f"'{cat.name}' wins those windows as the more specific rule")
        for cat in cats:
            for t in cat.all_of:
                for n in cat.none_of:
                    if _term_implies(t, n):
                        out.append(f"{self.where(path_of[cat.name])}: category '{cat.name}' can never fire: "
                                   f"{t.text()} is both required (all_of) and excluded (none_of)")
        if self.parents is not None:
            used = {c.parent for c in cats}
            for i, parent in enumerate(self.parents):
                if parent not in used:
                    line, col = self.pos.value(("parents", i))
                    out.append(f"{self.source}:{line}:{col}: parent '{parent}' has no categories; it will never "
                               "be a core emotion")
        return [_one_line(w) for w in out]


def parse_mapping(data: bytes | str, source: str = "<mapping>") -> Mapping:
    """Parse and validate mapping YAML (bytes or text); ``source`` names it in messages."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = raw[: err.start]
        line = before.count(b"\n") + 1
        col = err.start - (before.rfind(b"\n") + 1) + 1
        raise MappingError(f"{source}:{line}:{col}: the file is not UTF-8 text (byte 0x{raw[err.start]:02x}); "
                           "save it as UTF-8 (plain text)") from err
    if not text.strip():
        raise MappingError(f"{source}:1:1: the file is empty; a mapping file needs at least 'version: 1' and "
                           "'categories:' (see docs/mapping.md)")
    try:
        loaded = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = err.problem or err.context or "invalid YAML"
        context = err.context_mark
        if err.context and problem.startswith("but "):
            problem = f"{err.context}, {problem}"
        elif err.context and context is not None and (context.line, context.column) != (line - 1, col - 1):
            problem += f" ({err.context} that starts at line {context.line + 1}, column {context.column + 1})"
        raise MappingError(_one_line(f"{source}:{line}:{col}: YAML syntax error: {problem}; check the indentation "
                                     "(spaces, not tabs), colons after keys and matching brackets/quotes "
                                     "here")) from err
    except yaml.YAMLError as err:
        raise MappingError(_one_line(f"{source}:1:1: YAML error: {err}; fix the YAML syntax")) from err
    if root is None or loaded is None:
        raise MappingError(f"{source}:1:1: the file contains no YAML data (only comments or '---'); a mapping file "
                           "needs at least 'version: 1' and 'categories:'")
    positions = _Positions(root, source)
    return _Builder(loaded, positions, source, digest).build()


# --------------------------------------------------------------------------------------------
# Rule relations (identical rules, nested rules)
# --------------------------------------------------------------------------------------------


def _same_rule(a: Category, b: Category) -> bool:
    return (set(a.all_of), set(a.any_of), set(a.none_of)) == (set(b.all_of), set(b.any_of), set(b.none_of))


def _term_implies(a: Term, b: Term) -> bool:
    """Whenever term ``a`` holds, term ``b`` holds (same AU, a level at least b's, compatible sides)."""
    if a.au != b.au or a.min_intensity < b.min_intensity:
        return False
    return a.side == b.side or (b.side == "either" and a.side in ("left", "right", "both"))


def _rule_implies(d: Category, c: Category) -> bool:
    """Whenever ``d`` fires, ``c`` fires (decided from the rules alone)."""
    if not all(any(_term_implies(a, b) for a in d.all_of) for b in c.all_of):
        return False
    if c.any_of:
        by_all = any(_term_implies(a, b) for a in d.all_of for b in c.any_of)
        by_any = bool(d.any_of) and all(any(_term_implies(a, b) for b in c.any_of) for a in d.any_of)
        if not (by_all or by_any):
            return False
    # c's none_of term (au, t_c) is surely absent when d has the same exclusion at t_d <= t_c.
    return all(
        any(a.au == b.au and a.side == b.side and a.min_intensity <= b.min_intensity for a in d.none_of)
        for b in c.none_of
    )


def _dominators(categories: Sequence[Category]) -> list[list[int]]:
    """For each category, the indices of categories whose rule strictly contains its rule."""
    return _dominators_of(tuple(categories))


@functools.lru_cache(maxsize=16)
def _dominators_of(categories: tuple[Category, ...]) -> list[list[int]]:
    return [
        [d for d, other in enumerate(categories)
         if d != c and _rule_implies(other, cat) and not _rule_implies(cat, other)]
        for c, cat in enumerate(categories)
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


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


class _Columns:
    """Vectorised access to the AU columns of an intensity DataFrame (NaN kept; missing -> 0)."""

    def __init__(self, intensity: pd.DataFrame) -> None:
        self.n = len(intensity)
        self._frame = intensity
        self._cache: dict[str, np.ndarray | None] = {}

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

    def term_value(self, term: Term) -> np.ndarray:
        """The intensity a term reads (NaN -> 0, clipped to 0-5): combined, one side, max/min of the sides."""
        if term.side == "combined":
            return _clean(self.combined(term.au))
        if term.side in ("left", "right"):
            return _clean(self.side(term.au, term.side))
        left, right = _clean(self.side(term.au, "left")), _clean(self.side(term.au, "right"))
        return np.maximum(left, right) if term.side == "either" else np.minimum(left, right)

    def term_membership(self, term: Term, margin: float) -> np.ndarray:
        """Membership of ``term`` per row, in [0, 1]; >= 0.5 exactly when the term holds."""
        value = self.term_value(term)
        mu = membership(value, term.min_intensity)
        if term.side in ("left", "right"):
            other = _clean(self.side(term.au, "right" if term.side == "left" else "left"))
            mu = np.minimum(mu, membership(value - other, margin))
        return mu

    def no_face(self) -> np.ndarray:
        """Rows where every AU column present is NaN (no face / unknown)."""
        names = [c for c in self._frame.columns if isinstance(c, str) and _is_au_column(c)]
        if not names:
            return np.zeros(self.n, dtype=bool)
        present = np.zeros(self.n, dtype=bool)
        for name in names:
            values = self.column(name)
            present |= ~np.isnan(values)  # type: ignore[operator]
        return ~present


def _clean(values: np.ndarray) -> np.ndarray:
    """Intensities as used by rules: NaN -> 0, clipped to [0, 5]."""
    return np.clip(np.nan_to_num(values, nan=0.0, posinf=MAX_INTENSITY, neginf=0.0), 0.0, MAX_INTENSITY)


def _is_au_column(name: str) -> bool:
    base = name.removesuffix("_left").removesuffix("_right")
    return base in KNOWN_AUS


def _join(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Element-wise 'left right' of two string arrays, skipping empty strings."""
    both = np.char.add(np.char.add(left, " "), right)
    return np.where(right == "", left, np.where(left == "", right, both))


def score(intensity: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    """Score every row (window) of ``intensity`` against every category of ``mapping``.

    intensity: (n, k) DataFrame of AU intensities on the 0-5 scale, columns ``AU12`` and optionally
    ``AU12_left`` / ``AU12_right``; absent AU columns count as 0, NaN counts as 0, and rows where
    every AU column is NaN (no face) get all scores 0.0 and the neutral label.
    Returns an (n, C + 4) DataFrame with the same index: ``score_<category>`` (float in [0, 1], file
    order), ``emotion`` (winner or neutral label), ``core_emotion`` (its parent or the neutral
    label), ``emotion_score`` (winner's score, 0.0 for neutral) and ``emotion_aus`` (e.g.
    ``AU12=2.8 AU01=1.4``, empty for neutral). Vectorised over rows; see docs/mapping.md.
    """
    cols = _Columns(intensity)
    n, cats = cols.n, mapping.categories
    scores = np.zeros((n, len(cats)))
    for j, cat in enumerate(cats):
        parts: list[np.ndarray] = []
        if cat.all_of:
            parts.append(np.min([cols.term_membership(t, mapping.side_margin) for t in cat.all_of], axis=0))
        if cat.any_of:
            parts.append(np.max([cols.term_membership(t, mapping.side_margin) for t in cat.any_of], axis=0))
        if cat.none_of:
            present = np.max([cols.term_membership(t, mapping.side_margin) for t in cat.none_of], axis=0)
            parts.append(np.where(present >= 0.5, np.minimum(1.0 - present, _BELOW_HALF), 1.0 - present))
        scores[:, j] = np.min(parts, axis=0) if parts else 0.0
    scores[cols.no_face()] = 0.0
    fired = scores >= 0.5

    # Nested rules: a category is set aside when a category whose rule strictly contains its rule fired.
    eligible = fired.copy()
    for j, dominators in enumerate(_dominators(cats)):
        for d in dominators:
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

    names = np.array([c.name for c in cats] + [mapping.neutral], dtype=object)
    parents = np.array([c.parent for c in cats] + [mapping.neutral], dtype=object)
    emotion_score = np.where(any_fired, scores[np.arange(n), np.maximum(winner, 0)] if n else 0.0, 0.0)
    explanation = np.full(n, "", dtype=object)
    for j, cat in enumerate(cats):
        rows = np.flatnonzero(winner == j)
        if rows.size == 0:
            continue
        text = np.full(rows.size, "", dtype=str)
        for term in cat.all_of + cat.any_of:
            piece = np.char.add(f"{term.label}=", np.char.mod("%.1f", cols.term_value(term)[rows]))
            if term in cat.any_of and term not in cat.all_of:
                holds = cols.term_membership(term, mapping.side_margin)[rows] >= 0.5
                piece = np.where(holds, piece, "")
            text = _join(text, piece)
        explanation[rows] = text
    out: dict[str, Any] = {f"score_{c.name}": scores[:, j] for j, c in enumerate(cats)}
    out["emotion"] = names[winner]
    out["core_emotion"] = parents[winner]
    out["emotion_score"] = emotion_score.astype(float)
    out["emotion_aus"] = explanation
    return pd.DataFrame(out, index=intensity.index)


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
    lines.append(f"levels: a bare AU means at least {_level_text(mapping.default_min)} "
                 f"({mapping.default_min:g} on the 0-5 scale); one-sided terms need that side ahead of the other "
                 f"by {mapping.side_margin:g}; a category fires when its score >= 0.5")  # fmt: skip
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
