"""The resource graph as Mermaid or Graphviz DOT text.

``nodes`` is any iterable of objects with ``address``, ``kind`` and ``depends_on`` attributes (a plan's
``Change`` works), of ``(address, kind, depends_on)`` tuples, or of mappings with those keys.
Edges go from a dependency to its dependent (feature view -> model -> deployment -> monitor).
Output is deterministic: nodes sorted by address, edges by (from, to).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["GraphNode", "normalize_nodes", "node_ids", "to_mermaid", "to_dot", "to_svg"]

# How a node is drawn depends on the role its kind declares (``Kind(style=...)``: data, model, service,
# watch); the core knows roles, not kinds. Unknown roles fall back to grey boxes, missing dependencies
# are dashed.
STYLE_COLORS = {"data": "#dbeafe", "model": "#fde68a", "service": "#bbf7d0", "watch": "#e9d5ff"}
_DEFAULT_COLOR = "#e5e7eb"
MISSING_KIND = "missing"
_MERMAID_SHAPES = {  # (open, close)
    "data": ('[("', '")]'),  # cylinder
    "model": ('("', '")'),  # rounded
    "service": ('{{"', '"}}'),  # hexagon
    "watch": ('(["', '"])'),  # stadium
}
_DOT_SHAPES = {"data": "cylinder", "model": "box", "service": "hexagon", "watch": "ellipse"}
_MERMAID_RESERVED = {"end", "graph", "flowchart", "subgraph", "style", "class", "classdef", "click",
                     "linkstyle", "direction", "default", "node", "edge", "digraph", "strict"}


@dataclass(frozen=True)
class GraphNode:
    address: str
    kind: str
    depends_on: tuple[str, ...] = ()


def _one(node) -> GraphNode:
    if isinstance(node, GraphNode):
        return node
    if isinstance(node, Mapping):
        address, kind, deps = node["address"], node["kind"], node.get("depends_on", ())
    elif hasattr(node, "address") and hasattr(node, "kind"):
        address, kind, deps = node.address, node.kind, getattr(node, "depends_on", ())
    elif isinstance(node, Sequence) and not isinstance(node, str) and len(node) in (2, 3):
        address, kind, deps = (tuple(node) + ((),))[:3]
    else:
        raise TypeError(f"graph node must be (address, kind, depends_on) or have those attributes, got {node!r}")
    if isinstance(deps, str):
        deps = (deps,)
    return GraphNode(str(address), str(kind), tuple(str(d) for d in (deps or ())))


def normalize_nodes(nodes: Iterable) -> list[GraphNode]:
    """Nodes sorted by address; a repeated address merges its dependencies; unknown dependencies
    become nodes of kind ``missing`` so the edge stays visible."""
    merged: dict[str, GraphNode] = {}
    for raw in nodes:
        node = _one(raw)
        if node.address in merged:
            old = merged[node.address]
            node = GraphNode(node.address, node.kind, tuple(dict.fromkeys(old.depends_on + node.depends_on)))
        merged[node.address] = node
    for node in list(merged.values()):
        for dep in node.depends_on:
            if dep not in merged:
                merged[dep] = GraphNode(dep, MISSING_KIND)
    return [merged[a] for a in sorted(merged)]


def node_ids(addresses: Iterable[str]) -> dict[str, str]:
    """A unique, safe identifier (``[A-Za-z0-9_]``, not starting with a digit) for each address."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for address in sorted(set(addresses)):
        base = re.sub(r"[^A-Za-z0-9_]", "_", address) or "node"
        if base[0].isdigit() or base.lower() in _MERMAID_RESERVED:
            base = "n_" + base
        candidate, i = base, 2
        while candidate in used:
            candidate, i = f"{base}_{i}", i + 1
        used.add(candidate)
        ids[address] = candidate
    return ids


def _edges(nodes: list[GraphNode]) -> list[tuple[str, str]]:
    return sorted({(dep, n.address) for n in nodes for dep in n.depends_on})


def _class_name(kind: str) -> str:
    return "kind_" + re.sub(r"[^A-Za-z0-9_]", "_", kind)


def to_mermaid(nodes: Iterable, *, direction: str = "LR", styles: Mapping[str, str | None] | None = None) -> str:
    """A Mermaid ``flowchart``: one node per resource (label = address), shaped and coloured by the role of
    its kind (``styles``: address prefix such as ``featureview`` -> role)."""
    styles = styles or {}
    graph = normalize_nodes(nodes)
    ids = node_ids(n.address for n in graph)
    lines = [f"flowchart {direction}"]
    for n in graph:
        label = n.address.replace('"', "#quot;")
        open_, close = _MERMAID_SHAPES.get(styles.get(n.kind) or "", ('["', '"]'))
        lines.append(f"    {ids[n.address]}{open_}{label}{close}")
    for src, dst in _edges(graph):
        lines.append(f"    {ids[src]} --> {ids[dst]}")
    by_kind: dict[str, list[str]] = {}
    for n in graph:
        by_kind.setdefault(n.kind, []).append(ids[n.address])
    for kind in sorted(by_kind):
        style = f"fill:{STYLE_COLORS.get(styles.get(kind) or '', _DEFAULT_COLOR)},stroke:#374151"
        if kind == MISSING_KIND:
            style = "fill:#ffffff,stroke:#9ca3af,stroke-dasharray:4 3"
        lines.append(f"    classDef {_class_name(kind)} {style}")
        lines.append(f"    class {','.join(by_kind[kind])} {_class_name(kind)}")
    return "\n".join(lines) + "\n"


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(nodes: Iterable, *, name: str = "ml", styles: Mapping[str, str | None] | None = None) -> str:
    """A Graphviz ``digraph``: one cluster per kind, node label = address, edges dependency -> dependent;
    shapes and colours by the role of the kind (``styles``, as for :func:`to_mermaid`)."""
    styles = styles or {}
    graph = normalize_nodes(nodes)
    ids = node_ids(n.address for n in graph)
    lines = [
        f"digraph {_dot_str(name)} {{",
        "    rankdir=LR;",
        '    node [style="filled,rounded", fontname="Helvetica"];',
    ]
    by_kind: dict[str, list[GraphNode]] = {}
    for n in graph:
        by_kind.setdefault(n.kind, []).append(n)
    for kind in sorted(by_kind):
        lines.append(f"    subgraph {_dot_str('cluster_' + kind)} {{")
        lines.append(f"        label={_dot_str(kind)};")
        lines.append("        style=dashed;")
        for n in by_kind[kind]:
            attrs = [f"label={_dot_str(n.address)}", f"shape={_DOT_SHAPES.get(styles.get(kind) or '', 'box')}"]
            if kind == MISSING_KIND:
                attrs.append('style="dashed"')
                attrs.append('fillcolor="#ffffff"')
            else:
                attrs.append(f"fillcolor={_dot_str(STYLE_COLORS.get(styles.get(kind) or '', _DEFAULT_COLOR))}")
            lines.append(f"        {ids[n.address]} [{', '.join(attrs)}];")
        lines.append("    }")
    for src, dst in _edges(graph):
        lines.append(f"    {ids[src]} -> {ids[dst]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _layers(graph: list[GraphNode]) -> dict[str, int]:
    """Each node's column: the length of the longest dependency chain leading to it."""
    by_address = {n.address: n for n in graph}
    depth: dict[str, int] = {}

    def visit(address: str, trail: frozenset) -> int:
        if address in depth:
            return depth[address]
        if address in trail:  # a cycle (the graph builder refuses them; drawn flat here all the same)
            return 0
        deps = by_address[address].depends_on if address in by_address else ()
        depth[address] = 1 + max((visit(d, trail | {address}) for d in deps), default=-1)
        return depth[address]

    for n in graph:
        visit(n.address, frozenset())
    return depth


def to_svg(nodes: Iterable, *, styles: Mapping[str, str | None] | None = None,
           status: Mapping[str, str] | None = None, link: str | None = None) -> str:
    """The graph as a self-contained SVG: columns by dependency depth, dependencies on the left; boxes
    coloured by the role of their kind (``styles``), outlined by ``status`` (address -> applied |
    in_progress | planned); ``link``, e.g. ``"/resource/{address}"``, makes each box a link."""
    from html import escape

    styles, status = styles or {}, status or {}
    graph = normalize_nodes(nodes)
    depth = _layers(graph)
    columns: dict[int, list[GraphNode]] = {}
    for n in graph:
        columns.setdefault(depth[n.address], []).append(n)
    box_w, box_h, gap_x, gap_y, pad = 210, 40, 60, 16, 12
    position: dict[str, tuple[int, int]] = {}
    for column, members in sorted(columns.items()):
        for row, n in enumerate(members):
            position[n.address] = (pad + column * (box_w + gap_x), pad + row * (box_h + gap_y))
    width = pad * 2 + (max(columns, default=0) + 1) * (box_w + gap_x) - gap_x
    height = pad * 2 + max((len(m) for m in columns.values()), default=1) * (box_h + gap_y) - gap_y
    outline = {"applied": ("#15803d", ""), "in_progress": ("#b45309", "6 3"), "planned": ("#6b7280", "4 3")}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="resource graph" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>']
    for src, dst in _edges(graph):
        (x1, y1), (x2, y2) = position[src], position[dst]
        x1, y1, x2, y2 = x1 + box_w, y1 + box_h // 2, x2, y2 + box_h // 2
        middle = (x1 + x2) // 2
        parts.append(f'<path d="M {x1} {y1} C {middle} {y1}, {middle} {y2}, {x2} {y2}" fill="none" stroke="#9ca3af" '
                     f'stroke-width="1.3" marker-end="url(#arrow)"/>')
    for n in graph:
        x, y = position[n.address]
        fill = "#ffffff" if n.kind == MISSING_KIND else STYLE_COLORS.get(styles.get(n.kind) or "", _DEFAULT_COLOR)
        stroke, dash = outline.get(status.get(n.address, "planned"), outline["planned"])
        label = n.address if len(n.address) <= 30 else n.address[:29] + "…"
        box = (f'<g class="node" data-address="{escape(n.address)}"><title>{escape(n.address)} '
               f'({escape(status.get(n.address, "planned"))})</title>'
               f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="8" fill="{fill}" stroke="{stroke}" '
               f'stroke-width="1.6"{f" stroke-dasharray=" + chr(34) + dash + chr(34) if dash else ""}/>'
               f'<text x="{x + 10}" y="{y + 25}" fill="#111827">{escape(label)}</text></g>')
        if link and n.kind != MISSING_KIND:
            box = f'<a href="{escape(link.format(address=n.address))}">{box}</a>'
        parts.append(box)
    parts.append("</svg>")
    return "".join(parts)
