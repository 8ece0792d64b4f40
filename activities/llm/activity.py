"""The `baton.llm_complete` activity: one LLM call, made safe.

In order: PII leaves only masked or pseudonymised (per the agent's policy); deterministic
requests are answered from the cache when they can be; the endpoint's circuit breaker is
consulted; the provider is called; pseudonyms are restored in the answer; token usage is counted.

The activity heartbeats in the background while it waits (so cancelling the run reaches it), and
a streamed call, once tokens flow, per token instead (so a stream that stalls mid-answer times
out; one that never starts meets the attempt's own timeout, like a call not streamed). Failures are
classified in `errors`; Temporal retries the transient ones by the agent's `LlmRetryOptions`.
A failure that opens the breaker asks for its retry when the breaker half-opens, and a call
that meets an open breaker waits for the same moment, so an open breaker delays calls without
making them fail fast over and over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from baton.agents.runtime import LLM_COMPLETE_ACTIVITY
from baton.agents.tools import get_tool
from baton.llm import ChatMessage, LlmRequest, LlmResponse, ToolCall, ToolSpec
from baton.security.codec import holds_subject
from baton.security.pii import PiiMasker, PiiPolicy, restore
from baton.telemetry.logs import excerpt, log_fields
from baton.telemetry.metrics import LLM_CALLS, LLM_TOKENS
from baton.telemetry.tracing import llm_span

from ..heartbeat import heartbeating
from .breaker import CircuitBreaker
from .cache import ResponseCache
from .errors import RETRYABLE_TYPES
from .providers import Provider

log = logging.getLogger(__name__)


class LlmActivities:
    def __init__(
        self,
        providers: dict[str, Provider],
        breaker: CircuitBreaker,
        cache: ResponseCache,
        masker: PiiMasker,
        pseudonym_key: bytes,
        content: bool = False,
    ) -> None:
        self.providers = providers
        self.breaker = breaker
        self.cache = cache
        self.masker = masker
        self.pseudonym_key = pseudonym_key
        self.content = content
        """Whether LLM spans carry the prompt and the answer (masked, cut): `telemetry_content`."""

    @activity.defn(name=LLM_COMPLETE_ACTIVITY)
    async def complete(self, request: LlmRequest) -> LlmResponse:
        """Answer `request` with its model; errors say whether a retry can help."""
        with log_fields(agent=request.agent):
            return await self._complete(request)

    async def _complete(self, request: LlmRequest) -> LlmResponse:
        ref = request.ref
        provider = self.providers.get(ref.provider)
        if provider is None:
            raise ApplicationError(
                f"provider {ref.provider!r} is not configured (for azure, set BATON_AZURE_OPENAI_ENDPOINT)",
                type="ProviderNotConfigured",
                non_retryable=True,
            )
        tools = [*(_tool_spec(name) for name in request.tools), *request.inline_tools]
        outgoing, pseudonyms = self._protect(request)

        # Heartbeats in the background (while waiting for a breaker, an identical call in flight
        # call, or a first token); a stream then beats per token, so that a stalled one times out.
        async with heartbeating() as stop_background_beats:

            def token_arrived(*details: object) -> None:
                stop_background_beats()
                activity.heartbeat(*details)

            async def call() -> LlmResponse:
                with llm_span(ref.provider, ref.model, request.agent) as span:
                    answer = await self._call(
                        provider, outgoing, tools, ref.provider, ref.model, token_arrived
                    )
                    if self.content:
                        asked = outgoing.messages[-1].content if outgoing.messages else ""
                        span.set_attributes(
                            {
                                "gen_ai.prompt": excerpt(asked),
                                "gen_ai.completion": excerpt(answer.message.content),
                            }
                        )
                    span.set_attributes(
                        {
                            "gen_ai.response.model": answer.model or ref.model,
                            "gen_ai.response.finish_reasons": [answer.finish_reason],
                            "gen_ai.usage.input_tokens": answer.usage.input_tokens,
                            "gen_ai.usage.output_tokens": answer.usage.output_tokens,
                        }
                    )
                    return answer

            if request.cacheable and not self._holds_subject_data():
                response = await self.cache.get_or_call(self.cache.key(outgoing, tools), call)
            else:
                response = await call()
        if pseudonyms:
            response = response.model_copy(update={"message": _restored(response.message, pseudonyms)})
        if not response.cached:
            for kind, tokens in (
                ("input", response.usage.input_tokens),
                ("output", response.usage.output_tokens),
            ):
                LLM_TOKENS.labels(ref.provider, ref.model, request.agent, kind).inc(tokens)
        return response

    @staticmethod
    def _holds_subject_data() -> bool:
        """Whether this call belongs to a run with a data subject, whose data must not be cached."""
        return activity.in_activity() and holds_subject(activity.info().workflow_id or "")

    def _protect(self, request: LlmRequest) -> tuple[LlmRequest, dict[str, str]]:
        """The request as it may leave this process, and the pseudonyms to restore afterwards."""
        if request.pii == PiiPolicy.OFF:
            return request, {}
        mapping: dict[str, str] = {}

        def protect(text: str) -> str:
            if request.pii == PiiPolicy.MASK:
                return self.masker.mask(text)
            protected, found = self.masker.pseudonymise(text, self.pseudonym_key)
            mapping.update(found)
            return protected

        messages = [
            m.model_copy(
                update={
                    "content": protect(m.content),
                    "tool_calls": [
                        c.model_copy(update={"arguments": protect(c.arguments)}) for c in m.tool_calls
                    ],
                }
            )
            for m in request.messages
        ]
        return request.model_copy(update={"messages": messages}), mapping

    async def _call(
        self,
        provider: Provider,
        request: LlmRequest,
        tools: list[ToolSpec],
        provider_name: str,
        model: str,
        token_arrived: Callable[..., None],
    ) -> LlmResponse:
        guarded = provider_name != "local"
        if guarded:
            await self.breaker.before_call(provider.endpoint)
        try:
            response = await provider.complete(request, tools, model, token_arrived)
        except ApplicationError as e:
            LLM_CALLS.labels(provider_name, model, e.type or "error").inc()
            if guarded:
                # A rejected request still proves the endpoint answers; only outages count.
                if e.type not in RETRYABLE_TYPES:
                    await self.breaker.record_success(provider.endpoint)
                elif (open_for := await self.breaker.record_failure(provider.endpoint)) is not None:
                    raise _retry_no_sooner(e, open_for) from e
            raise
        if guarded:
            await self.breaker.record_success(provider.endpoint)
        LLM_CALLS.labels(provider_name, model, "ok").inc()
        return response


def _retry_no_sooner(error: ApplicationError, delay: timedelta) -> ApplicationError:
    """`error`, with its retry delayed to at least `delay`."""
    if error.next_retry_delay is not None and error.next_retry_delay >= delay:
        return error
    return ApplicationError(
        error.message,
        *error.details,
        type=error.type,
        non_retryable=error.non_retryable,
        next_retry_delay=delay,
    )


def _tool_spec(name: str) -> ToolSpec:
    tool = get_tool(name)
    if tool is None:
        raise ApplicationError(
            f"tool {name!r} is not registered on this worker; add its module to BATON_TOOL_MODULES",
            type="ToolNotRegistered",
            non_retryable=True,
        )
    return tool.spec


def _restored(message: ChatMessage, pseudonyms: dict[str, str]) -> ChatMessage:
    return message.model_copy(
        update={
            "content": restore(message.content, pseudonyms),
            "tool_calls": [
                ToolCall(id=c.id, name=c.name, arguments=restore(c.arguments, pseudonyms))
                for c in message.tool_calls
            ],
        }
    )
