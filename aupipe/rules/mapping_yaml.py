"""YAML plumbing for the mapping parser: where each key and value sits in the file (line, column), duplicate keys, and the one-line message helpers."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any, NoReturn

import yaml

from aupipe.errors import MappingError
from aupipe.rules.mapping_types import KNOWN_AUS

#: The keys the mapping language knows, per place (docs/mapping.md, "Keys").
TOP_KEYS = ("version", "name", "description", "reference", "neutral", "neutral_labels", "defaults", "parents",
            "uncertain", "categories")  # fmt: skip
CATEGORY_KEYS = ("parent", "all_of", "any_of", "supporting", "none_of", "ignore_when_speaking", "description",
                 "labels")  # fmt: skip
TERM_KEYS = ("au", "min", "side", "weight")
DEFAULTS_KEYS = ("min", "side_margin", "ignore_when_speaking", "speaking_share")
RULE_KEYS = ("all_of", "any_of", "supporting", "none_of")
UNCERTAIN_KEYS = ("label", "min_margin", "min_face_coverage", "max_head_turn_deg", "min_baseline_confidence")
#: Largest weight a term may carry (weights are relative: 2 = counts twice as much as 1).
MAX_WEIGHT = 10.0
NAME_RE = re.compile(r"[^\W\d]\w*")
AU_RE = re.compile(r"(?:AU)?\s*(\d+)", re.IGNORECASE)
COMPACT_RE = re.compile(r"(?P<side>[LR])?\s*(?:AU)?\s*(?P<num>\d+)\s*(?P<level>[A-E])?", re.IGNORECASE)
VALID_AUS = " ".join(KNOWN_AUS)


#: Common wrong spellings difflib would not catch -> the key that was meant.
_SYNONYMS: dict[str, str] = {
    "intensity": "min", "min_intensity": "min", "threshold": "min", "level": "min", "minimum": "min",
    "aus": "all_of", "and": "all_of", "all": "all_of", "or": "any_of", "any": "any_of",
    "not": "none_of", "without": "none_of", "exclude": "none_of", "excluding": "none_of", "none": "none_of",
    "core": "parent", "core_emotion": "parent", "emotion": "parent", "action_unit": "au", "unit": "au",
    "emotions": "categories", "micro_emotions": "categories", "rules": "categories",
    "core_emotions": "parents", "default": "defaults", "margin": "side_margin", "source": "reference",
}  # fmt: skip


def one_line(text: str) -> str:
    return " ".join(text.split())


def show_value(value: Any) -> str:
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


def did_you_mean(key: str, valid: Sequence[str]) -> str:
    lowered = key.lower().strip()
    guess = _SYNONYMS.get(lowered) if _SYNONYMS.get(lowered) in valid else None
    if guess is None:
        close = difflib.get_close_matches(lowered, list(valid), n=1, cutoff=0.6)
        guess = close[0] if close else None
    return f"did you mean '{guess}'? " if guess else ""


class Positions:
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
            what = (
                f"duplicate category '{key}' (first defined on line {first_line}); "
                "category names must be unique: rename one of them or merge their rules"
            )
        else:
            where = " in " + ".".join(str(p) for p in path) if path else ""
            what = (
                f"duplicate key '{key}'{where} (first given on line {first_line}); "
                "each key may appear only once: keep one of them"
            )
        raise MappingError(one_line(f"{self.source}:{line}:{col}: {what}"))

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
