"""Model providers over httpx: OpenAI-compatible chat completions and Anthropic Messages.

Each provider turns an `LlmRequest` into its wire format and back, streaming (SSE) when asked.
Errors are classified in `errors`; nothing here retries.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from baton.documents import load_json
from baton.llm import ChatMessage, LlmRequest, LlmResponse, ToolCall, ToolSpec, Usage
from baton.settings import BatonSettings

from . import errors
from .local import LocalModel

OnChunk = Callable[[], None]
"""Called for every streamed chunk, so the activity can heartbeat while tokens arrive."""


class Provider(Protocol):
    endpoint: str
    """What the circuit breaker counts failures against (a base URL)."""

    async def complete(
        self, request: LlmRequest, tools: list[ToolSpec], model: str, on_chunk: OnChunk
    ) -> LlmResponse: ...


@dataclass
class OpenAICompatible:
    """OpenAI chat completions, as also served by Azure OpenAI, Ollama and vLLM."""

    http: httpx.AsyncClient
    endpoint: str
    headers: dict[str, str]
    azure_api_version: str | None = None

    def url(self, model: str) -> str:
        base = self.endpoint.rstrip("/")
        if self.azure_api_version:
            return f"{base}/openai/deployments/{model}/chat/completions?api-version={self.azure_api_version}"
        return f"{base}/chat/completions"

    async def complete(
        self, request: LlmRequest, tools: list[ToolSpec], model: str, on_chunk: OnChunk
    ) -> LlmResponse:
        body: dict[str, Any] = {
            "model": model,
            "messages": [_openai_message(m) for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if tools:
            body["tools"] = [
                {"type": "function", "function": t.model_dump(include={"name", "description", "parameters"})}
                for t in tools
            ]
        if not request.stream:
            data = await _post_json(self.http, self.url(model), body, self.headers, self.endpoint)
            return self._parse(data, model)
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        content: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage, finish, done = Usage(), "stop", False
        async for event in _sse(self.http, self.url(model), body, self.headers, self.endpoint):
            on_chunk()
            if event == "[DONE]":
                done = True
                break
            chunk = _json(event, self.endpoint)
            if chunk.get("usage"):
                usage = _openai_usage(chunk["usage"])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                content.append(delta.get("content") or "")
                for call in delta.get("tool_calls") or []:
                    slot = calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
                    function = call.get("function") or {}
                    slot["id"] = call.get("id") or slot["id"]
                    slot["name"] += function.get("name") or ""
                    slot["arguments"] += function.get("arguments") or ""
                finish = choice.get("finish_reason") or finish
        if not done:  # a stream cut short must not pass (or be cached) as a whole answer
            raise errors.malformed(self.endpoint, "the stream ended before [DONE]")
        message = ChatMessage(
            role="assistant",
            content="".join(content),
            tool_calls=[ToolCall(**calls[i]) for i in sorted(calls)],
        )
        return LlmResponse(message=message, usage=usage, finish_reason=finish, model=model)

    def _parse(self, data: dict[str, Any], model: str) -> LlmResponse:
        try:
            choice = data["choices"][0]
            raw = choice["message"]
            message = ChatMessage(
                role="assistant",
                content=raw.get("content") or "",
                tool_calls=[
                    ToolCall(
                        id=c["id"],
                        name=c["function"]["name"],
                        arguments=c["function"].get("arguments") or "{}",
                    )
                    for c in raw.get("tool_calls") or []
                ],
            )
        except (KeyError, IndexError, TypeError) as e:
            raise errors.malformed(
                self.endpoint, f"no choices[0].message ({type(e).__name__}: {e})"
            ) from None
        return LlmResponse(
            message=message,
            usage=_openai_usage(data.get("usage") or {}),
            finish_reason=choice.get("finish_reason") or "stop",
            model=data.get("model") or model,
        )


def _openai_message(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
    return out


def _openai_usage(usage: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=usage.get("prompt_tokens") or 0, output_tokens=usage.get("completion_tokens") or 0
    )


ANTHROPIC_VERSION = "2023-06-01"


@dataclass
class Anthropic:
    """Anthropic Messages (`/v1/messages`)."""

    http: httpx.AsyncClient
    endpoint: str
    headers: dict[str, str]

    async def complete(
        self, request: LlmRequest, tools: list[ToolSpec], model: str, on_chunk: OnChunk
    ) -> LlmResponse:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "messages": _anthropic_messages(request.messages),
        }
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
            ]
        url = f"{self.endpoint.rstrip('/')}/v1/messages"
        if not request.stream:
            data = await _post_json(self.http, url, body, self.headers, self.endpoint)
            return self._parse(data, model)
        body["stream"] = True
        blocks: dict[int, dict[str, Any]] = {}
        usage, finish, done = Usage(), "stop", False
        async for event in _sse(self.http, url, body, self.headers, self.endpoint):
            on_chunk()
            data = _json(event, self.endpoint)
            kind = data.get("type")
            if kind == "message_start":
                usage = _anthropic_usage(data.get("message", {}).get("usage") or {})
            elif kind == "content_block_start":
                blocks[data["index"]] = dict(data["content_block"], partial="")
            elif kind == "content_block_delta":
                delta, block = data["delta"], blocks[data["index"]]
                if delta.get("type") == "text_delta":
                    block["text"] = block.get("text", "") + delta.get("text", "")
                elif delta.get("type") == "input_json_delta":
                    block["partial"] += delta.get("partial_json", "")
            elif kind == "message_delta":
                usage = usage + Usage(output_tokens=(data.get("usage") or {}).get("output_tokens") or 0)
                finish = (data.get("delta") or {}).get("stop_reason") or finish
            elif kind == "message_stop":
                done = True
                break
        if not done:
            raise errors.malformed(self.endpoint, "the stream ended before message_stop")
        content = []
        for block in (blocks[i] for i in sorted(blocks)):
            if block.get("type") == "tool_use" and block["partial"]:
                block["input"] = _json(block["partial"], self.endpoint)
            content.append(block)
        return self._parse({"content": content, "usage": {}, "stop_reason": finish}, model, usage)

    def _parse(self, data: dict[str, Any], model: str, usage: Usage | None = None) -> LlmResponse:
        try:
            blocks = data["content"]
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            calls = [
                ToolCall(id=b["id"], name=b["name"], arguments=json.dumps(b.get("input") or {}))
                for b in blocks
                if b.get("type") == "tool_use"
            ]
        except (KeyError, TypeError) as e:
            raise errors.malformed(self.endpoint, f"no content blocks ({type(e).__name__}: {e})") from None
        return LlmResponse(
            message=ChatMessage(role="assistant", content=text, tool_calls=calls),
            usage=usage or _anthropic_usage(data.get("usage") or {}),
            finish_reason=data.get("stop_reason") or "stop",
            model=data.get("model") or model,
        )


def _anthropic_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Anthropic's turns: tool results travel as user content blocks, merged per turn."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": _tool_input(c)}
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _tool_input(call: ToolCall) -> Any:
    """Anthropic wants a tool call's arguments as an object; bad JSON is a request never to retry."""
    try:
        return load_json(call.arguments or "{}")
    except ValueError:
        raise ApplicationError(
            f"tool call {call.name!r} in the conversation has arguments that are not JSON",
            type="InvalidRequest",
            non_retryable=True,
        ) from None


def _anthropic_usage(usage: dict[str, Any]) -> Usage:
    return Usage(input_tokens=usage.get("input_tokens") or 0, output_tokens=usage.get("output_tokens") or 0)


async def _post_json(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str], endpoint: str
) -> dict[str, Any]:
    try:
        response = await http.post(url, json=body, headers=headers)
    except httpx.TransportError as e:
        raise errors.transport_error(e, endpoint) from None
    errors.raise_for_provider(response, endpoint)
    data = _json(response.text, endpoint)
    return data


async def _sse(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str], endpoint: str
) -> AsyncIterator[str]:
    """The `data:` fields of a server-sent event stream."""
    try:
        async with http.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code >= 400:
                await response.aread()
                errors.raise_for_provider(response, endpoint)
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    yield line[5:].strip()
    except httpx.TransportError as e:
        raise errors.transport_error(e, endpoint) from None


def _json(text: str, endpoint: str) -> dict[str, Any]:
    try:
        data = load_json(text)
    except ValueError as e:
        raise errors.malformed(endpoint, f"invalid JSON ({e})") from None
    if not isinstance(data, dict):
        raise errors.malformed(endpoint, f"expected a JSON object, got {type(data).__name__}")
    return data


def build_providers(settings: BatonSettings, http: httpx.AsyncClient) -> dict[str, Provider]:
    """Every provider of `baton.llm.PROVIDERS`, configured from settings."""
    openai_headers = _bearer(settings.openai_api_key)
    vllm_headers = _bearer(settings.vllm_api_key)
    anthropic_headers = {"anthropic-version": ANTHROPIC_VERSION}
    if settings.anthropic_api_key:
        anthropic_headers["x-api-key"] = settings.anthropic_api_key.get_secret_value()
    providers: dict[str, Provider] = {
        "openai": OpenAICompatible(http, settings.openai_base_url, openai_headers),
        "ollama": OpenAICompatible(http, settings.ollama_base_url, {}),
        "vllm": OpenAICompatible(http, settings.vllm_base_url, vllm_headers),
        "anthropic": Anthropic(http, settings.anthropic_base_url, anthropic_headers),
        "local": LocalModel(),
    }
    if settings.azure_openai_endpoint:
        providers["azure"] = OpenAICompatible(
            http,
            settings.azure_openai_endpoint,
            {
                "api-key": settings.azure_openai_api_key.get_secret_value()
                if settings.azure_openai_api_key
                else ""
            },
            azure_api_version=settings.azure_openai_api_version,
        )
    return providers


def _bearer(key: SecretStr | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key.get_secret_value()}"} if key else {}
