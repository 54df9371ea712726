"""How answers travel: gzip, long caching of versioned files, plotly.js from the package."""

from __future__ import annotations

import gzip
import hashlib
import re
from importlib.resources import files

import pytest
from flask import Flask, render_template_string
from flask.testing import FlaskClient

from cvtrace.store import SpanStore
from cvtrace.viewer import create_app
from tests.viewer.support import make_request, simple_trace

GZIP = {"Accept-Encoding": "gzip, deflate, br"}


@pytest.fixture
def app(store: SpanStore) -> Flask:
    return create_app({"STORE": store, "TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def static_urls(page: str) -> dict[str, str]:
    return {
        name: url
        for url, name in re.findall(r'"(/static/([a-z-]+\.(?:js|css))\?v=[0-9a-f]+)"', page)
    }


class TestGzip:
    def test_page_scripts_styles_and_rows(self, client: FlaskClient, store: SpanStore) -> None:
        specs = simple_trace(children=200)
        store.write_request(make_request(specs))
        page = client.get(f"/trace/{specs[0].trace_id.hex()}").get_data(as_text=True)
        figure = re.search(r'data-figure-url="([^"]+)"', page)
        assert figure is not None
        urls = [f"/trace/{specs[0].trace_id.hex()}", figure.group(1).replace("&amp;", "&")]
        urls += static_urls(page).values()
        assert len(urls) >= 6  # the page, its rows, theme/viewer/details/waterfall.js, css
        for url in urls:
            plain = client.get(url)
            packed = client.get(url, headers=GZIP)
            assert packed.headers["Content-Encoding"] == "gzip", url
            assert "Accept-Encoding" in packed.headers["Vary"], url
            assert gzip.decompress(packed.get_data()) == plain.get_data(), url
            assert int(packed.headers["Content-Length"]) == len(packed.get_data()), url
            assert "Content-Encoding" not in plain.headers, url
            plain.close()
            packed.close()

    def test_small_answers_stay_plain(self, client: FlaskClient) -> None:
        response = client.get("/api/services", headers=GZIP)
        assert "Content-Encoding" not in response.headers

    def test_plotly_served_from_package(self, app: Flask, client: FlaskClient) -> None:
        packaged = (files("plotly") / "package_data" / "plotly.min.js").read_bytes()
        response = client.get("/static/plotly.min.js")
        assert response.get_data() == packaged
        response.close()
        # a page that draws plotly charts gets it, with the config that keeps charts local
        with app.test_request_context("/"):
            page = render_template_string('{% extends "base.html" %}')
        url = re.search(r'<script src="(/static/plotly\.min\.js\?v=[^"]+)"></script>', page)
        assert url is not None
        assert re.search(r'<script src="/static/plotly-config\.js\?v=[0-9a-f]+"></script>', page)
        assert "cdn" not in page.lower()
        for _ in range(2):  # compressed once, then from memory
            response = client.get(url.group(1), headers=GZIP)
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(response.get_data()) == packaged
            assert len(response.get_data()) < len(packaged) / 2.5
            # versioned by the plotly package: kept by the browser for good
            assert "immutable" in response.headers["Cache-Control"]
            assert "max-age=31536000" in response.headers["Cache-Control"]
            response.close()


class TestStaticVersions:
    def test_versioned_files_are_kept_for_a_year(self, client: FlaskClient) -> None:
        page = client.get("/").get_data(as_text=True)
        urls = static_urls(page)
        assert {"theme.js", "viewer.js", "search.js", "viewer.css"} <= set(urls)
        for name, url in urls.items():
            response = client.get(url)
            assert response.status_code == 200
            control = response.headers["Cache-Control"]
            assert "immutable" in control, name
            assert "max-age=31536000" in control, name
            assert "no-cache" not in control, name
            response.close()

    def test_other_versions_are_not(self, client: FlaskClient) -> None:
        for url in ("/static/viewer.js", "/static/viewer.js?v=0123456789ab"):
            response = client.get(url)
            assert response.status_code == 200
            assert "immutable" not in response.headers.get("Cache-Control", "")
            response.close()

    def test_version_follows_the_content(self, app: Flask) -> None:
        from cvtrace.viewer.transfer import static_version

        static = (files("cvtrace.viewer") / "static" / "viewer.css").read_bytes()

        assert (
            static_version(app, "viewer.css") == hashlib.blake2b(static, digest_size=6).hexdigest()
        )
        assert static_version(app, "no-such-file.js") == ""
