"""``cat-prom serve`` and ``cat-prom keys ...``.

Registered with the ``cat-prom`` command through the entry-point group
``cat_prom.commands`` in ``pyproject.toml`` (``serve`` and ``keys`` both name
:func:`add_subcommands`); the engine never imports this package. ``cat-prom
--help`` reads the one-line help of each command from :data:`COMMANDS` without
importing it. ``python -m api.cli serve|keys ...`` works on its own too.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROLES = ("patient-app", "clinician", "researcher", "admin")
#: The commands this module adds, with their one-line help (a literal: `cat-prom --help` reads it statically).
COMMANDS = {"serve": "run the HTTP API (uvicorn in front of the Flask app)", "keys": "manage API keys",
            "worker": "deliver alert webhooks from the outbox"}


def add_subcommands(subparsers) -> None:
    """Add ``serve``, ``keys`` and ``worker`` to an argparse ``subparsers`` object; each sets ``func``."""
    p = subparsers.add_parser("serve", help=COMMANDS["serve"],
                              description="Run the cat-prom HTTP API: uvicorn worker processes, each running the Flask "
                                          "app once a request has fully arrived: writes on its event loop, reads on "
                                          "--threads threads (Flask's debug server with --debug). On first start "
                                          "with no API keys, creates an admin and a patient-app key for tenant "
                                          "'default' and prints them once.")
    p.add_argument("--host", default=os.environ.get("CAT_PROM_HOST", "127.0.0.1"),
                   help="address to listen on (default: $CAT_PROM_HOST, else 127.0.0.1: this machine only; "
                        "0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=int(os.environ.get("CAT_PROM_PORT", "8000")),
                   help="TCP port to listen on (default: $CAT_PROM_PORT, else 8000)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (default: one per CPU)")
    p.add_argument("--threads", type=_threads, default=os.environ.get("CAT_PROM_THREADS", "2"), metavar="N",
                   help="threads per worker that run reads (GET, HEAD: pages, reports, exports); every other "
                        "request runs on the worker's event loop (default: $CAT_PROM_THREADS, else 2; 0: every "
                        "request on the event loop)")
    p.add_argument("--keepalive", type=int, default=int(os.environ.get("CAT_PROM_KEEPALIVE", "30")), metavar="SECONDS",
                   help="seconds an idle keep-alive connection is kept open (default 30)")
    p.add_argument("--forwarded-allow-ips", default=os.environ.get("CAT_PROM_FORWARDED_ALLOW_IPS") or None,
                   metavar="IPS", help="comma list of reverse-proxy addresses whose X-Forwarded-For/-Proto are "
                                       "trusted for the client address (default: none; the TCP peer is the client)")
    p.add_argument("--debug", action="store_true", help="Flask's debug server (development only)")
    p.add_argument("--database-url", metavar="URL", help="sets CAT_PROM_DATABASE_URL")
    p.add_argument("--banks-dir", metavar="DIR", help="sets CAT_PROM_BANKS_DIR")
    p.add_argument("--no-bootstrap-keys", action="store_true",
                   help="do not create first keys when the key table is empty")
    p.set_defaults(func=run_serve)

    k = subparsers.add_parser("keys", help=COMMANDS["keys"], description="Create, list and revoke API keys.")
    k.add_argument("--database-url", help="sets CAT_PROM_DATABASE_URL")
    ks = k.add_subparsers(dest="keys_command", metavar="{create,list,revoke}")
    ks.required = True
    c = ks.add_parser("create", help="create a key and print it once")
    c.add_argument("--role", required=True, choices=ROLES)
    c.add_argument("--name", required=True, help="who or what uses the key, e.g. 'symptom app iOS'")
    c.add_argument("--tenant", default="default", help="the clinic the key belongs to (default: default)")
    c.add_argument("--expires-in-days", type=int, metavar="DAYS", help="the key stops working after DAYS days "
                   "(1-3650; default: never)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=run_keys)
    ls = ks.add_parser("list", help="list keys (never the secrets)")
    ls.add_argument("--tenant", help="only this tenant")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=run_keys)
    r = ks.add_parser("revoke", help="revoke a key by id")
    r.add_argument("key_id")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=run_keys)

    w = subparsers.add_parser("worker", help=COMMANDS["worker"],
                              description="Deliver alert events from the outbox to the tenants' webhook endpoints "
                                          "(signed POSTs, retries with exponential backoff, a delivery log) and run "
                                          "simulation jobs (POST /v1/simulations). Several "
                                          "workers may share one PostgreSQL database; run one with SQLite.")
    w.add_argument("--database-url", help="sets CAT_PROM_DATABASE_URL")
    w.add_argument("--banks-dir", metavar="DIR", help="sets CAT_PROM_BANKS_DIR (the banks simulation jobs use)")
    w.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    w.add_argument("--batch", type=int, default=10, metavar="N", help="rows claimed per round (default 10)")
    w.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                   help="pause when nothing is due (default 1)")
    w.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="HTTP timeout per delivery (default 10)")
    w.add_argument("--lease", type=float, default=60.0, metavar="SECONDS",
                   help="how long a claimed row is reserved; after a worker crash its rows are retried once "
                        "the lease ends (default 60; must exceed --timeout)")
    w.add_argument("--max-attempts", type=int, default=10, metavar="N",
                   help="attempts before a delivery is marked failed (default 10)")
    w.add_argument("--backoff", type=float, default=5.0, metavar="SECONDS",
                   help="first retry delay, doubled per attempt (default 5)")
    w.add_argument("--backoff-max", type=float, default=3600.0, metavar="SECONDS",
                   help="longest retry delay (default 3600)")
    w.set_defaults(func=run_worker)


def handle(args) -> int:
    """Dispatch parsed arguments (for callers that do not use ``args.func``)."""
    return args.func(args)


# ---------------------------------------------------------------------- helpers
def _settings() -> dict:
    from flask import Flask

    from .config import load_config
    instance = Flask("api", instance_relative_config=True).instance_path
    os.makedirs(instance, exist_ok=True)
    return load_config(instance)


def _database(settings: dict):
    from .store import SessionStore
    db = SessionStore(settings["CAT_PROM_DATABASE_URL"], schema=settings["CAT_PROM_DATABASE_SCHEMA"],
                  sqlite_synchronous=settings["CAT_PROM_SQLITE_SYNCHRONOUS"],
                  pg_synchronous_commit=settings["CAT_PROM_PG_SYNCHRONOUS_COMMIT"])
    db.migrate()
    return db


def _apply_env(args) -> None:
    if getattr(args, "database_url", None):
        os.environ["CAT_PROM_DATABASE_URL"] = args.database_url
    if getattr(args, "banks_dir", None):
        os.environ["CAT_PROM_BANKS_DIR"] = args.banks_dir


def bootstrap_keys(db, out=None) -> list[dict]:
    """On a database without any active key, create an admin and a patient-app key for 'default'."""
    from . import keys
    out = out or sys.stdout
    if keys.count_active_keys(db) > 0:
        return []
    pepper = os.environ.get("CAT_PROM_SECRET_KEY") or None
    made = [keys.create_key(db, role=role, name=f"first-run {role}", tenant="default", pepper=pepper)
            for role in ("admin", "patient-app")]
    print("cat-prom: no API keys existed, so these were created for tenant 'default'.\n"
          "They are shown only this once; store them now (revoke with `cat-prom keys revoke ID`):", file=out)
    for k in made:
        print(f"  {k['role']:<12} {k['id']}  {k['key']}", file=out)
    out.flush()
    return made


# ------------------------------------------------------------------------ keys
def run_keys(args) -> int:
    from . import keys
    _apply_env(args)
    settings = _settings()
    db = _database(settings)
    try:
        if args.keys_command == "create":
            try:
                k = keys.create_key(db, role=args.role, name=args.name, tenant=args.tenant,
                                    pepper=settings["CAT_PROM_SECRET_KEY"],
                                    expires_at=keys.key_expiry(expires_in_days=args.expires_in_days))
            except ValueError as e:
                print(f"cat-prom keys create: {e}", file=sys.stderr)
                return 2
            if args.json:
                print(json.dumps(k))
            else:
                print(f"Created {k['role']} key {k['id']} ({k['name']!r}, tenant {k['tenant']!r}).\n"
                      f"This is the only time the key is shown; store it now:\n{k['key']}")
            return 0
        if args.keys_command == "list":
            rows = keys.list_keys(db, tenant=args.tenant)
            if args.json:
                print(json.dumps(rows))
            else:
                print(f"{'id':<22} {'tenant':<16} {'role':<12} {'status':<8} {'created':<26} {'last used':<17} name")
                for r in rows:
                    status = "revoked" if r["revoked_at"] else "expired" if keys.has_expired(r) else "active"
                    print(f"{r['id']:<22} {r['tenant']:<16} {r['role']:<12} {status:<8} {r['created_at'][:25]:<26} "
                          f"{(r['last_used_at'] or 'never')[:16]:<17} {r['name']}")
            return 0
        if args.keys_command == "revoke":
            row = keys.revoke_key(db, args.key_id)
            if row is None:
                print(f"cat-prom keys revoke: no key {args.key_id!r}", file=sys.stderr)
                return 1
            print(json.dumps(row) if args.json else f"Revoked key {row['id']} ({row['role']}, tenant {row['tenant']!r}).")
            return 0
    finally:
        db.dispose()
    return 2  # pragma: no cover


# ---------------------------------------------------------------------- worker
def run_worker(args) -> int:
    import logging

    from .worker import Worker, WorkerConfig
    _apply_env(args)
    settings = _settings()
    if args.timeout >= args.lease:
        print("cat-prom worker: --lease must be longer than --timeout", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings["CAT_PROM_LOG_LEVEL"].upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    db = _database(settings)
    from .registry import Registry
    try:
        w = Worker(db, WorkerConfig(batch=args.batch, poll_s=args.poll, lease_s=args.lease, timeout_s=args.timeout,
                                    max_attempts=args.max_attempts, backoff_base_s=args.backoff,
                                    backoff_max_s=args.backoff_max,
                                    sim_max_simulees=settings["CAT_PROM_SIM_MAX_SIMULEES"],
                                    sim_max_items=settings["CAT_PROM_SIM_MAX_ITEMS"]),
                   registry=Registry.load(settings["CAT_PROM_BANKS_DIR"]))
        w.install_signal_handlers()
        print(f"cat-prom worker {w.name}: delivering the outbox and running simulation jobs", flush=True)
        w.run(once=args.once)
    finally:
        db.dispose()
    return 0


def _threads(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"--threads (or CAT_PROM_THREADS) must be a whole number >= 0, not {text!r}")
    return n


# ----------------------------------------------------------------------- serve
def default_workers(database_url: str | None = None) -> int:
    """One worker process per CPU, each running writes on its event loop and reads on ``--threads``
    threads (default 2).

    Each worker keeps the sittings it serves in memory. Clients that keep their connection
    alive (apps' HTTP clients do) stay on one worker, so
    their session is found in that worker's cache; a request on a new connection may land on
    another worker, which then rebuilds the session by replaying its log (≈ 0.3 ms for a
    4-domain sitting). Running an answer on the event loop costs less CPU than handing it to a
    thread and back, and it waits for the GIL behind no other request of its process (a pool for
    every request measured slower here on both databases); reads, which can be long (reports,
    exports), keep a pool so that they never hold the loop.
    benchmarks/results/api_load.md has the measurements behind these defaults."""
    return max(1, os.cpu_count() or 1)


def _freeze_heap() -> None:
    """Move everything allocated while loading the app (modules, banks, grid tables) out of the
    cyclic garbage collector's sight (``gc.freeze``). Otherwise every full collection walks those
    ~10^5 objects, a 38 ms stall of the worker measured here that queues every request behind it;
    CPython runs one whenever the objects surviving into the oldest generation have grown by a
    quarter, which cached sittings do under load (benchmarks/results/api_load.md)."""
    import gc
    gc.collect()
    gc.freeze()


def run_serve(args) -> int:
    _apply_env(args)
    settings = _settings()
    db = _database(settings)  # migrate once in the master, before forking workers
    try:
        if not args.no_bootstrap_keys:
            bootstrap_keys(db)
    finally:
        db.dispose()
    if args.debug:
        from . import create_app
        app = create_app()
        app.run(host=args.host, port=args.port, debug=True, use_reloader=False)
        return 0
    from . import serving

    workers = args.workers or default_workers(settings["CAT_PROM_DATABASE_URL"])
    os.environ["CAT_PROM_AUTO_MIGRATE"] = "0"  # done above; workers skip it and boot faster
    print(f"cat-prom: serving on http://{args.host}:{args.port} with {workers} worker{'s' if workers != 1 else ''} "
          f"(API reference: http://{args.host}:{args.port}/v1/docs)", flush=True)
    serving.run(host=args.host, port=args.port, workers=workers, threads=args.threads,
                keepalive_s=args.keepalive, forwarded_allow_ips=args.forwarded_allow_ips,
                log_level=str(settings["CAT_PROM_LOG_LEVEL"]).lower())
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cat-prom")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subcommands(sub)
    args = parser.parse_args(argv)
    return handle(args)


if __name__ == "__main__":
    sys.exit(main())
