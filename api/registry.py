"""The banks and batteries the service can administer, loaded once per worker.

Banks are the ``*.json`` files (format ``cat-prom-bank/1``) directly in the
banks folder (``CAT_PROM_BANKS_DIR``); batteries are ``batteries/*.json``, read
by the engine's :func:`cat_prom.battery_file.load_battery` (format in
``docs/bank-format.md``)::

    {"id": "pain-core", "name": "...", "banks": ["pain-intensity", ...],
     "designs": {"pain-intensity": {...design overrides...}}}

A file that fails validation is skipped and reported by ``/readyz``; it never
takes the other banks down with it.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cat_prom.bank import ItemBank
from cat_prom.battery_file import BatteryDef, load_battery
from cat_prom.errors import CatPromError

log = logging.getLogger("cat_prom.api.registry")


@dataclass
class Registry:
    folder: str
    banks: dict[str, ItemBank] = field(default_factory=dict)
    batteries: dict[str, BatteryDef] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    summaries: dict[str, dict] = field(default_factory=dict)
    public_docs: dict[str, dict] = field(default_factory=dict)
    full_docs: dict[str, dict] = field(default_factory=dict)

    def warm_up(self) -> None:
        _warm(self)

    @property
    def ready(self) -> bool:
        return bool(self.banks)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "Registry":
        reg = cls(folder=str(folder))
        path = Path(folder)
        if not path.is_dir():
            reg.errors.append(f"banks folder {str(path)!r} does not exist; set CAT_PROM_BANKS_DIR")
            log.warning("banks folder %s does not exist", path)
            return reg
        for f in sorted(path.glob("*.json")):
            try:
                bank = ItemBank.load(f)
            except CatPromError as e:
                reg.errors.append(f"{f.name}: {e.message}")
                log.error("skipping bank file %s: %s", f.name, e.message)
                continue
            except Exception as e:  # a bank file must never stop the service
                reg.errors.append(f"{f.name}: {type(e).__name__}: {e}")
                log.error("skipping bank file %s: %s", f.name, type(e).__name__)
                continue
            if bank.id in reg.banks:
                reg.errors.append(f"{f.name}: bank id {bank.id!r} already loaded from another file; skipped")
                continue
            reg.banks[bank.id] = bank
        for bank in reg.banks.values():
            full = bank.to_dict()
            reg.full_docs[bank.id] = full
            summary = _summary(bank, full)
            reg.summaries[bank.id] = summary
            reg.public_docs[bank.id] = _public_doc(bank, summary)
        bdir = path / "batteries"
        if bdir.is_dir():
            for f in sorted(bdir.glob("*.json")):
                try:
                    bat = load_battery(f, banks=reg.banks)
                except CatPromError as e:  # the message starts with the file name
                    reg.errors.append(f"batteries/{e.message}")
                    log.error("skipping battery file %s: %s", f.name, e.message)
                    continue
                if bat.id in reg.batteries:
                    reg.errors.append(f"batteries/{f.name}: battery id {bat.id!r} already defined; skipped")
                    continue
                reg.batteries[bat.id] = bat
        reg.warm_up()
        log.info("loaded %d banks and %d batteries from %s", len(reg.banks), len(reg.batteries), path)
        return reg


def _warm(reg: "Registry") -> None:
    """Build each bank's grid tables for the default design now, not on a patient's first request."""
    try:
        from cat_prom.session import CatSession
    except Exception:  # pragma: no cover - engine missing; readyz reports it
        return
    for bank in reg.banks.values():
        try:
            CatSession(bank, None, seed=0)
        except Exception as e:  # pragma: no cover - a broken bank is reported, not fatal
            reg.errors.append(f"bank {bank.id!r}: cannot start a session: {type(e).__name__}: {e}")


def _summary(bank: ItemBank, full: dict) -> dict:
    s = dict(bank.summary()) if hasattr(bank, "summary") else {}
    s.update({
        "id": bank.id, "name": bank.name, "version": bank.version, "domain": bank.domain,
        "recall_period": bank.recall_period, "direction": bank.direction, "n_items": len(bank.items),
        "content_hash": full.get("content_hash"),
        "severity_bands": [{"label": b.label, "min_t": b.min_t, "max_t": b.max_t} for b in bank.bands],
        "demo": bool(getattr(bank, "demo", False)),
    })
    if getattr(bank, "disclaimer", ""):
        s["disclaimer"] = bank.disclaimer
    return s


def _public_doc(bank: ItemBank, summary: dict) -> dict:
    """What a patient app needs to show the items: no item parameters."""
    doc = dict(summary)
    if getattr(bank, "instructions", ""):
        doc["instructions"] = bank.instructions
    doc["items"] = [{"id": it.id, "stem": it.stem, "options": it.options()} for it in bank.items]
    return doc
