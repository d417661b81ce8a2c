"""Battery files: several banks given in one sitting, each with its own design overrides.

A battery file is a JSON object (documented in ``docs/bank-format.md``, "Battery files")::

    {"id": "pain-core", "name": "Pain core battery", "description": "...",
     "banks": ["pain-intensity", "pain-interference", "nausea"],
     "designs": {"nausea": {"screen_stop": true, "max_items": 3}}}

:func:`load_battery` reads and validates one into a frozen :class:`BatteryDef`, the one
loader used by the service (``api/registry.py``) and the scripts
(``item_banks/simulate_battery.py``). Every problem raises
:class:`~cat_prom.errors.InvalidBatteryError` naming the file and the field
(``pain-core.json: designs['nausea']: design key 'max_items' must be ...``).

Each key has one validator in :data:`FIELDS`, run in that order with the fields
validated so far (``designs`` checks its keys against ``banks``); adding a key is
adding a validator there and a field to :class:`BatteryDef`.

Joint scoring (:mod:`cat_prom.joint`) adds three keys::

    "correlation": {"banks": [...same ids...], "matrix": [[1, 0.6, ...], ...],
                    "method": "how it was estimated", "sample": "from which data"},
    "scoring": "joint",          # or "separate" (default): how a sitting is scored
    "order": "d_optimal"         # joint only: next domain by D-optimality, or "battery"

:meth:`BatteryDef.start` builds the sitting a battery file describes (a
:class:`~cat_prom.session.Battery` or a :class:`~cat_prom.joint_battery.JointBattery`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Collection, Mapping

from .errors import CatPromError, InvalidBatteryError
from .jsonfile import read_json

__all__ = ["BatteryDef", "load_battery", "battery_from_dict", "FIELDS", "ID_PATTERN", "SCORINGS", "ORDERS"]

#: Battery ids: letters, digits, '.', '_' and '-', starting with a letter or digit (as bank ids in the API).
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True, eq=False)
class BatteryDef:
    """A validated battery definition.

    Attributes
    ----------
    id, name, description : str
    banks : tuple of str
        Bank ids, in the order a sitting gives them.
    designs : mapping bank id -> mapping
        Design overrides per bank (read-only; each validated with :meth:`Design.from_dict`).
    source : str or None
        The file it was read from.
    """

    id: str
    name: str
    banks: tuple
    designs: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    source: str | None = None
    correlation: Mapping[str, Any] | None = None
    scoring: str = "separate"
    order: str = "d_optimal"

    def correlation_matrix(self):
        """The correlation matrix in the order of :attr:`banks` (ndarray (D, D)), or ``None``."""
        if self.correlation is None:
            return None
        return self.correlation["matrix_in_bank_order"]

    def start(self, banks: Mapping[str, Any], *, scoring: str | None = None, seed: int | None = None,
              exclude=(), previous: Mapping[str, Any] | None = None, designs: Mapping[str, Mapping] | None = None):
        """A new sitting of this battery on loaded ``banks`` (bank id -> ItemBank).

        ``scoring`` overrides the file's (``"separate"`` or ``"joint"``; joint needs a correlation);
        ``designs`` adds design overrides per bank on top of the file's (e.g. a previous-sitting prior);
        ``previous`` maps bank ids to the last scored sitting (:class:`cat_prom.priors.PreviousSitting`
        or its dict).
        """
        entries = self.entries(banks)
        if designs:
            entries = [(b, {**(d or {}), **dict(designs.get(b.id) or {})} or None) for b, d in entries]
        return self.sitting(entries, scoring=scoring, seed=seed, exclude=exclude, previous=previous)

    def sitting(self, entries, *, scoring: str | None = None, seed: int | None = None, exclude=(),
                previous: Mapping[str, Any] | None = None):
        """A new sitting of this battery on ``entries``: ``(bank, design)`` pairs in battery order whose
        designs the caller has already merged and resolved (the service: battery < request < per bank,
        a patient's goal put in). The one place that decides how a battery is scored: a
        :class:`~cat_prom.session.Battery`, or a :class:`~cat_prom.joint_battery.JointBattery` with the
        file's correlation and order when its scoring (or ``scoring``) is ``"joint"``."""
        from .session import Battery
        scoring = self.scoring if scoring is None else scoring
        if scoring not in SCORINGS:
            raise InvalidBatteryError(f"scoring must be one of {list(SCORINGS)}, got {scoring!r}", field="scoring")
        if [b.id for b, _ in entries] != list(self.banks):
            raise InvalidBatteryError(f"battery {self.id!r}: a sitting has the banks {list(self.banks)} in this "
                                      f"order, got {[b.id for b, _ in entries]}", field="banks", battery_id=self.id)
        if scoring == "separate":
            return Battery(entries, seed=seed, exclude=exclude, id=self.id, previous=previous)
        if self.correlation is None:
            raise InvalidBatteryError(f"battery {self.id!r} has no correlation matrix, which joint scoring needs",
                                      field="correlation", battery_id=self.id)
        from .joint_battery import JointBattery
        return JointBattery(entries, self.correlation_matrix(), order=self.order, seed=seed, exclude=exclude,
                            id=self.id, previous=previous)

    def to_dict(self) -> dict:
        """What the service lists about a battery: id, name, banks, description and how it is scored
        (``"separate"``, or ``"joint"``: its domains borrow strength from each other)."""
        return {"id": self.id, "name": self.name, "banks": list(self.banks), "description": self.description,
                "scoring": self.scoring}

    def design(self, bank_id: str) -> dict:
        """The design overrides of one bank (a fresh dict; empty when the battery sets none)."""
        return dict(self.designs.get(bank_id) or {})

    def entries(self, banks: Mapping[str, Any]) -> list[tuple[Any, dict | None]]:
        """``(bank, design overrides)`` for :class:`~cat_prom.session.Battery`, from loaded banks by id."""
        missing = [b for b in self.banks if b not in banks]
        if missing:
            raise InvalidBatteryError(f"battery {self.id!r}: bank {missing[0]!r} is not loaded", field="banks",
                                      battery_id=self.id)
        return [(banks[b], self.design(b) or None) for b in self.banks]


def _bad(message: str, name: str) -> InvalidBatteryError:
    return InvalidBatteryError(f"{name}: {message}", field=name)


def _check_id(value, checked, known_banks) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise _bad(f"must be a string of letters, digits, '.', '_' or '-' (at most 100, starting with a letter or "
                   f"digit), got {value!r}", "id")
    return value


def _check_text(name: str):
    def check(value, checked, known_banks) -> str:
        if not isinstance(value, str):
            raise _bad(f"must be a string, got {type(value).__name__}", name)
        return value
    return check


def _check_banks(value, checked, known_banks) -> tuple:
    if not isinstance(value, list) or not value:
        raise _bad("must be a non-empty list of bank ids", "banks")
    for i, b in enumerate(value):
        if not isinstance(b, str) or not b:
            raise _bad(f"must be bank ids (strings); got {b!r}", f"banks[{i}]")
        if b in value[:i]:
            raise _bad(f"bank {b!r} is listed twice", f"banks[{i}]")
        if known_banks is not None and b not in known_banks:
            raise _bad(f"bank {b!r} is not loaded; loaded banks: {', '.join(sorted(known_banks)) or '(none)'}",
                       f"banks[{i}]")
    return tuple(value)


def _check_designs(value, checked, known_banks) -> Mapping:
    from .design import Design
    if not isinstance(value, dict):
        raise _bad("must be an object mapping bank ids to design overrides", "designs")
    out = {}
    for b, d in value.items():
        where = f"designs[{b!r}]"
        if b not in checked["banks"]:
            raise _bad(f"bank {b!r} is not in the battery's banks ({', '.join(checked['banks'])})", where)
        if not isinstance(d, dict):
            raise _bad(f"must be an object of design keys, got {type(d).__name__}", where)
        try:
            Design.from_dict(d)
        except CatPromError as e:
            raise _bad(e.message, where) from None
        out[b] = MappingProxyType(dict(d))
    return MappingProxyType(out)


def _check_correlation(value, checked, known_banks) -> Mapping:
    import numpy as np

    from .joint import check_correlation
    if not isinstance(value, dict) or set(value) - {"banks", "matrix", "method", "sample"} \
            or not {"banks", "matrix"} <= set(value):
        raise _bad("must be an object {\"banks\": [ids in the matrix's order], \"matrix\": [[...]], \"method\": "
                   "\"...\", \"sample\": \"...\"} (banks and matrix required)", "correlation")
    order = value["banks"]
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(checked["banks"]) or len(set(order)) != len(order):
        raise _bad(f"banks must list each of the battery's banks once, in the matrix's row order; got {order!r}",
                   "correlation.banks")
    for key in ("method", "sample"):
        if key in value and not isinstance(value[key], str):
            raise _bad("must be a string", f"correlation.{key}")
    R = check_correlation(value["matrix"], len(order))
    perm = [order.index(b) for b in checked["banks"]]
    Rb = np.ascontiguousarray(R[np.ix_(perm, perm)])
    Rb.flags.writeable = False
    return MappingProxyType({"banks": tuple(order), "matrix": R, "method": value.get("method", ""),
                             "sample": value.get("sample", ""), "matrix_in_bank_order": Rb})


def _check_choice(name: str, allowed: tuple):
    def check(value, checked, known_banks) -> str:
        if value not in allowed:
            raise _bad(f"must be one of {list(allowed)}, got {value!r}", name)
        if name == "scoring" and value == "joint" and "correlation" not in checked:
            raise _bad("joint scoring needs a 'correlation' matrix between the banks", name)
        if name == "order" and checked.get("scoring", "separate") != "joint":
            raise _bad("applies only to joint scoring (\"scoring\": \"joint\")", name)
        return value
    return check


#: How a battery's sitting is scored, and how a joint one chooses the next domain.
SCORINGS = ("separate", "joint")
ORDERS = ("d_optimal", "battery")

#: Validator of each key, in the order they run: ``(value, fields checked so far, loaded bank ids) -> value``.
FIELDS: dict[str, Callable[[Any, dict, Collection[str] | None], Any]] = {
    "id": _check_id,
    "name": _check_text("name"),
    "description": _check_text("description"),
    "banks": _check_banks,
    "designs": _check_designs,
    "correlation": _check_correlation,
    "scoring": _check_choice("scoring", SCORINGS),
    "order": _check_choice("order", ORDERS),
}
REQUIRED = ("id", "banks")


def battery_from_dict(doc: Any, *, banks: Collection[str] | None = None, source: str | None = None) -> BatteryDef:
    """Validate a battery document.

    Parameters
    ----------
    doc : the parsed JSON
    banks : collection of str, optional
        Ids of the loaded banks; every bank of the battery must be one of them (not checked when None).
    source : str, optional
        File name for messages.

    Raises
    ------
    InvalidBatteryError
        naming the file and the field, for an unknown or missing key or a bad value.
    """
    try:
        if not isinstance(doc, dict):
            raise _bad(f"a battery must be a JSON object, got {type(doc).__name__}", "battery")
        unknown = sorted(set(doc) - set(FIELDS))
        if unknown:
            raise _bad(f"unknown key; a battery has the keys {', '.join(FIELDS)}", unknown[0])
        for name in REQUIRED:
            if name not in doc:
                raise _bad("is required", name)
        checked: dict = {}
        for name, check in FIELDS.items():
            if name in doc:
                checked[name] = check(doc[name], checked, banks)
    except InvalidBatteryError as e:
        raise e.with_source(source)
    return BatteryDef(id=checked["id"], name=checked.get("name") or checked["id"], banks=checked["banks"],
                      designs=checked.get("designs", MappingProxyType({})),
                      description=checked.get("description", ""), source=source,
                      correlation=checked.get("correlation"), scoring=checked.get("scoring", "separate"),
                      order=checked.get("order", "d_optimal"))


def load_battery(path: str | os.PathLike, *, banks: Collection[str] | None = None) -> BatteryDef:
    """Read and validate a battery file (see :func:`battery_from_dict`), read strictly
    (:func:`cat_prom.jsonfile.read_json`: no duplicate keys, NaN, oversized numbers or NUL)."""
    path = os.fspath(path)
    doc = read_json(path, error=InvalidBatteryError, fields={"field": "battery"})
    return battery_from_dict(doc, banks=banks, source=os.path.basename(path))
