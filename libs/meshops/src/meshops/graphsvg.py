"""A directed graph drawn as inline SVG, laid out left to right: what the portal and
`meshops lineage --format html` show without a script, a CDN or a server.

The layout is grandalf's Sugiyama layering (layers, crossing reduction, coordinates); this
module only sizes the boxes, turns the layout sideways and writes the SVG elements. Cycles
are fine (grandalf reverses edges to layer them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from grandalf.graphs import Edge as GEdge
from grandalf.graphs import Graph as GGraph
from grandalf.graphs import Vertex
from grandalf.layouts import SugiyamaLayout

CHAR_WIDTH = 7.4
"""Pixels per character of the 12px monospace labels."""
LINE_HEIGHT = 16.0
PAD = 10.0
LAYER_GAP = 90.0
"""Horizontal room between layers, for the edges."""
NODE_GAP = 18.0
MARGIN = 20.0


@dataclass(frozen=True)
class Node:
    id: str
    lines: tuple[str, ...]
    """The label, one entry per line (the first in bold)."""
    kind: str = ""
    """A CSS class of the node's group (`table`, `flow`, `product`, `external`...)."""
    href: str = ""
    title: str = ""
    """Tooltip."""


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    kind: str = ""
    """A CSS class of the edge (`static` edges are drawn dashed by the portal's style)."""


class _Box:
    """grandalf's view of a vertex: its size in, its centre (`xy`) out."""

    def __init__(self, w: float, h: float) -> None:
        self.w, self.h = w, h
        self.xy: tuple[float, float] = (0.0, 0.0)


def _size(node: Node) -> tuple[float, float]:
    longest = max((len(line) for line in node.lines), default=1)
    return longest * CHAR_WIDTH + 2 * PAD, len(node.lines) * LINE_HEIGHT + 2 * PAD - 4


def layout(nodes: Sequence[Node], arrows: Sequence[Arrow]) -> dict[str, tuple[float, float]]:
    """Top-left corner of each node, left to right along the arrows."""
    vertices = {n.id: Vertex(n.id) for n in nodes}
    for node in nodes:
        w, h = _size(node)
        # grandalf layers top to bottom: swap width and height, then turn the result sideways
        vertices[node.id].view = _Box(h + NODE_GAP, w + LAYER_GAP)
    edges = [
        GEdge(vertices[a.source], vertices[a.target])
        for a in arrows
        if a.source in vertices and a.target in vertices and a.source != a.target
    ]
    graph = GGraph(list(vertices.values()), edges)
    centres: dict[str, tuple[float, float]] = {}
    top = 0.0
    for component in graph.C:
        sugiyama = SugiyamaLayout(component)
        sugiyama.init_all()
        sugiyama.draw()
        placed = {v.data: v.view.xy for v in component.sV}
        low = min(x for x, _ in placed.values())
        high = 0.0
        for name, (x, y) in placed.items():
            centres[name] = (y, x - low + top)
            high = max(high, x - low)
        top += high + 2 * LINE_HEIGHT + 2 * NODE_GAP
    corners = {}
    by_id = {n.id: n for n in nodes}
    for name, (cx, cy) in centres.items():
        w, h = _size(by_id[name])
        corners[name] = (cx - w / 2, cy - h / 2)
    lowest_x = min((x for x, _ in corners.values()), default=0.0)
    lowest_y = min((y for _, y in corners.values()), default=0.0)
    return {k: (x - lowest_x + MARGIN, y - lowest_y + MARGIN) for k, (x, y) in corners.items()}


def render(nodes: Sequence[Node], arrows: Sequence[Arrow], *, title: str = "") -> str:
    """The graph as one `<svg>` element (sized to fit, scalable), escaped for HTML."""
    corners = layout(nodes, arrows)
    sizes = {n.id: _size(n) for n in nodes}
    width = max((corners[n.id][0] + sizes[n.id][0] for n in nodes), default=0.0) + MARGIN
    height = max((corners[n.id][1] + sizes[n.id][1] for n in nodes), default=0.0) + MARGIN
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}">',
        f"<title>{escape(title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/>'
        "</marker></defs>",
    ]
    for arrow in arrows:
        if arrow.source not in corners or arrow.target not in corners:
            continue
        (sx, sy), (sw, sh) = corners[arrow.source], sizes[arrow.source]
        (tx, ty), (_, th) = corners[arrow.target], sizes[arrow.target]
        x1, y1, x2, y2 = sx + sw, sy + sh / 2, tx, ty + th / 2
        bend = max(abs(x2 - x1) / 2, 30.0)
        parts.append(
            f'<path class="edge {escape(arrow.kind)}" data-source="{escape(arrow.source)}" '
            f'data-target="{escape(arrow.target)}" marker-end="url(#arrow)" '
            f'd="M {x1:.1f} {y1:.1f} C {x1 + bend:.1f} {y1:.1f}, {x2 - bend:.1f} {y2:.1f}, '
            f'{x2:.1f} {y2:.1f}"/>'
        )
    for node in nodes:
        (x, y), (w, h) = corners[node.id], sizes[node.id]
        box = [
            f'<g class="node {escape(node.kind)}" data-id="{escape(node.id)}">',
            f"<title>{escape(node.title or node.id)}</title>",
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6"/>',
        ]
        for i, line in enumerate(node.lines):
            weight = ' font-weight="bold"' if i == 0 else ""
            box.append(
                f'<text x="{x + PAD:.1f}" y="{y + PAD + 8 + i * LINE_HEIGHT:.1f}"{weight}>'
                f"{escape(line)}</text>"
            )
        box.append("</g>")
        body = "".join(box)
        if node.href:
            body = f'<a href="{escape(node.href)}">{body}</a>'
        parts.append(body)
    parts.append("</svg>")
    return "\n".join(parts)
