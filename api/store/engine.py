"""The database engine: connections, transactions, migrations (SQLAlchemy Core, SQLite and PostgreSQL).

Two pools per database: ``engine`` for transactions (``read()`` snapshots, ``write()``) and one
whose connections stay in autocommit mode for single statements (``autocommit()``,
``read(snapshot=False)``): the answer route's read and, on PostgreSQL, its one-statement write.

Writers are serialised per database on SQLite (``BEGIN IMMEDIATE``, plus a cross-process
``flock`` so that waiting writers wake at once instead of polling the busy handler) and per
session row on PostgreSQL (the row lock taken by ``UPDATE``).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import threading
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from .tables import api_keys

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_PG_MIGRATION_LOCK = 0x6361_7470_726F  # "catpro"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


class Database:
    """The engine plus the transaction helpers the store's queries use."""

    def __init__(self, url: str, *, schema: str | None = None, sqlite_synchronous: str = "NORMAL",
                 pg_synchronous_commit: str | None = None):
        self.url = sa.engine.make_url(url)
        self.schema = schema
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._lock_pid: int | None = None
        self._driver: DriverStatements | None = None
        if self.is_sqlite:
            path = self.url.database
            if not path or path == ":memory:":
                raise ValueError("SQLite needs a file database (several connections share it); "
                                 "use sqlite:////path/to/file.sqlite")
            self.sqlite_path = os.path.abspath(path)
            os.makedirs(os.path.dirname(self.sqlite_path), exist_ok=True)
            url = self.url.set(database=self.sqlite_path)
            connect_args = {"timeout": 30, "check_same_thread": False}
            self.engine = sa.create_engine(url, connect_args=connect_args, pool_size=4, max_overflow=8)
            # Autocommit reads: the driver connection is in autocommit mode already (see
            # _install_sqlite_hooks), so no BEGIN is sent and there is nothing to roll back on return.
            auto = sa.create_engine(url, connect_args=connect_args, pool_size=4, max_overflow=8,
                                    pool_reset_on_return=None)
            for eng in (self.engine, auto):
                _install_sqlite_hooks(eng, sqlite_synchronous)
            self._autocommit_engine = auto.execution_options(sqlite_begin="NONE")
            self._immediate_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
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
            self.engine = sa.create_engine(self.url, connect_args=connect_args, pool_size=4, max_overflow=8,
                                           pool_pre_ping=False)
            # A second pool whose connections stay in autocommit mode: the answer route's statements
            # pay no isolation-level switch on checkout and no ROLLBACK on return.
            self._autocommit_engine = sa.create_engine(
                self.url, connect_args=connect_args, pool_size=4, max_overflow=8, pool_pre_ping=False,
                isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
            self._driver = DriverStatements(self._autocommit_engine.dialect)

    @property
    def engines(self) -> tuple[Engine, Engine]:
        """Both pools: transactions (``engine``) and autocommit statements."""
        return self.engine, self._autocommit_engine

    # ------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def read(self, *, snapshot: bool = True) -> Iterator[Connection]:
        """A read-only connection: one transaction (a consistent snapshot), or with
        ``snapshot=False`` autocommit, which saves the BEGIN/COMMIT round trips of a
        single-statement read."""
        if snapshot:
            with self.engine.connect() as conn:
                yield conn
        else:
            with self.autocommit() as conn:
                yield conn

    @contextlib.contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection whose every statement is its own transaction (no BEGIN/COMMIT round trips;
        a single data-modifying statement is atomic on its own). SQLite: the driver connection is
        in autocommit mode already (see ``_install_sqlite_hooks``), so no BEGIN is sent, which
        also spares the isolation-level reset SQLAlchemy's AUTOCOMMIT would run on every return."""
        with self._autocommit_engine.connect() as conn:
            yield conn

    def first_autocommit(self, stmt: sa.Executable, params: dict):
        """Run one statement in autocommit mode (atomic on its own) and return its first row, or
        None when it returns no rows.

        This is the answer route's write on PostgreSQL (and a new sitting's), so it skips Core's
        per-execution work: the statement is compiled once for the dialect (:class:`DriverStatements`;
        the same SQL, the same bind processing), and run on a pooled driver connection. That
        spares ≈ 0.1 ms of CPU per answer, 7–9 % of the server's work on it
        (benchmarks/results/api_load.md, 2026-11-27). A driver error is raised as SQLAlchemy's
        (``OperationalError`` and so on, mapped by the API as for every other statement), and a
        connection the error broke is dropped from the pool. SQLite runs the statement through
        Core as usual."""
        if self._driver is None:
            with self.autocommit() as conn:
                result = conn.execute(stmt, params)
                return result.first() if result.returns_rows else None
        sql, values = self._driver.compile(stmt, params)
        fairy = self._autocommit_engine.raw_connection()
        cur = None
        try:
            cur = fairy.driver_connection.cursor()
            cur.execute(sql, values)
            row = cur.fetchone() if cur.description is not None else None
            cur.close()
            return row
        except self._driver.dbapi.Error as e:
            dialect = self._driver.dialect
            broken = dialect.is_disconnect(e, fairy.dbapi_connection, cur)
            if broken:
                fairy.invalidate(e)
            raise sa.exc.DBAPIError.instance(sql, values, e, self._driver.dbapi.Error, dialect=dialect,
                                             connection_invalidated=broken) from e
        except BaseException as e:  # interrupted mid-statement: the connection's state is unknown
            fairy.invalidate(e)
            raise
        finally:
            fairy.close()  # back to the pool (autocommit: nothing to roll back)

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; committed when the block exits without an exception."""
        if self.is_sqlite:
            with self._sqlite_writer():
                with self._immediate_engine.connect() as conn:
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

    def ping(self) -> None:
        with self.read() as conn:
            conn.execute(sa.select(sa.func.count()).select_from(api_keys).limit(1))

    def dispose(self) -> None:
        for eng in self.engines:
            eng.dispose()
        if self._lock_fd is not None and self._lock_pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = None

    # --------------------------------------------------------------- migrations
    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (the newest Alembic revision by default); safe to run
        from many processes at once."""
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
                    command.upgrade(cfg, revision)
                    conn.commit()
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                    conn.commit()
        else:
            lock_path = (self.sqlite_path + ".migrate.lock") if self.is_sqlite else None
            with _file_lock(lock_path):
                with self.engine.connect() as conn:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
                    conn.commit()


class DriverStatements:
    """Core statements compiled once for a dialect, with their parameters prepared as Core's
    execution prepares them: values of bound literals filled in, each type's bind processor
    applied (a ``Boolean`` stays a ``bool``, for example). The SQL is SQLAlchemy's own; nothing
    is written by hand."""

    def __init__(self, dialect):
        self.dialect = dialect
        self.dbapi = dialect.loaded_dbapi
        self._compiled: dict[int, tuple] = {}

    def compile(self, stmt: sa.Executable, params: dict) -> tuple[str, dict]:
        hit = self._compiled.get(id(stmt))
        if hit is None or hit[0] is not stmt:  # keyed by identity: statements are module constants
            compiled = stmt.compile(dialect=self.dialect)
            if compiled.positiontup is not None:
                raise ValueError(f"{self.dialect.name}: positional parameters are not supported here")
            hit = self._compiled[id(stmt)] = (stmt, compiled, tuple(compiled._bind_processors.items()))
        _, compiled, processors = hit
        values = compiled.construct_params(params)
        for name, process in processors:
            if values.get(name) is not None:
                values[name] = process(values[name])
        return compiled.string, values


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
        if mode == "NONE":  # autocommit reads: each statement is its own transaction
            return
        # Straight on the driver connection: this runs for every write transaction, and a BEGIN
        # needs none of Core's statement machinery (no parameters, no result).
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")
