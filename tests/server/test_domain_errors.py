"""Services refuse in domain words; the one map turns them into HTTP answers."""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.domain_errors import Conflict, DomainError, Forbidden, NotFound, Unavailable
from server.errors import error_middleware, status_of


class IdentityMismatch(Conflict):
    """A subclass a service might define: it keeps its parent's status."""


def test_each_refusal_has_its_status_and_subclasses_inherit_it() -> None:
    assert status_of(NotFound("no such patient")) == HTTPStatus.NOT_FOUND
    assert status_of(Forbidden("not yours")) == HTTPStatus.FORBIDDEN
    assert status_of(IdentityMismatch("other patient")) == HTTPStatus.CONFLICT
    assert status_of(Unavailable("busy")) == HTTPStatus.SERVICE_UNAVAILABLE
    assert status_of(DomainError("something")) == HTTPStatus.BAD_REQUEST


async def test_the_middleware_answers_with_the_message_and_code() -> None:
    async def refuse(request: web.Request) -> web.Response:
        raise IdentityMismatch("the file names another patient", code="identity_mismatch")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/x", refuse)
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/x")
        assert resp.status == HTTPStatus.CONFLICT
        assert await resp.json() == {
            "error": "the file names another patient",
            "code": "identity_mismatch",
        }
