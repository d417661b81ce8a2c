"""The HTTP front end of ``cat-prom serve``: uvicorn in front of the Flask (WSGI) app.

Why this shape (docs/reliability.md has the measurements):

* **Event-driven I/O.** uvicorn reads requests on an asyncio event loop (uvloop's where it is
  installed, as ``pyproject.toml`` does outside Windows: ~25 % less CPU per answer here), so a client that sends
  its request slowly, or opens a connection and sends nothing, holds a few kilobytes of memory,
  not a thread. The Flask app runs only once the whole request, head and body, has arrived
  (:class:`WSGIBridge`), and its reply is written by the event loop: neither a slow body nor a
  slow reader of the response can hold the app.
* **Writes on the event loop, reads on a few threads.** Each worker runs the app for a request
  whose method changes something (``POST``, ``PUT``, ``PATCH``, ``DELETE``: a symptom app's
  answers and new sittings) on its event loop, one at a time: no hand-off to a thread and back
  (≈ 0.12 ms of CPU per request here), and no answer waits for the GIL behind another request of
  its worker; at 500 answers/s that halved p99 (benchmarks/results/api_load.md). A read
  (``GET``, ``HEAD``) runs on a pool of ``--threads`` threads (default 2), because a read can be
  long (a clinician's PDF report, a patient export: a second or more) and must not hold the loop
  meanwhile: on a thread it shares the CPU with the answers instead. ``--threads 0`` runs every
  request on the loop.
* **Limits before the app.** :class:`WSGIBridge` counts body bytes as they arrive, chunked or
  not, and answers ``413`` past ``CAT_PROM_MAX_BODY_BYTES`` without buffering more;
  :class:`Protocol` answers ``414`` for a request target over :data:`MAX_TARGET_BYTES`, ``431``
  for oversized header fields, ``408`` when the head or the body takes longer than
  ``CAT_PROM_REQUEST_TIMEOUT`` seconds, and ``400`` for anything that is not HTTP/1.1 (a bad chunk
  size, a malformed method or header name). Every one of them is RFC 9457 problem+json
  (:func:`api.problems.server_problem`), never an HTML or text page.
* **Nothing from the request in the logs.** uvicorn's access log is off (the app logs route
  templates, never URLs); its error log keeps exception types and frames but never messages
  (:class:`ScrubFilter`), and its protocol warnings quote nothing from the request.
* **No banner**: no ``Server`` header.
* **Processes.** ``--workers N`` processes share the listening socket (uvicorn's supervisor
  restarts a worker that dies).

Python packages and wheels from PyPI (uvicorn, httptools, uvloop, a2wsgi): ``make run`` needs no proxy.
The WSGI app must not stream its responses (none of this API's do): they are collected whole.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

from a2wsgi.wsgi import build_environ

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .fhir.codes import FHIR_MEDIA_TYPE
from .fhir.outcome import is_fhir_path, outcome
from .problems import MEDIA_TYPE, TYPE_PREFIX, scrubbed_exc_info, server_problem

log = logging.getLogger("cat_prom.api.serving")

#: Methods whose requests run on the thread pool (reads can be long); the others run on the event loop.
READ_METHODS = frozenset({"GET", "HEAD"})
#: Longest request target (path and query) accepted; longer is 414 (as gunicorn's limit was).
MAX_TARGET_BYTES = 4094
#: Longest single header line (name and value) and most header fields; more is 431.
MAX_HEADER_FIELD_BYTES = 8190
MAX_HEADER_FIELDS = 100
#: Bytes of an over-limit body read and discarded before answering 413, so that the client is
#: not reset while it is still sending; past this the connection is simply closed after the 413.
DRAIN_BYTES = 1 << 20
#: Headers of every response the front end writes itself (the app adds its own, api.headers).
_FRONT_HEADERS = [(b"content-type", MEDIA_TYPE.encode()), (b"x-content-type-options", b"nosniff"),
                  (b"cache-control", b"no-store"), (b"connection", b"close")]


_FHIR_FRONT_HEADERS = [(b"content-type", FHIR_MEDIA_TYPE.encode())] + _FRONT_HEADERS[1:]


def server_outcome(problem_body: bytes) -> bytes:
    """A front-end problem document as the OperationOutcome a /fhir client expects (api.fhir.outcome)."""
    doc = json.loads(problem_body)
    code = doc["type"][len(TYPE_PREFIX):]
    return json.dumps(outcome(code, doc["status"], doc["detail"], doc["title"])).encode()


_GONE = object()  # what _read returns when the client disconnected first


class _Reject(Exception):
    """Raised inside a parser callback to stop parsing; the status is kept on the protocol."""


class Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with request limits, a head timeout and problem+json errors."""

    def __init__(self, config, server_state, app_state, _loop=None):
        super().__init__(config, server_state, app_state, _loop)
        self._reject_status = 400
        self._target_bytes = self._n_fields = 0
        self._head_timer = None
        self._head_timeout = float(os.environ.get("CAT_PROM_REQUEST_TIMEOUT") or 30)

    # ------------------------------------------------------------------ head timeout
    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self._write_problem(408)
        else:  # a pipelined request is still being answered: finish it, then close
            self.cycle.keep_alive = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        _no_delay(transport)
        self._arm_head_timer()

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    # ----------------------------------------------------------------- parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._target_bytes = self._n_fields = 0
        self._reject_status = 400
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._target_bytes += len(url)
        if self._target_bytes > MAX_TARGET_BYTES:
            self._reject_status = 414
            raise _Reject
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._n_fields += 1
        if self._n_fields > MAX_HEADER_FIELDS or len(name) + len(value) > MAX_HEADER_FIELD_BYTES:
            self._reject_status = 431
            raise _Reject
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    # ------------------------------------------------------------------ errors
    def send_400_response(self, msg: str) -> None:
        """Called by uvicorn for every request the parser rejects (``httptools.HttpParserError``:
        malformed request line, method or header, bad chunk size, ...; and our :class:`_Reject`)."""
        self._write_problem(self._reject_status)

    def _write_problem(self, status: int) -> None:
        self._cancel_head_timer()
        body = server_problem(status)
        head = [STATUS_LINE[status]]
        for name, value in list(self.server_state.default_headers) + _FRONT_HEADERS:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-length: ", str(len(body)).encode(), b"\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def _no_delay(transport) -> None:
    """Send small writes at once (TCP_NODELAY). asyncio sets it only on sockets whose ``proto`` is
    IPPROTO_TCP, and the listening socket uvicorn hands to its worker processes comes back with
    ``proto`` 0: without this, Nagle's algorithm held the second write of each response (head,
    then body) until the client's delayed ACK, +40 ms on every keep-alive request (measured)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):  # pragma: no cover - gone already; or an exotic transport
            pass


class WSGIBridge:
    """The ASGI app each worker serves: receive the whole request body (within the size limit and
    the timeout), then run the WSGI app with that body (a read, ``GET`` or ``HEAD``, on a pool of
    ``threads`` threads; every other request, and every request when ``threads`` is 0, on the
    event loop), collect its whole response, and send it back in one piece.

    The WSGI app therefore never waits for a client, neither for a body still arriving nor for a
    slow reader of the response. The environ is built by a2wsgi's ``build_environ`` (PEP 3333:
    latin-1 path, headers as ``HTTP_*``, ``CONTENT_LENGTH``); the body is presented with its
    ``Content-Length``, chunked or not. a2wsgi's own ``WSGIMiddleware`` streams both ways, which
    costs three cross-thread round trips per response and blocks a thread on every read of a body
    that is still arriving: ≈ 0.25 ms more CPU per request here (docs/reliability.md). This API
    never streams (every response is a small JSON document or a static page)."""

    def __init__(self, app, *, threads: int, max_body_bytes: int, timeout_s: float,
                 fhir_max_body_bytes: int | None = None):
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi") if threads > 0 else None
        self.max_body_bytes = max_body_bytes
        #: /fhir takes larger bodies (a QuestionnaireResponse carries its whole sitting)
        self.fhir_max_body_bytes = max_body_bytes if fhir_max_body_bytes is None else fhir_max_body_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":  # no websockets; lifespan is off
            return
        fhir = is_fhir_path(scope.get("path", ""))
        limit = self.fhir_max_body_bytes if fhir else self.max_body_bytes
        declared = _content_length(scope["headers"])
        if declared is not None and declared > limit:
            if declared <= DRAIN_BYTES:
                await self._drain(receive)
            return await _send_problem(send, 413, fhir=fhir)
        try:
            body = await asyncio.wait_for(self._read(receive, limit), self.timeout_s)
        except asyncio.TimeoutError:
            return await _send_problem(send, 408, fhir=fhir)
        if body is _GONE:  # the client went away before its request was whole: nothing to do
            return
        if body is None:
            return await _send_problem(send, 413, fhir=fhir)
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"transfer-encoding")]
        if body or declared is not None or len(headers) != len(scope["headers"]):
            headers.append((b"content-length", str(len(body)).encode()))
        environ = build_environ(dict(scope, headers=headers), io.BytesIO(body))
        environ["wsgi.errors"] = sys.stderr
        try:
            if self.executor is None or scope["method"] not in READ_METHODS:
                status, response_headers, payload = self._run(environ)
            else:
                status, response_headers, payload = await asyncio.get_running_loop().run_in_executor(
                    self.executor, self._run, environ)
        except Exception as e:  # noqa: BLE001 - Flask answers its own errors; this is a bug in the bridge
            # uvicorn would answer a text/plain 500 and log the exception with its message
            log.error("WSGI app failed without a response: %s", type(e).__name__, exc_info=scrubbed_exc_info(e))
            return await _send_problem(send, 500, fhir=fhir)
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    def _run(self, environ) -> tuple[int, list, bytes]:
        """On a pool thread: the app's status, headers and whole body."""
        started: dict = {}
        written: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            if started and exc_info is None:
                raise AssertionError("start_response called twice without exc_info (PEP 3333)")
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [(k.strip().lower().encode("latin-1"), v.strip().encode("latin-1"))
                                  for k, v in headers]
            return written.append

        result = self.app(environ, start_response)
        try:
            written.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return started["status"], started["headers"], b"".join(written)

    async def _read(self, receive, limit: int) -> "bytes | None | object":
        """The body; None when it is over the limit (what is left of it is then drained); or
        :data:`_GONE` when the client disconnected first."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return _GONE
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body", False):
                    await self._drain(receive, size)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _drain(self, receive, size: int = 0) -> None:
        try:
            async with asyncio.timeout(min(self.timeout_s, 5.0)):
                while size <= DRAIN_BYTES:
                    message = await receive()
                    size += len(message.get("body", b""))
                    if message["type"] != "http.request" or not message.get("more_body", False):
                        return
        except TimeoutError:
            return


def _content_length(headers) -> int | None:
    for k, v in headers:
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:  # httptools rejects these before; be safe
                return None
    return None


async def _send_problem(send, status: int, *, fhir: bool = False) -> None:
    """The front end's own error reply: problem+json, or an OperationOutcome on ``/fhir`` paths."""
    body = server_problem(status)
    headers = _FRONT_HEADERS
    if fhir:
        body, headers = server_outcome(body), _FHIR_FRONT_HEADERS
    await send({"type": "http.response.start", "status": status,
                "headers": headers + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class ScrubFilter(logging.Filter):
    """Keep exception types and frames in the server's log, never exception messages (they can
    quote request data, such as a patient reference in a path or a header)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_info = scrubbed_exc_info(record.exc_info[1])
            record.exc_text = None
        return True


LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub": {"()": "api.serving.ScrubFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["scrub"],
                            "stream": "ext://sys.stderr"}},
    "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False}},
}


def asgi_app():
    """The factory each worker process calls (``api.serving:asgi_app``): the Flask app behind
    :class:`WSGIBridge`."""
    from . import create_app
    from .cli import _freeze_heap

    app = create_app()
    _freeze_heap()
    threads = int(os.environ.get("CAT_PROM_THREADS") or 2)
    return WSGIBridge(app, threads=threads, max_body_bytes=app.config["CAT_PROM_MAX_BODY_BYTES"],
                      fhir_max_body_bytes=app.config["CAT_PROM_FHIR_MAX_BODY_BYTES"],
                      timeout_s=app.config["CAT_PROM_REQUEST_TIMEOUT"])


def run(*, host: str, port: int, workers: int, threads: int, keepalive_s: int, forwarded_allow_ips: str | None,
        log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM (workers finish their requests, 10 s at most)."""
    import uvicorn

    os.environ["CAT_PROM_THREADS"] = str(threads)  # read by asgi_app() in every worker process
    uvicorn.run("api.serving:asgi_app", factory=True, host=host, port=port, workers=workers, http=Protocol,
                lifespan="off", interface="asgi3", server_header=False, access_log=False, log_config=LOG_CONFIG,
                log_level=log_level, timeout_keep_alive=keepalive_s, timeout_graceful_shutdown=10, backlog=2048,
                proxy_headers=bool(forwarded_allow_ips), forwarded_allow_ips=forwarded_allow_ips or None)

