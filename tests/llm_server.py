"""A real HTTP server that speaks the OpenAI chat-completions and Anthropic Messages protocols,
with scripted faults: 429 with Retry-After, 5xx, hangs, malformed JSON, 4xx, and outages (every
request fails for a while).

Requests are recorded as received, so tests can inspect exactly what left Baton; a hanging
request whose client hangs up is recorded as abandoned. Unscripted
requests get a default answer: `echo: <last user message>`, or a call of the first tool offered
when the conversation has no tool result yet.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer. `status` 200 with `content`/`tool_call`, or a fault."""

    status: int = 200
    content: str | None = None
    tool_call: tuple[str, dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str = "scripted failure"
    hang_seconds: float = 0.0
    malformed: bool = False
    chunk_delay: float = 0.0
    cut_stream: bool = False
    """Stream the answer but close the connection before the end marker."""
    pause_after_first: float = 0.0
    """Stream the first piece, then stall this long (a stream that stops mid-answer)."""

    @classmethod
    def text(cls, content: str) -> Reply:
        return cls(content=content)

    @classmethod
    def call(cls, name: str, **arguments: Any) -> Reply:
        return cls(tool_call=(name, arguments))

    @classmethod
    def fail(cls, status: int, error: str = "scripted failure", **headers: str) -> Reply:
        return cls(status=status, error=error, headers={k.replace("_", "-"): v for k, v in headers.items()})

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        return cls(hang_seconds=seconds)

    @classmethod
    def broken(cls) -> Reply:
        return cls(malformed=True)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class FakeLlmServer:
    """`with FakeLlmServer() as server:` then point providers at `server.url` (OpenAI) or
    `server.base` (Anthropic)."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        """Seconds every unscripted answer waits, like a model thinking."""
        self.script: deque[Reply] = deque()
        self.received: list[Received] = []
        self.abandoned: list[Received] = []
        """Requests whose client hung up while the server was still thinking (a hang)."""
        self._outage: tuple[float, Reply] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Without this, small writes wait ~40 ms for an ACK (Nagle) and timings lie.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                received = Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
                with server._lock:
                    server.received.append(received)
                    if server._outage is not None and received.at < server._outage[0]:
                        reply: Reply | None = server._outage[1]
                    else:
                        reply = server.script.popleft() if server.script else None
                reply = reply or server._default(body, server.latency)
                if reply.hang_seconds and not server._hang(self, reply.hang_seconds):
                    with server._lock:
                        server.abandoned.append(received)
                    return
                server._answer(self, body, reply)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._http.server_address[1]}"
        self.url = f"{self.base}/v1"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> FakeLlmServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()

    def then(self, *replies: Reply) -> FakeLlmServer:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self.script.extend(replies)
        return self

    def outage(self, seconds: float, reply: Reply) -> FakeLlmServer:
        """Answer every request with `reply` for the next `seconds`, then as before."""
        with self._lock:
            self._outage = (time.time() + seconds, reply)
        return self

    def calls(self, path_suffix: str = "") -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.endswith(path_suffix)]

    @staticmethod
    def _default(body: dict[str, Any], latency: float) -> Reply:
        messages = body.get("messages", [])
        has_tool_result = any(
            m.get("role") == "tool"
            or (
                isinstance(m.get("content"), list)
                and any(b.get("type") == "tool_result" for b in m["content"])
            )
            for m in messages
        )
        if body.get("tools") and not has_tool_result:
            first = body["tools"][0]
            return Reply(tool_call=(first.get("function", first)["name"], {}), hang_seconds=latency)
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
        content = last_user["content"]
        if isinstance(content, list):
            content = " ".join(str(b.get("content", b.get("text", ""))) for b in content)
        return Reply(content=f"echo: {content}", hang_seconds=latency)

    def _hang(self, handler: BaseHTTPRequestHandler, seconds: float) -> bool:
        """Think for `seconds`, watching the connection; False if the client hung up first."""
        connection, deadline = handler.connection, time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._stopping.is_set():
            readable, _, _ = select.select([connection], [], [], min(left, 0.05))
            if readable:
                try:
                    if not connection.recv(1, socket.MSG_PEEK):
                        return False
                except OSError:
                    return False
                time.sleep(min(left, 0.05))  # more bytes from a live client: keep thinking
        return True

    def _answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], reply: Reply) -> None:
        if reply.status != 200:
            payload = json.dumps({"error": {"message": reply.error, "type": "scripted"}}).encode()
            self._send(handler, reply.status, payload, "application/json", reply.headers)
            return
        if reply.malformed:
            self._send(handler, 200, b'{"choices": [{"message": {"content": "trunc', "application/json")
            return
        anthropic = handler.path.endswith("/messages")
        if body.get("stream"):
            events = _anthropic_events(body, reply) if anthropic else _openai_chunks(body, reply)
            self._stream(
                handler,
                events[:-1] if reply.cut_stream else events,
                reply.chunk_delay,
                reply.pause_after_first,
            )
            return
        data = _anthropic_message(body, reply) if anthropic else _openai_completion(body, reply)
        self._send(handler, 200, json.dumps(data).encode(), "application/json")

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        payload: bytes,
        kind: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        head = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}", f"Content-Type: {kind}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        head.append(f"Content-Length: {len(payload)}")
        handler.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)

    def _stream(
        self, handler: BaseHTTPRequestHandler, events: list[str], delay: float, pause_after_first: float
    ) -> None:
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        handler.wfile.write(head.encode())
        for i, event in enumerate(events):
            if delay:
                time.sleep(delay)
            if i == 1 and pause_after_first and not self._hang(handler, pause_after_first):
                return  # the client gave up on the stalled stream
            handler.wfile.write(f"data: {event}\n\n".encode())
            handler.wfile.flush()
        handler.close_connection = True


def _pieces(text: str) -> list[str]:
    """`text` cut into word-sized pieces that join back to it exactly."""
    words = text.split(" ")
    return [words[0], *(" " + w for w in words[1:])] if text else []


def _usage(body: dict[str, Any], text: str) -> tuple[int, int]:
    return max(1, len(json.dumps(body.get("messages", []))) // 4), max(1, len(text) // 4)


def _openai_completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_call:
        name, args = reply.tool_call
        message["tool_calls"] = [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        ]
    prompt, completion = _usage(body, reply.content or "")
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": body.get("model", "fake"),
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_call else "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _openai_chunks(body: dict[str, Any], reply: Reply) -> list[str]:
    chunks: list[dict[str, Any]] = []
    for piece in _pieces(reply.content or ""):
        chunks.append({"choices": [{"index": 0, "delta": {"content": piece}}]})
    if reply.tool_call:
        name, args = reply.tool_call
        text = json.dumps(args)
        chunks.append(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": "call_1",
                                    "function": {"name": name, "arguments": text[:3]},
                                }
                            ]
                        },
                    }
                ]
            }
        )
        chunks.append(
            {
                "choices": [
                    {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": text[3:]}}]}}
                ]
            }
        )
    chunks.append(
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if reply.tool_call else "stop"}]}
    )
    prompt, completion = _usage(body, reply.content or "")
    chunks.append({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})
    return [json.dumps(c) for c in chunks] + ["[DONE]"]


def _anthropic_message(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.content}] if reply.content else []
    if reply.tool_call:
        content.append(
            {"type": "tool_use", "id": "toolu_1", "name": reply.tool_call[0], "input": reply.tool_call[1]}
        )
    prompt, completion = _usage(body, reply.content or "")
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "fake"),
        "content": content,
        "stop_reason": "tool_use" if reply.tool_call else "end_turn",
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }


def _anthropic_events(body: dict[str, Any], reply: Reply) -> list[str]:
    prompt, completion = _usage(body, reply.content or "")
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": prompt, "output_tokens": 0}}}
    ]
    index = 0
    if reply.content:
        events.append(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        )
        for piece in _pieces(reply.content):
            events.append(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            )
        index = 1
    if reply.tool_call:
        name, args = reply.tool_call
        events.append(
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}},
            }
        )
        events.append(
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": json.dumps(args)},
            }
        )
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": completion},
        }
    )
    events.append({"type": "message_stop"})
    return [json.dumps(e) for e in events]
