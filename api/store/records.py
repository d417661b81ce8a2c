"""Plain records the store returns: no SQLAlchemy rows leave :mod:`api.store`."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SessionRecord:
    """A ``sessions`` row without its ``config`` (which only a replay needs)."""

    id: str
    tenant: str
    patient_ref: str
    status: str
    battery_id: str | None
    bank_ids: list[str]
    version: int
    n_responses: int
    created_at: dt.datetime
    updated_at: dt.datetime
    expires_at: dt.datetime
    finished_at: dt.datetime | None
    result: list | None  #: the per-domain results, once finished


@dataclass(frozen=True)
class ResponseRecord:
    """One entry of the append-only response log."""

    seq: int
    item_id: str
    value: Any  #: the response value as sent (None when declined)
    declined: bool
    created_at: dt.datetime

    def log_entry(self) -> dict:
        """The engine's log entry (``Battery.answer``/``decline`` arguments)."""
        if self.declined:
            return {"item_id": self.item_id, "declined": True}
        return {"item_id": self.item_id, "value": self.value}


@dataclass(frozen=True)
class Advance:
    """What one accepted answer writes: the small session columns and one response row."""

    version: int
    n_responses: int
    status: str
    updated_at: dt.datetime
    expires_at: dt.datetime
    finished_at: dt.datetime | None
    result: list | None
    response: ResponseRecord


@dataclass(frozen=True)
class KeyRecord:
    id: str
    tenant: str
    name: str
    role: str
    key_hash: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
