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
from shapely.ops import linemerge

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
# Metres of street per house number where no number of the street is known: from 3.5 (the
# narrow lots of Gràcia and Sants) to 15 (the Passeig de Gràcia, the avenues). A narrower
# spread put some numbers in a wrong neighbourhood (streets whose numbering starts before the
# line we have, Gran Via, Pau Claris, Còrsega); the known numbers narrow it instead.
METRES_PER_NUMBER = (3.5, 15.0)
# On a straight street of the lower city (the Eixample grid), counted along the line between its ends.
METRES_PER_NUMBER_STRAIGHT = (3.5, 15.0)
# Metres either way for where numbering starts and the first lots.
NUMBER_MARGIN_M = 0.0
NUMBER_STEP_M = 10.0
# The first and last houses of a street stand this far from the middle of the crossing streets.
HOUSE_FROM_END_M = 20.0
# Around a known house number and, between two, this share of the distance to the nearer one;
# counted on from a known number at these metres per number. Wide on purpose: the two sides of
# a street are numbered apart (Provença 233 and 236 stand two blocks apart) and lots differ.
KNOWN_NUMBER_SPREAD_M = 120.0
KNOWN_NUMBER_SPREAD_SHARE = 0.15
METRES_PER_NUMBER_ON = (5.0, 15.0)
# Pieces of one street farther apart than this are not one line; a stray piece this long
# makes the street split (two streets of one name): a number on it is asked about.
PIECE_GAP_M = 150.0
# Metres inland (north-west, across the coast) from the origin below which a street belongs to
# the lower city (Ciutat Vella, the Eixample, Poblenou, Sants), whose numbering follows the rule.
LOWER_CITY_INLAND_M = 1500.0
# Neighbourhood codes of the old town (Ciutat Vella), whose streets keep their own numbering.
OLD_TOWN_DISTRICT = "01-"
PIECE_BREAK_M = 800.0
PIECE_MIN_STRAY_M = 100.0
# A street is straight when every piece lies this close to the line between its ends.
STRAIGHT_MIN_LENGTH_M = 600.0
STRAIGHT_MAX_STRAY_M = 60.0
STRAIGHT_MAX_STRAY_SHARE = 0.05
# A house stands this far from the street's line, on its side; that side's point is told apart
# from the other neighbourhood within this tolerance (boundaries run along street axes).
HOUSE_OFFSET_M = 12.0
# The widest street (an avenue with its side roads) is this far across from its middle.
STREET_MAX_HALF_WIDTH_M = 40.0
SIDE_TOLERANCE_M = 6.0
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
    main: LineString | None = None  # the axis numbers are counted along, from where numbering starts
    names: tuple[str, ...] = ()  # every spelling in the data (OpenStreetMap and the street list)
    split: bool = False  # drawn in pieces far apart: two streets of one name, or a stray piece

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
    "catalonia": "catalunya", "spain": "espanya", "liceo": "liceu",
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
_TRAILING_KINDS = {"square": "Pl", "sq": "Pl", "avenue": "Av", "ave": "Av", "street": "C", "st": "C"}
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
        self._house_numbers: dict[str, list[tuple[int, Point]]] = {}  # street name -> known numbers
        self.landmarks: list[Landmark] = []
        # (is a station, name) -> landmark: "Liceu" is both the theatre and the station
        self._landmark_names: dict[tuple[bool, str], Landmark] = {}
        self._landmark_list: list[tuple[bool, str]] = []
        self._add_landmarks(landmarks)

    # -- loading ------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        neighbourhoods: Neighbourhoods,
        streets_geojson: Path,
        street_list_csv: Path | None = None,
        stations_csv: Path | None = None,
        landmarks_yml: Path | None = None,
        house_numbers_yml: Path | None = None,
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
        if house_numbers_yml is not None and house_numbers_yml.exists():
            gazetteer._read_house_numbers(house_numbers_yml)
        return gazetteer

    def _add_landmarks(self, landmarks: Iterable[Landmark]) -> None:
        """Index landmarks by name, longest names first (the longest name in a text wins)."""
        for landmark in landmarks:
            self.landmarks.append(landmark)
            for name in landmark.names:
                self._landmark_names[landmark.station, _strip_links(_canon(name))] = landmark
        self._landmark_list = sorted(self._landmark_names, key=lambda key: len(key[1]), reverse=True)

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
            if entry.get("ask_between"):  # where several meet, or a name for two places: ask
                by_name = {item.name: item.code for item in self._area_items}
                spans = tuple(by_name[name] for name in entry["ask_between"] if name in by_name)
            if point is not None:
                landmarks.append(Landmark(names, entry.get("label", names[0]), point, int(entry.get("radius", 80)),
                                          side=entry.get("neighbourhood"), spans=spans))
        return landmarks

    def _read_house_numbers(self, path: Path) -> None:
        """Known house numbers: each on the block face between two cross streets (or at a
        corner), kept as a number and a point of the street. An entry whose streets do not
        meet is left out (a test checks that none is)."""
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            street = self._street_named(entry["street"])
            corners = [self._meeting_point(street, self._street_named(cross))
                       for cross in entry.get("between", [entry.get("at")]) if cross]
            if street is None or not corners or any(c is None for c in corners):
                continue
            point = Point(sum(c.x for c in corners) / len(corners), sum(c.y for c in corners) / len(corners))  # type: ignore[union-attr]
            self._house_numbers.setdefault(street.name, []).append((int(entry["number"]), point))

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
        if len(folded) < 2:
            return unknown
        if _OUTSIDE_WORDS.search(folded):
            # another city, unless it is two of our streets that meet ("Muntaner amb París")
            return self._corner(_FILLER.sub("", folded).strip(" ,."), original) or unknown
        station = _STATION_WORDS.search(folded)
        if station:
            after, before = folded[station.end():], folded[: station.start()]
            found = next((hit for words in (after, before, " ".join(_translate(after.split())))
                          if (hit := self._landmark_in(words, stations=True))), None)
            if found:
                return self._landmark_place(found, original)
        body = _FILLER.sub("", folded).strip(" ,.")
        corner = self._corner(body, original)
        if corner is not None:
            return corner
        found_street = self._street_in_text(body)
        neighbourhood = self._neighbourhood_named(body, found_street, original)
        landmark = self._landmark_in(body, stations=False)
        if landmark is not None and (found_street is None or (
                len(landmark[1]) >= len(found_street[2]) and not self._named_as_street(body, found_street))
                or (landmark[0].spans and found_street[0].is_area)):  # a square where neighbourhoods meet
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
    @staticmethod
    def _named_as_street(folded: str, found: tuple[Street, int | None, str]) -> bool:
        """"Carrer de la Boqueria 21", "avinguda del Tibidabo": a number or a kind word makes
        the words a street, not the landmark of the same name."""
        if found[1] is not None:
            return True
        at = folded.find(found[2])
        before = folded[:at].split() if at > 0 else []
        while before and (before[-1] in _INNER_LINKS or before[-1] in ("d'", "l'")):
            before.pop()
        kind = _split_kind(before[-1])[0] if before else None
        return kind is not None and kind not in _AREA_KINDS and found[0].geometry is not None

    def _landmark_in(self, folded: str, *, stations: bool) -> tuple[Landmark, str] | None:
        """The longest landmark name in the text (stations only when ``stations``)."""
        text = f" {_strip_links(folded)} "
        for station, name in self._landmark_list:
            landmark = self._landmark_names[station, name]
            if station == stations and f" {name} " in text:
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
                # "Catalonia square", "Sarrià avenue": the English kind word comes after the name
                trailing = _TRAILING_KINDS.get(tail.split()[0]) if kind is None and tail else None
                street = (trailing and self._best_street(streets, trailing)) or self._best_street(streets, kind)
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
        whole = self._street_at_start(body, bare=False)
        name_at = body.find(whole[2]) if whole is not None else -1
        for link in _CORNER_SPLIT.finditer(body):
            # "Verdi y Ramón y Cajal": try each "and" until both sides are streets
            before, after = body[: link.start()].strip(), body[link.end():].strip()
            if not before or not after:
                continue
            if whole is not None and name_at <= link.start() < name_at + len(whole[2]):
                continue  # the "i" of "Pi i Margall 73": a street's own name
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
        if number is not None and self._axis(street) is not None:
            placed_number = self._number_place(street, number, original)
            if placed_number is not None:
                return placed_number
        if len(candidates) == 1:
            (only,) = candidates
            return self.street_in(street.name, only.code, original)
        return Place(source=STREET, label=street.label, candidates=candidates, text=original, street=street.name)

    def _number_place(self, street: Street, number: int, original: str) -> Place | None:
        """A house number: the stretch of the street where it can be, between known numbers of
        that street (``barcelona-house-numbers.yml``) or else from where numbering starts with
        the spread of lot widths; on the side its parity gives (odd numbers on the left walking
        the way numbers grow) when the street is straight enough for that side to be sure.
        Located only if every point of that stretch is in one neighbourhood."""
        axis = self._axis(street)
        assert axis is not None
        assert street.geometry is not None
        label = f"{street.label}, {number}"
        if street.split:  # which of the pieces? ask
            candidates = self.neighbourhoods.known(sorted(street.crossings))
            return Place(text=original, source=STREET_NUMBER, label=label, candidates=candidates, street=street.name)
        straight = _is_straight(street.geometry, axis)
        grid = straight and _in_lower_city(axis)
        known = sorted((n, axis.project(point)) for n, point in self._house_numbers.get(street.name, []))
        if len(known) >= 2 and known[-1][1] < known[0][1]:  # the numbers say numbering starts at the other end
            axis = LineString(list(axis.coords)[::-1])
            known = [(n, axis.length - along) for n, along in known]
        stretch = _number_stretch(number, known, grid)
        if stretch is None or stretch[0] > axis.length + 100:
            return None  # no such number here: read it as the street
        # a house stands beside the street, not in the crossing at either end of it
        low = max(HOUSE_FROM_END_M, stretch[0])
        high = max(low, min(stretch[1], axis.length - HOUSE_FROM_END_M))
        orientations = [axis]
        old_town = any(code.startswith(OLD_TOWN_DISTRICT) for code in street.crossings)
        if len(known) < 2 and not _numbering_sure(axis, old_town=old_town):
            orientations.append(LineString(list(axis.coords)[::-1]))
        side = (1.0 if number % 2 else -1.0) if straight and len(orientations) == 1 else 0.0
        codes: set[str] = set()
        points: list[Point] = []
        for oriented in orientations:
            for along in _steps(low, high, NUMBER_STEP_M):
                point = self._house_point(street.geometry, oriented, along, side)
                points.append(point)
                found = self._around(point, SIDE_TOLERANCE_M if side else BOUNDARY_TOLERANCE_M)
                inside = self._containing(point)
                codes |= {item.code for item in found} | ({inside.code} if inside else set())
        candidates = self.neighbourhoods.known(sorted(codes))
        if len(candidates) != 1 or not points:
            if not known:
                # counted only from where our line starts, which is not always where numbering
                # starts (Castillejos begins beyond Glòries): the house may be nearer that end
                for oriented in orientations:
                    for along in _steps(HOUSE_FROM_END_M, low, NUMBER_STEP_M * 5):
                        point = self._house_point(street.geometry, oriented, along, 0.0)
                        codes |= {item.code for item in self._around(point)}
                candidates = self.neighbourhoods.known(sorted(codes))
            return Place(text=original, source=STREET_NUMBER, label=label, candidates=candidates,
                         street=street.name)
        middle = points[len(points) // 2]
        spread = max(middle.distance(point) for point in points)
        return Place(text=original, source=STREET_NUMBER, label=label, point=_lat_lon(middle),
                     neighbourhood=candidates[0], radius=int(spread) + RADIUS_CORNER, street=street.name)

    def _axis(self, street: Street) -> LineString | None:
        """The line numbers are counted along, from where numbering starts: for a straight
        street the line between its two farthest ends (OpenStreetMap draws a street in many
        pieces and carriageways), else its longest continuous line; a piece far from the rest
        is left out and marks the street as split."""
        if street.main is None and street.geometry is not None:
            body, street.split = _main_body(street.geometry)
            chord = _chord(body)
            street.main = _main_line(chord if chord is not None and _is_straight(body, chord) else body)
        return street.main

    @staticmethod
    def _house_point(geometry: BaseGeometry, axis: LineString, along: float, side: float) -> Point:
        """Where a house ``along`` metres from the start stands: across the street there (all
        its carriageways), beyond its edge on the given side (0: the middle of the street)."""
        on_axis = axis.interpolate(along)
        before = axis.interpolate(max(0.0, along - 5))
        after = axis.interpolate(min(axis.length, along + 5))
        dx, dy = after.x - before.x, after.y - before.y
        norm = math.hypot(dx, dy) or 1.0
        left = (-dy / norm, dx / norm)
        # the street's lines across from here: the nearest one and those within an avenue's
        # width of it (carriageways, side roads); the axis may run beside a slightly bent street
        nearest = shapely.ops.nearest_points(geometry, on_axis)[0]
        nearest_offset = (nearest.x - on_axis.x) * left[0] + (nearest.y - on_axis.y) * left[1]
        reach = abs(nearest_offset) + STREET_MAX_HALF_WIDTH_M * 2
        across = LineString([(on_axis.x - left[0] * reach, on_axis.y - left[1] * reach),
                             (on_axis.x + left[0] * reach, on_axis.y + left[1] * reach)])
        hits = geometry.intersection(across)
        offsets = sorted(
            offset for point in getattr(hits, "geoms", [hits]) if not point.is_empty
            for offset in [(point.centroid.x - on_axis.x) * left[0] + (point.centroid.y - on_axis.y) * left[1]]
            if abs(offset - nearest_offset) <= STREET_MAX_HALF_WIDTH_M * 2
        )
        if offsets:
            centre_offset, half_width = (offsets[0] + offsets[-1]) / 2, (offsets[-1] - offsets[0]) / 2
            centre = Point(on_axis.x + left[0] * centre_offset, on_axis.y + left[1] * centre_offset)
        else:  # no line straight across: the nearest one
            centre, half_width = nearest, 0.0
        if not side:
            return centre
        out = min(half_width, STREET_MAX_HALF_WIDTH_M) + HOUSE_OFFSET_M
        return Point(centre.x + side * out * left[0], centre.y + side * out * left[1])


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
        data_dir / "barcelona-house-numbers.yml",
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


def _chord(geometry: BaseGeometry) -> LineString | None:
    """The segment between the two points of the street farthest apart."""
    hull = geometry.convex_hull
    coords = list(hull.exterior.coords) if isinstance(hull, shapely.Polygon) else list(getattr(hull, "coords", []))
    if len(coords) < 2:
        return None
    a, b = max(((p, q) for i, p in enumerate(coords) for q in coords[i + 1:]), key=lambda pq: math.dist(*pq))
    return LineString([a, b]) if math.dist(a, b) > 0 else None


def _is_straight(geometry: BaseGeometry, axis: LineString) -> bool:
    """True when no piece of the street strays far from its axis (a grid street, an avenue)."""
    return axis.length >= STRAIGHT_MIN_LENGTH_M and shapely.hausdorff_distance(geometry, axis) <= max(
        STRAIGHT_MAX_STRAY_M, STRAIGHT_MAX_STRAY_SHARE * axis.length)


def _main_body(geometry: BaseGeometry) -> tuple[BaseGeometry, bool]:
    """The street's pieces that belong together: the longest group of pieces within
    ``PIECE_GAP_M`` of each other, with the groups after a gap along the way (a square, a
    park) no farther than ``PIECE_BREAK_M``; and whether a group of some length lies farther
    (two streets of one name, or a stray piece)."""
    parts = [part for part in getattr(geometry, "geoms", [geometry]) if part.length > 0]
    if len(parts) <= 1:
        return geometry, False
    clusters: list[list[BaseGeometry]] = []
    for part in parts:
        touching = [cluster for cluster in clusters if any(part.distance(other) <= PIECE_GAP_M for other in cluster)]
        merged = [part] + [other for cluster in touching for other in cluster]
        clusters = [cluster for cluster in clusters if all(cluster is not t for t in touching)] + [merged]
    groups = sorted((shapely.union_all(cluster) for cluster in clusters), key=lambda group: -group.length)
    body, rest = groups[0], groups[1:]
    changed = True
    while changed:  # gaps along the way, one after the other
        near = [group for group in rest if group.distance(body) <= PIECE_BREAK_M]
        changed = bool(near)
        if near:
            body = shapely.union_all([body, *near])
            rest = [group for group in rest if all(group is not other for other in near)]
    return body, any(group.length >= PIECE_MIN_STRAY_M for group in rest)


def _number_stretch(number: int, known: Sequence[tuple[int, float]], grid: bool) -> tuple[float, float] | None:
    """Where along the axis (metres from where numbering starts) a house number can be: between
    the known numbers around it, or counted on from the nearest one, or from the start."""
    if not known:
        rates, margin = (METRES_PER_NUMBER_STRAIGHT, NUMBER_MARGIN_M) if grid else (METRES_PER_NUMBER, 0.0)
        return number * rates[0] - margin, number * rates[1] + margin
    below = [(n, along) for n, along in known if n <= number]
    above = [(n, along) for n, along in known if n >= number]
    if below and above and above[0][0] != below[-1][0]:
        (n0, s0), (n1, s1) = below[-1], above[0]
        at = s0 + (number - n0) / (n1 - n0) * (s1 - s0)
        spread = KNOWN_NUMBER_SPREAD_M + KNOWN_NUMBER_SPREAD_SHARE * min(at - s0, s1 - at)
        return at - spread, at + spread
    if below and above:
        return below[-1][1] - KNOWN_NUMBER_SPREAD_M, below[-1][1] + KNOWN_NUMBER_SPREAD_M
    n0, s0 = below[-1] if below else above[0]
    gap = number - n0
    ends = sorted((s0 + gap * METRES_PER_NUMBER_ON[0], s0 + gap * METRES_PER_NUMBER_ON[1]))
    return ends[0] - KNOWN_NUMBER_SPREAD_M, ends[1] + KNOWN_NUMBER_SPREAD_M


def _steps(start: float, stop: float, step: float) -> list[float]:
    if stop <= start:
        return [max(0.0, stop)]
    count = int((stop - start) // step)
    return [start + i * step for i in range(count + 1)] + ([stop] if start + count * step < stop else [])


def _in_lower_city(line: LineString) -> bool:
    middle = line.interpolate(0.5, normalized=True)
    return (-middle.x + middle.y) * math.sqrt(0.5) < LOWER_CITY_INLAND_M


def _numbering_sure(line: LineString, *, old_town: bool = False) -> bool:
    """True when the end numbering starts at is sure: a street running from the sea inland
    (numbered from the sea), or in the lower city a street along the coast on the Eixample's
    grid (numbered from the Llobregat) or slanting inland like the Diagonal (from the sea).
    Other streets of the upper city (several are numbered from the Besòs end or from their
    old village's centre), and streets of the old town along the coast (numbered from La Rambla:
    Carrer Nou de la Rambla, del Carme, de l'Hospital), may start at either end."""
    start, end = Point(line.coords[0]), Point(line.coords[-1])
    span = start.distance(end) or 1.0
    across = abs((-end.x + end.y) - (-start.x + start.y)) * math.sqrt(0.5) / span
    lower_city = _in_lower_city(line)
    return across >= 0.6 or (lower_city and (across >= 0.35 or (across <= 0.14 and not old_town)))


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
