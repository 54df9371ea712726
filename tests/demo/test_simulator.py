"""The circuit document check and the gate-network simulator."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from cvtrace.demo import examples
from cvtrace.demo.document import CircuitError, parse_circuit
from cvtrace.demo.simulator import compile_circuit, simulate, truth_table


def run(document: dict[str, Any], **inputs: int) -> dict[str, int]:
    outputs = simulate(compile_circuit(parse_circuit(document)), inputs)
    return {name: int(value) for name, value in outputs.items()}


def compile_error(document: dict[str, Any]) -> str:
    with pytest.raises(CircuitError) as info:
        compile_circuit(parse_circuit(document))
    return str(info.value)


class TestKnownCircuits:
    def test_half_adder_truth_table(self) -> None:
        table = truth_table(compile_circuit(parse_circuit(examples.half_adder())))
        assert [(tuple(map(int, i)), tuple(map(int, o))) for i, o in table] == [
            ((0, 0), (0, 0)),
            ((0, 1), (1, 0)),
            ((1, 0), (1, 0)),
            ((1, 1), (0, 1)),
        ]

    def test_full_adder_truth_table(self) -> None:
        for a, b, cin in itertools.product((0, 1), repeat=3):
            total = a + b + cin
            assert run(examples.full_adder(), a=a, b=b, cin=cin) == {
                "sum": total % 2,
                "cout": total // 2,
            }

    def test_four_bit_ripple_carry_adder_adds(self) -> None:
        compiled = compile_circuit(parse_circuit(examples.ripple_carry_adder(4)))
        for x, y, cin in itertools.product(range(16), range(16), (0, 1)):
            inputs = {f"a{i}": x >> i & 1 for i in range(4)}
            inputs |= {f"b{i}": y >> i & 1 for i in range(4)}
            inputs["cin"] = cin
            out = simulate(compiled, inputs)
            value = sum(int(out[f"s{i}"]) << i for i in range(4)) + (int(out["cout"]) << 4)
            assert value == x + y + cin

    def test_multiplexer_selects(self) -> None:
        for data, select in itertools.product(range(16), range(4)):
            inputs = {f"d{i}": data >> i & 1 for i in range(4)}
            inputs |= {"s0": select & 1, "s1": select >> 1}
            assert run(examples.multiplexer(2), **inputs) == {"y": data >> select & 1}

    def test_decoder_is_one_hot_when_enabled(self) -> None:
        for x, en in itertools.product(range(4), (0, 1)):
            out = run(examples.decoder(2), x0=x & 1, x1=x >> 1, en=en)
            assert out == {f"y{i}": int(en == 1 and i == x) for i in range(4)}

    def test_every_gate_type_with_three_inputs(self) -> None:
        gates: list[tuple[str, Callable[[tuple[int, ...]], bool]]] = [
            ("AND", lambda bits: all(bits)),
            ("OR", lambda bits: any(bits)),
            ("NAND", lambda bits: not all(bits)),
            ("NOR", lambda bits: not any(bits)),
            ("XOR", lambda bits: sum(bits) % 2 == 1),
        ]
        for gate_type, expected in gates:
            document = {
                "inputs": ["a", "b", "c"],
                "outputs": ["y"],
                "gates": [{"id": "g", "type": gate_type}],
                "wires": [{"from": n, "to": "g"} for n in "abc"] + [{"from": "g", "to": "y"}],
            }
            for bits in itertools.product((0, 1), repeat=3):
                assert run(document, a=bits[0], b=bits[1], c=bits[2]) == {
                    "y": int(expected(bits))
                }, (gate_type, bits)

    def test_xor_from_nands_and_majority(self) -> None:
        for a, b, c in itertools.product((0, 1), repeat=3):
            assert run(examples.xor_from_nands(), a=a, b=b) == {"y": a ^ b}
            assert run(examples.majority(), a=a, b=b, c=c) == {"m": int(a + b + c >= 2)}

    def test_gate_declared_after_its_consumer_is_still_evaluated_first(self) -> None:
        document = {
            "inputs": ["a"],
            "outputs": ["y"],
            "gates": [{"id": "second", "type": "NOT"}, {"id": "first", "type": "NOT"}],
            "wires": [
                {"from": "first", "to": "second"},
                {"from": "a", "to": "first"},
                {"from": "second", "to": "y"},
            ],
        }
        assert run(document, a=1) == {"y": 1}
        assert run(document, a=0) == {"y": 0}


class TestWiringErrors:
    def test_sr_latch_is_rejected_as_a_cycle_naming_its_gates(self) -> None:
        message = compile_error(examples.sr_latch())
        assert "cycle" in message
        assert "q_nor" in message
        assert "qbar_nor" in message

    def test_dangling_wire_source(self) -> None:
        document = examples.half_adder()
        document["wires"].append({"from": "nowhere", "to": "g1"})
        assert "dangling wire: wires[6] starts at 'nowhere'" in compile_error(document)

    def test_dangling_wire_target(self) -> None:
        document = examples.half_adder()
        document["wires"].append({"from": "a", "to": "missing_gate"})
        assert "dangling wire: wires[6] ends at 'missing_gate'" in compile_error(document)

    def test_unconnected_output(self) -> None:
        document = examples.half_adder()
        document["outputs"].append("overflow")
        assert "output 'overflow' must be driven by exactly 1 wire, has 0" in compile_error(
            document
        )

    def test_gate_arity(self) -> None:
        document = {
            "inputs": ["a", "b"],
            "outputs": ["y"],
            "gates": [{"id": "n", "type": "NOT"}],
            "wires": [{"from": "a", "to": "n"}, {"from": "b", "to": "n"}, {"from": "n", "to": "y"}],
        }
        assert "gate 'n' (NOT) needs exactly 1 input wire, has 2" in compile_error(document)
        document["gates"] = [{"id": "n", "type": "AND"}]
        document["wires"] = [{"from": "a", "to": "n"}, {"from": "n", "to": "y"}]
        assert "gate 'n' (AND) needs at least 2 input wires, has 1" in compile_error(document)

    def test_wires_running_the_wrong_way(self) -> None:
        document = examples.half_adder()
        document["wires"].append({"from": "sum", "to": "g1"})
        assert "outputs cannot drive wires" in compile_error(document)
        document = examples.half_adder()
        document["wires"].append({"from": "g1", "to": "a"})
        assert "inputs cannot be driven" in compile_error(document)


class TestInputs:
    def test_missing_unknown_and_non_bit_inputs(self) -> None:
        compiled = compile_circuit(parse_circuit(examples.half_adder()))
        with pytest.raises(CircuitError, match=r"missing values for inputs \['b'\]"):
            simulate(compiled, {"a": 1})
        with pytest.raises(CircuitError, match=r"unknown inputs \['c'\]"):
            simulate(compiled, {"a": 1, "b": 0, "c": 1})
        with pytest.raises(CircuitError, match="input 'a': expected 0, 1, true or false"):
            simulate(compiled, {"a": 2, "b": 0})
        assert simulate(compiled, {"a": True, "b": False}) == {"sum": True, "carry": False}


class TestDocumentShape:
    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ([], "circuit must be a JSON object"),
            ({"inputs": "a"}, "circuit.inputs must be a list"),
            ({"inputs": ["1a"]}, "circuit.inputs[0]: '1a' is not a valid name"),
            ({"gates": [{"id": "g", "type": "XNOR"}]}, "unknown gate type 'XNOR'"),
            ({"gates": [{"id": "g"}]}, "circuit.gates[0] must be an object"),
            ({"wires": [{"from": "a"}]}, "circuit.wires[0] must be an object"),
            ({"inputs": ["a"], "outputs": ["a"]}, "the name 'a' is used twice"),
            ({"nodes": []}, "unknown keys ['nodes']"),
        ],
    )
    def test_bad_documents_are_refused_with_a_message(self, document: Any, message: str) -> None:
        with pytest.raises(CircuitError) as info:
            parse_circuit(document)
        assert message in str(info.value)

    def test_round_trip(self) -> None:
        document = examples.full_adder()
        assert parse_circuit(document).to_json() == document
