"""`BatonHttpClient`: Baton's HTTP API for services that may reach only it, not Temporal.

A thin, typed layer over httpx: each method is one API call, sends and parses the API's own
models (`baton.starter.api_models`), and turns an error answer (problem+json) into the same
`baton.errors` family `BatonClient` raises, so one `except NotFound:` serves both clients.
Method names are `BatonClient`'s where the two overlap.

```python
async with BatonHttpClient("https://baton.example.com", token=access_token) as baton:
    started = await baton.start_process("Approve", "Start", {"amount": 120}, key="order-17")
    await baton.send_event(started.run_id, "Approved", True)
    print((await baton.state(started.run_id)).status)
```
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from baton.agents import AgentRunResult
from baton.compliance import Processing
from baton.errors import (
    AccessDenied,
    AgentAccessDenied,
    BatonError,
    Conflict,
    InvalidRequest,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from baton.orchestration.models import ChatTurn
from baton.process import EventAccepted, ProcessDefinitionError, ProcessResult, ProcessState
from baton.process.runtime import EventRejection
from baton.starter.api_models import (
    AgentRunRequest,
    AgentRunStarted,
    AgentSummary,
    EventRequest,
    Orchestration,
    OrchestrationStart,
    Reply,
    RunInfo,
    RunPage,
    RunRequest,
    RunStarted,
    RunStatus,
    Template,
    TemplateVersion,
)
from baton.starter.client import EventRejected

Model = TypeVar("Model")
TokenSource = Callable[[], Awaitable[str]]
"""Gives a current access token on each call (a client-credentials flow that refreshes, say)."""

KIND_PREFIX = "urn:baton:error:"
_FAMILIES: dict[int, type[BatonError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: AccessDenied,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
}


class RateLimited(Unavailable):
    """429: the principal made too many calls; `retry_after` says in how many seconds to retry."""

    status = 429

    def __init__(self, detail: str, retry_after: int | None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def api_error(response: httpx.Response) -> BatonError:
    """The `baton.errors` family of an error answer, its problem+json body as `problem`."""
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    error = _named(str(problem.get("type", "")), problem, detail)
    if error is None and response.status_code == 429:
        retry_after = response.headers.get("Retry-After", "")
        error = RateLimited(detail, int(retry_after) if retry_after.isdigit() else None)
    elif error is None:
        family = _FAMILIES.get(
            response.status_code, Unavailable if response.status_code >= 500 else BatonError
        )
        error = family(detail)
    error.problem = problem  # type: ignore[attr-defined]  # every field the API sent
    return error


def _named(kind: str, problem: dict[str, Any], detail: str) -> BatonError | None:
    """The very error the API names (`urn:baton:error:<kind>`) where a caller acts on its fields:
    a refused event (`accepted`, `problems`), refused agents, an invalid definition. Others are
    raised as their family."""
    kind = kind.removeprefix(KIND_PREFIX)
    error: BatonError
    if kind in ("UnknownEvent", "InvalidEventData", "ProcessFinished"):
        rejection = EventRejection(
            reason=kind,
            process="",
            event="",
            accepted=list(problem.get("accepted") or []),
            problems=list(problem.get("problems") or []),
        )
        error = EventRejected.of(rejection)
    elif kind == "AgentAccessDenied":
        error = AgentAccessDenied(list(problem.get("agents") or []))
    elif kind == "ProcessDefinitionError":
        named = re.match(r"process '(.*)' is invalid", detail)
        error = ProcessDefinitionError(named.group(1) if named else "", list(problem.get("problems") or []))
    else:
        return None
    error.args = (detail,)  # the API's words, not a message made again without the names it knew
    return error


class BatonHttpClient:
    """Calls Baton's HTTP API at `base_url` with a bearer `token` (a string, or a `TokenSource`)."""

    def __init__(
        self,
        base_url: str,
        token: str | TokenSource,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token = token
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    async def __aenter__(self) -> BatonHttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # Agents

    async def agents(self) -> list[AgentSummary]:
        """The agents the caller may use."""
        return await self._call(list[AgentSummary], "GET", "/v1/agents")

    async def start_agent(
        self,
        agent: str,
        input: str,
        *,
        key: str | None = None,
        data_subject: str | None = None,
        processing: Processing | None = None,
    ) -> AgentRunStarted:
        """Start a registered agent on `input`; a repeated `key` gives the same run."""
        body = AgentRunRequest(input=input, data_subject=data_subject, processing=processing)
        return await self._call(AgentRunStarted, "POST", f"/v1/agents/{agent}/runs", body, key=key)

    async def run_agent(self, agent: str, input: str) -> AgentRunResult:
        """Run a registered agent on `input` and wait for its answer."""
        started = await self._call(
            AgentRunStarted, "POST", f"/v1/agents/{agent}/runs", AgentRunRequest(input=input), wait=True
        )
        assert started.result is not None  # the API answers a waited run with its result
        return started.result

    # Orchestrations

    async def orchestrate(self, start: OrchestrationStart, *, key: str | None = None) -> RunInfo:
        """Start one of the five patterns with agents by name (`SequentialStart` and friends)."""
        return await self._call(RunInfo, "POST", "/v1/orchestrations", start, key=key)

    async def orchestration(self, run_id: str) -> Orchestration:
        """Its progress (status, round, transcript, the question a person is asked) and result."""
        return await self._call(Orchestration, "GET", f"/v1/orchestrations/{run_id}")

    async def follow(self, run_id: str) -> AsyncIterator[ChatTurn | str]:
        """The transcript as it grows: each turn, and a question (a `str`) when a person is asked;
        ends when the run does."""
        async with self._http.stream(  # no read timeout: a turn or a person may take minutes
            "GET",
            f"/v1/orchestrations/{run_id}/stream",
            headers=await self._headers(),
            timeout=httpx.Timeout(self._http.timeout.connect, read=None),
        ) as response:
            if response.is_error:
                await response.aread()
                raise api_error(response)
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = line.removeprefix("data: ")
                    if event == "turn":
                        yield ChatTurn.model_validate_json(data)
                    elif event == "waiting":
                        yield str(json.loads(data)["question"])
                    elif event == "end":
                        return

    async def reply(self, run_id: str, text: str, author: str = "user") -> None:
        """Answer the question the orchestration waits on."""
        await self._call(None, "POST", f"/v1/orchestrations/{run_id}/reply", Reply(text=text, author=author))

    async def cancel_orchestration(self, run_id: str) -> RunInfo:
        return await self._call(RunInfo, "POST", f"/v1/orchestrations/{run_id}/cancel")

    # Process templates

    async def templates(self) -> list[TemplateVersion]:
        """The latest version of every template new runs can take."""
        return await self._call(list[TemplateVersion], "GET", "/v1/templates")

    async def template(self, name: str) -> Template:
        """The version new runs take, with its definition and Mermaid."""
        return await self._call(Template, "GET", f"/v1/templates/{name}")

    async def deploy(self, definition: str | dict[str, Any]) -> TemplateVersion:
        """Create a template's next version from YAML text or a definition as JSON data; an invalid
        one raises `InvalidRequest` whose `problem["problems"]` lists every problem."""
        if isinstance(definition, str):
            return await self._call(
                TemplateVersion, "POST", "/v1/templates", content=definition, content_type="application/yaml"
            )
        return await self._call(TemplateVersion, "POST", "/v1/templates", definition)

    async def retire(self, name: str, version: int) -> TemplateVersion:
        """New runs no longer take this version; running ones keep it."""
        return await self._call(TemplateVersion, "POST", f"/v1/templates/{name}/versions/{version}/retire")

    # Process runs

    async def start_process(
        self,
        template: str,
        event: str,
        data: Any = None,
        *,
        key: str | None = None,
        version: int | None = None,
        data_subject: str | None = None,
        processing: Processing | None = None,
        wait: bool = False,
    ) -> RunStarted:
        """Start a run of a deployed template with an input event; a repeated `key` returns the
        run it started. `wait`: answer once the run has ended, with its result."""
        body = RunRequest(
            template=template,
            version=version,
            event=event,
            data=data,
            key=key,
            data_subject=data_subject,
            processing=processing,
        )
        return await self._call(RunStarted, "POST", "/v1/runs", body, wait=wait)

    async def run_process(self, template: str, event: str, data: Any = None) -> ProcessResult:
        """Start a run and wait for its result."""
        started = await self.start_process(template, event, data, wait=True)
        assert started.result is not None  # the API answers a waited run with its result
        return started.result

    async def state(self, run_id: str) -> ProcessState:
        """Where the run is: its status, the steps running, the events it accepts."""
        return await self._call(ProcessState, "GET", f"/v1/runs/{run_id}")

    async def send_event(self, run_id: str, name: str, data: Any = None) -> EventAccepted:
        """Deliver an external event; an undeclared one raises `InvalidRequest` whose
        `problem["accepted"]` lists the events the process takes."""
        return await self._call(
            EventAccepted, "POST", f"/v1/runs/{run_id}/events", EventRequest(name=name, data=data)
        )

    async def cancel(self, run_id: str) -> RunInfo:
        """Ask a process run to stop."""
        return await self._call(RunInfo, "POST", f"/v1/runs/{run_id}/cancel")

    async def list_runs(
        self,
        process: str | None = None,
        status: RunStatus | None = None,
        *,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> RunPage:
        """Process runs, newest first, a page at a time (pass `next_page_token` on)."""
        params = {"process": process, "status": status, "page_size": page_size, "page_token": page_token}
        return await self._call(
            RunPage, "GET", "/v1/runs", params={k: v for k, v in params.items() if v is not None}
        )

    async def _headers(self) -> dict[str, str]:
        token = self._token if isinstance(self._token, str) else await self._token()
        return {"Authorization": f"Bearer {token}"}

    async def _call(
        self,
        answer: type[Model] | Any,
        method: str,
        path: str,
        body: BaseModel | dict[str, Any] | None = None,
        *,
        key: str | None = None,
        wait: bool = False,
        params: dict[str, Any] | None = None,
        content: str | None = None,
        content_type: str = "application/json",
    ) -> Any:
        headers = await self._headers()
        if key is not None:
            headers["Idempotency-Key"] = key
        if wait:
            params = {**(params or {}), "wait": "true"}
        if isinstance(body, BaseModel):
            content = body.model_dump_json(exclude_unset=True)
        elif body is not None:
            content = json.dumps(body)
        if content is not None:
            headers["Content-Type"] = content_type
        response = await self._http.request(method, path, content=content, headers=headers, params=params)
        if response.is_error:
            raise api_error(response)
        if answer is None:
            return None
        return TypeAdapter(answer).validate_json(response.content)
