"""The demo product page's routes: served only when ATP_DEMO_PAGE is on, its own files only,
with a policy that lets it load nothing from elsewhere."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import problems
from api.app import create_app
from api.routes import demo
from atp.settings import load_settings


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    problems.install(app)
    app.include_router(demo.router)
    return TestClient(app)


def test_the_page_and_every_file_it_links_are_served(client):
    page = client.get("/demo/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    linked = re.findall(r'(?:href|src)="([^":/]+)"', page.text)
    assert sorted(linked) == ["demo.css", "demo.js", "favicon.svg"]
    for name in linked:
        r = client.get(f"/demo/{name}")
        assert r.status_code == 200 and r.content, name
        assert r.headers["x-content-type-options"] == "nosniff"


def test_the_bare_path_redirects_to_the_page(client):
    r = client.get("/demo", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (308, "/demo/")


@pytest.mark.parametrize("name", ["secrets.txt", "..%2Fapp.py", "demo.py"])
def test_anything_else_is_a_404_problem(client, name):
    r = client.get(f"/demo/{name}")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "not_found"


@pytest.mark.parametrize("on", [True, False])
def test_the_app_serves_the_page_only_when_asked(demo_network, on):
    settings = load_settings({}, demo_page=on)
    page = TestClient(create_app(settings, demo_network)).get("/demo/")  # no lifespan: no Redis
    assert page.status_code == (200 if on else 404)
