"""The REST API's OpenAPI 3.1 description (issue 21, O8): generated from the running
application, valid by the OpenAPI validator, complete (every REST route and method is
in it, each with a summary), with the request models the views really parse."""

from __future__ import annotations

import inspect
from typing import Any

from aiohttp import ClientSession, web
from openapi_spec_validator import validate

from server.directory.consultations import ConsultationRequest
from tests.records.api_helpers import Site

VERBS = ("get", "post", "put", "patch", "delete")


async def _document(site: Site) -> dict[str, Any]:
    bob = await site.user("bob")
    resp = await bob.request("GET", "/api/openapi.json")
    assert resp.status == 200
    found: dict[str, Any] = await resp.json()
    return found


def _rest_operations(app: web.Application) -> set[tuple[str, str]]:
    """Every (path, method) the router serves under /api/, /healthz and /metrics, read from the
    router here (not by the code under test)."""
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if not (path.startswith("/api/") or path in ("/healthz", "/metrics")):
            continue
        plain = "/".join(
            "{" + part[1:-1].split(":")[0] + "}" if part.startswith("{") else part
            for part in path.split("/")
        )
        handler = route.handler
        if route.method == "*" and inspect.isclass(handler):
            verbs = {v for v in VERBS if any(v in vars(k) for k in handler.__mro__[:-2])}
        else:
            verbs = {route.method.lower()}
        out.update((plain, v) for v in verbs if v in VERBS)
    return out


async def test_the_document_is_valid_openapi_31_and_covers_every_route(site: Site) -> None:
    doc = await _document(site)
    validate(doc)  # raises on an invalid document
    assert doc["openapi"] == "3.1.0"
    described = {(path, verb) for path, item in doc["paths"].items() for verb in item}
    served = _rest_operations(site.server.app)
    assert len(served) > 60
    assert served - described == set(), "routes missing from the API description"
    assert described - served == set(), "described routes the server does not serve"
    for path, item in doc["paths"].items():
        for verb, operation in item.items():
            summary = operation["summary"]
            assert summary and not summary.startswith(f"{verb.upper()} /"), (verb, path)
            assert "Abstract class based view" not in summary, (verb, path)


async def test_bodies_parameters_and_security_are_those_the_views_use(site: Site) -> None:
    doc = await _document(site)
    schemas = doc["components"]["schemas"]
    ask = doc["paths"]["/api/consultations"]["post"]
    ref = ask["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ConsultationRequest"
    model_fields = set(ConsultationRequest.model_fields)
    assert set(schemas["ConsultationRequest"]["properties"]) == model_fields
    assert "201" in ask["responses"] and "400" in ask["responses"]
    assert ask["security"] == [{"session": [], "csrf": []}]
    listing = doc["paths"]["/api/consultations"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"scope"}
    assert listing["security"] == [{"session": []}]
    video = doc["paths"]["/api/patients/{pid}/archive/video"]["get"]
    assert {p["name"] for p in video["parameters"]} >= {"pid", "start", "end"}
    assert doc["paths"]["/api/appliances/{device}/stream"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/api/login"]["post"]
    action = doc["paths"]["/api/admin/accounts/{username}/{action}"]["post"]
    pattern = next(p for p in action["parameters"] if p["name"] == "action")["schema"]["pattern"]
    assert pattern == "^(?:reset|disable|enable)$"


async def test_the_description_and_its_page_need_a_sign_in(site: Site) -> None:
    async with ClientSession() as stranger:
        resp = await stranger.get(site.server.make_url("/api/openapi.json"))
        assert resp.status == 401
        resp = await stranger.get(site.server.make_url("/api/docs"), allow_redirects=False)
        assert resp.status in (302, 401)
    bob = await site.user("bob")
    resp = await bob.request("GET", "/api/docs", headers={"Accept-Language": "zh-CN"})
    html = await resp.text()
    assert resp.status == 200 and '<html lang="zh-CN">' in html and "/static/api_docs.js" in html
