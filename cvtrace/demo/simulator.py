"""Evaluate a circuit's gate network.

:func:`compile_circuit` checks the wiring and orders the gates topologically (Kahn's
algorithm); :func:`simulate` then evaluates each gate once, in that order. Circuits with
feedback (an SR latch, a ring oscillator) have no topological order: they are rejected
with a :class:`~cvtrace.demo.document.CircuitError` that names the cycle, since their outputs
depend on state and timing that a combinational simulator does not model.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from cvtrace.demo.document import CircuitError, Netlist


@dataclass(frozen=True)
class CompiledCircuit:
    """A circuit whose wiring is valid, with its gates in evaluation order."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    order: tuple[tuple[str, str, tuple[str, ...]], ...]
    """(gate id, gate type, source names) per gate, each after all its sources."""
    drivers: Mapping[str, str]
    """The source driving each output."""


def _evaluate(gate_type: str, values: list[bool]) -> bool:
    if gate_type == "AND":
        return all(values)
    if gate_type == "OR":
        return any(values)
    if gate_type == "NOT":
        return not values[0]
    if gate_type == "NAND":
        return not all(values)
    if gate_type == "NOR":
        return not any(values)
    if gate_type == "XOR":
        return sum(values) % 2 == 1
    msg = f"unknown gate type {gate_type!r}"  # parse_circuit lets none through
    raise CircuitError(msg)


def _find_cycle(remaining: set[str], sources: Mapping[str, list[str]]) -> list[str]:
    """Return one cycle among ``remaining`` gates, as a path that ends where it starts."""
    # Every remaining gate has a remaining source (else Kahn would have freed it), so
    # walking backwards through remaining sources must revisit a gate.
    start = min(remaining)
    path: list[str] = []
    position: dict[str, int] = {}
    node = start
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(s for s in sources[node] if s in remaining)
    cycle = [*path[position[node] :], node]
    cycle.reverse()  # signal flow order: each gate drives the next
    return cycle


def compile_circuit(circuit: Netlist) -> CompiledCircuit:
    """Check a circuit's wiring and order its gates for evaluation.

    Raises:
        CircuitError: a wire is dangling (an end names nothing) or runs the wrong way, a
            gate has the wrong number of inputs, an output is not driven exactly once, or
            the gates form a cycle.
    """
    gate_types = {g.id: g.type for g in circuit.gates}
    input_names = set(circuit.inputs)
    output_names = set(circuit.outputs)
    sources: dict[str, list[str]] = {g.id: [] for g in circuit.gates}
    drivers: dict[str, list[str]] = {name: [] for name in circuit.outputs}
    fanout: dict[str, list[str]] = {g.id: [] for g in circuit.gates}
    for i, wire in enumerate(circuit.wires):
        if wire.source in output_names:
            msg = f"wires[{i}] starts at output {wire.source!r}; outputs cannot drive wires"
            raise CircuitError(msg)
        if wire.source not in input_names and wire.source not in gate_types:
            msg = (
                f"dangling wire: wires[{i}] starts at {wire.source!r}, "
                "which is not an input or a gate"
            )
            raise CircuitError(msg)
        if wire.target in input_names:
            msg = f"wires[{i}] ends at input {wire.target!r}; inputs cannot be driven"
            raise CircuitError(msg)
        if wire.target in drivers:
            drivers[wire.target].append(wire.source)
        elif wire.target in sources:
            sources[wire.target].append(wire.source)
            if wire.source in fanout:
                fanout[wire.source].append(wire.target)
        else:
            msg = (
                f"dangling wire: wires[{i}] ends at {wire.target!r}, "
                "which is not a gate or an output"
            )
            raise CircuitError(msg)
    for gate_id, gate_sources in sources.items():
        gate_type = gate_types[gate_id]
        if gate_type == "NOT" and len(gate_sources) != 1:
            msg = f"gate {gate_id!r} (NOT) needs exactly 1 input wire, has {len(gate_sources)}"
            raise CircuitError(msg)
        if gate_type != "NOT" and len(gate_sources) < 2:
            msg = (
                f"gate {gate_id!r} ({gate_type}) needs at least 2 input wires, "
                f"has {len(gate_sources)}"
            )
            raise CircuitError(msg)
    for name, output_drivers in drivers.items():
        if len(output_drivers) != 1:
            msg = f"output {name!r} must be driven by exactly 1 wire, has {len(output_drivers)}"
            raise CircuitError(msg)

    pending = {
        gate_id: sum(1 for s in gate_sources if s in gate_types)
        for gate_id, gate_sources in sources.items()
    }
    ready = deque(g.id for g in circuit.gates if pending[g.id] == 0)
    order: list[tuple[str, str, tuple[str, ...]]] = []
    while ready:
        gate_id = ready.popleft()
        order.append((gate_id, gate_types[gate_id], tuple(sources[gate_id])))
        for successor in fanout[gate_id]:
            pending[successor] -= 1
            if pending[successor] == 0:
                ready.append(successor)
    if len(order) != len(gate_types):
        done = {gate_id for gate_id, _, _ in order}
        cycle = _find_cycle(set(gate_types) - done, sources)
        msg = (
            f"the circuit has a cycle ({' -> '.join(cycle)}); feedback loops such as "
            "latches cannot be simulated"
        )
        raise CircuitError(msg)
    return CompiledCircuit(
        inputs=circuit.inputs,
        outputs=circuit.outputs,
        order=tuple(order),
        drivers={name: ds[0] for name, ds in drivers.items()},
    )


def _as_bit(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    msg = f"input {name!r}: expected 0, 1, true or false, got {value!r}"
    raise CircuitError(msg)


def simulate(compiled: CompiledCircuit, inputs: Mapping[str, object]) -> dict[str, bool]:
    """Evaluate the circuit for one assignment of its inputs.

    Args:
        compiled: the circuit, from :func:`compile_circuit`.
        inputs: a value (0, 1, true or false) for every input, and nothing else.

    Returns:
        The value of each output.

    Raises:
        CircuitError: an input is missing, unknown, or not a bit.
    """
    missing = [name for name in compiled.inputs if name not in inputs]
    if missing:
        msg = f"missing values for inputs {missing}"
        raise CircuitError(msg)
    unknown = sorted(set(inputs) - set(compiled.inputs))
    if unknown:
        msg = f"unknown inputs {unknown}; the circuit's inputs are {list(compiled.inputs)}"
        raise CircuitError(msg)
    values = {name: _as_bit(name, inputs[name]) for name in compiled.inputs}
    for gate_id, gate_type, gate_sources in compiled.order:
        values[gate_id] = _evaluate(gate_type, [values[s] for s in gate_sources])
    return {name: values[source] for name, source in compiled.drivers.items()}


def truth_table(compiled: CompiledCircuit) -> list[tuple[tuple[bool, ...], tuple[bool, ...]]]:
    """Return (input values, output values) for every input assignment, in binary order."""
    rows = []
    for bits in itertools.product((False, True), repeat=len(compiled.inputs)):
        outputs = simulate(compiled, dict(zip(compiled.inputs, bits, strict=True)))
        rows.append((bits, tuple(outputs[name] for name in compiled.outputs)))
    return rows
