"""Draw a circuit as an SVG schematic: the preview service's work.

Nodes are placed in columns by depth (inputs left, outputs right, each gate one column
right of its deepest source) and wires drawn as curves. Drafts are drawn as they are: a
cycle is laid out in document order, and a wire whose end names nothing is left out.
"""

from __future__ import annotations

from html import escape

from cvtrace.demo.document import Netlist

MAX_RENDER_GATES = 256
"""The preview service refuses larger circuits (HTTP 413): the drawing would be unreadable."""

_COLUMN_PX = 130
_ROW_PX = 46
_MARGIN_PX = 40
_GATE_W = 64
_GATE_H = 30


class TooLargeToRender(ValueError):
    """The circuit has more gates than :data:`MAX_RENDER_GATES`."""


def _depths(circuit: Netlist) -> dict[str, int]:
    depth = dict.fromkeys(circuit.inputs, 0)
    gate_ids = [g.id for g in circuit.gates]
    sources: dict[str, list[str]] = {g: [] for g in gate_ids}
    for wire in circuit.wires:
        if wire.target in sources:
            sources[wire.target].append(wire.source)
    placed = True
    remaining = list(gate_ids)
    while remaining and placed:  # every gate whose sources are all placed, repeatedly
        placed = False
        for gate_id in list(remaining):
            if all(s in depth or s not in sources for s in sources[gate_id]):
                known = [depth[s] for s in sources[gate_id] if s in depth]
                depth[gate_id] = 1 + max(known, default=0)
                remaining.remove(gate_id)
                placed = True
    for gate_id in remaining:  # gates on a cycle: after whatever of their sources is placed
        depth[gate_id] = 1 + max((depth[s] for s in sources[gate_id] if s in depth), default=0)
    last = max(depth.values(), default=0) + 1
    for name in circuit.outputs:
        depth[name] = last
    return depth


def render_svg(circuit: Netlist, title: str = "") -> str:
    """Return an SVG document drawing ``circuit``.

    Raises:
        TooLargeToRender: the circuit has more than :data:`MAX_RENDER_GATES` gates.
    """
    if len(circuit.gates) > MAX_RENDER_GATES:
        msg = f"circuit has {len(circuit.gates)} gates; previews are limited to {MAX_RENDER_GATES}"
        raise TooLargeToRender(msg)
    depth = _depths(circuit)
    columns: dict[int, list[str]] = {}
    for name in (*circuit.inputs, *(g.id for g in circuit.gates), *circuit.outputs):
        columns.setdefault(depth[name], []).append(name)
    position: dict[str, tuple[int, int]] = {}
    for column, names in columns.items():
        for row, name in enumerate(names):
            position[name] = (_MARGIN_PX + column * _COLUMN_PX, _MARGIN_PX + 20 + row * _ROW_PX)
    width = _MARGIN_PX * 2 + max(columns, default=0) * _COLUMN_PX + _GATE_W
    height = _MARGIN_PX * 2 + 20 + max((len(n) for n in columns.values()), default=1) * _ROW_PX
    gate_types = {g.id: g.type for g in circuit.gates}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#fbfbf8"/>',
        f'<text x="{_MARGIN_PX}" y="24" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for wire in circuit.wires:
        if wire.source not in position or wire.target not in position:
            continue
        x1, y1 = position[wire.source]
        x2, y2 = position[wire.target]
        x1 += _GATE_W if wire.source in gate_types else 8
        mid = (x1 + x2) / 2
        parts.append(
            f'<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" '
            'fill="none" stroke="#557" stroke-width="1.2"/>'
        )
    for name in circuit.inputs:
        x, y = position[name]
        parts.append(f'<circle cx="{x}" cy="{y}" r="7" fill="#2a7"/>')
        parts.append(f'<text x="{x - 10}" y="{y + 4}" text-anchor="end">{escape(name)}</text>')
    for gate_id, gate_type in gate_types.items():
        x, y = position[gate_id]
        parts.append(
            f'<rect x="{x}" y="{y - _GATE_H // 2}" width="{_GATE_W}" height="{_GATE_H}" '
            'rx="6" fill="#fff" stroke="#334"/>'
        )
        parts.append(
            f'<text x="{x + _GATE_W // 2}" y="{y + 4}" text-anchor="middle">{gate_type}</text>'
        )
    for name in circuit.outputs:
        x, y = position[name]
        parts.append(f'<circle cx="{x}" cy="{y}" r="7" fill="#c63"/>')
        parts.append(f'<text x="{x + 12}" y="{y + 4}">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
