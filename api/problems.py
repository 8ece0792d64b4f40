"""RFC 9457 problem details: every error the API gives is `application/problem+json`.

Validation errors list every bad field (where and what, never the value sent); Baton's own errors
(`baton.errors`) carry their status and map here, once; anything unexpected is a 500 that says only that, with the
details in the server's log, never a stack trace in the answer.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from baton.errors import BatonError

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    location: list[str | int] = Field(description="Where: `body`, `query` or `path`, then the field's path.")
    message: str
    type: str


class Problem(BaseModel):
    """An error, as RFC 9457 describes it, with Baton's extensions where they apply."""

    type: str = Field(
        "about:blank",
        description="A URI naming the kind of problem: `urn:baton:error:<name>` for Baton's own errors "
        "(the class `baton.errors` and `BatonHttpClient` raise), else `about:blank`.",
    )
    title: str = Field(description="The HTTP status phrase.")
    status: int
    detail: str | None = Field(None, description="What went wrong, for a person.")
    errors: list[FieldProblem] | None = Field(None, description="Every field that failed validation.")
    problems: list[str] | None = Field(None, description="Every problem of a process definition.")
    accepted: list[str] | None = Field(
        None, description="An undeclared event: the input events the process declares."
    )
    agents: list[str] | None = Field(None, description="Agents the caller may not use.")


Responses = dict[int | str, dict[str, Any]]


def documented(*statuses: int) -> Responses:
    """OpenAPI `responses` for these error statuses: each a `Problem`."""
    return {status: {"model": Problem, "description": HTTPStatus(status).phrase} for status in statuses}


def problem(status: int, detail: str | None = None, **extensions: Any) -> JSONResponse:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, **extensions)
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    """Answer every error of `app` as problem+json."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        response = problem(e.status_code, str(e.detail) if e.detail else None)
        response.headers.update(e.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = [
            FieldProblem(location=list(error["loc"]), message=error["msg"], type=error["type"])
            for error in e.errors()
        ]
        noun = "field is" if len(errors) == 1 else "fields are"
        return problem(422, f"{len(errors)} {noun} invalid", errors=errors)

    @app.exception_handler(ValidationError)
    async def invalid_combination(request: Request, e: ValidationError) -> JSONResponse:
        # Models built from a valid request can still refuse it as a whole (repeated agents, a
        # manager without its agent): the caller's input, so 422, never 500.
        errors = [
            FieldProblem(location=["body", *error["loc"]], message=error["msg"], type=error["type"])
            for error in e.errors()
        ]
        return problem(422, f"the request does not make a valid {e.title}", errors=errors)

    @app.exception_handler(BatonError)
    async def baton_error(request: Request, e: BatonError) -> JSONResponse:
        if e.status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, e)
        return problem(e.status, e.detail, type=f"urn:baton:error:{e.kind}", **e.extensions())

    @app.exception_handler(WorkflowFailureError)
    async def run_failed(request: Request, e: WorkflowFailureError) -> JSONResponse:
        # Waited for, the run ended without a result: its outcome, not the server's failure.
        return problem(409, f"the run failed: {e.cause or e}")

    @app.exception_handler(RPCError)
    async def temporal_refused(request: Request, e: RPCError) -> JSONResponse:
        if e.status == RPCStatusCode.NOT_FOUND:
            return problem(404, "no such run")
        log.warning("Temporal refused %s %s: %s", request.method, request.url.path, e)
        return problem(503, "Temporal did not answer the request; try again")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem(500, "the request failed on the server; its log has the details")
