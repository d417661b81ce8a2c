"""What the FHIR interface offers: each bank and battery of the registry as a Questionnaire target.

Questionnaire ids are ``bank.<bank id>`` and ``battery.<battery id>`` (a bank and a battery may
share an id in the JSON API). An id that is not a valid FHIR id (1-64 of ``A-Za-z0-9-.``) or an
item whose response values have the same text (``1`` and ``"1"``: the same answer code) keeps that
bank or battery out of the FHIR interface; :attr:`Catalog.errors` says which and why.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from cat_prom.jsonable import canonical

from .codes import FHIR_ID, answer_codings

log = logging.getLogger("cat_prom.api.fhir")


@dataclass(frozen=True, eq=False)
class Target:
    """A bank or battery as administered through FHIR: banks in order with their design overrides."""

    id: str  # Questionnaire id
    kind: str  # "bank" or "battery"
    key: str  # bank or battery id
    name: str
    description: str
    banks: tuple  # ItemBank, in administration order
    designs: tuple  # design overrides (dict or None) per bank
    design_hash: str = ""
    battery: object = None  # the battery's cat_prom.battery_file.BatteryDef (None for a bank)

    def entries(self):
        return list(zip(self.banks, self.designs))

    def bank(self, bank_id: str):
        for b in self.banks:
            if b.id == bank_id:
                return b
        return None


@dataclass
class Catalog:
    targets: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)

    @classmethod
    def build(cls, registry) -> "Catalog":
        from cat_prom.design import Design

        cat = cls()

        def add(kind, key, name, description, entries, bat=None):
            qid = f"{kind}.{key}"
            if not FHIR_ID.match(qid):
                cat.errors.append(f"{kind} {key!r}: {qid!r} is not a FHIR id (1-64 of A-Z a-z 0-9 - .)")
                return
            for bank, _ in entries:
                for item in bank.items:
                    codes = [(c["system"], c["code"]) for c in answer_codings(bank, item)]
                    if len(set(codes)) != len(codes):
                        cat.errors.append(f"{kind} {key!r}: item {item.id!r} of bank {bank.id!r} has response "
                                          f"values with the same text; FHIR answer codes would collide")
                        return
            designs = tuple(d or None for _, d in entries)
            full = [Design.from_dict(d).to_dict() for d in designs]
            if bat is not None and bat.scoring == "joint":  # how it is scored decides the questions too
                full.append({"scoring": "joint", "order": bat.order, "correlation": bat.correlation_matrix().tolist()})
            dh = "sha256:" + hashlib.sha256(canonical(full).encode("utf-8")).hexdigest()
            cat.targets[qid] = Target(qid, kind, key, name, description, tuple(b for b, _ in entries), designs, dh,
                                      bat)

        for bank in registry.banks.values():
            add("bank", bank.id, bank.name, bank.description, [(bank, None)])
        for bat in registry.batteries.values():
            try:
                entries = bat.entries(registry.banks)
            except Exception as e:  # a battery naming a bank that did not load
                cat.errors.append(f"battery {bat.id!r}: {getattr(e, 'message', e)}")
                continue
            add("battery", bat.id, bat.name, bat.description, entries, bat)
        for e in cat.errors:
            log.warning("FHIR: %s", e)
        return cat
