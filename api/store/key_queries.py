"""API-key queries: the only SQL about keys."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from .engine import as_utc
from .records import KeyRecord
from .tables import api_keys

_SEL_BY_HASH = sa.select(api_keys).where(api_keys.c.key_hash == sa.bindparam("p_hash"))


_TOUCH = (api_keys.update().where(api_keys.c.id == sa.bindparam("p_id"),
                                  sa.or_(api_keys.c.last_used_at.is_(None),
                                         api_keys.c.last_used_at < sa.bindparam("p_before")))
          .values(last_used_at=sa.bindparam("p_now")))


def _key_record(r) -> KeyRecord:
    return KeyRecord(id=r.id, tenant=r.tenant, name=r.name, role=r.role, key_hash=r.key_hash,
                     created_at=as_utc(r.created_at), revoked_at=as_utc(r.revoked_at),
                     expires_at=as_utc(r.expires_at), last_used_at=as_utc(r.last_used_at))


class KeyQueries:
    """API keys. Mixed into :class:`api.store.SessionStore`."""

    def insert_key(self, rec: KeyRecord) -> None:
        with self.write() as conn:
            conn.execute(api_keys.insert().values(
                id=rec.id, tenant=rec.tenant, name=rec.name, role=rec.role, key_hash=rec.key_hash,
                created_at=rec.created_at, revoked_at=rec.revoked_at, expires_at=rec.expires_at))

    def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        with self.read(snapshot=False) as conn:
            r = conn.execute(_SEL_BY_HASH, {"p_hash": key_hash}).first()
        return None if r is None else _key_record(r)

    def list_keys(self, tenant: str | None = None, include_revoked: bool = True) -> list[KeyRecord]:
        q = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if tenant is not None:
            q = q.where(api_keys.c.tenant == tenant)
        if not include_revoked:
            q = q.where(api_keys.c.revoked_at.is_(None))
        with self.read() as conn:
            return [_key_record(r) for r in conn.execute(q)]

    def revoke_key(self, key_id: str, tenant: str | None, now: dt.datetime) -> KeyRecord | None:
        """Revoke a key (idempotent); the key as it is now, or None when there is no such key (in
        the tenant)."""
        cond = api_keys.c.id == key_id
        if tenant is not None:
            cond = sa.and_(cond, api_keys.c.tenant == tenant)
        with self.write() as conn:
            row = conn.execute(sa.select(api_keys).where(cond)).first()
            if row is None:
                return None
            if row.revoked_at is None:
                conn.execute(api_keys.update().where(cond).values(revoked_at=now))
                row = conn.execute(sa.select(api_keys).where(cond)).first()
        return _key_record(row)

    def touch_key(self, key_id: str, now: dt.datetime, resolution: dt.timedelta) -> None:
        """Record that the key was used; one autocommitted statement that writes only when the stored
        time is older than ``resolution`` (so many workers touching one key write about once)."""
        with self.autocommit() as conn:
            conn.execute(_TOUCH, {"p_id": key_id, "p_now": now, "p_before": now - resolution})

    def count_active_keys(self) -> int:
        with self.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(api_keys)
                                .where(api_keys.c.revoked_at.is_(None))).scalar_one()
