"""The preview service and its SVG drawing."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from flask.testing import FlaskClient

from cvtrace.demo import examples, preview_service
from cvtrace.demo.document import parse_circuit
from cvtrace.demo.svg import MAX_RENDER_GATES, TooLargeToRender, render_svg
from tests.demo.support import json_body

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def client() -> FlaskClient:
    return preview_service.create_app().test_client()


def test_drawing_has_a_box_per_gate_and_a_curve_per_wire() -> None:
    document = examples.full_adder()
    root = ET.fromstring(render_svg(parse_circuit(document), "Full <adder>"))
    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f"{SVG}rect")) == 1 + len(document["gates"])  # background + gates
    assert len(root.findall(f"{SVG}path")) == len(document["wires"])
    texts = [t.text for t in root.findall(f"{SVG}text")]
    assert "Full <adder>" in texts  # escaped in the SVG, intact once parsed
    assert {"a", "b", "cin", "sum", "cout"} <= set(texts)


def test_inputs_left_of_gates_left_of_outputs() -> None:
    root = ET.fromstring(render_svg(parse_circuit(examples.half_adder())))
    circles = root.findall(f"{SVG}circle")
    gates = root.findall(f"{SVG}rect")[1:]
    input_x = max(float(c.get("cx", 0)) for c in circles[:2])
    output_x = min(float(c.get("cx", 0)) for c in circles[2:])
    gate_xs = [float(g.get("x", 0)) for g in gates]
    assert input_x < min(gate_xs) <= max(gate_xs) < output_x


def test_drafts_with_cycles_and_dangling_wires_are_drawn() -> None:
    document = examples.sr_latch()
    document["wires"].append({"from": "nowhere", "to": "q_nor"})
    root = ET.fromstring(render_svg(parse_circuit(document)))
    assert len(root.findall(f"{SVG}path")) == len(document["wires"]) - 1


def test_too_many_gates_is_refused() -> None:
    big = parse_circuit(examples.ripple_carry_adder(64))
    assert len(big.gates) > MAX_RENDER_GATES
    with pytest.raises(TooLargeToRender, match="circuit has 320 gates"):
        render_svg(big)


class TestService:
    def test_render(self, client: FlaskClient) -> None:
        response = client.post(
            "/render", json={"circuit": examples.majority(), "title": "Majority"}
        )
        assert response.status_code == 200
        assert response.mimetype == "image/svg+xml"
        assert ET.fromstring(response.text).tag == f"{SVG}svg"

    def test_up(self, client: FlaskClient) -> None:
        assert client.get("/up").text == "ok\n"

    @pytest.mark.parametrize(
        ("payload", "status", "message"),
        [
            ([1], 400, "the body must be a JSON object"),
            ({"circuit": {"gates": "x"}}, 400, "circuit.gates must be a list"),
            ({"circuit": {}, "title": 3}, 400, "title must be a string"),
            ({"circuit": examples.ripple_carry_adder(64)}, 413, "previews are limited to 256"),
        ],
    )
    def test_bad_requests(
        self, client: FlaskClient, payload: object, status: int, message: str
    ) -> None:
        response = client.post("/render", json=payload)
        assert response.status_code == status
        assert message in json_body(response)["error"]["message"]
