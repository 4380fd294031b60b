"""The REST API described as OpenAPI 3.1, generated from the application itself (O8).

Nothing here is a second list of routes to keep in step by hand: the document is built
from the running application's router and the views' own code.

* **Paths and methods**: every ``/api/…`` route (and ``/healthz``) and, for a class
  view, each HTTP method it defines; a path's ``{name}`` or ``{name:regex}`` parts
  become path parameters (with the regex as the pattern).
* **Request bodies**: the pydantic model a method parses with
  :func:`server.errors.read_json` (found in the method's source), as JSON Schema 2020-12
  under ``components/schemas``, which is what OpenAPI 3.1 uses.
* **Query parameters**: the names a method reads from ``request.query``.
* **Responses**: the success status a method sets (``status=HTTPStatus.CREATED``…,
  else 200), a JSON error body ``{"error", "code"?}`` for the client errors it can
  meet, 401 where a session or device token is required.
* **Summaries**: the first line of the method's docstring, else of its class's.
* **Security**: a session cookie (and the CSRF header on state-changing requests) for
  people; a bearer token for appliances (``/api/appliances/…``) and metrics scrapers.

:func:`describe` builds the document; :func:`add_openapi_routes` serves it at
``/api/openapi.json`` and a readable page at ``/api/docs``.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import textwrap
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from server.auth import CSRF_HEADER, SESSION_COOKIE
from server.web.security import PUBLIC_PATHS

METHODS = ("get", "post", "put", "patch", "delete")
UNSAFE = frozenset({"post", "put", "patch", "delete"})
DESCRIBED_PREFIXES = ("/api/",)
DESCRIBED_PATHS = frozenset({"/healthz", "/metrics"})
DEVICE_PREFIX = "/api/appliances/"
METRICS_PATH = "/metrics"
_PART = re.compile(r"\{(\w+)\}")
_STATUS = re.compile(r"status=HTTPStatus\.([A-Z_]+)")
_DEFAULT_PART = "[^{}/]+"
_QUERY_NAME = re.compile(r"\.query(?:\.get\(|\[)\s*\"([\w-]+)\"")
_RAISED = re.compile(r"ApiError\(\s*HTTPStatus\.([A-Z_]+)")
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "what went wrong, in the reader's language"},
        "code": {"type": "string", "description": "a stable code a client may act on"},
    },
    "required": ["error"],
}


def described(path: str) -> bool:
    """Whether a route belongs in the API description (the REST API, not the pages)."""
    return path in DESCRIBED_PATHS or path.startswith(DESCRIBED_PREFIXES)


def routes_of(app: web.Application) -> Iterator[tuple[str, str, Any, dict[str, str]]]:
    """``(path template, method, handler, the path parts' own regexes)`` for every
    described route and method."""
    for resource in app.router.resources():
        path = resource.canonical
        if not described(path):
            continue
        patterns = _part_patterns(resource)
        for route in resource:
            handler = route.handler
            if route.method == "*" and inspect.isclass(handler):
                for method in METHODS:
                    if method in vars_chain(handler):
                        yield path, method, getattr(handler, method), patterns
            elif route.method.lower() in METHODS:
                yield path, route.method.lower(), handler, patterns


def _part_patterns(resource: web.AbstractResource) -> dict[str, str]:
    """Each path part's own regex (``{action:reset|disable}``) where it has one: the
    router keeps only the compiled whole, so the named groups are read back from it."""
    compiled = resource.get_info().get("pattern")
    if compiled is None:
        return {}
    groups = _named_groups(compiled.pattern).items()
    return {name: pattern for name, pattern in groups if pattern != _DEFAULT_PART}


def _named_groups(regex: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for match in re.finditer(r"\(\?P<(\w+)>", regex):
        depth, at = 1, match.end()
        while at < len(regex) and depth:
            if regex[at] == "\\":
                at += 2
                continue
            depth += {"(": 1, ")": -1}.get(regex[at], 0)
            at += 1
        out[match.group(1)] = regex[match.end() : at - 1]
    return out


def vars_chain(cls: type) -> set[str]:
    """Method names a view class defines itself or inherits from its own bases (not
    from :class:`aiohttp.web.View`, which defines none of them)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass in (web.View, object):
            continue
        names.update(vars(klass))
    return names


def describe(app: web.Application, *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s REST API."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for path, method, handler, patterns in routes_of(app):
        item = paths.setdefault(path, {})
        item[method] = _operation(path, method, handler, patterns, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "The REST API of a Clinicam server. People sign in (POST /api/login) and "
                "send the session cookie, and the CSRF header on state-changing requests; "
                "appliances (and a metrics scraper) send their bearer token. "
                "Errors are JSON: {error, code?}."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _operation(
    path: str, method: str, handler: Any, patterns: dict[str, str], schemas: dict[str, Any]
) -> dict[str, Any]:
    source = _source(handler)
    owner = _owner(handler)
    operation: dict[str, Any] = {
        "operationId": _operation_id(path, method),
        "summary": _summary(handler, owner) or f"{method.upper()} {path}",
        "tags": [_tag(path)],
    }
    parameters = [*_path_parameters(path, patterns), *_query_parameters(handler, source)]
    if parameters:
        operation["parameters"] = parameters
    body = _body_model(handler, source)
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema_ref(body, schemas)}},
        }
    operation["responses"] = _responses(path, method, source, body is not None, parameters)
    security = _security(path, method)
    if security is not None:
        operation["security"] = security
    return operation


def _source(handler: Any) -> str:
    try:
        return textwrap.dedent(inspect.getsource(handler))
    except (OSError, TypeError):
        return ""


def _owner(handler: Any) -> type | None:
    qualname = getattr(handler, "__qualname__", "")
    module = inspect.getmodule(handler)
    if "." not in qualname or module is None:
        return None
    owner = getattr(module, qualname.rsplit(".", 1)[0], None)
    return owner if inspect.isclass(owner) else None


def _summary(handler: Any, owner: type | None) -> str:
    """The method's own docstring, else its class's own (never one inherited from
    aiohttp's ``View``)."""
    for thing in (handler, owner):
        doc = getattr(thing, "__doc__", None) if thing is not None else None
        if doc:
            return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    return ""


def _operation_id(path: str, method: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", _PART.sub(lambda m: "by " + m.group(1), path))
    return method + "".join(w[:1].upper() + w[1:] for w in words if w != "api")


def _tag(path: str) -> str:
    parts = [p for p in path.split("/") if p and p != "api"]
    return parts[0] if parts else "api"


def _path_parameters(path: str, patterns: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for name in _PART.findall(path):
        schema: dict[str, Any] = {"type": "string"}
        if name in patterns:
            schema["pattern"] = f"^(?:{patterns[name]})$"
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def _query_parameters(handler: Any, source: str) -> list[dict[str, Any]]:
    """Names the method reads from ``request.query``, itself or through a module
    function it calls with the request (``_time(self.request, "start")``)."""
    names = set(_QUERY_NAME.findall(source))
    if source:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                helper = getattr(handler, "__globals__", {}).get(node.func.id)
                if inspect.isfunction(helper):
                    names.update(_helper_query_names(helper, node))
    return [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
        for n in sorted(names)
    ]


def _helper_query_names(helper: Any, call: ast.Call) -> set[str]:
    source = _source(helper)
    if ".query" not in source:
        return set()
    names = set(_QUERY_NAME.findall(source))
    try:
        params = list(inspect.signature(helper).parameters)
    except (TypeError, ValueError):
        return names
    for variable in re.findall(r"\.query(?:\.get\(|\[)\s*(\w+)\s*[,)\]]", source):
        if variable in params:
            at = params.index(variable)
            if at < len(call.args):
                arg = call.args[at]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
    return names


def _body_model(handler: Any, source: str) -> type[BaseModel] | None:
    """The model the method passes to ``read_json`` (resolved in its module)."""
    if not source:
        return None
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "read_json"
            and len(node.args) == 2
            and isinstance(node.args[1], ast.Name)
        ):
            model = getattr(handler, "__globals__", {}).get(node.args[1].id)
            if inspect.isclass(model) and issubclass(model, BaseModel):
                return model
    return None


def _schema_ref(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = _json_schema(model)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


@functools.cache
def _json_schema_cached(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    return dict(_json_schema_cached(model))


def _responses(
    path: str, method: str, source: str, has_body: bool, parameters: list[dict[str, Any]]
) -> dict[str, Any]:
    ok = _STATUS.findall(source)
    success = next((HTTPStatus[s] for s in ok if HTTPStatus[s] < 300), HTTPStatus.OK)
    out: dict[str, Any] = {str(int(success)): {"description": success.phrase}}
    errors = {HTTPStatus[s] for s in _RAISED.findall(source) if s in HTTPStatus.__members__}
    errors.update(HTTPStatus[s] for s in ok if HTTPStatus[s] >= 400)
    if has_body or parameters:
        errors.add(HTTPStatus.BAD_REQUEST)
    if _PART.search(path):
        errors.add(HTTPStatus.NOT_FOUND)
    if _security(path, method) is not None:
        errors.update({HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN})
    for status in sorted(errors):
        out[str(int(status))] = {
            "description": status.phrase,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return out


def _security(path: str, method: str) -> list[dict[str, list[str]]] | None:
    if path.startswith(DEVICE_PREFIX):
        return [{"bearer": []}]
    if path == METRICS_PATH:  # the scraper's token, or an admin's session
        return [{"bearer": []}, {"session": []}]
    if path in PUBLIC_PATHS:
        return None
    return [{"session": [], "csrf": []}] if method in UNSAFE else [{"session": []}]
