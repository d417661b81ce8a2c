"""Shared pieces of the clinical service: defaults, the clock, bank lookups, record rendering."""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Callable

from ..service import iso as service_iso
from ..store import SessionStore, utcnow
from ..problems import Problem
from ..registry import Registry

from cat_prom.clinical.change import DEFAULT_MID as DEFAULT_MID_T
from cat_prom.clinical.gas import DEFAULT_RHO as DEFAULT_GAS_RHO
from cat_prom.clinical.rules import DEFAULT_CERTAINTY, RULES, RuleConfig

#: the rules on by default and the abandoned-sittings run length: the engine's defaults
DEFAULT_RULES = tuple(r for r in RULES if RuleConfig().is_enabled(r))
DEFAULT_ABANDONED_N = RuleConfig().abandoned_n
ALERT_DEFAULTS = {"enabled_rules": list(DEFAULT_RULES), "certainty": DEFAULT_CERTAINTY,
                  "abandoned_n": DEFAULT_ABANDONED_N, "gas_rho": DEFAULT_GAS_RHO}


def iso(t) -> str | None:
    """A datetime as the service writes it (:func:`api.service.iso`, UTC with ``Z``); a date as ISO 8601."""
    if isinstance(t, dt.date) and not isinstance(t, dt.datetime):
        return t.isoformat()
    return service_iso(t)


def plain(record, *, drop: tuple = (), rename: dict | None = None) -> dict:
    """A store record as JSON-ready dict: datetimes as ISO 8601 UTC, fields renamed or dropped."""
    rename = rename or {}
    out = {}
    for f in dataclasses.fields(record):
        if f.name in drop:
            continue
        v = getattr(record, f.name)
        out[rename.get(f.name, f.name)] = iso(v) if isinstance(v, (dt.datetime, dt.date)) else v
    return out


class Base:
    """The clinical service's state: the database, the banks and a clock (tests move time on)."""

    def __init__(self, db: SessionStore, registry: Registry, clock: Callable[[], dt.datetime] = utcnow):
        self.db = db
        self.registry = registry
        self.clock = clock

    def now(self) -> dt.datetime:
        return self.clock()

    def bank(self, bank_id: str):
        bank = self.registry.banks.get(bank_id)
        if bank is None:
            raise Problem("bank-not-found", f"No item bank {bank_id!r}; GET /v1/banks lists the banks.")
        return bank
