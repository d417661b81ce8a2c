"""Configuration of the service, read from the environment.

Every setting has a ``CAT_PROM_`` environment variable; ``create_app(config)``
takes the same keys (without the prefix or with it) to override them in tests.

=============================  ==========================================================
``CAT_PROM_DATABASE_URL``      SQLAlchemy URL. Default: ``sqlite:///<instance>/cat-prom.sqlite``
``CAT_PROM_DATABASE_SCHEMA``   PostgreSQL schema to use (created if missing). Default: none
``CAT_PROM_BANKS_DIR``         folder of bank JSON files (+ ``batteries/``). Default: repo ``item_banks/``
``CAT_PROM_SESSION_TTL``       seconds of inactivity after which a session expires. Default 604800 (7 days)
``CAT_PROM_SECRET_KEY``        pepper mixed into API-key hashes (HMAC-SHA256). Default: none (plain SHA-256)
``CAT_PROM_AUTO_MIGRATE``      run Alembic migrations at start (``1``/``0``). Default 1
``CAT_PROM_SQLITE_SYNCHRONOUS`` SQLite ``PRAGMA synchronous``: ``NORMAL`` (default; in WAL mode a commit survives a
                               process crash or kill -9, the last commits can be lost on power failure) or
                               ``FULL`` (fsync per commit: also survives power loss; ~10 ms per answer here)
``CAT_PROM_PG_SYNCHRONOUS_COMMIT`` PostgreSQL ``synchronous_commit`` for the service's connections (e.g. ``off``:
                               a commit no longer waits for the WAL flush; survives a crash of cat-prom, not
                               of PostgreSQL). Default: the server's setting (normally ``on``)
``CAT_PROM_KEY_CACHE_TTL``     seconds a verified API key is cached in a worker. Default 2
``CAT_PROM_MAX_BODY_BYTES``    largest request body accepted. Default 65536
``CAT_PROM_REQUEST_TIMEOUT``   seconds a client has to send a request's head, and again its body. Default 30
``CAT_PROM_LOG_LEVEL``         logging level. Default ``INFO``
``CAT_PROM_REDIS_URL``         Redis for rate-limit counters shared by workers and hosts. Default: none (per process)
``CAT_PROM_RATE_LIMIT_SESSIONS`` sessions one API key may start. Default ``10/second;300/minute``
``CAT_PROM_RATE_LIMIT_ANSWERS`` answers one API key may post. Default ``100/second;3000/minute``
``CAT_PROM_RATE_LIMIT_AUTH_FAILURES`` failed authentications from one client address. Default ``20/minute;100/hour``
``CAT_PROM_FHIR_BASE_URL``     FHIR base URL used in canonical URLs and references (e.g.
                               ``https://prom.example.org/fhir``). Default: the request's host + ``/fhir``
``CAT_PROM_FHIR_MAX_BODY_BYTES`` largest request body on ``/fhir`` (a QuestionnaireResponse carries its whole
                               sitting: ~3 KB per question). Default 1048576
``CAT_PROM_FHIR_SIGNING_KEY``  key of the signed ``$next-question`` state (docs/fhir.md). Default: derived from
                               ``CAT_PROM_SECRET_KEY``, else a random key kept in ``<instance>/fhir-signing.key``
``CAT_PROM_COOKIE_SECURE``     mark the pages' cookies ``Secure`` (sent over HTTPS only). Default 1; set 0 only
                               for local development over plain HTTP
``CAT_PROM_WEB_SESSION_TTL``   seconds a clinician's browser sign-in lasts. Default 28800 (8 hours)
``CAT_PROM_FORM_SECRET``       key that signs the pages' CSRF tokens; the same in every worker and host. Default:
                               derived from ``CAT_PROM_SECRET_KEY``, else a random key kept in the instance folder
``CAT_PROM_SIM_MAX_SIMULEES``  largest ``n`` of one simulation job. Default 2000
``CAT_PROM_SIM_MAX_ITEMS``     largest bank a simulation job may use (items). Default 500
``CAT_PROM_SIM_MAX_ACTIVE``    simulation jobs one tenant may have queued or running at once. Default 2
=============================  ==========================================================
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BANKS_DIR = REPO_ROOT / "item_banks"

#: key -> (default, parser)
_SETTINGS: dict[str, tuple[Any, Any]] = {
    "DATABASE_URL": (None, str),
    "DATABASE_SCHEMA": (None, str),
    "BANKS_DIR": (str(DEFAULT_BANKS_DIR), str),
    "SESSION_TTL": (7 * 24 * 3600, int),
    "SECRET_KEY": (None, str),
    "AUTO_MIGRATE": (True, lambda v: str(v).strip().lower() not in ("0", "false", "no", "off", "")),
    "SQLITE_SYNCHRONOUS": ("NORMAL", lambda v: str(v).upper()),
    "KEY_CACHE_TTL": (2.0, float),
    "PG_SYNCHRONOUS_COMMIT": (None, str),
    "MAX_BODY_BYTES": (65536, int),
    "REQUEST_TIMEOUT": (30.0, float),
    "LOG_LEVEL": ("INFO", str),
    "REDIS_URL": (None, str),
    # limits: "N/second;M/minute" (the limits library's notation); "off" turns one off
    "RATE_LIMIT_SESSIONS": ("10/second;300/minute", str),
    "RATE_LIMIT_ANSWERS": ("100/second;3000/minute", str),
    "RATE_LIMIT_AUTH_FAILURES": ("20/minute;100/hour", str),
    "FHIR_BASE_URL": (None, str),
    "FHIR_SIGNING_KEY": (None, str),
    "FHIR_MAX_BODY_BYTES": (1048576, int),
    "COOKIE_SECURE": (True, lambda v: str(v).strip().lower() not in ("0", "false", "no", "off", "")),
    "WEB_SESSION_TTL": (8 * 3600, int),
    "FORM_SECRET": (None, str),
    # simulation jobs (POST /v1/simulations), per tenant
    "SIM_MAX_SIMULEES": (2000, int),
    "SIM_MAX_ITEMS": (500, int),
    "SIM_MAX_ACTIVE": (2, int),
}


def load_config(instance_path: str, overrides: Mapping[str, Any] | None = None) -> dict:
    """Settings from defaults < environment < ``overrides``; keys are returned with the prefix."""
    out: dict[str, Any] = {}
    overrides = dict(overrides or {})
    for key, (default, parse) in _SETTINGS.items():
        name = "CAT_PROM_" + key
        value = default
        if os.environ.get(name) not in (None, ""):
            value = os.environ[name]
        for k in (name, key):
            if k in overrides:
                value = overrides.pop(k)
        if value is not None:
            try:
                value = parse(value)
            except (TypeError, ValueError):
                raise SystemExit(f"configuration error: {name}={value!r} is not valid") from None
        out[name] = value
    if not out["CAT_PROM_DATABASE_URL"]:
        out["CAT_PROM_DATABASE_URL"] = "sqlite:///" + os.path.join(instance_path, "cat-prom.sqlite")
    if out["CAT_PROM_SQLITE_SYNCHRONOUS"] not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise SystemExit("configuration error: CAT_PROM_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
    out.update(overrides)  # any other Flask setting (TESTING, ...)
    return out
