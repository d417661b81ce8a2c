"""Storage: SQLAlchemy Core tables, the engine, transactions and migrations.

Three tables (created by the Alembic migrations in ``api/migrations``):

``api_keys``   one row per API key; only a hash of the key is stored.
``sessions``   one row per CAT sitting: the engine's state document (its
               append-only log), a ``version`` bumped by every answer, status,
               expiry and, once finished, the scores.
``responses``  the append-only response log, one row per accepted answer
               (``seq`` = the number of the question answered). The row and the
               session update are written in one transaction.

Writers are serialised per database on SQLite (``BEGIN IMMEDIATE``, plus a
cross-process ``flock`` so that waiting writers wake at once instead of
polling the busy handler) and per session row on PostgreSQL (row locks taken
by ``UPDATE`` / ``SELECT ... FOR UPDATE``); see :mod:`api.service`.
"""
from __future__ import annotations

import collections
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import threading
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("cat_prom.api.db")

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("patient_ref", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("battery_id", sa.String(100), nullable=True),
    sa.Column("bank_ids", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("n_responses", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("question", sa.Text, nullable=True),
    sa.Column("result", sa.Text, nullable=True),
    sa.Index("ix_sessions_tenant_patient", "tenant", "patient_ref", "finished_at"),
)

responses = sa.Table(
    "responses", metadata,
    sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("item_id", sa.String(100), nullable=False),
    sa.Column("value", sa.Text, nullable=True),
    sa.Column("declined", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reply", sa.Text, nullable=False),
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# The answer route's statements in each driver's parameter style (see Database.fetch_session).
SESSION_COLUMNS = tuple(c.name for c in sessions.columns)
SessionRow = collections.namedtuple("SessionRow", SESSION_COLUMNS)
_DT_INDEXES = tuple(i for i, c in enumerate(sessions.columns) if isinstance(c.type, sa.DateTime))
UPD_COLUMNS = ("state", "version", "n_responses", "status", "updated_at", "expires_at", "finished_at", "question",
               "result")
_RESPONSE_COLUMNS = ("session_id", "seq", "item_id", "value", "declined", "created_at", "reply")  # session_id first


def _statements(ph: str) -> dict[str, str]:
    cols = ", ".join(SESSION_COLUMNS)
    sets = ", ".join(f"{c} = {ph}" for c in UPD_COLUMNS)
    rcols = ", ".join(_RESPONSE_COLUMNS)
    return {
        "select": f"SELECT {cols} FROM sessions WHERE id = {ph} AND tenant = {ph}",
        "update": f"UPDATE sessions SET {sets} WHERE id = {ph} AND version = {ph}",
        "insert": f"INSERT INTO responses ({rcols}) VALUES ({', '.join([ph] * len(_RESPONSE_COLUMNS))})",
        # PostgreSQL: update and append as one statement; the INSERT appends only if the UPDATE matched.
        "advance": (f"WITH advanced AS (UPDATE sessions SET {sets} WHERE id = {ph} AND version = {ph} "
                    f"RETURNING id) INSERT INTO responses ({rcols}) SELECT id, "
                    f"{', '.join([ph] * (len(_RESPONSE_COLUMNS) - 1))} FROM advanced"),
    }


_SQL_SQLITE = _statements("?")
_SQL_PG = _statements("%s")


def _sqlite_dt(value: dt.datetime) -> str:
    """A datetime as SQLAlchemy's SQLite dialect stores it (UTC wall time, microseconds)."""
    value = as_utc(value)
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}:"
            f"{value.second:02d}.{value.microsecond:06d}")


def _parse_sqlite_dt(value) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return as_utc(value)
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _default(obj):
    if hasattr(obj, "item"):  # numpy scalar
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False, default=_default)


class Database:
    """The engine plus the transaction helpers the service uses."""

    def __init__(self, url: str, *, schema: str | None = None, sqlite_synchronous: str = "NORMAL",
                 pg_synchronous_commit: str | None = None):
        self.url = sa.engine.make_url(url)
        self.schema = schema
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._lock_pid: int | None = None
        if self.is_sqlite:
            path = self.url.database
            if not path or path == ":memory:":
                raise ValueError("SQLite needs a file database (several connections share it); "
                                 "use sqlite:////path/to/file.sqlite")
            self.sqlite_path = os.path.abspath(path)
            os.makedirs(os.path.dirname(self.sqlite_path), exist_ok=True)
            self.engine = sa.create_engine(
                self.url.set(database=self.sqlite_path),
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=8, max_overflow=16,
            )
            _install_sqlite_hooks(self.engine, sqlite_synchronous)
        else:
            if self.url.drivername == "postgresql":  # choose psycopg 3 by default
                self.url = self.url.set(drivername="postgresql+psycopg")
            connect_args = {"connect_timeout": 10}
            options = []
            if schema:
                options.append(f"-csearch_path={schema}")
            if pg_synchronous_commit:
                options.append(f"-csynchronous_commit={pg_synchronous_commit}")
            if options:
                connect_args["options"] = " ".join(options)
            self.engine = sa.create_engine(self.url, connect_args=connect_args, pool_size=8, max_overflow=16,
                                           pool_pre_ping=False)

    # ------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def read(self, *, snapshot: bool = True) -> Iterator[Connection]:
        """A read-only connection: one transaction (a consistent snapshot), or with
        ``snapshot=False`` autocommit, which saves the BEGIN/COMMIT round trips for
        single-statement reads."""
        with self.engine.connect() as conn:
            if not snapshot:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; committed when the block exits without an exception."""
        if self.is_sqlite:
            with self._sqlite_writer():
                with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
                    with conn.begin():
                        yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @contextlib.contextmanager
    def _sqlite_writer(self):
        # One writer per process (thread lock) and per database file (flock): waiters
        # sleep in the kernel and wake when the lock is released, which keeps tail
        # latency low compared with SQLite's polling busy handler.
        with self._thread_lock:
            fd = self._writer_fd()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _writer_fd(self) -> int:
        if self._lock_fd is None or self._lock_pid != os.getpid():  # re-open after fork
            self._lock_fd = os.open(self.sqlite_path + ".writelock", os.O_RDWR | os.O_CREAT, 0o600)
            self._lock_pid = os.getpid()
        return self._lock_fd

    # ------------------------------------------------ the answer route's hot path
    # One answer is one session read and one conditional advance (update + append). Through
    # SQLAlchemy Core those cost ~80 us and ~250 us of Python per answer; on the pooled DBAPI
    # connection ~12 us and ~60 us. Same tables, same SQL, same transactions, same durability;
    # DBAPI errors are re-raised as SQLAlchemy's, so the error handlers see what they always saw.
    @contextlib.contextmanager
    def _raw(self):
        pooled = self.engine.raw_connection()
        dbapi = pooled.driver_connection
        try:
            if self.is_postgres:
                dbapi.autocommit = True  # each statement is its own transaction: no BEGIN/COMMIT trips
            yield dbapi
        except self._dbapi_error as e:
            invalid = self.engine.dialect.is_disconnect(e, dbapi, None)
            if invalid:
                pooled.invalidate(e)
            raise sa.exc.DBAPIError.instance(None, None, e, self._dbapi_error,
                                              connection_invalidated=invalid) from e
        finally:
            if self.is_postgres and pooled.is_valid and not dbapi.closed:
                dbapi.autocommit = False  # as SQLAlchemy expects pooled connections to be
            pooled.close()  # back to the pool

    @property
    def _dbapi_error(self):
        return self.engine.dialect.loaded_dbapi.Error

    def fetch_session(self, sid: str, tenant: str):
        """The ``sessions`` row of ``sid`` in ``tenant`` (a :data:`SessionRow`), or None. Autocommit:
        one statement, one consistent row."""
        sql = _SQL_SQLITE if self.is_sqlite else _SQL_PG
        with self._raw() as c:
            cur = c.cursor()
            try:
                cur.execute(sql["select"], (sid, tenant))
                r = cur.fetchone()
            finally:
                cur.close()
        if r is None:
            return None
        if self.is_sqlite:
            r = list(r)
            for i in _DT_INDEXES:
                if r[i] is not None:
                    r[i] = _parse_sqlite_dt(r[i])
        return SessionRow._make(r)

    def advance_session(self, sid: str, old_version: int, upd: dict, response: dict) -> bool:
        """In ONE transaction: update the session row to ``upd`` only if its version is still
        ``old_version``, and append ``response`` (session_id, seq, item_id, value, declined,
        created_at, reply) to the response log. False (nothing written) when the version moved.

        SQLite: ``BEGIN IMMEDIATE`` under the writer lock, UPDATE, INSERT, COMMIT.
        PostgreSQL: one statement (the INSERT selects from the UPDATE's RETURNING), atomic on its
        own, in autocommit: one round trip, committed (and flushed, with synchronous_commit on)
        before it returns."""
        params = [upd[c] for c in UPD_COLUMNS] + [sid, old_version]
        rparams = [response[c] for c in _RESPONSE_COLUMNS[1:]]
        if self.is_postgres:
            with self._raw() as c:
                cur = c.cursor()
                try:
                    cur.execute(_SQL_PG["advance"], params + rparams)
                    return cur.rowcount == 1
                finally:
                    cur.close()
        params = [_sqlite_dt(v) if isinstance(v, dt.datetime) else v for v in params]
        rparams = [_sqlite_dt(v) if isinstance(v, dt.datetime) else (int(v) if isinstance(v, bool) else v)
                   for v in rparams]
        with self._sqlite_writer(), self._raw() as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                if c.execute(_SQL_SQLITE["update"], params).rowcount != 1:
                    c.execute("ROLLBACK")
                    return False
                c.execute(_SQL_SQLITE["insert"], [sid] + rparams)
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        return True

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            conn.execute(sa.select(sa.func.count()).select_from(api_keys).limit(1))

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock_fd is not None and self._lock_pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = None

    # --------------------------------------------------------------- migrations
    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision; safe to run from many processes at once."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        if self.is_postgres:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
                try:
                    if self.schema:
                        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                        conn.commit()
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                    conn.commit()
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                    conn.commit()
        else:
            lock_path = (self.sqlite_path + ".migrate.lock") if self.is_sqlite else None
            with _file_lock(lock_path):
                with self.engine.connect() as conn:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                    conn.commit()


_PG_MIGRATION_LOCK = 0x6361_7470_726F  # "catpro"


@contextlib.contextmanager
def _file_lock(path: str | None):
    if path is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _install_sqlite_hooks(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, record):  # pragma: no cover - exercised by every test
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - exercised by every test
        opts = conn.get_execution_options()
        if opts.get("isolation_level") == "AUTOCOMMIT":
            return
        mode = opts.get("sqlite_begin")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")
