"""The demo site's routes, on a real SQLite file and on a real PostgreSQL database (every
test runs on both), with a real preview service over HTTP."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from cvtrace.demo import create_app, examples, preview_service
from cvtrace.demo.db import engine_of
from cvtrace.demo.models import Circuit, Comment, Star, User
from cvtrace.demo.seed import seed
from tests.demo.support import json_body


@pytest.fixture
def preview_url() -> Iterator[str]:
    """The preview service, serving on a free port of 127.0.0.1."""
    server = make_server("127.0.0.1", 0, preview_service.create_app(), threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def app(database_url: str, preview_url: str) -> Iterator[Flask]:
    """The site on a fresh, seeded database (a SQLite file, a PostgreSQL database)."""
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "PREVIEW_URL": preview_url,
            "SECRET_KEY": "test-secret",
        }
    )
    seed(engine_of(app), circuits=40)
    yield app
    app.extensions["demo_jobs"].shutdown()
    engine_of(app).dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def db(app: Flask) -> Session:
    return Session(engine_of(app))


def a_username(app: Flask) -> str:
    with db(app) as session:
        return session.scalars(select(User.username).order_by(User.id)).first() or ""


def circuit_named(app: Flask, name: str) -> int:
    with db(app) as session:
        circuit_id = session.scalar(select(Circuit.id).where(Circuit.name == name))
    assert circuit_id is not None, name
    return circuit_id


def count(app: Flask, model: Any) -> int:
    with db(app) as session:
        return session.scalar(select(func.count(model.id))) or 0


def login(client: FlaskClient, app: Flask) -> str:
    username = a_username(app)
    response = client.post("/login", json={"username": username})
    assert response.status_code == 200, response.json
    return username


def create(client: FlaskClient, document: dict[str, Any], name: str = "Test circuit") -> int:
    response = client.post("/circuits", json={"name": name, "circuit": document})
    assert response.status_code == 201, response.json
    circuit_id: int = json_body(response)["circuit"]["id"]
    assert response.headers["Location"] == f"/circuits/{circuit_id}"
    return circuit_id


JSON = {"Accept": "application/json"}


class TestHealth:
    def test_up_answers_ok(self, client: FlaskClient) -> None:
        response = client.get("/up")
        assert response.status_code == 200
        assert response.text == "ok\n"


class TestListAndSearch:
    def test_pages(self, client: FlaskClient) -> None:
        first = json_body(client.get("/circuits?per_page=10", headers=JSON))
        assert first["total"] == 41  # 40 seeded + the big adder
        assert first["pages"] == 5
        assert len(first["circuits"]) == 10
        last = json_body(client.get("/circuits?per_page=10&page=5", headers=JSON))
        assert len(last["circuits"]) == 1
        ids = {c["id"] for c in first["circuits"]} | {c["id"] for c in last["circuits"]}
        assert len(ids) == 11

    def test_search_matches_name_or_description_case_insensitively(
        self, client: FlaskClient
    ) -> None:
        found = json_body(client.get("/circuits?q=ADDER&per_page=100", headers=JSON))["circuits"]
        assert found
        assert all("adder" in (c["name"] + c["description"]).lower() for c in found)
        assert json_body(client.get("/circuits?q=zzzz-nothing", headers=JSON))["total"] == 0

    def test_search_by_owner_and_sort_by_stars(self, client: FlaskClient, app: Flask) -> None:
        with db(app) as session:
            owner = session.scalars(select(Circuit).order_by(Circuit.id)).first()
            assert owner is not None
            username = owner.owner.username
        found = json_body(client.get(f"/circuits?owner={username}", headers=JSON))["circuits"]
        assert found
        assert {c["owner"] for c in found} == {username}
        by_stars = json_body(client.get("/circuits?sort=stars&per_page=100", headers=JSON))
        stars = [c["stars"] for c in by_stars["circuits"]]
        assert stars == sorted(stars, reverse=True)

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("page=0", "page must be between 1 and 100000, got 0"),
            ("per_page=500", "per_page must be between 1 and 100, got 500"),
            ("page=two", "page must be an integer, got 'two'"),
            ("sort=random", "sort must be one of name, new, stars, got 'random'"),
            ("q=" + "x" * 201, "q is too long"),
        ],
    )
    def test_bad_arguments_are_a_400_with_a_message(
        self, client: FlaskClient, query: str, message: str
    ) -> None:
        response = client.get(f"/circuits?{query}", headers=JSON)
        assert response.status_code == 400
        assert message in json_body(response)["error"]["message"]

    def test_html_list_and_pages(self, client: FlaskClient, app: Flask) -> None:
        response = client.get("/circuits")
        assert response.status_code == 200
        assert response.mimetype == "text/html"
        assert "41 circuits" in response.text
        circuit_id = circuit_named(app, "64-bit ripple-carry adder")
        page = client.get(f"/circuits/{circuit_id}")
        assert "64-bit ripple-carry adder" in page.text
        assert f"/circuits/{circuit_id}/preview.svg" in page.text
        missing = client.get("/circuits/999999")
        assert missing.status_code == 404
        assert "no circuit with id 999999" in missing.text

    def test_equivalence_search_finds_circuits_with_the_same_truth_table(
        self, client: FlaskClient, app: Flask
    ) -> None:
        login(client, app)
        half = create(client, examples.half_adder(), "Reference half adder")
        twin = create(client, examples.half_adder(), "Another half adder")
        full = create(client, examples.full_adder(), "A full adder")
        found = json_body(client.get(f"/circuits?equivalent_to={half}&per_page=100", headers=JSON))
        ids = {c["id"] for c in found["circuits"]}
        assert twin in ids
        assert full not in ids
        assert half not in ids
        latch = create(client, examples.sr_latch(), "Latch")
        refused = client.get(f"/circuits?equivalent_to={latch}", headers=JSON)
        assert refused.status_code == 400
        assert "cannot be simulated" in json_body(refused)["error"]["message"]


class TestUsers:
    def test_sign_up_log_in_and_out(self, client: FlaskClient) -> None:
        created = client.post("/users", json={"username": "new_user", "display_name": "New"})
        assert created.status_code == 201
        assert client.post("/users", json={"username": "new_user"}).status_code == 409
        bad = client.post("/users", json={"username": "No Spaces!"})
        assert bad.status_code == 400
        assert "lowercase letters" in json_body(bad)["error"]["message"]
        assert client.post("/logout", headers=JSON).json == {"ok": True}
        assert client.post("/login", json={"username": "new_user"}).status_code == 200
        unknown = client.post("/login", json={"username": "nobody_here"})
        assert unknown.status_code == 404
        profile = json_body(client.get("/users/new_user", headers=JSON))
        assert profile["user"]["display_name"] == "New"

    def test_html_sign_up_then_create_from_the_form(self, client: FlaskClient) -> None:
        page = client.get("/login")
        assert 'action="/users"' in page.text
        signed_up = client.post("/users", data={"username": "from_form"})
        assert signed_up.status_code == 303
        assert "Log out" in client.get(signed_up.headers["Location"]).text
        assert client.get("/circuits/new").status_code == 200

    def test_writes_need_a_login(self, client: FlaskClient, app: Flask) -> None:
        circuit_id = circuit_named(app, "64-bit ripple-carry adder")
        for path in ("/circuits", f"/circuits/{circuit_id}/fork", f"/circuits/{circuit_id}/star"):
            response = client.post(path, json={})
            assert response.status_code == 401, path
            assert "log in first" in json_body(response)["error"]["message"]


class TestCreate:
    def test_create_then_view(self, client: FlaskClient, app: Flask) -> None:
        username = login(client, app)
        circuit_id = create(client, examples.full_adder(), "My full adder")
        shown = json_body(client.get(f"/circuits/{circuit_id}", headers=JSON))["circuit"]
        assert shown["name"] == "My full adder"
        assert shown["owner"] == username
        assert shown["document"] == examples.full_adder()
        assert shown["simulatable"] is True

    def test_a_draft_with_a_cycle_can_be_saved_but_says_why_it_cannot_run(
        self, client: FlaskClient, app: Flask
    ) -> None:
        login(client, app)
        circuit_id = create(client, examples.sr_latch(), "Latch")
        shown = json_body(client.get(f"/circuits/{circuit_id}", headers=JSON))["circuit"]
        assert shown["simulatable"] is False
        assert "cycle" in shown["problem"]

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            ({"circuit": examples.half_adder()}, "name is required"),
            ({"name": "x" * 121, "circuit": examples.half_adder()}, "name is too long"),
            ({"name": "No circuit"}, "circuit is required"),
            ({"name": "Bad", "circuit": {"gates": [{"id": "g", "type": "MAYBE"}]}}, "MAYBE"),
            ({"name": "Bad", "circuit": "{not json"}, "circuit is not valid JSON"),
            ({"name": 5, "circuit": examples.half_adder()}, "name must be a string"),
        ],
    )
    def test_bad_input_is_a_400_and_writes_nothing(
        self, client: FlaskClient, app: Flask, payload: dict[str, Any], message: str
    ) -> None:
        login(client, app)
        before = count(app, Circuit)
        response = client.post("/circuits", json=payload)
        assert response.status_code == 400
        assert message in json_body(response)["error"]["message"]
        assert count(app, Circuit) == before

    def test_body_must_be_a_json_object(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        response = client.post("/circuits", data="[1, 2]", content_type="application/json")
        assert response.status_code == 400
        assert json_body(response)["error"]["message"] == "the request body must be a JSON object"

    def test_html_form_creates_and_redirects(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        import json

        response = client.post(
            "/circuits", data={"name": "From the form", "circuit": json.dumps(examples.majority())}
        )
        assert response.status_code == 303
        assert client.get(response.headers["Location"]).status_code == 200

    def test_the_preview_job_stores_a_drawing(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        circuit_id = create(client, examples.half_adder(), "Drawn in the background")
        assert app.extensions["demo_jobs"].wait(timeout_s=10)
        with db(app) as session:
            circuit = session.get(Circuit, circuit_id)
            assert circuit is not None
            assert circuit.preview_svg is not None
            assert circuit.preview_svg.startswith("<svg")
            assert "Drawn in the background" in circuit.preview_svg

    def test_only_the_owner_may_edit(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        circuit_id = create(client, examples.half_adder())
        renamed = client.put(f"/circuits/{circuit_id}", json={"name": "Renamed"})
        assert json_body(renamed)["circuit"]["name"] == "Renamed"
        other = app.test_client()
        other.post("/users", json={"username": "someone_else"})
        refused = other.put(f"/circuits/{circuit_id}", json={"name": "Mine now"})
        assert refused.status_code == 403
        assert "fork it to change it" in json_body(refused)["error"]["message"]

    def test_a_failed_edit_changes_nothing(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        circuit_id = create(client, examples.half_adder(), "Original")
        response = client.put(
            f"/circuits/{circuit_id}", json={"name": "Renamed", "circuit": {"gates": 1}}
        )
        assert response.status_code == 400
        with db(app) as session:
            circuit = session.get(Circuit, circuit_id)
            assert circuit is not None
            assert circuit.name == "Original"
            assert circuit.document == examples.half_adder()

    def test_oversized_bodies_are_refused(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        response = client.post(
            "/circuits", json={"name": "Huge", "description": "x" * (2 * 1024 * 1024)}
        )
        assert response.status_code == 413
        assert json_body(response)["error"]["status"] == 413

    def test_wrong_method_is_a_405_with_a_message(self, client: FlaskClient) -> None:
        response = client.delete("/circuits", headers=JSON)
        assert response.status_code == 405
        assert "not allowed" in json_body(response)["error"]["message"]


class TestForkStarComment:
    def test_fork_copies_and_remembers_the_source(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        source = circuit_named(app, "64-bit ripple-carry adder")
        response = client.post(f"/circuits/{source}/fork", headers=JSON)
        assert response.status_code == 201
        fork = json_body(client.get(response.headers["Location"], headers=JSON))["circuit"]
        assert fork["forked_from"] == source
        assert fork["name"] == "64-bit ripple-carry adder (fork)"
        assert fork["document"] == examples.ripple_carry_adder(64)
        named = client.post(f"/circuits/{source}/fork", json={"name": "Mine"})
        assert json_body(named)["circuit"]["name"] == "Mine"
        assert client.post("/circuits/999999/fork", headers=JSON).status_code == 404

    def test_star_is_idempotent(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        circuit_id = create(client, examples.half_adder())
        assert json_body(client.post(f"/circuits/{circuit_id}/star", headers=JSON))["stars"] == 1
        assert json_body(client.post(f"/circuits/{circuit_id}/star", headers=JSON))["stars"] == 1
        with db(app) as session:
            stars = session.scalar(select(func.count(Star.id)).where(Star.circuit_id == circuit_id))
        assert stars == 1
        unstarred = json_body(client.delete(f"/circuits/{circuit_id}/star", headers=JSON))
        assert unstarred == {"starred": False, "stars": 0}

    def test_comments(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        circuit_id = create(client, examples.half_adder())
        posted = client.post(f"/circuits/{circuit_id}/comments", json={"body": " Neat! "})
        assert posted.status_code == 201
        assert json_body(posted)["comment"]["body"] == "Neat!"
        before = count(app, Comment)
        empty = client.post(f"/circuits/{circuit_id}/comments", json={"body": "   "})
        assert empty.status_code == 400
        assert json_body(empty)["error"]["message"] == "body is required"
        long = client.post(f"/circuits/{circuit_id}/comments", json={"body": "x" * 2001})
        assert long.status_code == 400
        assert count(app, Comment) == before
        shown = json_body(client.get(f"/circuits/{circuit_id}", headers=JSON))["circuit"]
        assert [c["body"] for c in shown["comments"]] == ["Neat!"]


class TestSimulate:
    def test_simulate_a_full_adder(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        circuit_id = create(client, examples.full_adder())
        response = client.post(
            f"/circuits/{circuit_id}/simulate", json={"inputs": {"a": 1, "b": 1, "cin": 1}}
        )
        assert response.json == {"outputs": {"sum": 1, "cout": 1}}
        table = json_body(
            client.post(f"/circuits/{circuit_id}/simulate", json={"truth_table": True})
        )
        assert table["inputs"] == ["a", "b", "cin"]
        assert table["rows"][3] == [[0, 1, 1], [0, 1]]

    def test_a_cycle_is_a_clear_400(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        circuit_id = create(client, examples.sr_latch())
        response = client.post(
            f"/circuits/{circuit_id}/simulate", json={"inputs": {"s": 1, "r": 0}}
        )
        assert response.status_code == 400
        message = json_body(response)["error"]["message"]
        assert message.startswith(f"cannot simulate circuit {circuit_id}: the circuit has a cycle")

    def test_a_dangling_wire_is_a_clear_400(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        document = examples.half_adder()
        document["wires"].append({"from": "g7", "to": "sum"})
        circuit_id = create(client, document)
        response = client.post(
            f"/circuits/{circuit_id}/simulate", json={"inputs": {"a": 1, "b": 0}}
        )
        assert response.status_code == 400
        assert "dangling wire" in json_body(response)["error"]["message"]

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            ({}, "inputs must be an object"),
            ({"inputs": {"a": 1}}, "missing values for inputs ['b']"),
            ({"inputs": {"a": 1, "b": "yes"}}, "input 'b': expected 0, 1, true or false"),
        ],
    )
    def test_bad_inputs_are_a_400(
        self, client: FlaskClient, app: Flask, payload: dict[str, Any], message: str
    ) -> None:
        login(client, app)
        circuit_id = create(client, examples.half_adder())
        response = client.post(f"/circuits/{circuit_id}/simulate", json=payload)
        assert response.status_code == 400
        assert message in json_body(response)["error"]["message"]

    def test_unknown_circuit_is_a_404(self, client: FlaskClient) -> None:
        response = client.post("/circuits/999999/simulate", json={"inputs": {}})
        assert response.status_code == 404
        assert response.json == {"error": {"status": 404, "message": "no circuit with id 999999"}}


class TestUniqueViews:
    def test_each_visitor_counts_once(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        circuit_id = create(client, examples.half_adder())
        visitors = [app.test_client() for _ in range(5)]
        for visitor in visitors + visitors:
            visitor.get(f"/circuits/{circuit_id}", headers=JSON)
        shown = json_body(client.get(f"/circuits/{circuit_id}", headers=JSON))["circuit"]
        assert shown["unique_views"] == 6  # five visitors and the owner

    def test_simultaneous_first_views_all_count(
        self, client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Registers merged under the row lock: no concurrent view overwrites another.

        Visitor ids are made deterministic: with random ones, two of the 25 could land
        in the same HyperLogLog register (about a 2% chance), an estimate of 24 that
        says nothing about lost updates.
        """
        numbers = itertools.count(1)
        monkeypatch.setattr(
            "cvtrace.demo.auth.secrets.token_hex", lambda nbytes=8: f"{next(numbers):016x}"
        )
        login(client, app)
        circuit_id = create(client, examples.half_adder())
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        url = f"http://127.0.0.1:{server.server_port}/circuits/{circuit_id}"
        start = threading.Barrier(24)
        statuses: list[int] = []

        def visit() -> None:
            with requests.Session() as visitor:
                start.wait()
                statuses.append(visitor.get(url, headers=JSON, timeout=30).status_code)

        visitors = [threading.Thread(target=visit) for _ in range(24)]
        for visitor in visitors:
            visitor.start()
        for visitor in visitors:
            visitor.join(timeout=60)
        server.shutdown()
        server.server_close()
        assert statuses == [200] * 24
        shown = json_body(client.get(f"/circuits/{circuit_id}", headers=JSON))["circuit"]
        assert shown["unique_views"] == 25  # 24 visitors and the owner

    def test_views_do_not_touch_updated_at(self, client: FlaskClient, app: Flask) -> None:
        login(client, app)
        circuit_id = create(client, examples.half_adder())
        before = json_body(client.get(f"/circuits/{circuit_id}", headers=JSON))["circuit"]
        app.test_client().get(f"/circuits/{circuit_id}", headers=JSON)
        client.get(f"/circuits/{circuit_id}/preview.svg")
        after = json_body(client.get(f"/circuits/{circuit_id}", headers=JSON))["circuit"]
        assert after["updated_at"] == before["updated_at"]
        client.put(f"/circuits/{circuit_id}", json={"description": "changed"})
        edited = json_body(client.get(f"/circuits/{circuit_id}", headers=JSON))["circuit"]
        assert edited["updated_at"] > before["updated_at"]


class TestPreview:
    def test_preview_comes_from_the_preview_service(self, client: FlaskClient, app: Flask) -> None:
        circuit_id = circuit_named(app, "Unfinished full adder (draft)")
        response = client.get(f"/circuits/{circuit_id}/preview.svg")
        assert response.status_code == 200
        assert response.mimetype == "image/svg+xml"
        assert response.text.startswith("<svg")
        with db(app) as session:
            circuit = session.get(Circuit, circuit_id)
            assert circuit is not None
            assert circuit.preview_svg == response.text

    def test_a_refusal_by_the_preview_service_is_a_502(
        self, client: FlaskClient, app: Flask
    ) -> None:
        circuit_id = circuit_named(app, "64-bit ripple-carry adder")
        response = client.get(f"/circuits/{circuit_id}/preview.svg", headers=JSON)
        assert response.status_code == 502
        message = json_body(response)["error"]["message"]
        assert message.startswith("the preview service answered 413: circuit has 320 gates")

    def test_an_unreachable_preview_service_is_a_502(self, database_url: str) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]
        app = create_app(
            {
                "DATABASE_URL": database_url,
                "PREVIEW_URL": f"http://127.0.0.1:{closed_port}",
                "SECRET_KEY": "test-secret",
            }
        )
        seed(engine_of(app), circuits=3)
        response = app.test_client().get("/circuits/1/preview.svg", headers=JSON)
        assert response.status_code == 502
        assert "is unreachable (ConnectionError)" in json_body(response)["error"]["message"]
        engine_of(app).dispose()
