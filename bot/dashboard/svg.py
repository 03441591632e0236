"""Server-side SVG: the neighbourhood map and the charts of the stats page.

Every piece of text (neighbourhood names, addresses, labels) goes through ``markupsafe.escape``,
the escaping Jinja2's autoescape uses, and the result is returned as ``Markup`` so templates
insert it once, unchanged. No script, no style attribute, no external resource: colours
come from classes styled in desk.css.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import shapely
from markupsafe import Markup
from shapely import make_valid
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

# points placed less precisely than this are drawn as approximate (the duplicate check's bound)
from storage.desk import PRECISE_RADIUS_METRES

MAP_WIDTH = 1000.0
MAP_MARGIN = 12.0
SIMPLIFY_DEGREES = 0.00002  # about 2 m: invisible at this scale, halves the path data
SHADES = 5


def _n(value: float) -> str:
    """A coordinate with one decimal, without trailing zeros."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


# --------------------------------------------------------------------------- projection


@dataclass(frozen=True)
class Projection:
    """Equirectangular: x = longitude × cos(mid latitude), y = −latitude, scaled to the width."""

    min_lon: float
    max_lat: float
    cos_lat: float
    scale: float
    width: float
    height: float

    @classmethod
    def fit(cls, bounds: tuple[float, float, float, float], width: float = MAP_WIDTH,
            margin: float = MAP_MARGIN) -> Projection:
        min_lon, min_lat, max_lon, max_lat = bounds
        cos_lat = math.cos(math.radians((min_lat + max_lat) / 2))
        scale = (width - 2 * margin) / ((max_lon - min_lon) * cos_lat)
        height = (max_lat - min_lat) * scale + 2 * margin
        return cls(min_lon - margin / (scale * cos_lat), max_lat + margin / scale, cos_lat, scale, width, height)

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.min_lon) * self.cos_lat * self.scale, (self.max_lat - lat) * self.scale

    def path(self, geometry: BaseGeometry) -> str:
        """SVG path data of a polygon or multipolygon (holes drawn with fill-rule evenodd)."""
        polygons = getattr(geometry, "geoms", [geometry])
        parts: list[str] = []
        for polygon in polygons:
            for ring in (polygon.exterior, *polygon.interiors):
                points: list[str] = []
                previous = None
                for lon, lat in ring.coords[:-1]:
                    x, y = self.xy(lon, lat)
                    point = f"{_n(x)} {_n(y)}"
                    if point != previous:
                        points.append(point)
                        previous = point
                if len(points) >= 3:
                    parts.append("M" + " ".join(points) + "Z")
        return "".join(parts)


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    district: str
    d: str


@dataclass(frozen=True)
class DistrictOutline:
    name: str
    d: str
    label_x: float
    label_y: float


@dataclass(frozen=True)
class BaseMap:
    projection: Projection
    areas: tuple[Area, ...]
    districts: tuple[DistrictOutline, ...]


@cache
def load_base_map(geojson: Path) -> BaseMap:
    """The neighbourhoods of the project's GeoJSON, projected once per process."""
    data = json.loads(Path(geojson).read_text(encoding="utf-8"))
    features = [(f["properties"], shape(f["geometry"])) for f in data["features"]]
    bounds = tuple(shapely.total_bounds([geometry for _, geometry in features]))
    projection = Projection.fit(bounds)
    areas = tuple(
        Area(code=str(props["id"]), name=str(props["name"]), district=str(props.get("district", "")),
             d=projection.path(geometry.simplify(SIMPLIFY_DEGREES, preserve_topology=True)))
        for props, geometry in features
    )
    by_district: dict[str, list[BaseGeometry]] = {}
    for props, geometry in features:
        by_district.setdefault(str(props.get("district", "")), []).append(make_valid(geometry).buffer(0.00001))
    districts = []
    for name, geometries in sorted(by_district.items()):
        if not name:
            continue
        merged = unary_union(geometries).buffer(-0.00001)
        label = merged.representative_point()
        x, y = projection.xy(label.x, label.y)
        districts.append(DistrictOutline(name=name, d=projection.path(merged.simplify(SIMPLIFY_DEGREES * 3)),
                                         label_x=x, label_y=y))
    return BaseMap(projection=projection, areas=areas, districts=tuple(districts))


# --------------------------------------------------------------------------- the map



@dataclass(frozen=True)
class MapPoint:
    ref: str
    latitude: float
    longitude: float
    priority: str
    label: str  # shown as the point's <title>
    href: str
    radius_m: int | None = None  # how far off the place may be (cases.location_radius)

    @property
    def approximate(self) -> bool:
        return self.radius_m is not None and self.radius_m > PRECISE_RADIUS_METRES


def approximate_label(gettext: Callable[..., str], radius_m: int | None) -> str:
    """"approximate, ± 400 m" (in the staff's language) for a point that is not precise; "" otherwise."""
    if radius_m is None or radius_m <= PRECISE_RADIUS_METRES:
        return ""
    return gettext("approximate, ± {radius} m", radius=radius_m)


def shade_step(counts: dict[str, int]) -> int:
    """How many cases one shade covers: 1 up to five cases in the busiest neighbourhood."""
    return max(1, math.ceil(max(counts.values(), default=0) / SHADES))


def shade_of(count: int, step: int) -> int:
    return 0 if count <= 0 else min(SHADES, math.ceil(count / step))


def shade_legend(counts: dict[str, int], *, none_text: str = "No open case",
                 or_more: Callable[[int], str] = "{} or more".format) -> list[tuple[int, str]]:
    """The legend of the shades; the words come from the caller (in the reader's language)."""
    step = shade_step(counts)
    legend = [(0, none_text)]
    for shade in range(1, SHADES + 1):
        low, high = (shade - 1) * step + 1, shade * step
        legend.append((shade, str(low) if low == high else f"{low}–{high}" if shade < SHADES else or_more(low)))
    return legend


def _open_cases_en(count: int) -> str:
    return f"{count} open case" if count == 1 else f"{count} open cases"


def _answers_en(count: int) -> str:
    return f"{count} answer" if count == 1 else f"{count} answers"


def city_map(base: BaseMap, counts: dict[str, int], points: Sequence[MapPoint], *, label: str,
             highlight: str | None = None, focus: tuple[float, float] | None = None,
             focus_size: float = 260.0, show_districts: bool = True,
             open_cases: Callable[[int], str] = _open_cases_en) -> Markup:
    """The neighbourhoods shaded by open cases, the district outlines and names, and the
    cases as points linking to their pages. ``focus`` (lat, lon) zooms onto a place."""
    projection = base.projection
    step = shade_step(counts)
    if focus is not None:
        fx, fy = projection.xy(focus[1], focus[0])
        view = (fx - focus_size / 2, fy - focus_size / 2, focus_size, focus_size)
    else:
        view = (0.0, 0.0, projection.width, projection.height)
    scale = view[2] / projection.width  # stroke widths and radii stay the same on screen
    out = [Markup('<svg xmlns="http://www.w3.org/2000/svg" class="city-map" viewBox="{}" aria-label="{}" '
                  'preserveAspectRatio="xMidYMid meet">').format(" ".join(_n(v) for v in view), label)]
    out.append(Markup('<g class="areas" stroke-width="{}">').format(_n(max(scale, 0.1) * 1.2)))
    for area in base.areas:
        count = counts.get(area.code, 0)
        classes = f"area shade-{shade_of(count, step)}" + (" highlight" if area.code == highlight else "")
        out.append(Markup('<path class="{}" data-code="{}" d="{}" fill-rule="evenodd"><title>{} ({}): {}</title>'
                          '</path>').format(classes, area.code, area.d, area.name, area.district, open_cases(count)))
    out.append(Markup("</g>"))
    if show_districts:
        out.append(Markup('<g class="districts" stroke-width="{}">').format(_n(max(scale, 0.1) * 2.6)))
        for district in base.districts:
            out.append(Markup('<path class="district" d="{}"/>').format(district.d))
        out.append(Markup("</g>"))
        if focus is None:
            out.append(Markup('<g class="district-labels" aria-hidden="true">'))
            for district in base.districts:
                out.append(Markup('<text x="{}" y="{}" text-anchor="middle">{}</text>').format(
                    _n(district.label_x), _n(district.label_y), district.name))
            out.append(Markup("</g>"))
    radius = 7.5 if focus is None else focus_size / 30
    sizes = {"urgent": 1.3, "high": 1.1}
    out.append(Markup('<g class="points">'))
    order = {"normal": 0, "high": 1, "urgent": 2}  # urgent drawn last, on top
    for point in sorted(points, key=lambda p: order.get(p.priority, 0)):
        x, y = projection.xy(point.longitude, point.latitude)
        r = radius * sizes.get(point.priority, 1.0)
        if point.approximate and point.radius_m is not None:
            # an approximate place (a street, a stretch of numbers): the area it may be in,
            # and a hollow marker, so nobody reads it as an exact spot
            metres_east = point.radius_m / (111_320 * math.cos(math.radians(point.latitude)))
            spread = abs(projection.xy(point.longitude + metres_east, point.latitude)[0] - x)
            out.append(Markup('<a href="{}" class="point-link"><circle class="approximate-area priority-{}" '
                              'cx="{}" cy="{}" r="{}" stroke-width="{}"/><circle class="point approximate priority-{}" '
                              'cx="{}" cy="{}" r="{}" stroke-width="{}" data-ref="{}" data-approximate="{}"/>'
                              '<title>{}</title></a>').format(
                point.href, point.priority, _n(x), _n(y), _n(max(spread, r)), _n(radius / 5), point.priority,
                _n(x), _n(y), _n(r * 0.8), _n(radius / 3.5), point.ref, point.radius_m, point.label))
            continue
        out.append(Markup('<a href="{}" class="point-link"><circle class="point priority-{}" cx="{}" cy="{}" r="{}" '
                          'stroke-width="{}" data-ref="{}"/><title>{}</title></a>').format(
            point.href, point.priority, _n(x), _n(y), _n(r), _n(radius / 3.5), point.ref, point.label))
    out.append(Markup("</g></svg>"))
    return Markup("").join(out)


# --------------------------------------------------------------------------- charts


def nice_step(top: float, ticks: int = 5) -> float:
    """A round step (1, 2, 2.5 or 5 × 10^n) so that about ``ticks`` steps reach ``top``."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if multiple * magnitude >= raw:
            return multiple * magnitude
    return 10 * magnitude  # pragma: no cover


def _fmt(value: float) -> str:
    return f"{value:g}" if value < 10 else f"{value:.0f}"


@dataclass
class Series:
    name: str
    css_class: str
    values: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Frame:
    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom


def _y_axis(frame: _Frame, top_value: float, step: float, unit: str = "",
            number: Callable[[float], str] = _fmt) -> list[Markup]:
    out = [Markup('<g class="grid">')]
    value = 0.0
    while value <= top_value + 1e-9:
        y = frame.top + frame.plot_height * (1 - value / top_value)
        out.append(Markup('<line x1="{}" x2="{}" y1="{}" y2="{}"/><text class="tick" x="{}" y="{}" '
                          'text-anchor="end">{}{}</text>').format(
            _n(frame.left), _n(frame.width - frame.right), _n(y), _n(y), _n(frame.left - 8), _n(y + 4),
            number(value), unit))
        value += step
    out.append(Markup("</g>"))
    return out


def _x_labels(frame: _Frame, labels: Sequence[str], band: float) -> list[Markup]:
    every = max(1, math.ceil(len(labels) / 8))
    out = [Markup('<g class="x-labels">')]
    for index, text in enumerate(labels):
        if index % every == 0:
            x = frame.left + band * (index + 0.5)
            out.append(Markup('<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>').format(
                _n(x), _n(frame.height - frame.bottom + 18), text))
    out.append(Markup("</g>"))
    return out


def _close_chart(out: list[Markup], frame: _Frame, columns: Sequence[str], band: float) -> Markup:
    """The plot's group closed, the x axis and its labels, the end of the chart."""
    out.append(Markup("</g>"))
    out.append(Markup('<line class="axis" x1="{}" x2="{}" y1="{}" y2="{}"/>').format(
        _n(frame.left), _n(frame.width - frame.right), _n(frame.top + frame.plot_height),
        _n(frame.top + frame.plot_height)))
    out += _x_labels(frame, columns, band)
    out.append(Markup("</svg>"))
    return Markup("").join(out)


def stacked_bars(columns: Sequence[str], series: Sequence[Series], *, label: str,
                 column_titles: Sequence[str] | None = None, width: float = 600, height: float = 300,
                 number: Callable[[float], str] = _fmt) -> Markup:
    """Columns (weeks) of stacked segments (categories), with the total above each column."""
    frame = _Frame(width=width, height=height, left=40, right=8, top=20, bottom=30)
    totals = [sum(s.values[i] for s in series) for i in range(len(columns))]
    step = nice_step(max(totals, default=0))
    step = max(step, 1.0)
    top_value = max(step, math.ceil(max(totals, default=0) / step) * step)
    band = frame.plot_width / max(len(columns), 1)
    bar = min(band * 0.68, 46)
    titles = column_titles or columns
    out = [Markup('<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {} {}" role="img" '
                  'aria-label="{}">').format(_n(frame.width), _n(frame.height), label)]
    out += _y_axis(frame, top_value, step, number=number)
    out.append(Markup('<g class="bars">'))
    for index, _ in enumerate(columns):
        x = frame.left + band * index + (band - bar) / 2
        base = frame.top + frame.plot_height
        for s in series:
            value = s.values[index]
            if value <= 0:
                continue
            h = frame.plot_height * value / top_value
            base -= h
            out.append(Markup('<rect class="segment {}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {}</title>'
                              '</rect>').format(s.css_class, _n(x), _n(base), _n(bar), _n(h), titles[index], s.name,
                                                number(value)))
        if totals[index]:
            out.append(Markup('<text class="value" x="{}" y="{}" text-anchor="middle">{}</text>').format(
                _n(x + bar / 2), _n(base - 5), number(totals[index])))
    return _close_chart(out, frame, columns, band)


def horizontal_bars(items: Sequence[tuple[str, float]], *, label: str, width: float = 600, label_width: float = 196,
                    max_label_chars: int = 28, number: Callable[[float], str] = _fmt) -> Markup:
    """One bar per item (name, value), longest first as given, names on the left."""
    row = 26.0
    frame = _Frame(width=width, height=max(len(items), 1) * row + 30, left=label_width, right=36, top=6, bottom=24)
    step = max(nice_step(max((v for _, v in items), default=0), ticks=5), 1.0)
    top_value = max(step, math.ceil(max((v for _, v in items), default=0) / step) * step)
    out = [Markup('<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {} {}" role="img" '
                  'aria-label="{}">').format(_n(frame.width), _n(frame.height), label)]
    out.append(Markup('<g class="grid">'))
    value = 0.0
    while value <= top_value + 1e-9:
        x = frame.left + frame.plot_width * value / top_value
        out.append(Markup('<line x1="{}" x2="{}" y1="{}" y2="{}"/><text class="tick" x="{}" y="{}" '
                          'text-anchor="middle">{}</text>').format(
            _n(x), _n(x), _n(frame.top), _n(frame.height - frame.bottom), _n(x), _n(frame.height - 6), number(value)))
        value += step
    out.append(Markup('</g><g class="bars">'))
    for index, (name, value) in enumerate(items):
        y = frame.top + row * index + 4
        w = frame.plot_width * value / top_value
        shown = name if len(name) <= max_label_chars else name[: max_label_chars - 1] + "…"
        out.append(Markup('<text class="name" x="{}" y="{}" text-anchor="end">{}</text>').format(
            _n(frame.left - 10), _n(y + row / 2 + 0.5), shown))
        out.append(Markup('<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>').format(
            _n(frame.left), _n(y), _n(max(w, 1)), _n(row - 9), name, number(value)))
        out.append(Markup('<text class="value" x="{}" y="{}">{}</text>').format(
            _n(frame.left + w + 6), _n(y + row / 2 + 0.5), number(value)))
    out.append(Markup("</g></svg>"))
    return Markup("").join(out)


def line_chart(columns: Sequence[str], values: Sequence[float | None], *, label: str, unit: str,
               column_titles: Sequence[str] | None = None, value_text: Sequence[str] | None = None,
               width: float = 600, height: float = 260, number: Callable[[float], str] = _fmt) -> Markup:
    """A line through the known values (gaps where a value is None), a dot per value."""
    frame = _Frame(width=width, height=height, left=48, right=8, top=20, bottom=30)
    known = [v for v in values if v is not None]
    step = nice_step(max(known, default=0))
    top_value = max(step, math.ceil(max(known, default=0) / step) * step)
    band = frame.plot_width / max(len(columns), 1)
    titles = column_titles or columns
    texts = value_text or [number(v) if v is not None else "" for v in values]
    out = [Markup('<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {} {}" role="img" '
                  'aria-label="{}">').format(_n(frame.width), _n(frame.height), label)]
    out += _y_axis(frame, top_value, step, unit, number=number)
    points: list[tuple[float, float] | None] = []
    for index, value in enumerate(values):
        if value is None:
            points.append(None)
            continue
        points.append((frame.left + band * (index + 0.5), frame.top + frame.plot_height * (1 - value / top_value)))
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(point)
    out.append(Markup('<g class="line">'))
    for run in runs:
        if len(run) > 1:
            out.append(Markup('<polyline points="{}"/>').format(" ".join(f"{_n(x)},{_n(y)}" for x, y in run)))
    for index, point in enumerate(points):
        if point is not None:
            out.append(Markup('<circle class="dot" cx="{}" cy="{}" r="4.5"><title>{}: {}</title></circle>').format(
                _n(point[0]), _n(point[1]), titles[index], texts[index]))
    return _close_chart(out, frame, columns, band)


@dataclass
class LineSeries:
    name: str
    css_class: str
    values: list[float | None] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # how many answers each value is the mean of


def scale_lines(columns: Sequence[str], series: Sequence[LineSeries], *, label: str, low: float = 1,
                high: float = 5, column_titles: Sequence[str] | None = None, width: float = 600,
                height: float = 260, answers: Callable[[int], str] = _answers_en,
                number: Callable[[float], str] = "{:.1f}".format) -> Markup:
    """Several lines on a fixed scale (1 to 5 for the survey answers), gaps where a value is None."""
    frame = _Frame(width=width, height=height, left=40, right=8, top=14, bottom=30)
    band = frame.plot_width / max(len(columns), 1)
    titles = column_titles or columns

    def y_of(value: float) -> float:
        return frame.top + frame.plot_height * (1 - (value - low) / (high - low))

    out = [Markup('<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {} {}" role="img" '
                  'aria-label="{}">').format(_n(frame.width), _n(frame.height), label)]
    out.append(Markup('<g class="grid">'))
    tick = low
    while tick <= high + 1e-9:
        out.append(Markup('<line x1="{}" x2="{}" y1="{}" y2="{}"/><text class="tick" x="{}" y="{}" '
                          'text-anchor="end">{}</text>').format(
            _n(frame.left), _n(frame.width - frame.right), _n(y_of(tick)), _n(y_of(tick)), _n(frame.left - 8),
            _n(y_of(tick) + 4), _fmt(tick)))
        tick += 1
    out.append(Markup("</g>"))
    for line in series:
        out.append(Markup('<g class="line series {}">').format(line.css_class))
        run: list[str] = []
        for index, value in enumerate([*line.values, None]):
            if value is None:
                if len(run) > 1:
                    out.append(Markup('<polyline points="{}"/>').format(" ".join(run)))
                run = []
                continue
            run.append(f"{_n(frame.left + band * (index + 0.5))},{_n(y_of(value))}")
        for index, value in enumerate(line.values):
            if value is not None:
                count = line.counts[index] if index < len(line.counts) else 0
                out.append(Markup('<circle class="dot" cx="{}" cy="{}" r="3.5"><title>{} · {}: {} ({})'
                                  '</title></circle>').format(_n(frame.left + band * (index + 0.5)), _n(y_of(value)),
                                                              titles[index], line.name, number(value), answers(count)))
        out.append(Markup("</g>"))
    out += _x_labels(frame, columns, band)
    out.append(Markup("</svg>"))
    return Markup("").join(out)
