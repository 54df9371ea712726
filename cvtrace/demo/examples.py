"""Well-known circuits, built as documents: the seed data and the tests' fixtures."""

from __future__ import annotations

from typing import Any


class _Builder:
    """Collects inputs, outputs, gates and wires; names gates g1, g2, ... in order."""

    def __init__(self, inputs: list[str]) -> None:
        self.inputs = list(inputs)
        self.outputs: list[str] = []
        self.gates: list[dict[str, str]] = []
        self.wires: list[dict[str, str]] = []

    def gate(self, gate_type: str, *sources: str, name: str | None = None) -> str:
        gate_id = name or f"g{len(self.gates) + 1}"
        self.gates.append({"id": gate_id, "type": gate_type})
        self.wires.extend({"from": s, "to": gate_id} for s in sources)
        return gate_id

    def output(self, name: str, source: str) -> None:
        self.outputs.append(name)
        self.wires.append({"from": source, "to": name})

    def doc(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "outputs": self.outputs,
            "gates": self.gates,
            "wires": self.wires,
        }


def half_adder() -> dict[str, Any]:
    """Inputs a, b; outputs sum = a XOR b, carry = a AND b."""
    b = _Builder(["a", "b"])
    b.output("sum", b.gate("XOR", "a", "b"))
    b.output("carry", b.gate("AND", "a", "b"))
    return b.doc()


def _full_adder_into(b: _Builder, x: str, y: str, carry_in: str) -> tuple[str, str]:
    partial = b.gate("XOR", x, y)
    total = b.gate("XOR", partial, carry_in)
    carry = b.gate("OR", b.gate("AND", x, y), b.gate("AND", partial, carry_in))
    return total, carry


def full_adder() -> dict[str, Any]:
    """Inputs a, b, cin; outputs sum and cout."""
    b = _Builder(["a", "b", "cin"])
    total, carry = _full_adder_into(b, "a", "b", "cin")
    b.output("sum", total)
    b.output("cout", carry)
    return b.doc()


def ripple_carry_adder(bits: int) -> dict[str, Any]:
    """An n-bit adder: inputs a0.., b0.., cin; outputs s0.. and cout (5 gates a bit)."""
    b = _Builder([f"a{i}" for i in range(bits)] + [f"b{i}" for i in range(bits)] + ["cin"])
    carry = "cin"
    for i in range(bits):
        total, carry = _full_adder_into(b, f"a{i}", f"b{i}", carry)
        b.output(f"s{i}", total)
    b.output("cout", carry)
    return b.doc()


def multiplexer(select_bits: int) -> dict[str, Any]:
    """A 2**k-to-1 multiplexer: inputs d0.., s0..; output y."""
    ways = 1 << select_bits
    selects = [f"s{i}" for i in range(select_bits)]
    b = _Builder([f"d{i}" for i in range(ways)] + selects)
    inverted = [b.gate("NOT", s) for s in selects]
    terms = []
    for way in range(ways):
        lines = [selects[i] if way >> i & 1 else inverted[i] for i in range(select_bits)]
        terms.append(b.gate("AND", f"d{way}", *lines))
    b.output("y", b.gate("OR", *terms) if len(terms) > 1 else terms[0])
    return b.doc()


def decoder(bits: int) -> dict[str, Any]:
    """An n-to-2**n decoder with enable: inputs x0.., en; outputs y0.."""
    names = [f"x{i}" for i in range(bits)]
    b = _Builder([*names, "en"])
    inverted = [b.gate("NOT", x) for x in names]
    for line in range(1 << bits):
        lines = [names[i] if line >> i & 1 else inverted[i] for i in range(bits)]
        b.output(f"y{line}", b.gate("AND", "en", *lines))
    return b.doc()


def parity(bits: int) -> dict[str, Any]:
    """Even-parity generator from a chain of 2-input XORs: output p."""
    names = [f"x{i}" for i in range(bits)]
    b = _Builder(names)
    acc = names[0]
    for name in names[1:]:
        acc = b.gate("XOR", acc, name)
    b.output("p", acc)
    return b.doc()


def majority() -> dict[str, Any]:
    """Three-input majority vote: output m is 1 when at least two inputs are 1."""
    b = _Builder(["a", "b", "c"])
    pairs = [b.gate("AND", "a", "b"), b.gate("AND", "a", "c"), b.gate("AND", "b", "c")]
    b.output("m", b.gate("OR", *pairs))
    return b.doc()


def equality_comparator(bits: int) -> dict[str, Any]:
    """Inputs a0.., b0..; output eq is 1 when a == b (XNOR per bit, then AND)."""
    b = _Builder([f"a{i}" for i in range(bits)] + [f"b{i}" for i in range(bits)])
    same = [b.gate("NOT", b.gate("XOR", f"a{i}", f"b{i}")) for i in range(bits)]
    b.output("eq", b.gate("AND", *same) if bits > 1 else same[0])
    return b.doc()


def xor_from_nands() -> dict[str, Any]:
    """XOR built from four NAND gates, the classic exercise."""
    b = _Builder(["a", "b"])
    n1 = b.gate("NAND", "a", "b")
    b.output("y", b.gate("NAND", b.gate("NAND", "a", n1), b.gate("NAND", "b", n1)))
    return b.doc()


def sr_latch() -> dict[str, Any]:
    """Two cross-coupled NOR gates: a latch, which has a cycle and cannot be simulated."""
    b = _Builder(["s", "r"])
    b.gates += [{"id": "q_nor", "type": "NOR"}, {"id": "qbar_nor", "type": "NOR"}]
    b.wires += [
        {"from": "r", "to": "q_nor"},
        {"from": "qbar_nor", "to": "q_nor"},
        {"from": "s", "to": "qbar_nor"},
        {"from": "q_nor", "to": "qbar_nor"},
    ]
    b.output("q", "q_nor")
    b.output("q_bar", "qbar_nor")
    return b.doc()
