"""The HTTP front end (api.serving: uvicorn + a2wsgi) against real `cat-prom serve` processes:
slow clients, chunked bodies, the front end's own errors, response headers, and logs.

Latencies are recorded (printed with -s, and measured properly by benchmarks/slow_clients.py),
never asserted: the only time bounds here are generous timeouts that a working server meets by
orders of magnitude and a starved one never does.
"""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from apiserver import Server, request

from api import keys as keys_mod
from api.store import SessionStore

pytestmark = pytest.mark.slow
MARKER = "pt-MARKER-5521"  # a patient reference that must never reach a log
PROBLEM = "application/problem+json"


def _start(tmp, banks_dir, threads: int) -> Server:
    url = f"sqlite:///{tmp / 'front.sqlite'}"
    db = SessionStore(url)
    db.migrate()
    key = keys_mod.create_key(db, role="patient-app", name="t")["key"]
    clin = keys_mod.create_key(db, role="clinician", name="t")["key"]
    db.dispose()
    log = tmp / "server.log"
    srv = Server(db_url=url, banks_dir=banks_dir, workers=2, threads=threads, log_path=log,
                 extra_env={"CAT_PROM_LOG_LEVEL": "DEBUG"}).wait_ready()
    srv.h = {"Authorization": "Bearer " + key}
    srv.clin = {"Authorization": "Bearer " + clin}
    srv.log = log
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory, banks_dir):
    """2 workers as `cat-prom serve` runs them by default: writes on each worker's event loop, reads
    on 2 threads (the thread count four slow clients used to starve under gunicorn, issue 10)."""
    srv = _start(tmp_path_factory.mktemp("front"), banks_dir, threads=2)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def loop_only_server(tmp_path_factory, banks_dir):
    """2 workers with every request on the event loop (``--threads 0``)."""
    srv = _start(tmp_path_factory.mktemp("front-loop"), banks_dir, threads=0)
    yield srv
    srv.stop()


def raw(base, data: bytes, timeout=10.0, chunks=None, pause=0.0) -> bytes:
    """Send raw bytes (optionally in pieces with pauses) and read the reply until the server closes
    or a complete Content-Length body has arrived."""
    with socket.create_connection(base, timeout=timeout) as s:
        for piece in (chunks or [data]):
            try:
                s.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            if pause:
                time.sleep(pause)
        out = b""
        while True:
            try:
                got = s.recv(65536)
            except ConnectionResetError:
                break
            if not got:
                break
            out += got
            head, sep, body = out.partition(b"\r\n\r\n")
            if sep:
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length" and len(body) >= int(v):
                        return out
    return out


def parse(resp: bytes):
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def post_raw(srv, path, body: bytes, *, chunked=False, headers=None):
    h = {"Host": "t", "Content-Type": "application/json", **srv.h, **(headers or {})}
    if chunked:
        h["Transfer-Encoding"] = "chunked"
    else:
        h["Content-Length"] = str(len(body))
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "Connection: close\r\n\r\n"
    return parse(raw(srv.base, head.encode() + body))


def chunk(data: bytes, size=8192) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def start(srv, patient="pt-front"):
    status, v = request(srv.base, "POST", "/v1/sessions", {"banks": ["pain-intensity"], "patient": patient}, srv.h)
    assert status == 201, v
    return v


# ------------------------------------------------------------------------ slow clients
class SlowClients:
    """``n`` connections that each send one header line every ``every_s`` seconds, never finishing."""

    def __init__(self, base, n, every_s=2.0):
        self.base, self.n, self.every_s = base, n, every_s
        self.stop = threading.Event()
        self.socks = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        for i in range(self.n):
            s = socket.create_connection(self.base, timeout=10)
            s.sendall(f"GET /healthz HTTP/1.1\r\nHost: slow{i}\r\n".encode())
            self.socks.append(s)
        self.thread.start()
        time.sleep(0.5)
        return self

    def _run(self):
        k = 0
        while not self.stop.wait(self.every_s):
            k += 1
            for s in self.socks:
                try:
                    s.sendall(f"X-Slow-{k}: {k}\r\n".encode())
                except OSError:
                    pass

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        for s in self.socks:
            s.close()


@pytest.mark.parametrize("n_slow, threads", [(4, 2), (200, 2), (4, 0), (200, 0)])
def test_slow_clients_do_not_starve_the_service(request_fixture, n_slow, threads):
    """Issue 10: four connections sending one header line every 2 s left /healthz unanswered (gunicorn,
    2 workers x 2 threads, all held). With the event-driven front end a slow connection holds
    neither the app nor a thread, with reads on threads (the default) or every request on the
    loop: /healthz, a new session and an answer all succeed while they trickle."""
    server = request_fixture("server" if threads == 2 else "loop_only_server")
    with SlowClients(server.base, n_slow):
        lat = []
        for i in range(5):
            t0 = time.perf_counter()
            status, body = request(server.base, "GET", "/healthz", timeout=10)
            assert status == 200 and body == {"status": "ok"}
            v = start(server, f"pt-slow-{n_slow}-{i}")
            q = v["question"]
            status, nv = request(server.base, "POST", f"/v1/sessions/{v['id']}/responses",
                                 {"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][0]["value"]},
                                 server.h, timeout=10)
            assert status == 200, nv
            lat.append((time.perf_counter() - t0) * 1000)
        print(f"\n{n_slow} slow connections open ({threads} app threads): healthz + create + answer took "
              f"{max(lat):.1f} ms at most")


def test_an_idle_or_slow_head_is_closed_with_408(tmp_path, banks_dir):
    """A connection whose request head has not arrived within CAT_PROM_REQUEST_TIMEOUT gets 408
    problem+json and is closed (it would otherwise hold a file descriptor for ever)."""
    url = f"sqlite:///{tmp_path / 't.sqlite'}"
    srv = Server(db_url=url, banks_dir=banks_dir, workers=1, log_path=tmp_path / "s.log",
                 extra_env={"CAT_PROM_REQUEST_TIMEOUT": "1"}).wait_ready()
    try:
        status, headers, body = parse(raw(srv.base, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", timeout=20))
        assert status == 408 and headers["content-type"] == PROBLEM
        assert json.loads(body)["type"] == "urn:cat-prom:problem:request-timeout"
        # a body that stops arriving: 408 as well, and the server goes on serving
        resp = raw(srv.base, b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 100\r\n\r\n{\"banks\"", timeout=20)
        assert parse(resp)[0] == 408
        assert request(srv.base, "GET", "/healthz")[0] == 200
    finally:
        srv.stop()


# ---------------------------------------------------------------------- chunked bodies
def test_malformed_chunked_body_is_400_problem(server):
    """Issue 10: a bad chunk size gave 500 (InvalidChunkSize traceback), with no key needed."""
    for bad in (b"ZZ\r\n{}\r\n0\r\n\r\n", b"-5\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX\r\n0\r\n\r\n",
                b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n"):
        status, headers, body = post_raw(server, "/v1/sessions", bad, chunked=True, headers={"Authorization": "x"})
        assert status in (400, 413), (bad, status)
        assert headers["content-type"] == PROBLEM
        doc = json.loads(body)
        assert doc["status"] == status and doc["type"].startswith("urn:cat-prom:problem:")
    status, headers, body = post_raw(server, "/v1/sessions", b"ZZ\r\n{}\r\n0\r\n\r\n", chunked=True)
    assert status == 400 and json.loads(body)["type"] == "urn:cat-prom:problem:bad-request"


def test_chunked_bodies_obey_the_size_limit(server):
    """Issue 10: a 200 KB chunked body created a session (the 64 KiB limit only read Content-Length)."""
    before = request(server.base, "GET", "/v1/patients/pt-big/results", headers=server.clin)[1]["sessions"]
    big = json.dumps({"banks": ["pain-intensity"], "patient": "pt-big", "x": "a" * 200_000}).encode()
    for chunked in (True, False):
        status, headers, body = post_raw(server, "/v1/sessions", chunk(big) if chunked else big, chunked=chunked)
        assert status == 413 and headers["content-type"] == PROBLEM
        assert json.loads(body)["type"] == "urn:cat-prom:problem:payload-too-large"
    after = request(server.base, "GET", "/v1/patients/pt-big/results", headers=server.clin)[1]["sessions"]
    assert after == before == []
    # within the limit, a chunked body is read whole and works like any other
    ok = json.dumps({"banks": ["pain-intensity"], "patient": "pt-chunked"}).encode()
    status, headers, body = post_raw(server, "/v1/sessions", chunk(ok, size=7), chunked=True)
    assert status == 201 and json.loads(body)["patient"] == "pt-chunked"
    # just over the limit by a few bytes, in many small chunks: 413
    limit = 65536
    edge = b'{"patient": "' + b"a" * (limit - 12) + b'"}'
    assert len(edge) > limit
    assert post_raw(server, "/v1/sessions", chunk(edge, size=1000), chunked=True)[0] == 413


def test_fhir_bodies_have_their_own_limit_and_front_end_errors_are_operation_outcomes(server):
    """/fhir takes a QuestionnaireResponse with its whole sitting (CAT_PROM_FHIR_MAX_BODY_BYTES, 1 MiB),
    and an error the front end answers itself there is an OperationOutcome, never problem+json."""
    qr = json.dumps({"resourceType": "QuestionnaireResponse", "status": "in-progress",
                     "text": {"status": "generated", "div": "a" * 100_000}}).encode()
    for chunked in (True, False):  # over the JSON API's 64 KiB, under the FHIR limit: the app answers
        status, headers, body = post_raw(server, "/fhir/Questionnaire/$next-question", chunk(qr) if chunked else qr,
                                         chunked=chunked, headers={"Content-Type": "application/fhir+json"})
        assert status != 413 and headers["content-type"].startswith("application/fhir+json"), (status, body[:200])
        assert json.loads(body)["resourceType"] == "OperationOutcome"
    big = b'{"resourceType": "Parameters", "x": "' + b"a" * 1_100_000 + b'"}'
    for chunked in (True, False):
        status, headers, body = post_raw(server, "/fhir/Questionnaire/$next-question", chunk(big) if chunked else big,
                                         chunked=chunked, headers={"Content-Type": "application/fhir+json"})
        assert status == 413 and headers["content-type"] == "application/fhir+json"
        doc = json.loads(body)
        assert doc["resourceType"] == "OperationOutcome" and doc["issue"][0]["code"] == "too-costly"
        assert doc["issue"][0]["details"]["coding"][0]["code"] == "payload-too-large"


@pytest.mark.parametrize("target,headers,status,code", [
    ("/v1/patients/p-1/results?x=" + "a" * 5000, {}, 414, "uri-too-long"),
    ("/v1/banks", {"X-Big": "b" * 9000}, 431, "header-fields-too-large"),
    ("/v1/banks", {f"X-H{i}": "1" for i in range(120)}, 431, "header-fields-too-large"),
])
def test_front_end_rejections_are_problem_json(server, target, headers, status, code):
    head = f"GET {target} HTTP/1.1\r\nHost: t\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    got, h, body = parse(raw(server.base, head.encode()))
    assert got == status and h["content-type"] == PROBLEM and h["x-content-type-options"] == "nosniff"
    assert "server" not in h
    assert json.loads(body)["type"] == f"urn:cat-prom:problem:{code}"
    assert request(server.base, "GET", "/healthz")[0] == 200


# ----------------------------------------------------------------------------- headers
def _get(srv, path, headers=None):
    import http.client
    conn = http.client.HTTPConnection(*srv.base, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def test_response_headers(server):
    """Issue 10: responses with answers or scores had no Cache-Control: no-store nor nosniff, /v1/docs
    no frame-ancestors, X-Content-Type-Options or Referrer-Policy, and every response said
    `Server: gunicorn`."""
    v = start(server, "pt-headers")
    for path, h in [(f"/v1/sessions/{v['id']}", server.h), ("/v1/patients/pt-headers/results", server.clin),
                    ("/healthz", {}), ("/v1/banks", server.h), ("/v1/nothing", {}), ("/v1/banks", {})]:
        status, headers = _get(server, path, h)
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["cache-control"] == "no-store", path
        assert "server" not in headers, path
    status, headers = _get(server, "/v1/docs")
    assert status == 200
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    assert "server" not in headers


# -------------------------------------------------------------------------------- logs
def test_logs_never_contain_what_the_client_sent(server):
    """Issue 10: gunicorn echoed request fragments (a patient ref in a malformed method or header
    name) into its log. Hostile requests carrying a marker ref, then the whole log is searched."""
    m = MARKER
    hostile = [
        f"G{m}T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",                       # malformed method
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nBad {m}: 1\r\n\r\n",           # malformed header name
        f"GET /healthz HTTP/1.1\r\nHost: x\r\n{m}\r\n\r\n",                  # header line without a colon
        f"GET /v1/{m} HTTP/1.1\r\nHost: x\r\n\r\n",                          # unknown route
        f"GET /v1/patients/{m}/results HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer cpk_{m}\r\n\r\n",
        f"GET /v1/patients/{m}/results?{m}=1 HTTP/1.9\r\nHost: x\r\n\r\n",   # bad version
        f"GET /v1/patients/{m}/results?q={'a' * 5000} HTTP/1.1\r\nHost: x\r\n\r\n",  # 414
        f"GET /{m}\x00 HTTP/1.1\r\nHost: x\r\n\r\n",                          # NUL in the target
        f"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{m}\r\n",  # bad chunk size
        f"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{m}",
        f"GET /healthz HTTP/1.1\r\nHost: {m}\r\nX-Request-ID: {m}\r\n\r\n",
    ]
    for req in hostile:
        raw(server.base, req.encode("latin-1"))
    h = dict(server.h, **{"X-Request-ID": m, "User-Agent": m, "Referer": m})
    for body in ({"banks": ["pain-intensity"], "patient": m}, {"banks": [m], "patient": m}, {m: m}):
        request(server.base, "POST", "/v1/sessions", body, h)
    status, headers, body = post_raw(server, "/v1/sessions", b'{"patient": "' + m.encode() + b'", ', headers=h)
    assert status == 400
    v = start(server, m)
    q = v["question"]
    for value in (q["options"][0]["value"], m, 10 ** 400):
        request(server.base, "POST", f"/v1/sessions/{v['id']}/responses",
                {"seq": q["seq"], "item_id": q["item_id"], "value": value, "note": m}, h)
    time.sleep(0.5)
    text = server.log.read_text(errors="replace")
    assert "GET /v1/patients/<string:patient_ref>/results" in text  # the access log was on (DEBUG)
    assert m not in text and m.lower() not in text.lower()


def test_accepted_connections_get_tcp_nodelay():
    """With --workers > 1 uvicorn's worker processes get the listening socket back with proto 0, and
    asyncio then leaves Nagle's algorithm on: every keep-alive response (head, then body) waited
    ~40 ms for the client's delayed ACK. api.serving sets TCP_NODELAY itself."""
    from api.serving import _no_delay

    class Transport:
        def __init__(self, sock):
            self.sock = sock

        def get_extra_info(self, name):
            return self.sock if name == "socket" else None

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0) as s:
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        _no_delay(Transport(s))
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.fixture
def request_fixture(request):
    return request.getfixturevalue


@pytest.mark.parametrize("threads", [0, 1])
def test_a_failing_wsgi_app_still_gets_problem_json(threads):
    """Flask answers its own errors; if the bridge itself failed, uvicorn would send a text/plain 500
    and log the exception's message. WSGIBridge answers problem+json and logs the type only."""
    import asyncio
    import logging

    from api.serving import WSGIBridge

    def broken(environ, start_response):
        raise ValueError(f"secret {MARKER}")

    bridge = WSGIBridge(broken, threads=threads, max_body_bytes=100, timeout_s=5)
    scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": "/x", "root_path": "",
             "query_string": b"", "headers": [], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m):
        sent.append(m)

    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(logging.Formatter().format(r))
    logging.getLogger("cat_prom.api.serving").addHandler(handler)
    try:
        asyncio.run(bridge(scope, receive, send))
    finally:
        logging.getLogger("cat_prom.api.serving").removeHandler(handler)
    assert sent[0]["status"] == 500 and (b"content-type", PROBLEM.encode()) in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["type"] == "urn:cat-prom:problem:internal-error"
    assert records and "ValueError" in records[0] and MARKER not in "".join(records)


@pytest.mark.parametrize("threads", [0, 1])
def test_a_client_gone_before_its_body_arrived_runs_nothing(threads):
    import asyncio

    from api.serving import WSGIBridge
    called = []
    bridge = WSGIBridge(lambda environ, start_response: called.append(1) or [], threads=threads,
                        max_body_bytes=100, timeout_s=5)
    scope = {"type": "http", "http_version": "1.1", "method": "POST", "path": "/v1/sessions", "root_path": "",
             "query_string": b"", "headers": [(b"content-length", b"50")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    messages = [{"type": "http.request", "body": b'{"pat', "more_body": True}, {"type": "http.disconnect"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(m):
        sent.append(m)

    asyncio.run(bridge(scope, receive, send))
    assert called == [] and sent == []


@pytest.mark.parametrize("threads, method, on_loop", [(2, "POST", True), (2, "PUT", True), (2, "DELETE", True),
                                                     (2, "GET", False), (2, "HEAD", False),
                                                     (0, "POST", True), (0, "GET", True)])
def test_writes_run_on_the_event_loop_and_reads_on_the_pool(threads, method, on_loop):
    """A write runs the WSGI app on the worker's event-loop thread, a read (GET, HEAD) on a pool
    thread (a report may be long: it must not hold the loop); ``--threads 0``: everything on the
    loop. Either way the app gets the whole body and its whole reply goes back in one piece."""
    import asyncio

    from api.serving import WSGIBridge
    ran_on = []

    def app(environ, start_response):
        ran_on.append(threading.get_ident())
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"got": ', body, b"}"]

    bridge = WSGIBridge(app, threads=threads, max_body_bytes=100, timeout_s=5)
    assert (bridge.executor is None) == (threads == 0)
    scope = {"type": "http", "http_version": "1.1", "method": method, "path": "/x", "root_path": "",
             "query_string": b"", "headers": [(b"content-length", b"2")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    messages = [{"type": "http.request", "body": b"4", "more_body": True},
                {"type": "http.request", "body": b"2", "more_body": False}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(m):
        sent.append(m)

    async def main():
        await bridge(scope, receive, send)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert sent[0]["status"] == 200 and json.loads(sent[1]["body"]) == {"got": 42}
    assert len(ran_on) == 1 and (ran_on[0] == loop_thread) == on_loop
