"""Rate limits (api.limits, counted by the limits library): per key for sessions and answers, per client address for
failed authentication; 429 problem+json with Retry-After; memory or Redis storage.

Issue 10: one key created 3,000 sessions in 6 s, and 2,000 wrong-key requests all got 401."""
from __future__ import annotations

import uuid

import pytest

from apihelpers import Keys, make_app
from services import REDIS_URL, ensure_redis, require

PROBLEM = "application/problem+json"
START = {"banks": ["pain-intensity"], "patient": "pt-rl"}


def limited_app(tmp_path, banks_dir, name="a", **limits):
    cfg = {"RATE_LIMIT_SESSIONS": "off", "RATE_LIMIT_ANSWERS": "off", "RATE_LIMIT_AUTH_FAILURES": "off"}
    cfg.update(limits)
    return make_app(banks_dir, f"sqlite:///{tmp_path / (name + '.sqlite')}", **cfg)


def fresh_address() -> str:
    """A client address no other test (or earlier run, with Redis) has used."""
    return "2001:db8::" + ":".join(uuid.uuid4().hex[i:i + 4] for i in range(0, 16, 4))


def assert_429(r):
    assert r.status_code == 429, r.get_json()
    assert r.mimetype == PROBLEM
    doc = r.get_json()
    assert doc["type"] == "urn:cat-prom:problem:too-many-requests" and doc["status"] == 429
    retry = r.headers["Retry-After"]
    assert retry.isdigit() and 1 <= int(retry) <= 3600
    assert f"retry after {retry} s" in doc["detail"]
    return doc


def test_sessions_are_limited_per_key(tmp_path, banks_dir):
    app = limited_app(tmp_path, banks_dir, RATE_LIMIT_SESSIONS="3/minute")
    c, keys = app.test_client(), Keys(app)
    for _ in range(3):
        assert c.post("/v1/sessions", json=START, headers=keys["patient-app"]).status_code == 201
    doc = assert_429(c.post("/v1/sessions", json=START, headers=keys["patient-app"]))
    assert "sessions started with this API key" in doc["detail"] and "at most 3/minute" in doc["detail"]
    # another key (even of the same tenant) has its own count
    assert c.post("/v1/sessions", json=START, headers=keys.make("patient-app")).status_code == 201
    # the limit is on starting sessions only: the limited key can still read
    assert c.get("/v1/banks", headers=keys["patient-app"]).status_code == 200
    app.extensions["cat_prom"].store.dispose()


def test_answers_are_limited_per_key(tmp_path, banks_dir):
    app = limited_app(tmp_path, banks_dir, RATE_LIMIT_ANSWERS="2/minute")
    c, keys = app.test_client(), Keys(app)
    h = keys["patient-app"]
    v = c.post("/v1/sessions", json=START, headers=h).get_json()
    for _ in range(2):
        q = v["question"]
        r = c.post(f"/v1/sessions/{v['id']}/responses", headers=h,
                   json={"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][0]["value"]})
        assert r.status_code == 200
        v = r.get_json()
    q = v["question"]
    body = {"seq": q["seq"], "item_id": q["item_id"], "value": q["options"][0]["value"]}
    doc = assert_429(c.post(f"/v1/sessions/{v['id']}/responses", headers=h, json=body))
    assert "answers posted with this API key" in doc["detail"]
    # nothing was stored for the refused answer
    assert c.get(f"/v1/sessions/{v['id']}", headers=h).get_json()["n_responses"] == 2
    app.extensions["cat_prom"].store.dispose()


def test_failed_authentication_is_limited_per_address(tmp_path, banks_dir):
    app = limited_app(tmp_path, banks_dir, RATE_LIMIT_AUTH_FAILURES="5/minute")
    c, keys = app.test_client(), Keys(app)
    good = keys["patient-app"]
    bad = {"Authorization": "Bearer cpk_" + "x" * 43}
    attacker = {"REMOTE_ADDR": fresh_address()}
    for _ in range(10):  # successful requests do not count
        assert c.get("/v1/banks", headers=good, environ_base=attacker).status_code == 200
    for i in range(5):
        r = c.get("/v1/banks", headers=bad if i % 2 else {}, environ_base=attacker)
        assert r.status_code == 401
    doc = assert_429(c.get("/v1/banks", headers=bad, environ_base=attacker))
    assert "failed authentications from this address" in doc["detail"]
    # once spent, the address is refused before its key is looked at, right or wrong
    assert_429(c.get("/v1/banks", headers=good, environ_base=attacker))
    assert_429(c.post("/v1/sessions", json=START, headers=good, environ_base=attacker))
    # probes stay open; other addresses are not affected
    assert c.get("/healthz", environ_base=attacker).status_code == 200
    other = {"REMOTE_ADDR": fresh_address()}
    assert c.get("/v1/banks", headers=good, environ_base=other).status_code == 200
    assert c.get("/v1/banks", headers=bad, environ_base=other).status_code == 401
    app.extensions["cat_prom"].store.dispose()


def test_off_turns_a_limit_off(tmp_path, banks_dir):
    app = limited_app(tmp_path, banks_dir)  # every limit "off"
    c, keys = app.test_client(), Keys(app)
    for _ in range(30):
        assert c.get("/v1/banks", headers={"Authorization": "Bearer nope"}).status_code == 401
    for _ in range(15):
        assert c.post("/v1/sessions", json=START, headers=keys["patient-app"]).status_code == 201
    app.extensions["cat_prom"].store.dispose()


def test_a_malformed_limit_is_a_configuration_error(tmp_path, banks_dir):
    with pytest.raises(SystemExit, match="CAT_PROM_RATE_LIMIT_SESSIONS"):
        limited_app(tmp_path, banks_dir, RATE_LIMIT_SESSIONS="lots")


def test_defaults_are_on_and_documented():
    """The defaults in api.config are the ones docs/api.md and the README state."""
    from pathlib import Path
    from api.config import _SETTINGS
    repo = Path(__file__).resolve().parents[2]
    api_md, readme = (repo / "docs" / "api.md").read_text(), (repo / "README.md").read_text()
    for name in ("RATE_LIMIT_SESSIONS", "RATE_LIMIT_ANSWERS", "RATE_LIMIT_AUTH_FAILURES"):
        default = _SETTINGS[name][0]
        assert default != "off"
        for text in (api_md, readme):
            assert f"`CAT_PROM_{name}` | `{default}`" in text, name
    assert "`CAT_PROM_REDIS_URL`" in api_md and "`CAT_PROM_REDIS_URL`" in readme


# ------------------------------------------------------------------------------ Redis
@pytest.fixture
def redis_url():
    """Redis at CAT_PROM_TEST_REDIS_URL; under CI=true a stopped local one is started first."""
    return require("Redis", REDIS_URL, ensure_redis(REDIS_URL))


def test_redis_counters_are_shared_by_workers(tmp_path, banks_dir, redis_url):
    """Two apps on one database and one Redis stand for two workers (or hosts): a key's sessions
    and an address's failed authentications are counted once across both."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    cfg = {"RATE_LIMIT_SESSIONS": "4/minute", "RATE_LIMIT_ANSWERS": "off", "RATE_LIMIT_AUTH_FAILURES": "3/minute",
           "REDIS_URL": redis_url}
    a = make_app(banks_dir, url, **cfg)
    keys = Keys(a)
    h = keys["patient-app"]
    b = make_app(banks_dir, url, **cfg)
    ca, cb = a.test_client(), b.test_client()
    assert [c.post("/v1/sessions", json=START, headers=h).status_code for c in (ca, cb, ca, cb)] == [201] * 4
    assert_429(ca.post("/v1/sessions", json=START, headers=h))
    assert_429(cb.post("/v1/sessions", json=START, headers=h))
    bad = {"Authorization": "Bearer cpk_wrong"}
    who = {"REMOTE_ADDR": fresh_address()}
    assert [c.get("/v1/banks", headers=bad, environ_base=who).status_code for c in (ca, cb, ca)] == [401] * 3
    assert_429(cb.get("/v1/banks", headers=bad, environ_base=who))
    import redis
    stored = redis.Redis.from_url(redis_url).keys(f"*LIMITER/cat-prom/{keys._made['patient-app']['_id']}/*")
    assert stored, "the counters are in Redis"
    for app in (a, b):
        app.extensions["cat_prom"].store.dispose()


def test_unreachable_redis_falls_back_to_memory(tmp_path, banks_dir):
    """If Redis goes away the service keeps serving (and limiting, per worker) rather than failing.
    A real server: the fallback is process state, which must not leak into the other tests."""
    from apiserver import Server, request
    from api import keys as keys_mod
    from api.store import SessionStore
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    db = SessionStore(url)
    db.migrate()
    h = {"Authorization": "Bearer " + keys_mod.create_key(db, role="patient-app", name="t")["key"]}
    db.dispose()
    srv = Server(db_url=url, banks_dir=banks_dir, workers=1, log_path=tmp_path / "s.log",
                 extra_env={"CAT_PROM_REDIS_URL": "redis://127.0.0.1:9/0",
                            "CAT_PROM_RATE_LIMIT_SESSIONS": "2/minute"}).wait_ready()
    try:
        codes = [request(srv.base, "POST", "/v1/sessions", START, h)[0] for _ in range(4)]
        assert codes == [201, 201, 429, 429]
        assert request(srv.base, "GET", "/healthz")[0] == 200
    finally:
        srv.stop()


def test_memory_storage_starts_no_thread_per_hit():
    """limits' MemoryStorage started a threading.Timer (a new thread) on most hits; ours sweeps
    inline. If an upgrade of limits renames the hook we override, this fails."""
    import time as _time

    from limits import parse
    from limits.strategies import SlidingWindowCounterRateLimiter

    from api.limits import _MemoryStorage
    storage = _MemoryStorage()
    timer = storage.timer
    limiter = SlidingWindowCounterRateLimiter(storage)
    item = parse("5/second")
    for _ in range(3):
        assert limiter.hit(item, "k")
        _time.sleep(0.02)  # longer than the original's 10 ms timer
    assert storage.timer is timer
    storage._last_sweep = 0.0
    _time.sleep(2.1)  # two whole windows: the sliding window's previous window holds nothing either
    assert limiter.hit(item, "k")  # old counters expired: counting starts again
    assert limiter.get_window_stats(item, "k").remaining >= 3


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [False, True])
def test_client_address_behind_a_proxy(tmp_path, banks_dir, trusted):
    """The failed-authentication count is per TCP peer, and X-Forwarded-For is believed only from the
    proxies listed in --forwarded-allow-ips (CAT_PROM_FORWARDED_ALLOW_IPS): otherwise a client
    could pick a new address for every guess."""
    from apiserver import Server, request
    env = {"CAT_PROM_RATE_LIMIT_AUTH_FAILURES": "2/minute"}
    if trusted:
        env["CAT_PROM_FORWARDED_ALLOW_IPS"] = "127.0.0.1"
    srv = Server(db_url=f"sqlite:///{tmp_path / 'p.sqlite'}", banks_dir=banks_dir, workers=1,
                 log_path=tmp_path / "s.log", extra_env=env).wait_ready()
    try:
        def wrong(xff):
            return request(srv.base, "GET", "/v1/banks",
                           headers={"Authorization": "Bearer cpk_wrong", "X-Forwarded-For": xff})[0]
        assert [wrong("203.0.113.1"), wrong("203.0.113.1")] == [401, 401]
        assert wrong("203.0.113.1") == 429
        # another forwarded address: a client of its own behind a trusted proxy, else the same peer
        assert wrong("203.0.113.2") == (401 if trusted else 429)
    finally:
        srv.stop()


def test_fhir_next_question_counts_as_answers(tmp_path, banks_dir):
    """$next-question carries one answer per call: the per-key answers limit applies to it too."""
    from apihelpers import Keys, make_app
    app = make_app(banks_dir, f"sqlite:///{tmp_path / 'f.sqlite'}", RATE_LIMIT_ANSWERS="2/minute")
    try:
        h = {**Keys(app)["patient-app"], "Content-Type": "application/fhir+json"}
        c = app.test_client()
        qr = {"resourceType": "QuestionnaireResponse", "status": "in-progress",
              "questionnaire": "bank.pain-intensity"}
        codes = [c.post("/fhir/Questionnaire/$next-question", headers=h, json=qr).status_code for _ in range(3)]
        assert codes[:2] != [429, 429] and codes[2] == 429, codes
        r = c.post("/fhir/Questionnaire/$next-question", headers=h, json=qr)
        assert r.status_code == 429 and r.mimetype == "application/fhir+json" and "Retry-After" in r.headers
        assert r.get_json()["resourceType"] == "OperationOutcome"
    finally:
        app.extensions["cat_prom"].store.dispose()


@pytest.mark.slow
def test_two_worker_processes_share_one_count_through_redis(tmp_path, banks_dir, redis_url):
    """A real `cat-prom serve` with 2 worker processes: sessions started on new connections (which
    land on either worker) are counted once for the key, so exactly the limit gets through."""
    import concurrent.futures as cf

    from apiserver import Server, request
    from api import keys as keys_mod
    from api.store import SessionStore
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    db = SessionStore(url)
    db.migrate()
    h = {"Authorization": "Bearer " + keys_mod.create_key(db, role="patient-app", name="t")["key"]}
    db.dispose()
    srv = Server(db_url=url, banks_dir=banks_dir, workers=2, log_path=tmp_path / "s.log",
                 extra_env={"CAT_PROM_REDIS_URL": redis_url, "CAT_PROM_RATE_LIMIT_SESSIONS": "5/minute"}).wait_ready()
    try:
        with cf.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: request(srv.base, "POST", "/v1/sessions", START, h)[0], range(24)))
        assert sorted(set(codes)) == [201, 429] and codes.count(201) == 5, codes
    finally:
        srv.stop()
