"""The circuit document: what a user saves, and its shape check.

A circuit is a JSON object with four lists::

    {
      "inputs":  ["a", "b"],
      "outputs": ["sum", "carry"],
      "gates":   [{"id": "x1", "type": "XOR"}, {"id": "a1", "type": "AND"}],
      "wires":   [{"from": "a", "to": "x1"}, {"from": "b", "to": "x1"},
                  {"from": "a", "to": "a1"}, {"from": "b", "to": "a1"},
                  {"from": "x1", "to": "sum"}, {"from": "a1", "to": "carry"}]
    }

Names of inputs, outputs and gates share one namespace. A wire runs from an input or a
gate to a gate or an output. :func:`parse_circuit` checks only the *shape* (types, names,
gate types), so that a half-finished drawing can be saved; whether the wiring makes a
circuit that can run (no cycle, no dangling wire, every pin driven) is the simulator's
question (:func:`cvtrace.demo.simulator.compile_circuit`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GATE_TYPES = ("AND", "OR", "NOT", "NAND", "NOR", "XOR")
"""The gate types the simulator evaluates."""

MAX_NODES = 2000
"""The most inputs, outputs and gates one circuit may hold."""

MAX_WIRES = 8000
"""The most wires one circuit may hold."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-\[\]]{0,63}$")


class CircuitError(ValueError):
    """A circuit document is malformed, or its wiring cannot be simulated.

    The message says what is wrong and where, for a 400 response.
    """


@dataclass(frozen=True)
class Gate:
    """One gate: a unique id and one of :data:`GATE_TYPES`."""

    id: str
    type: str


@dataclass(frozen=True)
class Wire:
    """A wire from a source (input or gate) to a sink (gate or output)."""

    source: str
    target: str


@dataclass(frozen=True)
class Netlist:
    """A parsed circuit document, its netlist (see the module docstring)."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    gates: tuple[Gate, ...]
    wires: tuple[Wire, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the document form, as stored and as sent to the preview service."""
        return {
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "gates": [{"id": g.id, "type": g.type} for g in self.gates],
            "wires": [{"from": w.source, "to": w.target} for w in self.wires],
        }


def _names(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        msg = f"circuit.{key} must be a list of names, got {type(value).__name__}"
        raise CircuitError(msg)
    for i, name in enumerate(value):
        _check_name(name, f"circuit.{key}[{i}]")
    return tuple(value)


def _check_name(name: object, where: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        msg = (
            f"{where}: {name!r} is not a valid name (a letter or _, then up to 63 letters, "
            "digits or _.-[])"
        )
        raise CircuitError(msg)


def parse_circuit(doc: object) -> Netlist:
    """Check the shape of a circuit document and return it parsed.

    Args:
        doc: the decoded JSON value.

    Returns:
        The circuit. Its wiring is not checked here.

    Raises:
        CircuitError: the document is not an object of the documented shape, a name is
            invalid or used twice, or a gate type is unknown.
    """
    if not isinstance(doc, Mapping):
        msg = f"circuit must be a JSON object, got {type(doc).__name__}"
        raise CircuitError(msg)
    unknown = sorted(set(doc) - {"inputs", "outputs", "gates", "wires"})
    if unknown:
        msg = f"circuit has unknown keys {unknown}; expected inputs, outputs, gates, wires"
        raise CircuitError(msg)
    inputs = _names(doc, "inputs")
    outputs = _names(doc, "outputs")
    raw_gates = doc.get("gates", [])
    if not isinstance(raw_gates, list):
        msg = f"circuit.gates must be a list, got {type(raw_gates).__name__}"
        raise CircuitError(msg)
    gates = []
    for i, raw in enumerate(raw_gates):
        if not isinstance(raw, Mapping) or set(raw) != {"id", "type"}:
            msg = f'circuit.gates[{i}] must be an object {{"id": ..., "type": ...}}'
            raise CircuitError(msg)
        _check_name(raw["id"], f"circuit.gates[{i}].id")
        gate_type = raw["type"]
        if gate_type not in GATE_TYPES:
            msg = (
                f"circuit.gates[{i}].type: unknown gate type {gate_type!r}; "
                f"expected one of {', '.join(GATE_TYPES)}"
            )
            raise CircuitError(msg)
        gates.append(Gate(id=raw["id"], type=gate_type))
    raw_wires = doc.get("wires", [])
    if not isinstance(raw_wires, list):
        msg = f"circuit.wires must be a list, got {type(raw_wires).__name__}"
        raise CircuitError(msg)
    wires = []
    for i, raw in enumerate(raw_wires):
        if (
            not isinstance(raw, Mapping)
            or set(raw) != {"from", "to"}
            or not isinstance(raw["from"], str)
            or not isinstance(raw["to"], str)
        ):
            msg = f'circuit.wires[{i}] must be an object {{"from": name, "to": name}}'
            raise CircuitError(msg)
        wires.append(Wire(source=raw["from"], target=raw["to"]))
    seen: set[str] = set()
    for name in (*inputs, *outputs, *(g.id for g in gates)):
        if name in seen:
            msg = (
                f"circuit: the name {name!r} is used twice (inputs, outputs and gates share names)"
            )
            raise CircuitError(msg)
        seen.add(name)
    if len(seen) > MAX_NODES or len(wires) > MAX_WIRES:
        msg = (
            f"circuit is too large: {len(seen)} nodes and {len(wires)} wires "
            f"(limits {MAX_NODES} and {MAX_WIRES})"
        )
        raise CircuitError(msg)
    return Netlist(inputs=inputs, outputs=outputs, gates=tuple(gates), wires=tuple(wires))
