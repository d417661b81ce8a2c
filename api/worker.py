"""``cat-prom worker``: delivers the alert outbox to the tenants' webhook endpoints, and runs
simulation jobs (``POST /v1/simulations``; :mod:`api.store.jobs`), one at a time between outbox batches.

Loop: claim due outbox rows (a short transaction, see :mod:`api.store.outbox`), POST each signed
body (:mod:`api.webhooks`), then log the attempt and settle the row: delivered on a 2xx; otherwise
due again after an exponential backoff (``base · 2^(attempt-1)``, capped), and failed for good after
``max_attempts``. Several workers may run against one PostgreSQL database (claims skip rows another
worker holds); on SQLite run one. SIGTERM/SIGINT finish the current batch, then exit.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import signal
import socket
import threading
import uuid

from . import sim_jobs, webhooks
from .store import SessionStore as Database, utcnow
from .problems import Problem
from .store import outbox as store

log = logging.getLogger("cat_prom.worker")


@dataclasses.dataclass
class WorkerConfig:
    batch: int = 10
    poll_s: float = 1.0
    lease_s: float = 60.0
    timeout_s: float = 10.0
    max_attempts: int = 10
    backoff_base_s: float = 5.0
    backoff_max_s: float = 3600.0
    job_lease_s: float = 900.0        # a simulation job not finished by then is run again by another worker
    sim_max_simulees: int = 2000
    sim_max_items: int = 500


class Worker:
    def __init__(self, db: Database, config: WorkerConfig | None = None, *, name: str | None = None,
                 registry=None):
        self.db = db
        self.registry = registry  # the banks; without them no simulation job is taken
        self.cfg = config or WorkerConfig()
        if self.cfg.lease_s <= self.cfg.timeout_s:
            raise ValueError("the lease must be longer than the HTTP timeout, or a slow delivery is sent twice")
        self.name = name or f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()

    def run_once(self) -> int:
        """Claim one outbox batch and deliver it, then run one simulation job; returns the number of rows
        attempted plus jobs run."""
        now = utcnow()
        with self.db.write() as conn:
            items = store.claim(conn, worker=self.name, now=now, lease=dt.timedelta(seconds=self.cfg.lease_s),
                                limit=self.cfg.batch, skip_locked=self.db.is_postgres)
        for item in items:
            self._deliver(item)
        return len(items) + (self.run_job() if self.registry is not None else 0)

    def run_job(self) -> int:
        """Claim one simulation job and run it to done or failed; 1 if there was one, else 0."""
        job = self.db.claim_job(worker=self.name, now=utcnow(), lease=dt.timedelta(seconds=self.cfg.job_lease_s))
        if job is None:
            return 0
        result = error = None
        try:
            result = sim_jobs.run(self.registry, job.request, max_simulees=self.cfg.sim_max_simulees,
                                  max_items=self.cfg.sim_max_items)
        except Problem as e:  # the bank or design changed since it was queued
            error = e.detail
        except Exception:  # noqa: BLE001 - a job must end, whatever went wrong; the traceback is logged
            log.exception("simulation job %s failed", job.id)
            error = "The simulation failed inside the service; the worker's log has the details."
        if not self.db.finish_job(job.id, worker=self.name, now=utcnow(), result=result, error=error):
            log.warning("simulation job %s: lease lost before it finished; another worker runs it", job.id)
        log.info("simulation job %s -> %s", job.id, "done" if error is None else "failed")
        return 1

    def _deliver(self, item: store.Claimed) -> None:
        out = webhooks.post(item.url, item.payload.encode(), secret=item.secret, event=item.event,
                            delivery_id=item.id, timeout_s=self.cfg.timeout_s)
        now = utcnow()
        retry_at = None
        if not out.delivered and item.attempt < self.cfg.max_attempts:
            retry_at = now + dt.timedelta(seconds=webhooks.backoff_s(
                item.attempt, base_s=self.cfg.backoff_base_s, max_s=self.cfg.backoff_max_s))
        with self.db.write() as conn:
            store.record_attempt(conn, item, worker=self.name, now=now, status_code=out.status_code,
                                 error=out.error, duration_ms=out.duration_ms, delivered=out.delivered,
                                 retry_at=retry_at)
        # ids and outcome only: no URL (it may carry a token), no payload
        log.info("outbox %s alert %s attempt %s -> %s", item.id, item.alert_id, item.attempt,
                 out.status_code if out.status_code is not None else out.error)

    def run(self, *, once: bool = False) -> None:
        while not self.stopping.is_set():
            n = self.run_once()
            if once and n == 0:
                return
            if n == 0:
                self.stopping.wait(self.cfg.poll_s)

    def install_signal_handlers(self) -> None:
        def _stop(signum, frame):
            self.stopping.set()
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
