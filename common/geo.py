"""Neighbourhoods: which one a point or a place name is in.

Boundaries come from a GeoJSON file (by default Barcelona's 73 official barris). A shared
location is matched by point-in-polygon; a typed place by the neighbourhood names, their
forms without articles, and the aliases in a small YAML file (Spanish spellings, short forms).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml
from shapely import STRtree
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

_ARTICLES = ("el ", "la ", "les ", "els ", "l'", "los ", "las ", "the ")


def fold(text: str) -> str:
    """Lower case, no accents, one space: how we compare place names."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[’`´]", "'", text)
    return re.sub(r"[^a-z0-9' ]+", " ", text).strip()


@dataclass(frozen=True)
class Neighbourhood:
    code: str
    name: str
    district: str


class Neighbourhoods:
    def __init__(
        self,
        items: list[tuple[Neighbourhood, BaseGeometry]],
        aliases: dict[str, list[str]] | None = None,
    ) -> None:
        self._items = [item for item, _ in items]
        self._shapes = [geometry for _, geometry in items]
        self._tree = STRtree(self._shapes)
        # the one code -> neighbourhood lookup: everything else asks through by_code / names_by_code
        self._by_code = {item.code: item for item in self._items}
        self._names_by_code = MappingProxyType({item.code: item.name for item in self._items})
        names: dict[str, Neighbourhood] = {}
        for item in self._items:
            for form in _name_forms(item.name):
                names.setdefault(form, item)
        for code, alias_list in (aliases or {}).items():
            for alias in alias_list:
                if code in self._by_code:
                    names[fold(alias)] = self._by_code[code]
        # longest first, so "sant gervasi galvany" wins over "sant gervasi"
        self._names = sorted(names.items(), key=lambda pair: -len(pair[0]))

    @classmethod
    def from_geojson(cls, path: Path, aliases_path: Path | None = None) -> Neighbourhoods:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = []
        for feature in data["features"]:
            props = feature["properties"]
            items.append(
                (
                    Neighbourhood(
                        code=str(props["id"]), name=props["name"], district=props.get("district", "")
                    ),
                    shape(feature["geometry"]),
                )
            )
        aliases_path = aliases_path or path.with_name(path.stem + ".aliases.yml")
        aliases = yaml.safe_load(aliases_path.read_text(encoding="utf-8")) if aliases_path.exists() else {}
        return cls(items, aliases)

    def __len__(self) -> int:
        return len(self._items)

    def all(self) -> list[Neighbourhood]:
        return list(self._items)

    def items(self) -> list[tuple[Neighbourhood, BaseGeometry]]:
        """Each neighbourhood with its boundary (longitude, latitude)."""
        return list(zip(self._items, self._shapes, strict=True))

    def by_code(self, code: str | None) -> Neighbourhood | None:
        """The neighbourhood with this code ("06-31"), or None."""
        return None if code is None else self._by_code.get(code)

    def known(self, codes: Iterable[str]) -> tuple[Neighbourhood, ...]:
        """The neighbourhoods with these codes, in their order; unknown codes are left out."""
        return tuple(self._by_code[code] for code in codes if code in self._by_code)

    @property
    def names_by_code(self) -> Mapping[str, str]:
        """Every neighbourhood's name by its code ("06-31" -> "el Raval"), read-only."""
        return self._names_by_code

    def name_of(self, code: str) -> str:
        """The neighbourhood's name, or the code itself when no neighbourhood has it."""
        return self._names_by_code.get(code, code)

    def at(self, latitude: float, longitude: float) -> Neighbourhood | None:
        """The neighbourhood containing the point, or None outside every boundary."""
        point = Point(longitude, latitude)
        for index in self._tree.query(point):
            if self._shapes[int(index)].covers(point):
                return self._items[int(index)]
        return None

    def exactly_named(self, text: str) -> Neighbourhood | None:
        """The neighbourhood whose name or alias is the whole text ("Gràcia", "el Raval")."""
        folded = fold(text)
        return next((item for form, item in self._names if form == folded), None)

    def named_in(self, text: str) -> Neighbourhood | None:
        """The neighbourhood whose name or alias appears in the text, longest match first."""
        folded = f" {fold(text)} "
        for form, item in self._names:
            if f" {form} " in folded:
                return item
        return None


def _name_forms(name: str) -> set[str]:
    folded = fold(name)
    forms = {folded}
    for article in _ARTICLES:
        if folded.startswith(article):
            forms.add(folded[len(article):].strip())
    return {form for form in forms if len(form) >= 4}
