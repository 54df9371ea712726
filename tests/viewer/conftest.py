"""Fixtures of the viewer's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cvtrace.store import SpanStore
from cvtrace.viewer import create_app
from tests.viewer.support import ViewerServer


@pytest.fixture
def server(store: SpanStore) -> Iterator[ViewerServer]:
    """The viewer on the ``store`` fixture, served on 127.0.0.1."""
    with ViewerServer(create_app({"STORE": store})) as srv:
        yield srv
