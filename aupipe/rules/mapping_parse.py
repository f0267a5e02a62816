"""Parsing and validating mapping YAML into :class:`aupipe.rules.mapping_types.Mapping`.

Every problem raises :class:`aupipe.errors.MappingError` with one line
``path:line:column: what is wrong; what would be valid``; suspicious but legal rules become
warnings on the mapping.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from aupipe.errors import MappingError
from aupipe.rules.mapping_types import (
    DEFAULT_MIN, DEFAULT_SIDE_MARGIN, FACS_LEVELS, KNOWN_AUS, KNOWN_DATASET_LABELS, MAX_INTENSITY, SCHEMA_VERSION,
    DEFAULT_SPEAKING_SHARE, SIDED_AUS, SIDES, Category, Mapping, Term, Uncertainty, dominators, same_rule,
    term_implies,
)  # fmt: skip
from aupipe.rules.mapping_yaml import (
    AU_RE, CATEGORY_KEYS, COMPACT_RE, DEFAULTS_KEYS, MAX_WEIGHT, NAME_RE, RULE_KEYS, TERM_KEYS, TOP_KEYS, UNCERTAIN_KEYS,
    VALID_AUS, Positions, did_you_mean, one_line, show_value,
)  # fmt: skip

__all__ = ["one_line", "parse_mapping", "show_value"]


class _Builder:
    """Turns safe-loaded YAML data into a :class:`Mapping`, failing at the first error in file order."""

    def __init__(self, data: Any, positions: Positions, source: str, sha256: str) -> None:
        self.data = data
        self.pos = positions
        self.source = source
        self.sha256 = sha256
        self.default_min = DEFAULT_MIN
        self.side_margin = DEFAULT_SIDE_MARGIN
        self.speech_aus: tuple[str, ...] = ()
        self.speaking_share = DEFAULT_SPEAKING_SHARE
        self.parents: tuple[str, ...] | None = None

    # -- error helpers ---------------------------------------------------------------------
    def fail(self, path: tuple[Any, ...], message: str, *, at_key: bool = False, offset: int = 0) -> NoReturn:
        line, col = self.pos.key(path) if at_key else self.pos.value(path, offset)
        raise MappingError(one_line(f"{self.source}:{line}:{col}: {message}"))

    def where(self, path: tuple[Any, ...]) -> str:
        line, col = self.pos.key(path)
        return f"{self.source}:{line}:{col}"

    def check_keys(self, path: tuple[Any, ...], mapping: dict[Any, Any], valid: Sequence[str], what: str) -> None:
        for key in mapping:
            if key not in valid:
                shown = key if isinstance(key, str) else show_value(key)
                hint = did_you_mean(str(key), valid)
                self.fail(
                    (*path, key), f"unknown key '{shown}' in {what}; {hint}valid keys: {', '.join(valid)}", at_key=True
                )

    def name(self, path: tuple[Any, ...], value: Any, what: str, *, at_key: bool = False) -> str:
        if isinstance(value, bool) or value is None:
            self.fail(
                path,
                f"{what} {show_value(value)} is not a name (YAML reads yes/no/on/off/true/false/null as "
                f"special values); put the name in quotes",
                at_key=at_key,
            )
        if not isinstance(value, str) or not NAME_RE.fullmatch(value) or len(value) > 64:
            self.fail(
                path,
                f"{what} {show_value(value)} is not a valid name; use letters, digits and _ "
                f"(starting with a letter, at most 64 characters), e.g. 'hurt' or 'micro_fear'",
                at_key=at_key,
            )
        return value

    # -- top level -------------------------------------------------------------------------
    def build(self) -> Mapping:
        data = self.data
        if not isinstance(data, dict):
            kind = "a list" if isinstance(data, list) else f"a single value ({show_value(data)})"
            optional = ", ".join(k for k in TOP_KEYS if k not in ("version", "categories"))
            self.fail(
                (),
                f"the top level is {kind}; a mapping file is a YAML mapping with the keys "
                f"version, categories (and optionally {optional})",
            )
        self.version(data)
        self.check_keys((), data, TOP_KEYS, "the top level")
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
            self.fail(
                path,
                "no categories; add a 'categories:' mapping, e.g. 'categories: {hurt: {parent: sad, "
                "all_of: [AU01, AU15]}}'",
                at_key=True,
            )
        cats = data["categories"]
        if not isinstance(cats, dict):
            self.fail(
                ("categories",),
                f"'categories' must be a mapping of category name -> rule, not {show_value(cats)}; "
                "write e.g. 'hurt:' on its own line followed by indented 'all_of: [AU01, AU15]'",
            )
        if not cats:
            self.fail(
                ("categories",),
                "'categories' is empty; define at least one category, e.g. 'hurt: {all_of: [AU01, AU15]}'",
                at_key=True,
            )
        categories = tuple(self.category(key, body, neutral) for key, body in cats.items())
        parents = self.parents
        if parents is None:
            parents = tuple(dict.fromkeys(c.parent for c in categories))
        mapping = Mapping(
            name=name, version=SCHEMA_VERSION, source=self.source, description=description,
            parents=parents, categories=categories, neutral=neutral, sha256=self.sha256,
            reference=reference, neutral_labels=neutral_labels, default_min=self.default_min,
            side_margin=self.side_margin, speaking_share=self.speaking_share,
            uncertainty=self.uncertainty(data.get("uncertain", True), neutral, categories, parents),
        )  # fmt: skip
        return dataclasses.replace(mapping, warnings=tuple(self.warnings(mapping)))

    def version(self, data: dict[Any, Any]) -> None:
        if "version" not in data:
            self.fail((), f"missing 'version'; add 'version: {SCHEMA_VERSION}' as the first line")
        version = data["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            self.fail(
                ("version",),
                f"version must be the whole number {SCHEMA_VERSION}, not {show_value(version)}; "
                f"write 'version: {SCHEMA_VERSION}'",
            )
        if version != SCHEMA_VERSION:
            self.fail(
                ("version",), f"unsupported version {version}; this aupipe reads version {SCHEMA_VERSION} mapping files"
            )

    def text(self, path: tuple[Any, ...], value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.fail(path, f"{path[-1]} must be text, not {show_value(value)}; put it in quotes")
        return value.strip()

    def defaults(self, value: Any) -> None:
        path = ("defaults",)
        if not isinstance(value, dict):
            self.fail(
                path, f"'defaults' must be a mapping such as '{{min: A, side_margin: 1.0}}', not {show_value(value)}"
            )
        self.check_keys(path, value, DEFAULTS_KEYS, "defaults")
        if "min" in value:
            self.default_min = self.intensity((*path, "min"), value["min"])
        if "side_margin" in value:
            margin = value["side_margin"]
            if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin <= MAX_INTENSITY:
                self.fail(
                    (*path, "side_margin"),
                    f"side_margin {show_value(margin)} is out of range; give a number above 0 and at most "
                    f"{MAX_INTENSITY:g} (intensity units, default 1 = one FACS level)",
                )
            self.side_margin = float(margin)
        if "ignore_when_speaking" in value:
            self.speech_aus = self.au_list((*path, "ignore_when_speaking"), value["ignore_when_speaking"])
        if "speaking_share" in value:
            share = value["speaking_share"]
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
                self.fail(
                    (*path, "speaking_share"),
                    f"speaking_share {show_value(share)} is out of range; give a share above 0 and at most 1 "
                    f"(default {DEFAULT_SPEAKING_SHARE:g}: a window is speech when half its face frames are)",
                )
            self.speaking_share = float(share)

    def au_list(self, path: tuple[Any, ...], value: Any) -> tuple[str, ...]:
        """A list of bare AU names such as ``[AU25, AU26]`` (no sides or levels)."""
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]
        if value is None:
            value = []
        if not isinstance(value, list):
            self.fail(path, f"{path[-1]} must be a list of AUs such as '[AU25, AU26]', not {show_value(value)}")
        out: list[str] = []
        for i, item in enumerate(value):
            match = AU_RE.fullmatch(str(item).strip()) if isinstance(item, (str, int)) else None
            if match is None or isinstance(item, bool):
                self.fail(
                    (*path, i), f"{show_value(item)} is not an AU name; list AUs as AU25, AU26 (no side or level)"
                )
            au = self.au_number((*path, i), str(item).strip(), match[1])
            if au in out:
                self.fail((*path, i), f"{au} is listed twice in {path[-1]}; list each AU once")
            out.append(au)
        return tuple(out)

    def uncertainty(
        self, value: Any, neutral: str, categories: Sequence[Category], parents: Sequence[str]
    ) -> Uncertainty:
        """The ``uncertain:`` block: true (defaults), false (never uncertain) or a mapping of thresholds."""
        path = ("uncertain",)
        if value is True:
            out = Uncertainty()
        elif value is False:
            out = Uncertainty(
                min_margin=0.0, min_face_coverage=0.0, max_head_turn_deg=90.0, min_baseline_confidence=0.0
            )
        elif isinstance(value, dict):
            self.check_keys(path, value, UNCERTAIN_KEYS, "uncertain")
            limits = {"min_margin": (0.0, 0.5), "min_face_coverage": (0.0, 1.0), "max_head_turn_deg": (0.0, 90.0),
                      "min_baseline_confidence": (0.0, 1.0)}  # fmt: skip
            numbers: dict[str, float] = {}
            for key, (low, high) in limits.items():
                if key in value:
                    number = value[key]
                    if isinstance(number, bool) or not isinstance(number, (int, float)) or not low <= number <= high:
                        self.fail(
                            (*path, key),
                            f"{key} {show_value(number)} is out of range; give a number from "
                            f"{low:g} to {high:g} (docs/mapping.md, 'Uncertain')",
                        )
                    numbers[key] = float(number)
            label = Uncertainty.label
            if "label" in value:
                label = self.name((*path, "label"), value["label"], "uncertain label")
            out = Uncertainty(label=label, **numbers)
        else:
            self.fail(
                path,
                f"'uncertain' must be true, false or a mapping such as '{{min_margin: 0.05}}', not {show_value(value)}",
            )
        taken = {neutral, *(c.name for c in categories), *parents}
        if out.label in taken:
            given = isinstance(value, dict) and "label" in value
            self.fail(
                ("uncertain", "label") if given else ("uncertain",) if "uncertain" in self.data else (),
                f"the uncertain label '{out.label}' is also the neutral label, a category or a core emotion; "
                "set 'uncertain: {label: ...}' to another name",
            )
        return out

    def parent_list(self, value: Any, neutral: str) -> tuple[str, ...]:
        path = ("parents",)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.fail(
                path,
                f"'parents' must be a non-empty list of core emotions, e.g. '[sad, happy]', not {show_value(value)}",
                at_key=not value,
            )
        names: list[str] = []
        for i, item in enumerate(value):
            name = self.name((*path, i), item, "parent")
            if name in names:
                self.fail((*path, i), f"parent '{name}' is listed twice in parents; list each core emotion once")
            if name == neutral:
                self.fail(
                    (*path, i),
                    f"parent '{name}' has the same name as the neutral label; rename it or set "
                    "'neutral:' to another label",
                )
            names.append(name)
        return tuple(names)

    def labels(self, path: tuple[Any, ...], value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(
                path, f"labels must be a mapping of dataset -> label such as '{{cremad: HAP}}', not {show_value(value)}"
            )
        out: dict[str, str] = {}
        for dataset, label in value.items():
            dataset = self.name((*path, dataset), dataset, "dataset name", at_key=True)
            if isinstance(label, bool) or not isinstance(label, (str, int)):
                self.fail((*path, dataset), f"label for '{dataset}' must be text, not {show_value(label)}")
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
            self.fail(
                path,
                f"category '{name}' has the same name as the neutral label; rename it or set "
                "'neutral:' to another label",
                at_key=True,
            )
        if body is None:
            self.fail(
                path,
                f"category '{name}' has no rule; give it all_of and/or any_of, e.g. 'all_of: [AU01, AU15]'",
                at_key=True,
            )
        if not isinstance(body, dict):
            self.fail(
                path,
                f"category '{name}' must be a mapping with keys {', '.join(CATEGORY_KEYS)}, not {show_value(body)}",
            )
        self.check_keys(path, body, CATEGORY_KEYS, f"category '{name}'")
        parent = name
        if "parent" in body:
            parent = self.name((*path, "parent"), body["parent"], "parent")
            if self.parents is not None and parent not in self.parents:
                hint = did_you_mean(parent, self.parents)
                self.fail(
                    (*path, "parent"),
                    f"parent '{parent}' of category '{name}' is not in parents; {hint}valid: {', '.join(self.parents)}",
                )
        elif self.parents is not None:
            self.fail(
                path,
                f"category '{name}' has no parent; add 'parent:' with one of {', '.join(self.parents)}",
                at_key=True,
            )
        rule: dict[str, tuple[Term, ...]] = {}
        for part in RULE_KEYS:
            rule[part] = self.terms((*path, part), body.get(part), part, name)
        if not rule["all_of"] and not rule["any_of"]:
            extra = " (none_of alone would fire on a neutral face)" if rule["none_of"] else ""
            extra = " (supporting AUs add to a score, they cannot make one alone)" if rule["supporting"] else extra
            self.fail(
                path,
                f"category '{name}' has an empty rule{extra}; give it at least one AU in all_of or "
                "any_of, e.g. 'all_of: [AU01, AU15]'",
                at_key=True,
            )
        required = {(t.au, t.side) for t in rule["all_of"] + rule["any_of"]}
        for i, term in enumerate(rule["supporting"]):
            if (term.au, term.side) in required:
                item = (*path, "supporting", i) if isinstance(body["supporting"], list) else (*path, "supporting")
                self.fail(item, f"{term.au} is both required and supporting in '{name}'; list it in one place")
        speech_aus = self.speech_aus
        if "ignore_when_speaking" in body:
            speech_aus = self.au_list((*path, "ignore_when_speaking"), body["ignore_when_speaking"])
        description = self.text((*path, "description"), body.get("description"))
        labels = self.labels((*path, "labels"), body.get("labels"))
        return Category(name=name, parent=parent, description=description, labels=labels,
                        line=self.pos.key(path)[0], speech_aus=speech_aus, **rule)  # fmt: skip

    def terms(self, path: tuple[Any, ...], value: Any, part: str, category: str) -> tuple[Term, ...]:
        if value is None:
            return ()
        items: list[tuple[tuple[Any, ...], Any, int]]
        if isinstance(value, list):
            items = [((*path, i), item, 0) for i, item in enumerate(value)]
        elif isinstance(value, str) and "+" in value and part in ("all_of", "supporting"):
            items, offset = [], 0
            for token in value.split("+"):
                stripped = token.strip()
                items.append((path, stripped, offset + len(token) - len(token.lstrip())))
                offset += len(token) + 1
        elif isinstance(value, (str, int, dict)) and not isinstance(value, bool):
            items = [(path, value, 0)]
        else:
            self.fail(
                path, f"{part} of '{category}' must be a list of AUs such as '[AU01, AU15]', not {show_value(value)}"
            )
        terms: list[Term] = []
        for item_path, item, offset in items:
            term = self.term(item_path, item, part, offset)
            for other in terms:
                if (other.au, other.side) == (term.au, term.side):
                    self.fail(
                        item_path,
                        f"{term.au}{'' if term.side == 'combined' else ' (' + term.side + ')'} "
                        f"is listed twice in {part} of '{category}'; list each AU once",
                        offset=offset,
                    )
            terms.append(term)
        return tuple(terms)

    def au_number(self, path: tuple[Any, ...], text: str, number: str, offset: int = 0) -> str:
        au = f"AU{int(number):02d}"
        if au not in KNOWN_AUS:
            self.fail(
                path,
                f"unknown AU '{text}' ({au} is not an AU aupipe estimates); valid AUs: {VALID_AUS}",
                offset=offset,
            )
        return au

    def term(self, path: tuple[Any, ...], item: Any, part: str, offset: int = 0) -> Term:
        if isinstance(item, bool) or not isinstance(item, (str, int, dict)):
            self.fail(
                path,
                f"each {part} term is an AU like AU12 (or R12A, 12) or a mapping like "
                f"'{{au: AU12, min: B, side: left}}', not {show_value(item)}",
                offset=offset,
            )
        if isinstance(item, int):
            return Term(self.au_number(path, str(item), str(item)), self.default_min)
        if isinstance(item, str):
            if "+" in item:
                self.fail(
                    path,
                    f"'{item}' combines AUs with '+', which only all_of accepts; in {part} list single "
                    "AUs, or make a separate category with all_of for the combination",
                    offset=offset,
                )
            match = COMPACT_RE.fullmatch(item.strip())
            if match is None:
                self.fail(
                    path,
                    f"unknown AU {show_value(item)}; write an AU as AU12, 12 or AU1 (optionally with side "
                    f"and level in FACS style, e.g. R12A); valid AUs: {VALID_AUS}",
                    offset=offset,
                )
            au = self.au_number(path, item.strip(), match["num"], offset)
            side = {"l": "left", "r": "right", None: "combined"}[match["side"] and match["side"].lower()]
            level = FACS_LEVELS[match["level"].upper()] if match["level"] else self.default_min
            if side != "combined" and au not in SIDED_AUS:
                self.fail(
                    path,
                    f"{au} has no left/right values ('{item}' asks for one side); one-sided AUs are "
                    f"{' '.join(SIDED_AUS)}",
                    offset=offset,
                )
            return Term(au, level, side)
        self.check_keys(path, item, TERM_KEYS, "an AU term")
        if "au" not in item:
            self.fail(path, "this term has no 'au'; write it as '{au: AU12, min: B, side: left}'")
        raw = item["au"]
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            self.fail((*path, "au"), f"au must be an AU name like AU12, not {show_value(raw)}")
        match = AU_RE.fullmatch(str(raw).strip())
        if match is None:
            compact = COMPACT_RE.fullmatch(str(raw).strip())
            if compact is not None:
                self.fail(
                    (*path, "au"),
                    f"au '{raw}' carries a side or level; in the long form write them as keys, "
                    f"e.g. '{{au: AU{int(compact['num']):02d}, side: right, min: A}}', "
                    f"or use the short form '{raw}' as the whole term",
                )
            self.fail((*path, "au"), f"unknown AU {show_value(raw)}; valid AUs: {VALID_AUS}")
        au = self.au_number((*path, "au"), str(raw).strip(), match[1])
        level = self.intensity((*path, "min"), item["min"]) if "min" in item else self.default_min
        weight = 1.0
        if "weight" in item:
            weight = item["weight"]
            if part == "none_of":
                self.fail((*path, "weight"), "none_of terms exclude, they carry no weight; remove 'weight'")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= MAX_WEIGHT:
                self.fail(
                    (*path, "weight"),
                    f"weight {show_value(weight)} is out of range; give a number above 0 and "
                    f"at most {MAX_WEIGHT:g} (relative: 2 counts twice as much as 1)",
                )
            weight = float(weight)
        side = "combined"
        if "side" in item:
            raw_side = item["side"]
            side = raw_side.strip().lower() if isinstance(raw_side, str) else ""
            if side not in SIDES:
                self.fail(
                    (*path, "side"),
                    f"bad side {show_value(raw_side)}; valid: left, right, either, both "
                    "(or leave 'side' out for the combined value)",
                )
            if side != "combined" and au not in SIDED_AUS:
                self.fail(
                    (*path, "side"),
                    f"{au} has no left/right values, so it cannot have 'side: {side}'; "
                    f"one-sided AUs are {' '.join(SIDED_AUS)}; remove 'side'",
                )
        return Term(au, level, side, weight)

    def intensity(self, path: tuple[Any, ...], value: Any) -> float:
        if isinstance(value, str):
            letter = value.strip().upper()
            if letter in FACS_LEVELS:
                return FACS_LEVELS[letter]
            self.fail(
                path,
                f"bad intensity {show_value(value)}; give a FACS letter A-E (A trace ... E maximum) or a "
                f"number above 0 and at most {MAX_INTENSITY:g}",
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(
                path,
                f"bad intensity {show_value(value)}; give a FACS letter A-E or a number above 0 and at most "
                f"{MAX_INTENSITY:g}",
            )
        if not 0 < value <= MAX_INTENSITY:
            low = " (0 means absent; to require absence use none_of)" if value == 0 else ""
            self.fail(
                path,
                f"intensity {value:g} is out of range{low}; give a number above 0 and at most "
                f"{MAX_INTENSITY:g}, or a FACS letter A-E (A=1 ... E=5)",
            )
        return float(value)

    # -- warnings ----------------------------------------------------------------------------
    def warnings(self, mapping: Mapping) -> list[str]:
        out: list[str] = []
        cats = mapping.categories
        path_of = {c.name: ("categories", c.name) for c in cats}
        for i, cat in enumerate(cats):
            for earlier in cats[:i]:
                if same_rule(cat, earlier):
                    out.append(
                        f"{self.where(path_of[cat.name])}: category '{cat.name}' has the same rule as "
                        f"'{earlier.name}' (line {earlier.line}): {cat.rule_text(mapping.default_min)}; "
                        f"they always score the same and ties go to the earlier category, so '{cat.name}' "
                        "is never the winner"
                    )
                    break
        nested_in = dominators(cats)
        for d, cat in enumerate(cats):
            nested = [cats[c].name for c in range(len(cats)) if d in nested_in[c]]
            if nested:
                quoted = [f"'{n}'" for n in nested]
                names = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
                out.append(
                    f"{self.where(path_of[cat.name])}: whenever '{cat.name}' fires, {names} "
                    f"{'fires' if len(nested) == 1 else 'fire'} too (its rule contains theirs); "
                    f"'{cat.name}' wins those windows as the more specific rule"
                )
        for cat in cats:
            for t in cat.all_of:
                for n in cat.none_of:
                    if term_implies(t, n):
                        out.append(
                            f"{self.where(path_of[cat.name])}: category '{cat.name}' can never fire: "
                            f"{t.text()} is both required (all_of) and excluded (none_of)"
                        )
        if self.parents is not None:
            used = {c.parent for c in cats}
            for i, parent in enumerate(self.parents):
                if parent not in used:
                    line, col = self.pos.value(("parents", i))
                    out.append(
                        f"{self.source}:{line}:{col}: parent '{parent}' has no categories; it will never "
                        "be a core emotion"
                    )
        return [one_line(w) for w in out]


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
        raise MappingError(
            f"{source}:{line}:{col}: the file is not UTF-8 text (byte 0x{raw[err.start]:02x}); "
            "save it as UTF-8 (plain text)"
        ) from err
    if not text.strip():
        raise MappingError(
            f"{source}:1:1: the file is empty; a mapping file needs at least 'version: 1' and "
            "'categories:' (see docs/mapping.md)"
        )
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
        raise MappingError(
            one_line(
                f"{source}:{line}:{col}: YAML syntax error: {problem}; check the indentation "
                "(spaces, not tabs), colons after keys and matching brackets/quotes "
                "here"
            )
        ) from err
    except yaml.YAMLError as err:
        raise MappingError(one_line(f"{source}:1:1: YAML error: {err}; fix the YAML syntax")) from err
    if root is None or loaded is None:
        raise MappingError(
            f"{source}:1:1: the file contains no YAML data (only comments or '---'); a mapping file "
            "needs at least 'version: 1' and 'categories:'"
        )
    positions = Positions(root, source)
    return _Builder(loaded, positions, source, digest).build()
