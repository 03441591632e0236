"""Where is it? Barcelona's offline gazetteer and the one place resolver.

Typed places ("calle Mallorca 200", "cantonada Aragó i Balmes", "metro Drassanes", "Sants")
and shared locations become a ``Place``: a point and a neighbourhood when they can be told
with confidence, else the neighbourhoods the place could be in (for a question), else the
citizen's words alone. The report form, alert subscriptions by name and Open311's
``address_string`` all use ``Gazetteer.resolve``.

Never a wrong neighbourhood: a point closer than ``BOUNDARY_TOLERANCE_M`` to another
neighbourhood, a long street with no number or corner, or a number that could fall in
several neighbourhoods gives candidates, not an answer. A street named like a neighbourhood
("Gran Via de les Corts Catalanes", "avinguda de Sarrià") is the street.

Data (``data/``, loaded once): street lines from OpenStreetMap, the city's official street
list, metro stations, and landmarks placed from those streets (``barcelona-landmarks.yml``).
"""

from __future__ import annotations

import csv
import difflib
import functools
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import shapely
import yaml
from shapely import STRtree
from shapely.geometry import LineString, MultiLineString, Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import linemerge, substring

from common.geo import Neighbourhood, Neighbourhoods, fold

# How a place was found (stored on the case as ``location_source``).
SHARED_LOCATION = "shared_location"
CORNER = "corner"
STREET_NUMBER = "street_number"
STREET = "street"
LANDMARK = "landmark"
NEIGHBOURHOOD = "neighbourhood"
NOT_LOCATED = "not_located"
LOCATION_SOURCES = (SHARED_LOCATION, CORNER, STREET_NUMBER, STREET, LANDMARK, NEIGHBOURHOOD, NOT_LOCATED)

# A point this close to another neighbourhood's boundary is not told apart (boundaries run
# along street axes; OpenStreetMap's lines and the city's boundaries differ by a few metres).
BOUNDARY_TOLERANCE_M = 15.0
# A station is placed only this far from every other neighbourhood (its entrances spread).
STATION_TOLERANCE_M = 40.0
# A street counts as crossing a neighbourhood when this much of it lies there.
MIN_CROSSING_M = 40.0
# Metres of street per house number: 7.6-15 m measured on known addresses (Mallorca 401,
# Passeig de Gràcia 43 and 92, Villarroel 170, La Rambla 55 and 91, Sant Antoni M. Claret 167).
METRES_PER_NUMBER = (7.0, 15.0)
# Radii (metres) of how far the real place may be from the stored point.
RADIUS_SHARED = 25
RADIUS_CORNER = 30
RADIUS_STATION = 80
RADIUS_MIN_AREA = 40
# Points at most this approximate are precise enough for duplicate detection (150 m).
PRECISE_RADIUS_M = 100

_LAT0, _LON0 = 41.39, 2.17
_M_PER_DEG_LAT = 111_030.0
_M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(_LAT0))


def _to_metres(coords):  # type: ignore[no-untyped-def]
    out = coords.copy()
    out[:, 0] = (coords[:, 0] - _LON0) * _M_PER_DEG_LON
    out[:, 1] = (coords[:, 1] - _LAT0) * _M_PER_DEG_LAT
    return out


def _metres(geometry: BaseGeometry) -> BaseGeometry:
    return shapely.transform(geometry, _to_metres)


def _lat_lon(point: Point) -> tuple[float, float]:
    return (round(point.y / _M_PER_DEG_LAT + _LAT0, 6), round(point.x / _M_PER_DEG_LON + _LON0, 6))


def _point_m(latitude: float, longitude: float) -> Point:
    return Point((longitude - _LON0) * _M_PER_DEG_LON, (latitude - _LAT0) * _M_PER_DEG_LAT)


@dataclass(frozen=True)
class Place:
    """What a typed place or a location was understood as."""

    text: str  # the citizen's words (or the coordinates)
    source: str  # one of LOCATION_SOURCES
    label: str  # what was understood, for the summary: "Mallorca / Pau Claris"
    point: tuple[float, float] | None = None  # (latitude, longitude)
    neighbourhood: Neighbourhood | None = None
    candidates: tuple[Neighbourhood, ...] = ()  # where it may be, when it cannot be told
    radius: int | None = None  # metres around the point
    street: str | None = None  # the official street name, when the place is on one

    @property
    def located(self) -> bool:
        return self.neighbourhood is not None

    @property
    def needs_question(self) -> bool:
        return self.neighbourhood is None and len(self.candidates) > 1

    @property
    def precise(self) -> bool:
        return self.point is not None and self.radius is not None and self.radius <= PRECISE_RADIUS_M


@dataclass
class Street:
    name: str  # official, "Carrer de Mallorca"
    label: str  # how people say it, "Mallorca"
    kind: str  # the street list's type: C, Av, Pl, Pg, G.V., ...
    geometry: BaseGeometry | None = None  # metres
    crossings: dict[str, float] = field(default_factory=dict)  # neighbourhood code -> metres
    main: LineString | None = None  # the longest merged line, from where numbering starts
    names: tuple[str, ...] = ()  # every spelling in the data (OpenStreetMap and the street list)

    @property
    def is_area(self) -> bool:
        return self.kind in _AREA_KINDS


@dataclass(frozen=True)
class Landmark:
    names: tuple[str, ...]
    label: str
    point: Point  # metres
    radius: int
    station: bool = False  # stations are read only with "metro", "estació"...
    side: str | None = None  # the neighbourhood of a building on a boundary street
    spans: tuple[str, ...] = ()  # a square's neighbourhoods (codes), when it lies in several


# ---------------------------------------------------------------------------------------
# Reading names the way people type them

_AREA_KINDS = {"Pl", "Plta", "Jard", "Jrdi", "Parc", "Pla", "Esp"}
# Words that name a kind of street, in the three languages, with the street list's types.
_KIND_WORDS: list[tuple[str, str]] = [
    (r"gran via|gran v", "G.V."),
    (r"calle|carrer|carrero|c/|c\.|cl\.?|cr\.?|street|st\.?|c", "C"),
    (r"avenida|avinguda|avda\.?|avgda\.?|av\.?|avenue|ave\.?|avd\.?", "Av"),
    (r"paseo|passeig|pg\.?|p[ºo]\.?|pso\.?|passeg", "Pg"),
    (r"placeta|plazoleta", "Plta"),
    (r"plaza|pla[cç]a|pl\.?|pza\.?|square|sq\.?", "Pl"),
    (r"pasaje|passatge|ptge\.?|psje\.?|passage", "Ptge"),
    (r"rambla|rbla\.?", "Rbla"),
    (r"ronda|rda\.?", "Rda"),
    (r"travessera|travesera|trav\.?", "Trav"),
    (r"via", "Via"),
    (r"jardines|jardins|jardi|jardin|gardens?", "Jard"),
    (r"parque|parc|park", "Parc"),
    (r"carretera|ctra\.?", "Ctra"),
    (r"baixada|bajada", "Bda"),
    (r"cami|camino", "Camí"),
    (r"riera", "Rier"),
    (r"moll|muelle", "Moll"),
    (r"pla", "Pla"),
]
_KIND_RE = re.compile(r"^(?:" + "|".join(f"(?P<k{i}>{p})" for i, (p, _) in enumerate(_KIND_WORDS)) + r")(?:\s+|$)")
_LINKS = re.compile(
    r"^(?:(?:de la|de les|de los|de las|dels|del|de|d'|la|el|les|els|los|las|l'|the|of)(?:\s+|(?<=')))+"
)
# Spanish (and English) forms of the words in Catalan street names.
_WORD_FORMS = {
    "san": "sant", "consejo": "consell", "ciento": "cent", "provenza": "provenca",
    "rosellon": "rossello", "cerdena": "sardenya", "aragon": "arago", "diputacion": "diputacio",
    "cortes": "corts", "catalanas": "catalanes", "cataluna": "catalunya", "gerona": "girona",
    "lerida": "lleida", "urgel": "urgell", "enrique": "enric", "antonio": "antoni",
    "jose": "josep", "juan": "joan", "pedro": "pere", "jaime": "jaume", "pablo": "pau",
    "francisco": "francesc", "borbon": "borbo", "napoles": "napols", "lepanto": "lepant",
    "paralelo": "parallel", "mayor": "major", "nueva": "nova", "nuevo": "nou", "conde": "comte",
    "marques": "marques", "carlos": "carles", "luis": "lluis", "miguel": "miquel",
    "bailen": "bailen", "caspe": "casp", "sicilia": "sicilia", "independencia": "independencia", "iglesia": "esglesia",
    "puerta": "porta", "angeles": "angels", "reina": "reina", "cristina": "cristina",
    "calabria": "calabria", "entenza": "entenca", "almogavares": "almogavers", "pujadas": "pujades",
    "tarragona": "tarragona", "valencia": "valencia", "diagonal": "diagonal", "espana": "espanya",
    "glorias": "glories", "universidad": "universitat", "marina": "marina", "gracia": "gracia",
    "montana": "muntanya", "mar": "mar", "ramblas": "rambla", "laietana": "laietana",
    "layetana": "laietana", "sarria": "sarria", "horta": "horta", "puerto": "port", "real": "reial",
    "paz": "pau", "catedral": "catedral", "sol": "sol", "virreina": "virreina", "jesus": "jesus",
    "corcega": "corsega", "mallorca": "mallorca", "majorca": "mallorca", "salvador": "salvador",
    "muntaner": "muntaner", "vilamari": "vilamari", "pelayo": "pelai", "fontanella": "fontanella",
    "tallers": "tallers", "hospital": "hospital", "carmen": "carme", "boqueria": "boqueria",
    "princesa": "princesa", "argenteria": "argenteria", "ferran": "ferran", "fernando": "ferran",
    "escudillers": "escudellers", "escudellers": "escudellers", "avinyo": "avinyo",
}
# Whole names people say differently ("calle Mayor de Gracia" is the Carrer Gran de Gràcia).
_PHRASE_FORMS = {
    "major gracia": "gran gracia", "ramblas": "rambla", "rambles": "rambla", "paralel": "parallel",
    "parelelo": "parallel", "gran via": "corts catalanes",
}
_CORNER_SPLIT = re.compile(
    r"\s*(?:\bcon\b|\by\b|\bi\b|\band\b|\bamb\b|\bcross\w*\b|/|&|\besquina(?: con| a| amb)?\b"
    r"|\bcantonada(?: amb)?\b|\bcruce(?: de| con)?\b|\bxamfra\b|\bchaflan\b|\bcorner(?: with| of)?\b"
    r"|\bintersection(?: of| with)?\b|\bat the corner of\b|\bjunction(?: of| with)?\b)\s*"
)
_CORNER_WORDS = re.compile(
    r"^(?:at |en |a |on |in )?(?:the |la |el )?"
    r"(?:esquina|cantonada|cruce|xamfra|chaflan|corner|intersection|junction|encreuament)\b"
    r"(?:\s+(?:of|de|del|de la|entre|between))?\s*"
)
_NUMBER = re.compile(
    r"(?:,|\bn[ºo°]?\.?|\bnum\.?|\bnumero|\bnumber|#)?\s*(?<![\d/])(\d{1,4})(?:\s*[-–]\s*\d{1,4})?(?:\s*bis)?\b"
)
_STATION_WORDS = re.compile(
    r"\b(?:metro|estacio|estacion|station|parada|boca de metro|subway|tube|l\d{1,2})\b\s*(?:de |del |of )?"
)
_FILLER = re.compile(
    r"^(?:(?:(?:in front of(?: the)?|at the corner of|next to(?: the)?|it|it's|it is|was|fue|ha sido"
    r"|ha estat|va ser|es|en|in|at|on|a|al|a la|near|cerca de(?: la| del)?"
    r"|prop de(?: la| del)?|a prop de(?: la| del)?|davant(?: de| del| de la)?|delante de(?: la| del)?"
    r"|enfrente de(?: la| del)?"
    r"|frente a(?: la)?|in front of(?: the)?|outside(?: the)?|by the|junto a(?: la)?|al costat de(?: la| del)?"
    r"|the|el|la|los|las|les|els|l'|aqui|here|aqui en|just|right|mateix|mismo|sobre|around|per|por|pel)\s+)+)"
)
# After a bare street name: the English kind word ("Mallorca street"), the city, a floor and door
# ("Blai 20 2n 1a", "3º 2ª", "bajos").
_HARMLESS_TAIL = re.compile(
    r"(?:street|st|avenue|ave|av|road|rd|square|sq|promenade|boulevard)?\s*,?\s*"
    r"(?:(?:barcelona|bcn|spain|espana|espanya)\b\s*)?"
    r"(?:(?:\d+\s*(?:[oa]|n|r|er|a|o|bis)?|bajos|baixos|entresuelo|entresol|principal|atico|atic|piso|pis|floor"
    r"|planta|puerta|porta|door|flat)\b\s*)*"
)
# Neighbourhood names (or their short forms) that are also everyday words in the three languages.
_COMMON_WORD_NAMES = ("porta", "salut", "clot", "clota", "horta", "born", "coll", "besos", "prosperitat")
_OUTSIDE_WORDS = re.compile(
    r"\b(madrid|paris|london|londres|valencia ciudad|sevilla|girona ciutat|hospitalet|l'hospitalet"
    r"|badalona|sabadell|terrassa|castelldefels|sitges|cornella|esplugues|sant cugat|santa coloma)\b"
)


def _canon(text: str) -> str:
    """Folded, with the Catalan middle dot joined, typographic quotes straightened, and a
    slash between two streets read as "and" ("c/ Aragó / Balmes")."""
    text = re.sub(r"l\s*[·.•]\s*l", "ll", text, flags=re.IGNORECASE)
    text = re.sub(r"\b[cC]\s*/\s*", "carrer ", text)
    text = re.sub(r"\s*/\s*", " amb ", text)
    text = text.replace("ª", "a ").replace("º", "o ")
    return fold(text.replace("’", "'")).replace(" '", "'")


def _strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _split_kind(folded: str) -> tuple[str | None, str]:
    """("avinguda de sarria 40") -> ("Av", "de sarria 40")."""
    match = _KIND_RE.match(folded)
    if not match:
        return None, folded
    kind = next(_KIND_WORDS[int(name[1:])][1] for name, value in match.groupdict().items() if value)
    rest = folded[match.end():]
    if kind == "C" and match.group(0).strip() == "c" and not rest:
        return None, folded
    return kind, rest


def _strip_links(text: str) -> str:
    return _LINKS.sub("", text.strip()).strip()


def _translate(words: Iterable[str]) -> list[str]:
    return [_WORD_FORMS.get(word, word) for word in words]


_INNER_LINKS = {"de", "del", "dels", "la", "les", "el", "els", "los", "las", "d", "l"}


def _squash(words: Iterable[str]) -> str:
    """Words of a name without the inner articles and "de": "comte d'urgell" and "conde de
    urgel" both become "comte urgell"."""
    out = []
    for word in words:
        word = re.sub(r"^[dl]'", "", word)
        if word and word not in _INNER_LINKS:
            out.append(word)
    return " ".join(out)


def name_key(name: str) -> str:
    """The part of a street name people say: "Carrer de la Marina" -> "marina"."""
    folded = _canon(name)
    _, rest = _split_kind(folded)
    key = _squash(_translate(_strip_links(rest).split()))
    return _PHRASE_FORMS.get(key, key)


# ---------------------------------------------------------------------------------------


class Gazetteer:
    """Barcelona's streets, squares, stations and landmarks, and the resolver over them."""

    def __init__(
        self,
        neighbourhoods: Neighbourhoods,
        streets: Sequence[Street],
        landmarks: Sequence[Landmark] = (),
    ) -> None:
        self.neighbourhoods = neighbourhoods
        pairs = [(item, _metres(geometry)) for item, geometry in neighbourhoods.items()]
        self._areas = [geometry for _, geometry in pairs]
        self._area_items = [item for item, _ in pairs]
        self._area_tree = STRtree(self._areas)
        self._widened = [area.buffer(BOUNDARY_TOLERANCE_M) for area in self._areas]
        for area in self._widened:
            shapely.prepare(area)
        self.streets = list(streets)
        self._keys: dict[str, list[Street]] = {}
        for street in self.streets:
            if street.geometry is not None and not street.crossings:
                street.crossings = self._crossings(street.geometry)
            for key in {name_key(street.name), name_key(street.label)}:
                if key:
                    self._keys.setdefault(key, []).append(street)
        self._key_list = sorted(self._keys)
        self.landmarks = list(landmarks)
        self._landmark_names: dict[str, Landmark] = {}
        for landmark in self.landmarks:
            for name in landmark.names:
                self._landmark_names[_strip_links(_canon(name))] = landmark
        self._landmark_list = sorted(self._landmark_names, key=len, reverse=True)

    # -- loading ------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        neighbourhoods: Neighbourhoods,
        streets_geojson: Path,
        street_list_csv: Path | None = None,
        stations_csv: Path | None = None,
        landmarks_yml: Path | None = None,
    ) -> Gazetteer:
        """Read the files in ``data/``; missing optional files are simply not used."""
        geometries: dict[str, list[BaseGeometry]] = {}
        for feature in json.loads(streets_geojson.read_text(encoding="utf-8"))["features"]:
            name = str(feature["properties"].get("name") or "").strip()
            if name and feature.get("geometry"):
                geometries.setdefault(name, []).append(_metres(shape(feature["geometry"])))
        listed: dict[str, tuple[str, str]] = {}
        if street_list_csv is not None and street_list_csv.exists():
            with street_list_csv.open(encoding="utf-8", newline="") as handle:
                for row in csv.DictReader(handle):
                    kind = {"Trvs": "Trav"}.get(row["type"].strip(), row["type"].strip())
                    listed[row["official_name"].strip()] = (kind, row["short_name"].strip())
        # one street per name and kind: OpenStreetMap splits some streets into differently
        # spelt pieces ("Carrer de Consell de Cent", "Consell de cent"), kept together
        groups: dict[tuple[str, str], list[str]] = {}
        for name in sorted(set(geometries) | set(listed)):
            kind = listed[name][0] if name in listed else _kind_of(name)
            groups.setdefault((name_key(name), kind), []).append(name)
        streets: list[Street] = []
        for (_, kind), names in groups.items():
            official = [n for n in names if n in listed]
            name = official[0] if official else max(names, key=len)
            parts = [part for n in names for part in geometries.get(n, [])]
            geometry = shapely.union_all(parts) if parts else None
            street = Street(name=name, label=_label_of(name), kind=kind, geometry=geometry, names=tuple(names))
            streets.append(street)
            short = listed.get(name, ("", ""))[1]
            if short and name_key(short) != name_key(name):
                # the official short form is another way to say it ("Pl Espanya")
                streets.append(Street(name=name, label=short, kind=kind, geometry=geometry, names=tuple(names)))
        streets = _dedupe(streets)
        gazetteer = cls(neighbourhoods, streets)
        landmarks: list[Landmark] = []
        if stations_csv is not None and stations_csv.exists():
            landmarks += _read_stations(stations_csv)
        if landmarks_yml is not None and landmarks_yml.exists():
            landmarks += gazetteer._read_landmarks(landmarks_yml)
        gazetteer._add_landmarks(landmarks)
        return gazetteer

    def _add_landmarks(self, landmarks: Iterable[Landmark]) -> None:
        for landmark in landmarks:
            self.landmarks.append(landmark)
            for name in landmark.names:
                self._landmark_names[_strip_links(_canon(name))] = landmark
        self._landmark_list = sorted(self._landmark_names, key=len, reverse=True)

    def _read_landmarks(self, path: Path) -> list[Landmark]:
        """Landmarks placed on our own streets: at a corner, a block between four streets,
        or a square's lines. An entry whose streets do not meet is left out (a test checks
        that none is)."""
        landmarks = []
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            names = tuple(entry["names"])
            point = None
            if "corner" in entry:
                point = self._meeting_point(*(self._street_named(n) for n in entry["corner"]))
            elif "block" in entry:
                first, second = entry["block"]
                corners = [self._meeting_point(self._street_named(a), self._street_named(b))
                           for a in first for b in second]
                if all(c is not None for c in corners):
                    point = Point(sum(c.x for c in corners) / 4, sum(c.y for c in corners) / 4)  # type: ignore[union-attr]
            spans: tuple[str, ...] = ()
            if "street" in entry:
                street = self._street_named(entry["street"])
                if street is not None and street.geometry is not None:
                    point = street.geometry.centroid
                    spans = tuple(sorted(street.crossings)) if len(street.crossings) > 1 else ()
            if point is not None:
                landmarks.append(Landmark(names, entry.get("label", names[0]), point, int(entry.get("radius", 80)),
                                          side=entry.get("neighbourhood"), spans=spans))
        return landmarks

    def _street_named(self, name: str) -> Street | None:
        return next((s for s in self._keys.get(name_key(name), []) if name in s.names), None)

    # -- geometry helpers -----------------------------------------------------------------
    def _crossings(self, geometry: BaseGeometry) -> dict[str, float]:
        lengths: dict[str, float] = {}
        for index in self._area_tree.query(geometry, predicate="dwithin", distance=BOUNDARY_TOLERANCE_M):
            inside = geometry.intersection(self._widened[int(index)]).length
            if inside >= MIN_CROSSING_M or (geometry.length < MIN_CROSSING_M * 2 and inside > 0):
                lengths[self._area_items[int(index)].code] = round(inside, 1)
        return lengths

    def _around(self, point: Point, tolerance: float = BOUNDARY_TOLERANCE_M) -> list[Neighbourhood]:
        """Every neighbourhood within the boundary tolerance of the point."""
        found = []
        for index in self._area_tree.query(point, predicate="dwithin", distance=tolerance):
            found.append(self._area_items[int(index)])
        return sorted(found, key=lambda item: item.code)

    def _containing(self, point: Point) -> Neighbourhood | None:
        for index in self._area_tree.query(point):
            if self._areas[int(index)].covers(point):
                return self._area_items[int(index)]
        return None

    @staticmethod
    def _meeting_point(first: Street | None, second: Street | None) -> Point | None:
        """Where two streets meet (the middle of their crossings when they meet more than
        once within 150 m); None if they do not meet or meet in places far apart."""
        if first is None or second is None or first.geometry is None or second.geometry is None:
            return None
        if first.name == second.name:
            return None
        crossing = first.geometry.intersection(second.geometry)
        points = [g for g in getattr(crossing, "geoms", [crossing]) if not g.is_empty]
        if not points:
            if first.geometry.distance(second.geometry) > 25:
                return None
            a, b = shapely.ops.nearest_points(first.geometry, second.geometry)
            return Point((a.x + b.x) / 2, (a.y + b.y) / 2)
        centre = shapely.MultiPoint([p.centroid for p in points]).centroid
        if max(p.centroid.distance(centre) for p in points) > 150:
            return None
        return centre

    def _place_at(self, point: Point, tolerance: float | None = None, **fields: object) -> Place:
        """A point becomes a located place only far enough from every other neighbourhood."""
        around = self._around(point, tolerance or BOUNDARY_TOLERANCE_M)
        inside = self._containing(point)
        if len(around) == 1 and inside in (None, around[0]):  # None: on the city's own edge
            inside = around[0]
        if inside is not None and around == [inside]:
            return Place(point=_lat_lon(point), neighbourhood=inside, **fields)  # type: ignore[arg-type]
        candidates = tuple(around) if len(around) > 1 else ()
        return Place(point=_lat_lon(point) if around else None, candidates=candidates, **fields)  # type: ignore[arg-type]

    # -- resolving --------------------------------------------------------------------------
    def at(self, latitude: float, longitude: float, text: str = "") -> Place:
        """A shared location: its own neighbourhood (point in polygon), whatever the boundary."""
        found = self.neighbourhoods.at(latitude, longitude)
        label = found.name if found else ""
        return Place(
            text=text or f"{latitude:.5f}, {longitude:.5f}", source=SHARED_LOCATION, label=label,
            point=(latitude, longitude), neighbourhood=found, radius=RADIUS_SHARED,
        )

    def street_in(self, street_name: str, code: str, text: str = "") -> Place:
        """A street the citizen placed in a neighbourhood (the answer to the question)."""
        neighbourhood = self.neighbourhoods.by_code(code)
        street = self._best_street(self._keys.get(name_key(street_name), []), None)
        if neighbourhood is None:
            return self.resolve(text or street_name)
        if street is None or street.geometry is None or code not in street.crossings:
            return Place(text=text or street_name, source=NEIGHBOURHOOD, label=neighbourhood.name,
                         neighbourhood=neighbourhood)
        area = self._areas[self._area_items.index(neighbourhood)]
        part = street.geometry.intersection(area)
        if part.is_empty:
            part = street.geometry.intersection(area.buffer(BOUNDARY_TOLERANCE_M))
        point = shapely.ops.nearest_points(part, part.centroid)[0]
        return Place(
            text=text or street_name, source=STREET, label=street.label, point=_lat_lon(point),
            neighbourhood=neighbourhood, radius=_radius_of(part), street=street.name,
        )

    def resolve(self, text: str) -> Place:
        """What a typed place is, never a guess between neighbourhoods."""
        original = " ".join(str(text or "").split())[:300]
        folded = _canon(original)
        unknown = Place(text=original, source=NOT_LOCATED, label=original)
        if len(folded) < 2 or _OUTSIDE_WORDS.search(folded):
            return unknown
        station = _STATION_WORDS.search(folded)
        if station:
            found = self._landmark_in(folded[station.end():], stations=True) or self._landmark_in(
                folded[: station.start()], stations=True)
            if found:
                return self._landmark_place(found, original)
        body = _FILLER.sub("", folded).strip(" ,.")
        corner = self._corner(body, original)
        if corner is not None:
            return corner
        found_street = self._street_in_text(body)
        neighbourhood = self._neighbourhood_named(body, found_street, original)
        landmark = self._landmark_in(body, stations=False)
        if landmark is not None and (found_street is None or len(landmark[1]) >= len(found_street[2])):
            return self._landmark_place(landmark, original)
        if found_street is not None:
            street, number, _ = found_street
            if neighbourhood is not None and neighbourhood.code in street.crossings:
                # "Carrer de Verdi 20, Gràcia": the number if it falls there, else the street there
                numbered = self._street_place(street, number, original) if number is not None else None
                if numbered is not None and numbered.neighbourhood == neighbourhood:
                    return numbered
                return self.street_in(street.name, neighbourhood.code, original)
            if neighbourhood is not None:
                # a neighbourhood the street does not go through ("Mercat de Santa Caterina" is
                # not the Carrer del Mercat): only the neighbourhood is sure
                return Place(text=original, source=NEIGHBOURHOOD, label=neighbourhood.name,
                             neighbourhood=neighbourhood)
            return self._street_place(street, number, original)
        if neighbourhood is not None:
            return Place(text=original, source=NEIGHBOURHOOD, label=neighbourhood.name,
                         neighbourhood=neighbourhood)
        return unknown  # a bare station name is not read (Arc de Triomf: the monument or the station?)

    # -- pieces of the resolver -----------------------------------------------------------
    def _landmark_in(self, folded: str, *, stations: bool) -> tuple[Landmark, str] | None:
        """The longest landmark name in the text (stations only when ``stations``)."""
        text = f" {_strip_links(folded)} "
        for name in self._landmark_list:
            landmark = self._landmark_names[name]
            if landmark.station == stations and f" {name} " in text:
                return landmark, name
        return None

    def _landmark_place(self, found: tuple[Landmark, str], original: str) -> Place:
        landmark = found[0]
        # a station's point is its platforms' middle, its entrances up to a block away
        placed = self._place_at(landmark.point, text=original, source=LANDMARK, label=landmark.label,
                                radius=landmark.radius, tolerance=STATION_TOLERANCE_M if landmark.station else None)
        if landmark.spans:  # a big square in several neighbourhoods
            placed = Place(text=original, source=LANDMARK, label=landmark.label, radius=landmark.radius,
                           candidates=self.neighbourhoods.known(landmark.spans))
        # a building on a boundary street is on one side of it, which the data says
        side = next((c for c in placed.candidates if c.name == landmark.side), None)
        if side is not None:
            return Place(text=original, source=LANDMARK, label=landmark.label, point=_lat_lon(landmark.point),
                         neighbourhood=side, radius=landmark.radius)
        return placed

    def _neighbourhood_named(
        self, folded: str, street: tuple[Street, int | None, str] | None, original: str | None = None
    ) -> Neighbourhood | None:
        """A neighbourhood named in the text, outside the street's own name."""
        rest = folded
        if street is not None:
            rest = rest.replace(street[2], " ", 1)
            if street[1] is not None:
                rest = re.sub(rf"\b{street[1]}\b", " ", rest, count=1)
            kind, remainder = _split_kind(rest.strip())
            if kind:
                rest = remainder
        # a door or a floor is not a neighbourhood ("porta 2" is not Porta)
        rest = re.sub(r"\b(?:porta|puerta|pis|piso|planta|escala|escalera)\s*\d+\w*", " ", rest)
        rest = " ".join(rest.split())
        found = self.neighbourhoods.named_in(rest) if rest else None
        if found is None or original is None:
            return found
        # names that are also everyday words ("centre de salut", "a la porta", "el clot"):
        # only written as a name, with a capital
        for word in _COMMON_WORD_NAMES:
            if (re.search(rf"\b{word}\b", rest) and self.neighbourhoods.named_in(word) is found
                    and not re.search(rf"\b{word.capitalize()}\b", _strip_accents(original))):
                return None
        return found

    def _street_in_text(self, folded: str) -> tuple[Street, int | None, str] | None:
        """The street named in the text, its number if any, and the words that named it.

        The text may start with the street ("c/ Mallorca 200"), or name it after a kind word
        inside a sentence ("me robaron en la calle Verdi"); a bare name must match a street
        exactly or nearly (typos), but a bare neighbourhood name is not a street."""
        starts = [folded]
        for match in re.finditer(r"(?:^|\s)(?=(?:" + "|".join(p for p, _ in _KIND_WORDS) + r")\s)", folded):
            if match.end() > 0:
                starts.append(folded[match.end():])
        for start in starts:
            found = self._street_at_start(start, bare=start is folded)
            if found is not None:
                return found
        return None

    def _street_at_start(self, text: str, *, bare: bool) -> tuple[Street, int | None, str] | None:
        kind, rest = _split_kind(text.strip())
        if kind is None and bare and self.neighbourhoods.exactly_named(rest) is not None:
            return None
        if kind == "G.V." and not re.sub(r"[\d,\s]+", "", rest):
            rest = "corts catalanes " + rest
        elif kind == "Rbla" and not re.sub(r"[\d,\s]+", "", rest):
            kind, rest = None, text.strip()  # "Rambla", "la Rambla 12": the kind word is the name
        rest = _strip_links(rest)
        words = rest.replace(",", " , ").split()
        for end in range(min(len(words), 8), 0, -1):
            name_words = words[:end]
            if "," in name_words or any(word[0].isdigit() for word in name_words):
                continue
            after = " ".join(words[end:])
            number_match = _NUMBER.match(after)
            number = int(number_match.group(1)) if number_match else None
            tail = (after[number_match.end():] if number_match else after).strip(" ,.")
            if kind is None and tail and not self._harmless_tail(tail):
                continue  # "Hospital del Mar" is not the Carrer de l'Hospital
            phrase = " ".join(name_words)
            key = _squash(_translate(name_words))
            key = _PHRASE_FORMS.get(key, key)
            streets = self._keys.get(key)
            if not streets and len(key) >= 5:
                streets = self._near(key)
            if streets:
                street = self._best_street(streets, kind)
                if street is not None and (kind is not None or not bare or end == len(words) or number is not None
                                           or len(key) >= 4):
                    return street, number, phrase
            if kind == "G.V." and not rest:
                break
        if kind == "G.V.":
            streets = self._keys.get("corts catalanes")
            if streets:
                return streets[0], _first_number(rest), "gran via"
        return None

    def _harmless_tail(self, tail: str) -> bool:
        """Words after a bare street name that do not change which place it is: the city, a
        neighbourhood ("Verdi 20, Gràcia"), a floor or door."""
        tail = re.sub(r"^(?:,|en|in|a|al|at|de|del|barri|barrio|neighbourhood)\s+", "", tail.strip(" ,."))
        if not tail or re.fullmatch(_HARMLESS_TAIL, tail):
            return True
        return self.neighbourhoods.exactly_named(tail) is not None

    def _near(self, key: str) -> list[Street] | None:
        """A street name typed with a typo ("Mayorca", "Provensa", "Diputacion")."""
        for variant in (key, key.replace("y", "ll"), key.replace("s", "c")):
            if variant in self._keys:
                return self._keys[variant]
        close = difflib.get_close_matches(key, self._key_list, n=1, cutoff=0.86)
        return self._keys.get(close[0]) if close else None

    @staticmethod
    def _best_street(streets: Sequence[Street], kind: str | None) -> Street | None:
        """Of the streets sharing a name, the one of the kind typed, else the one with
        geometry, carrers first (people say "Mallorca" for the Carrer de Mallorca)."""
        pool = [s for s in streets if s.kind == kind] if kind else list(streets)
        if kind in ("C", None) and not pool:
            pool = list(streets)
        if not pool:
            pool = [s for s in streets if kind == "Pl" and s.kind in _AREA_KINDS] or (
                list(streets) if kind in ("Via", "Rbla") else []
            )
        if not pool:
            return None
        rank = {"C": 0, "Av": 1, "Pg": 2, "G.V.": 2, "Via": 2, "Rbla": 2, "Rda": 3, "Trav": 3, "Pl": 4}
        return sorted(pool, key=lambda s: (s.geometry is None, rank.get(s.kind, 5)))[0]

    def _corner(self, folded: str, original: str) -> Place | None:
        body = _CORNER_WORDS.sub("", folded)
        for link in _CORNER_SPLIT.finditer(body):
            # "Verdi y Ramón y Cajal": try each "and" until both sides are streets
            before, after = body[: link.start()].strip(), body[link.end():].strip()
            if not before or not after:
                continue
            first = self._street_at_start(before, bare=False)
            second = self._street_at_start(after, bare=False) if first else None
            if first is None or second is None or first[0].name == second[0].name:
                continue
            # "Borrell con Parlament": the streets so called that do meet (Comte Borrell)
            pairs = [(a, b) for a in self._alternatives(first[0]) for b in self._alternatives(second[0])
                     if self._meeting_point(a, b) is not None]
            if len(pairs) == 1:
                return self._corner_of(*pairs[0], original)
            # two streets that never meet, or several corners so called: no guess
            return Place(text=original, source=NOT_LOCATED, label=original)
        return None

    def _alternatives(self, street: Street) -> list[Street]:
        """The street, or if it is placed nowhere near, the streets whose name ends the same."""
        key = name_key(street.name)
        others = [s for k in self._key_list if k == key or k.endswith(" " + key) for s in self._keys[k]]
        return list({s.name: s for s in [street, *others] if s.geometry is not None}.values())

    def _corner_of(self, first: Street, second: Street, original: str) -> Place | None:
        point = self._meeting_point(first, second)
        if point is None:
            return None
        label = f"{_short_label(first)} / {_short_label(second)}"
        return self._place_at(point, text=original, source=CORNER, label=label, radius=RADIUS_CORNER,
                              street=first.name)

    def _street_place(self, street: Street, number: int | None, original: str) -> Place:
        codes = sorted(street.crossings)
        candidates = self.neighbourhoods.known(codes)
        if street.geometry is None or not candidates:
            return Place(source=NOT_LOCATED, label=street.label, text=original, street=street.name)
        if street.is_area:
            # a square or a park: one place, but a big one may lie in several neighbourhoods
            radius = _radius_of(street.geometry)
            if len(candidates) > 1:
                return Place(source=LANDMARK, label=street.label, candidates=candidates, text=original,
                             street=street.name)
            point = shapely.ops.nearest_points(street.geometry, street.geometry.centroid)[0]
            return Place(source=LANDMARK, label=street.label, point=_lat_lon(point),
                         neighbourhood=candidates[0], radius=radius, text=original, street=street.name)
        if number is not None and street.main is None:
            street.main = _main_line(street.geometry)
        if number is not None and street.main is not None:
            placed_number = self._number_place(street, number, original)
            if placed_number is not None:
                return placed_number
        if len(candidates) == 1:
            (only,) = candidates
            return self.street_in(street.name, only.code, original)
        return Place(source=STREET, label=street.label, candidates=candidates, text=original, street=street.name)

    def _number_place(self, street: Street, number: int, original: str) -> Place | None:
        """A house number, placed along the street's main line from where numbering starts,
        with the spread of lot widths; located only if the whole stretch is in one place."""
        line = street.main
        assert line is not None
        assert street.geometry is not None
        low, high = number * METRES_PER_NUMBER[0], number * METRES_PER_NUMBER[1]
        if low > line.length + 100:
            return None  # no such number here: read it as the street
        lines = [line]
        if _both_ways(line):
            lines.append(LineString(list(line.coords)[::-1]))
        stretches = []
        codes: set[str] = set()
        for oriented in lines:
            along = substring(oriented, min(low, line.length), min(high, line.length))
            # the street's own lines beside that stretch of its axis (both carriageways)
            stretch = street.geometry.intersection(along.buffer(60, cap_style="flat")) if along.length else along
            if stretch.is_empty or stretch.length == 0:
                stretch = along
            stretches.append(stretch)
            codes |= set(self._crossings(stretch)) if stretch.length > 0 else {
                item.code for item in self._around(stretch.centroid)
            }
        candidates = self.neighbourhoods.known(sorted(codes))
        label = f"{street.label}, {number}"
        if len(candidates) != 1:
            return Place(text=original, source=STREET_NUMBER, label=label, candidates=candidates,
                         street=street.name)
        if len(stretches) == 1 and stretches[0].length > 0:
            stretch = stretches[0]
            middle = lines[0].interpolate((min(low, line.length) + min(high, line.length)) / 2)
            return Place(text=original, source=STREET_NUMBER, label=label,
                         point=_lat_lon(shapely.ops.nearest_points(stretch, middle)[0]),
                         neighbourhood=candidates[0], radius=int(stretch.length / 2) + RADIUS_CORNER,
                         street=street.name)
        within = self.street_in(street.name, candidates[0].code, original)
        return Place(text=original, source=STREET_NUMBER, label=label, point=within.point,
                     neighbourhood=within.neighbourhood, radius=within.radius, street=street.name)


# ---------------------------------------------------------------------------------------


@functools.cache
def gazetteer_for(neighbourhoods_geojson: Path, data_dir: Path) -> Gazetteer:
    """The gazetteer of these files, read once per process (the bot service reads it the first
    time an Open311 request gives an address)."""
    return load_gazetteer(Neighbourhoods.from_geojson(neighbourhoods_geojson), data_dir)


def load_gazetteer(neighbourhoods: Neighbourhoods, data_dir: Path) -> Gazetteer:
    """The gazetteer from the project's data folder (a few seconds: call it once at start)."""
    return Gazetteer.load(
        neighbourhoods,
        data_dir / "barcelona-streets.geojson",
        data_dir / "barcelona-carrerer.csv",
        data_dir / "barcelona-metro-stations.csv",
        data_dir / "barcelona-landmarks.yml",
    )


def _first_number(text: str) -> int | None:
    match = re.search(r"\b(\d{1,4})\b", text)
    return int(match.group(1)) if match else None


def _label_of(name: str) -> str:
    """"Carrer de Mallorca" -> "Mallorca"; squares and avenues keep their kind."""
    match = re.match(r"^(?:Carrer|carrer)\s+(?:(?:de la|de les|dels|del|de l'|de|d')\s*)?(.+)$", name)
    if match:
        return match.group(1)[:1].upper() + match.group(1)[1:]
    return name


def _short_label(street: Street) -> str:
    """A street as said at a corner: "Mallorca", "Diagonal", "Gran Via"."""
    if street.kind == "G.V.":
        return "Gran Via"
    return _label_of(re.sub(r"^(Avinguda|Passeig|Via|Ronda|Travessera)\s", "Carrer ", street.name))


def _kind_of(name: str) -> str:
    kind, _ = _split_kind(_canon(name))
    return kind or "C"


def _dedupe(streets: list[Street]) -> list[Street]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for street in streets:
        if (street.name, street.label) in seen:
            continue
        seen.add((street.name, street.label))
        unique.append(street)
    return unique


def _main_line(geometry: BaseGeometry) -> LineString | None:
    """The longest continuous line of the street, oriented from where numbering starts:
    the end nearer the sea, or, along the coast, the end nearer the Llobregat."""
    lines: BaseGeometry = geometry
    if isinstance(geometry, MultiLineString):
        lines = linemerge(geometry)
    parts = list(getattr(lines, "geoms", [lines]))
    parts = [p for p in parts if isinstance(p, LineString) and p.length > 0]
    if not parts:
        return None
    line = max(parts, key=lambda p: p.length)
    # a street drawn in many pieces (two carriageways, crossings): its axis from end to end
    ends = [Point(c) for p in parts for c in (p.coords[0], p.coords[-1])]
    far = max(((a, b) for i, a in enumerate(ends) for b in ends[i + 1:]), key=lambda ab: ab[0].distance(ab[1]),
              default=None)
    if far is not None and line.length < 0.7 * far[0].distance(far[1]):
        line = LineString([far[0], far[1]])
    start, end = Point(line.coords[0]), Point(line.coords[-1])
    inland = lambda p: (-p.x + p.y) * math.sqrt(0.5)  # noqa: E731 - away from the coast (NW)
    along = lambda p: (p.x + p.y) * math.sqrt(0.5)  # noqa: E731 - along the coast (to the NE)
    span = start.distance(end) or 1.0
    if abs(inland(end) - inland(start)) / span > 0.35:
        first_is_start = inland(start) <= inland(end)
    else:
        first_is_start = along(start) <= along(end)
    return line if first_is_start else LineString(list(line.coords)[::-1])


def _both_ways(line: LineString) -> bool:
    """True when the street runs at neither clear angle to the coast: numbering could start at
    either end, so both are considered."""
    start, end = Point(line.coords[0]), Point(line.coords[-1])
    span = start.distance(end) or 1.0
    ratio = abs((-end.x + end.y) - (-start.x + start.y)) * math.sqrt(0.5) / span
    return 0.3 < ratio < 0.4 or span < line.length * 0.6


def _radius_of(geometry: BaseGeometry) -> int:
    centre = geometry.centroid
    return int(max(RADIUS_MIN_AREA, shapely.hausdorff_distance(geometry, centre)))


def _read_stations(path: Path) -> list[Landmark]:
    stations = []
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        for row in rows:
            name = row["name"].replace("Av.", "Avinguda ").strip()
            names = {name, f"estacio {name}", f"estacio de {name}"}
            if "|" in name or " | " in row["name"]:
                names |= {part.strip() for part in row["name"].split("|")}
            point = _point_m(float(row["latitude"]), float(row["longitude"]))
            stations.append(Landmark(tuple(sorted(names)), f"metro {row['name']}", point, RADIUS_STATION, True))
    return stations
