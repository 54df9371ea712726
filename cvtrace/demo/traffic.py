"""Realistic traffic for the demo: people browsing, searching and building circuits.

:func:`drive` sends ``total`` requests to a running site from a dozen visitors (each a
``requests.Session`` with its own cookie; half of them log in as seeded users). The mix
is mostly reading (lists, searches, circuit pages, previews), then simulating, creating,
forking, starring and commenting, plus what real traffic also holds, each at least once
when ``total`` allows: invalid requests that fail (a latch simulated, a malformed
circuit, an unknown id, a bad page number, a preview too large to draw), one
deliberately slow search (``equivalent_to``, see :mod:`cvtrace.demo.circuits`), and health
checks, which must leave no trace.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from cvtrace.demo import examples

_SEARCH_WORDS = (
    "adder",
    "multiplexer",
    "decoder",
    "parity",
    "latch",
    "majority",
    "comparator",
    "NAND",
    "homework",
    "4-bit",
    "fork",
    "simple",
)
_COMMENTS = (
    "Works for me, thanks!",
    "Could this use fewer gates?",
    "Simulated every input, all good.",
    "Nice layout.",
)
_DOCUMENTS: tuple[Callable[[], dict[str, Any]], ...] = (
    examples.half_adder,
    examples.full_adder,
    examples.majority,
    examples.xor_from_nands,
    lambda: examples.multiplexer(2),
    lambda: examples.ripple_carry_adder(2),
    lambda: examples.parity(4),
)
# (action, weight) for the ordinary requests.
_MIX = (
    ("browse", 18),
    ("search", 14),
    ("view", 20),
    ("preview", 8),
    ("simulate", 14),
    ("create", 6),
    ("fork", 5),
    ("star", 5),
    ("comment", 5),
    ("health", 3),
)
SPECIAL_ACTIONS = (
    "slow_search",
    "simulate_latch",
    "create_invalid",
    "view_missing",
    "bad_page",
    "preview_too_large",
)
"""Each is sent once when ``total`` is at least 20 (the invalid ones fail on purpose)."""


@dataclass
class TrafficResult:
    """What :func:`drive` sent and what came back."""

    sent: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_action: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0
    """Requests that got no HTTP answer at all (connection refused, timeout)."""

    def summary(self) -> str:
        """Return one line: requests sent, by status class."""
        classes = Counter(f"{status // 100}xx" for status in self.by_status.elements())
        parts = [f"{n} {cls}" for cls, n in sorted(classes.items())]
        if self.transport_errors:
            parts.append(f"{self.transport_errors} without answer")
        return f"{self.sent} requests: " + ", ".join(parts)


class _Site:
    """The state a visitor population learns while browsing."""

    def __init__(self, base_url: str, rng: random.Random, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.rng = rng
        self.timeout_s = timeout_s
        self.visitors: list[requests.Session] = []
        self.logged_in: list[requests.Session] = []
        self.circuit_ids: list[int] = []
        self.documents: dict[int, dict[str, Any]] = {}
        self.owners: list[str] = []
        self.named: dict[str, int] = {}

    def request(
        self, session: requests.Session, method: str, path: str, **kw: Any
    ) -> tuple[requests.Response, Any]:
        response = session.request(method, self.base_url + path, timeout=self.timeout_s, **kw)
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response, response.json()
        return response, None


def _new_visitor() -> requests.Session:
    session = requests.Session()
    session.headers["Accept"] = "application/json"
    session.headers["User-Agent"] = "cvtrace-demo-traffic/1"
    return session


def _learn(site: _Site, circuits: list[dict[str, Any]]) -> None:
    for circuit in circuits:
        if circuit["id"] not in site.circuit_ids:
            site.circuit_ids.append(circuit["id"])
        site.named.setdefault(circuit["name"], circuit["id"])
        if circuit["owner"] not in site.owners:
            site.owners.append(circuit["owner"])


def _act(site: _Site, action: str) -> requests.Response:
    """Send the requests of one action; return the last response."""
    rng = site.rng
    anyone = rng.choice(site.visitors)
    member = rng.choice(site.logged_in) if site.logged_in else anyone
    circuit_id = rng.choice(site.circuit_ids) if site.circuit_ids else 1
    if action == "browse":
        sort = rng.choice(("new", "new", "stars", "name"))
        response, data = site.request(
            anyone, "GET", f"/circuits?page={rng.randint(1, 5)}&sort={sort}"
        )
        if data:
            _learn(site, data["circuits"])
        return response
    if action == "search":
        word = rng.choice(_SEARCH_WORDS)
        response, data = site.request(anyone, "GET", "/circuits", params={"q": word})
        if data:
            _learn(site, data["circuits"])
        return response
    if action == "view":
        response, data = site.request(anyone, "GET", f"/circuits/{circuit_id}")
        if data and data["circuit"]["simulatable"]:
            site.documents[circuit_id] = data["circuit"]["document"]
        return response
    if action == "preview":
        response, _ = site.request(anyone, "GET", f"/circuits/{circuit_id}/preview.svg")
        return response
    if action == "simulate":
        if not site.documents:  # nothing known to simulate yet: look at a circuit first
            return _act(site, "view")
        target = rng.choice(sorted(site.documents))
        inputs = {name: rng.randint(0, 1) for name in site.documents[target]["inputs"]}
        response, _ = site.request(
            anyone, "POST", f"/circuits/{target}/simulate", json={"inputs": inputs}
        )
        return response
    if action == "create":
        document = rng.choice(_DOCUMENTS)()
        payload = {
            "name": f"{rng.choice(('My', 'Test', 'Lab'))} circuit {rng.randint(1, 999)}",
            "description": "Built in the demo.",
            "circuit": document,
        }
        response, data = site.request(member, "POST", "/circuits", json=payload)
        if data and response.status_code == 201:
            site.circuit_ids.append(data["circuit"]["id"])
            site.documents[data["circuit"]["id"]] = document
        return response
    if action == "fork":
        response, data = site.request(member, "POST", f"/circuits/{circuit_id}/fork")
        if data and response.status_code == 201:
            site.circuit_ids.append(data["circuit"]["id"])
        return response
    if action == "star":
        response, _ = site.request(member, "POST", f"/circuits/{circuit_id}/star")
        return response
    if action == "comment":
        response, _ = site.request(
            member,
            "POST",
            f"/circuits/{circuit_id}/comments",
            json={"body": rng.choice(_COMMENTS)},
        )
        return response
    if action == "health":
        response, _ = site.request(anyone, "GET", "/up")
        return response
    if action == "slow_search":
        target = site.named.get("Full adder") or site.named.get("Half adder") or circuit_id
        response, _ = site.request(anyone, "GET", f"/circuits?equivalent_to={target}")
        return response
    if action == "simulate_latch":
        latch = site.named.get("SR latch", circuit_id)
        response, _ = site.request(
            anyone, "POST", f"/circuits/{latch}/simulate", json={"inputs": {"s": 1, "r": 0}}
        )
        return response
    if action == "create_invalid":
        bad = {"name": "Broken", "circuit": {"gates": [{"id": "g1", "type": "XNOR"}]}}
        response, _ = site.request(member, "POST", "/circuits", json=bad)
        return response
    if action == "view_missing":
        response, _ = site.request(anyone, "GET", "/circuits/987654321")
        return response
    if action == "bad_page":
        response, _ = site.request(anyone, "GET", "/circuits?page=0")
        return response
    if action == "preview_too_large":
        big = site.named.get("64-bit ripple-carry adder", circuit_id)
        response, _ = site.request(anyone, "GET", f"/circuits/{big}/preview.svg")
        return response
    msg = f"unknown action {action!r}"
    raise ValueError(msg)


def _plan(total: int, rng: random.Random) -> list[str]:
    actions, weights = zip(*_MIX, strict=True)
    plan = rng.choices(actions, weights, k=total)
    if total >= 20:
        # the special requests, spread over the run (after the site has been browsed)
        positions = rng.sample(range(total // 4, total), k=len(SPECIAL_ACTIONS))
        for position, action in zip(positions, SPECIAL_ACTIONS, strict=True):
            plan[position] = action
    return plan


def drive(
    base_url: str,
    total: int,
    *,
    random_seed: int = 7,
    visitors: int = 12,
    timeout_s: float = 30.0,
    mean_gap_s: float = 0.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> TrafficResult:
    """Send ``total`` requests to the site at ``base_url``.

    The first requests log half the visitors in and find the named circuits the special
    requests need; they count towards ``total``.

    Args:
        base_url: the site, e.g. ``http://127.0.0.1:8000``.
        total: how many HTTP requests to send.
        random_seed: the same seed sends the same traffic to the same data.
        visitors: how many distinct browsers (sessions) to play.
        timeout_s: per request.
        mean_gap_s: mean pause between requests (exponentially distributed, like
            independent visitors arriving), so traces spread over time; 0 for none.
        on_progress: called with (requests sent, total) after each request.
    """
    rng = random.Random(random_seed)
    site = _Site(base_url, rng, timeout_s)
    site.visitors = [_new_visitor() for _ in range(visitors)]
    result = TrafficResult()

    def record(action: str, response: requests.Response | None) -> None:
        result.sent += 1
        result.by_action[action] += 1
        if response is None:
            result.transport_errors += 1
        else:
            result.by_status[response.status_code] += 1
        if on_progress is not None:
            on_progress(result.sent, total)

    # Warm-up: learn circuits and owners, then log in half of the visitors.
    warm_up = iter(
        [
            ("browse", "/circuits?per_page=100"),
            ("search", "/circuits?q=adder&per_page=100"),
            ("search", "/circuits?q=latch"),
        ]
    )
    for action, path in itertools.islice(warm_up, total):
        try:
            response, data = site.request(site.visitors[0], "GET", path)
            if data:
                _learn(site, data["circuits"])
        except requests.RequestException:
            response = None
        record(action, response)
    for visitor in site.visitors[: visitors // 2]:
        if result.sent >= total or not site.owners:
            break
        try:
            response, _ = site.request(
                visitor, "POST", "/login", json={"username": rng.choice(site.owners)}
            )
            if response.status_code == 200:
                site.logged_in.append(visitor)
        except requests.RequestException:
            response = None
        record("login", response)
    for action in _plan(total - result.sent, rng):
        if mean_gap_s > 0:
            time.sleep(rng.expovariate(1 / mean_gap_s))
        try:
            response = _act(site, action)
        except requests.RequestException:
            response = None
        record(action, response)
    for visitor in site.visitors:
        visitor.close()
    return result
