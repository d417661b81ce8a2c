"""Item banks: the immutable description of a calibrated set of items.

A bank is one JSON document (format ``cat-prom-bank/1``, schema in
``docs/bank.schema.json``). :class:`ItemBank` loads and validates it whole —
a corrupt or hostile file is rejected, never half-loaded — and precomputes,
once per θ grid, the arrays every CAT step reads (:class:`GridTables`).

Conventions: slope ``a`` and ordered thresholds ``b1 < ... < b(k-1)`` (GRM) or
step parameters (GPCM), D = 1; categories are 0-based inside the engine and
each maps to the response *value* and *label* the patient sees.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import irt
from .errors import InvalidBankError, UnknownItemError, ValueOutOfRangeError

__all__ = ["Item", "ItemBank", "GridTables", "Band", "BANK_FORMAT", "DEMO_DISCLAIMER", "content_hash"]

BANK_FORMAT = "cat-prom-bank/1"
DIRECTIONS = ("higher_is_worse", "higher_is_better")
DEMO_DISCLAIMER = (
    "Demonstration bank: item wording written for cat-prom and parameters calibrated on "
    "simulated data. Not clinically validated; do not use for patient care."
)
MAX_BANK_BYTES = 20 * 1024 * 1024
MAX_ITEMS = 20000
MAX_CATEGORIES = 20
GRID_CACHE_SIZE = 4  # grids whose tables a bank keeps; each is ~ (n_points + 1201) x n_items x 8 bytes and more
_TOP_KEYS = {
    "format", "id", "name", "version", "domain", "recall_period", "model", "metric",
    "severity_bands", "start_item", "items", "provenance", "demo", "disclaimer",
    "description", "content_hash", "instructions", "language",
}
_ITEM_KEYS = {"id", "stem", "options", "a", "thresholds", "model", "content", "enemies", "exposure_k"}


@dataclass(frozen=True)
class Item:
    """One calibrated item.

    ``values[k]`` and ``labels[k]`` are what the patient sees for category ``k``.
    """

    id: str
    stem: str
    values: tuple
    labels: tuple
    a: float
    thresholds: tuple
    model: str = "grm"
    content: tuple = ()
    enemies: tuple = ()
    exposure_k: float = 1.0

    @property
    def n_categories(self) -> int:
        return len(self.thresholds) + 1

    def options(self) -> list[dict]:
        return [{"value": v, "label": l} for v, l in zip(self.values, self.labels)]


@dataclass(frozen=True)
class Band:
    label: str
    min_t: float | None
    max_t: float | None

    def contains(self, t: float) -> bool:
        return (self.min_t is None or t >= self.min_t) and (self.max_t is None or t < self.max_t)


class GridTables:
    """Arrays precomputed for one bank on one quadrature grid.

    Attributes
    ----------
    theta : (n_q,) quadrature nodes
    log_p : (n_q, n_items, kmax) category log-probabilities (-inf when padded)
    p : (n_q, n_items, kmax) category probabilities
    p_flat : (n_q, n_items * kmax) view of ``p`` for matrix products
    info : (n_q, n_items) item information at the nodes
    fine_theta, fine_info : information on a fine grid (step 0.01) for MFI at θ̂
    """

    def __init__(self, bank: "ItemBank", theta: np.ndarray):
        self.theta = theta
        self.params = params = bank.params
        self.log_p = irt.log_probabilities(theta, params)
        self.p = np.exp(self.log_p)
        self.p_flat = self.p.reshape(theta.shape[0], -1)
        self.info = irt.information(theta, params)
        lo, hi = float(theta[0]), float(theta[-1])
        n_fine = int(round((hi - lo) / 0.01)) + 1
        self.fine_theta = np.linspace(lo, hi, n_fine)
        self.fine_step = (hi - lo) / (n_fine - 1)
        self.fine_info = np.ascontiguousarray(irt.information(self.fine_theta, params))
        self.theta_sq = theta * theta
        # log P with padded categories at a large negative finite value, for KL sums
        self.valid = np.arange(params.kmax)[None, :] < params.n_cat[:, None]  # (N, K) real categories
        self.log_p_finite = np.where(np.isfinite(self.log_p), self.log_p, -745.0)

    def log_p_at(self, theta: float) -> np.ndarray:
        """Exact category log-probabilities at one θ, shape (n_items, kmax) (-inf when padded).

        The same arithmetic as :func:`cat_prom.irt.log_probabilities` (bit for bit), with the
        θ-independent GRM terms computed once per bank; used by KL selection at each step.
        """
        params = self.params
        if params.is_gpcm.any() or params.kmax < 3:
            return irt.log_probabilities(np.array([theta]), params)[0]
        c = self.__dict__.get("_grm_single")
        if c is None:
            m = params.kmax - 1
            k = np.arange(1, m + 1)
            top = k[None, :] == (params.n_cat[:, None] - 1)
            mid = (k[None, :] < (params.n_cat[:, None] - 1))[:, :-1]
            with np.errstate(invalid="ignore"):
                h = 0.5 * params.a[:, None] * (params.b[:, 1:] - params.b[:, :-1])
                const = irt._logsinh_pos(h) - irt._LOG2
            c = self._grm_single = (params.a[:, None], top, mid, const)
        a_col, top, mid, const = c
        with np.errstate(invalid="ignore"):
            x = a_col * (theta - params.b)
            out = np.empty((x.shape[0], x.shape[1] + 1))
            out[:, 0] = -np.logaddexp(0.0, x[:, 0])
            out[:, 1:] = np.where(top, irt._logsigmoid(x), -np.inf)
            lc = irt._logcosh(0.5 * x)
            mid_val = const - lc[:, :-1] - lc[:, 1:]
            out[:, 1:-1] = np.where(mid, mid_val, out[:, 1:-1])
        return np.minimum(out, 0.0)

    def info_at(self, theta) -> np.ndarray:
        """Item information at θ by linear interpolation on the fine grid.

        ``theta`` is a float (returns ``(n_items,)``) or an array of shape ``(S,)`` (returns
        ``(S, n_items)``). Row ``j = floor(x)`` and weight ``w = x - j`` of ``x = (θ - θ_0) / step``
        give ``f[j] (1 - w) + f[j + 1] w``; at or beyond the ends of the grid the end row itself.
        Both forms give the same bits for the same θ (the float form is the one-session case).
        """
        f = self.fine_info
        n = f.shape[0]
        if not isinstance(theta, np.ndarray) or theta.ndim == 0:
            x = (theta - self.fine_theta[0]) / self.fine_step
            if x <= 0:
                return f[0]
            if x >= n - 1:
                return f[n - 1]
            j = int(x)
            w = x - j
            return f[j] * (1.0 - w) + f[j + 1] * w
        x = (np.asarray(theta, dtype=float) - self.fine_theta[0]) / self.fine_step
        j = np.minimum(np.maximum(np.floor(x), 0.0), n - 2).astype(np.intp)
        w = np.minimum(np.maximum(x - j, 0.0), 1.0)[:, None]
        out = f[j]
        out *= 1.0 - w
        upper = f[j + 1]
        upper *= w
        out += upper
        return out

    @cached_property
    def log_p_nkq(self) -> np.ndarray:
        """``log_p`` laid out as (n_items, kmax, n_q): an answer of S persons is one (S, n_q) gather."""
        return np.ascontiguousarray(self.log_p.transpose(1, 2, 0))


def content_hash(doc: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a bank document, ``content_hash`` key excluded."""
    body = {k: v for k, v in doc.items() if k != "content_hash"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()


def _err(msg: str, **fields):
    return InvalidBankError(msg, **fields)


def _num(x, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise _err(f"{where} must be a number, got {type(x).__name__} {x!r}", field=where)
    x = float(x)
    if not math.isfinite(x):
        raise _err(f"{where} must be finite, got {x}", field=where)
    return x


def _str(x, where: str, *, allow_empty=False, max_len=2000) -> str:
    if not isinstance(x, str):
        raise _err(f"{where} must be a string, got {type(x).__name__}", field=where)
    if not allow_empty and not x.strip():
        raise _err(f"{where} must not be empty", field=where)
    if len(x) > max_len:
        raise _err(f"{where} is longer than {max_len} characters", field=where)
    return x


class ItemBank:
    """An immutable, validated item bank.

    Build one with :meth:`load` (a JSON file), :meth:`from_dict` (a parsed
    document) or :meth:`from_params` (bare arrays, for simulation and tests).
    """

    def __init__(self, *, id: str, name: str, items: Sequence[Item], version: str = "0",
                 domain: str = "", recall_period: str = "", model: str = "grm",
                 t_mean: float = 50.0, t_sd: float = 10.0, direction: str = "higher_is_worse",
                 bands: Sequence[Band] = (), start_item: str | None = None,
                 provenance: Mapping | None = None, demo: bool = False, disclaimer: str = "",
                 description: str = "", instructions: str = "", language: str = "en",
                 doc: Mapping | None = None):
        self.id = id
        self.name = name
        self.version = version
        self.domain = domain
        self.recall_period = recall_period
        self.model = model
        self.t_mean = float(t_mean)
        self.t_sd = float(t_sd)
        self.direction = direction
        self.bands = tuple(bands)
        self.start_item = start_item
        self.provenance = dict(provenance or {})
        self.demo = bool(demo)
        self.disclaimer = disclaimer
        self.description = description
        self.instructions = instructions
        self.language = language
        self.items = tuple(items)
        self.ids = tuple(it.id for it in self.items)
        self._index = {iid: i for i, iid in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            raise _err("duplicate item ids")
        kmax = max(it.n_categories for it in self.items)
        b = np.full((len(self.items), kmax - 1), np.nan)
        for i, it in enumerate(self.items):
            b[i, : len(it.thresholds)] = it.thresholds
        self.params = irt.item_params(np.array([it.a for it in self.items]), b, [it.model for it in self.items])
        self.a = self.params.a
        self.b = self.params.b
        self.n_cat = self.params.n_cat
        self.kmax = kmax
        self.exposure_k = np.array([it.exposure_k for it in self.items])
        # value -> category lookups, per item
        self._value_maps = [{v: k for k, v in enumerate(it.values)} for it in self.items]
        enemy = np.zeros((len(self.items), len(self.items)), dtype=bool)
        for i, it in enumerate(self.items):
            for e in it.enemies:
                j = self._index[e]
                enemy[i, j] = enemy[j, i] = True
        self.enemy_matrix = enemy
        self.has_enemies = bool(enemy.any())
        self._grids: dict = {}
        # deep copies: the bank must not share mutable state with its callers' documents
        self._doc = copy.deepcopy(dict(doc)) if doc is not None else None

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"<ItemBank {self.id!r} v{self.version}: {len(self)} items, {self.model}>"

    @property
    def n_items(self) -> int:
        return len(self.items)

    def index(self, item_id: str) -> int:
        try:
            return self._index[item_id]
        except (KeyError, TypeError):
            raise UnknownItemError(f"item {item_id!r} is not in bank {self.id!r}", item_id=item_id) from None

    def item(self, item_id: str) -> Item:
        return self.items[self.index(item_id)]

    def category(self, index: int, value) -> int:
        """The 0-based category of response ``value`` to item ``index``."""
        it = self.items[index]
        key = value  # the value as looked up; `value` itself is kept for the error message
        if isinstance(key, (bool, np.bool_)):
            key = None
        elif isinstance(key, numbers.Integral):  # numpy integers are not int subclasses
            key = int(key)
        k = None
        if isinstance(key, (int, float, str)):
            k = self._value_maps[index].get(key)
            if k is None and isinstance(key, float) and key.is_integer():
                k = self._value_maps[index].get(int(key))
        if k is None:
            allowed = ", ".join(repr(v) for v in it.values)
            raise ValueOutOfRangeError(
                f"item {it.id!r} takes values {allowed}; got {value!r}", item_id=it.id, value=value,
            )
        return k

    def healthiest_category(self, index: int) -> int:
        """Category meaning 'no problem': lowest for symptom banks, highest for function banks."""
        return 0 if self.direction == "higher_is_worse" else int(self.n_cat[index]) - 1

    # ---------------------------------------------------------------- metric
    def t_score(self, theta):
        return self.t_mean + self.t_sd * np.asarray(theta, dtype=float) if np.ndim(theta) else self.t_mean + self.t_sd * float(theta)

    def t_se(self, se):
        return self.t_sd * se

    def band(self, t_score: float) -> str | None:
        """The label of the severity band containing ``t_score`` (None when the bank has no bands)."""
        for band in self.bands:
            if band.contains(t_score):
                return band.label
        return None

    # ------------------------------------------------------------------ grids
    def grid(self, theta: np.ndarray) -> GridTables:
        """Precomputed arrays on a quadrature grid, cached per grid (the last few grids used)."""
        theta = np.asarray(theta, dtype=float)
        # keyed on every node: grids with the same ends and length but other spacing differ
        key = (theta.shape, theta.tobytes())
        tables = self._grids.pop(key, None)
        if tables is None:
            tables = GridTables(self, theta)
            while len(self._grids) >= GRID_CACHE_SIZE:
                self._grids.pop(next(iter(self._grids)))  # least recently used
        self._grids[key] = tables
        return tables

    # ------------------------------------------------------------ construction
    @classmethod
    def from_params(cls, a, b, model="grm", *, ids: Sequence[str] | None = None, id: str = "bank",
                    name: str | None = None, stems: Sequence[str] | None = None,
                    direction: str = "higher_is_worse", start_item: str | None = None,
                    content: Sequence[Sequence[str]] | None = None, **kw) -> "ItemBank":
        """A bank from bare parameter arrays; response values are the categories 0..k-1."""
        p = irt.item_params(a, b, model)
        n = p.n_items
        ids = list(ids) if ids is not None else [f"I{i + 1:0{len(str(n))}d}" for i in range(n)]
        models = np.where(p.is_gpcm, "gpcm", "grm")
        items = []
        for i in range(n):
            k = int(p.n_cat[i])
            thr = tuple(float(x) for x in p.b[i, : k - 1])
            if models[i] == "grm" and any(t2 <= t1 for t1, t2 in zip(thr, thr[1:])):
                raise _err(f"item {ids[i]!r}: GRM thresholds must be strictly increasing, got {list(thr)}")
            items.append(Item(id=str(ids[i]), stem=stems[i] if stems else str(ids[i]), values=tuple(range(k)),
                              labels=tuple(str(v) for v in range(k)), a=float(p.a[i]), thresholds=thr,
                              model=str(models[i]), content=tuple(content[i]) if content else ()))
        bank_model = "gpcm" if p.is_gpcm.all() else ("grm" if not p.is_gpcm.any() else "mixed")
        doc = _bank_to_dict_parts(id=id, name=name or id, items=items, model=bank_model, direction=direction,
                                  start_item=start_item, **kw)
        return cls.from_dict(doc)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ItemBank":
        """Load and validate a bank JSON file."""
        path = os.fspath(path)
        try:
            size = os.path.getsize(path)
        except OSError as e:
            raise _err(f"cannot read bank file {path!r}: {e.strerror}") from None
        if size > MAX_BANK_BYTES:
            raise _err(f"bank file {path!r} is {size} bytes; the limit is {MAX_BANK_BYTES}")
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh, parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise _err(f"bank file {path!r} is not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise _err(f"bank file {path!r} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
        except RecursionError:
            raise _err(f"bank file {path!r} is nested too deeply") from None
        return cls.from_dict(doc, source=path)

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "bank") -> "ItemBank":
        """Validate a parsed bank document and build the bank (all-or-nothing)."""
        return _parse_bank(cls, doc, source)

    def to_dict(self) -> dict:
        """The bank as a JSON-ready document (with its content hash)."""
        if self._doc is not None:
            doc = copy.deepcopy(self._doc)
        else:  # pragma: no cover - every constructor path sets _doc
            doc = _bank_to_dict_parts(id=self.id, name=self.name, items=self.items, model=self.model)
        if getattr(self, "_hash", None) is None:
            self._hash = content_hash(doc)
        doc["content_hash"] = self._hash
        return doc

    @property
    def content_hash(self) -> str:
        if getattr(self, "_hash", None) is None:
            self.to_dict()
        return self._hash

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=2, ensure_ascii=False)
            fh.write("\n")

    def with_exposure(self, exposure_k: Mapping[str, float] | Sequence[float]) -> "ItemBank":
        """A copy of the bank with new Sympson–Hetter exposure parameters."""
        doc = self.to_dict()
        if not isinstance(exposure_k, Mapping):
            exposure_k = dict(zip(self.ids, exposure_k))
        for it in doc["items"]:
            if it["id"] in exposure_k:
                it["exposure_k"] = float(exposure_k[it["id"]])
        doc.pop("content_hash", None)
        return type(self).from_dict(doc)

    def summary(self) -> dict:
        return {
            "id": self.id, "name": self.name, "version": self.version, "domain": self.domain,
            "recall_period": self.recall_period, "model": self.model, "n_items": self.n_items,
            "direction": self.direction, "start_item": self.start_item, "demo": self.demo,
            "content_hash": self.content_hash,
        }


def _reject_constant(name):
    raise _err(f"bank file contains {name}; only finite numbers are allowed")


def _bank_to_dict_parts(*, id, name, items: Iterable[Item], model="grm", direction="higher_is_worse",
                        start_item=None, version="0", domain="", recall_period="", t_mean=50.0, t_sd=10.0,
                        bands=(), provenance=None, demo=False, disclaimer="", description="") -> dict:
    doc = {
        "format": BANK_FORMAT, "id": id, "name": name, "version": version, "domain": domain or id,
        "recall_period": recall_period, "model": model,
        "metric": {"t_mean": t_mean, "t_sd": t_sd, "direction": direction},
        "severity_bands": [{"label": b.label, "min_t": b.min_t, "max_t": b.max_t} if isinstance(b, Band) else dict(b) for b in bands],
        "start_item": start_item,
        "demo": demo,
        "items": [],
        "provenance": dict(provenance or {}),
    }
    if disclaimer:
        doc["disclaimer"] = disclaimer
    if description:
        doc["description"] = description
    for it in items:
        d = {"id": it.id, "stem": it.stem, "options": it.options(), "a": it.a, "thresholds": list(it.thresholds)}
        if it.model != model:
            d["model"] = it.model
        if it.content:
            d["content"] = list(it.content)
        if it.enemies:
            d["enemies"] = list(it.enemies)
        if it.exposure_k != 1.0:
            d["exposure_k"] = it.exposure_k
        doc["items"].append(d)
    return doc


def _parse_bank(cls, doc, source):
    if not isinstance(doc, dict):
        raise _err(f"{source}: a bank must be a JSON object, got {type(doc).__name__}")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise _err(f"{source}: unknown key {sorted(unknown)[0]!r}; allowed keys are {sorted(_TOP_KEYS)}",
                   field=sorted(unknown)[0])
    fmt = doc.get("format", BANK_FORMAT)
    if fmt != BANK_FORMAT:
        raise _err(f"{source}: format must be {BANK_FORMAT!r}, got {fmt!r}", field="format")
    for key in ("id", "name", "items"):
        if key not in doc:
            raise _err(f"{source}: missing required key {key!r}", field=key)
    bank_id = _str(doc["id"], "id", max_len=100)
    name = _str(doc["name"], "name", max_len=300)
    version = doc.get("version")
    if version is None:
        version = "0"
    elif isinstance(version, (int, float)) and not isinstance(version, bool):
        version = str(version)
    version = _str(version, "version", max_len=50)
    texts = {}
    for key, default, max_len in (("domain", bank_id, 100), ("recall_period", "", 200), ("disclaimer", "", 2000),
                                  ("description", "", 5000), ("instructions", "", 2000), ("language", "en", 35)):
        v = doc.get(key)
        texts[key] = default if v is None else _str(v, key, allow_empty=True, max_len=max_len)
    model = doc.get("model", "grm")
    if model not in ("grm", "gpcm", "mixed"):
        raise _err(f"{source}: model must be 'grm', 'gpcm' or 'mixed', got {model!r}", field="model")
    metric = doc.get("metric")
    metric = {} if metric is None else metric
    if not isinstance(metric, dict):
        raise _err(f"{source}: metric must be an object", field="metric")
    bad = set(metric) - {"t_mean", "t_sd", "direction"}
    if bad:
        raise _err(f"{source}: unknown key metric.{sorted(bad)[0]}; allowed: t_mean, t_sd, direction", field="metric")
    t_mean = _num(metric.get("t_mean", 50.0), "metric.t_mean")
    t_sd = _num(metric.get("t_sd", 10.0), "metric.t_sd")
    if t_sd <= 0:
        raise _err(f"{source}: metric.t_sd must be > 0, got {t_sd}", field="metric.t_sd")
    direction = metric.get("direction", "higher_is_worse")
    if direction not in DIRECTIONS:
        raise _err(f"{source}: metric.direction must be one of {DIRECTIONS}, got {direction!r}", field="metric.direction")
    bands = []
    raw_bands = doc.get("severity_bands")
    raw_bands = [] if raw_bands is None else raw_bands
    if not isinstance(raw_bands, list):
        raise _err(f"{source}: severity_bands must be a list", field="severity_bands")
    for j, bd in enumerate(raw_bands):
        where = f"severity_bands[{j}]"
        if not isinstance(bd, dict) or set(bd) - {"label", "min_t", "max_t"} or "label" not in bd:
            raise _err(f"{source}: {where} must be an object with label, min_t, max_t", field=where)
        lo = None if bd.get("min_t") is None else _num(bd["min_t"], where + ".min_t")
        hi = None if bd.get("max_t") is None else _num(bd["max_t"], where + ".max_t")
        if lo is not None and hi is not None and hi <= lo:
            raise _err(f"{source}: {where}: max_t ({hi}) must exceed min_t ({lo})", field=where)
        bands.append(Band(_str(bd["label"], where + ".label", max_len=100), lo, hi))
    items_raw = doc["items"]
    if not isinstance(items_raw, list) or not items_raw:
        raise _err(f"{source}: items must be a non-empty list", field="items")
    if len(items_raw) > MAX_ITEMS:
        raise _err(f"{source}: {len(items_raw)} items exceeds the limit of {MAX_ITEMS}", field="items")
    items = []
    seen = set()
    for i, raw in enumerate(items_raw):
        items.append(_parse_item(raw, i, model, seen, source))
    ids = {it.id for it in items}
    for it in items:
        for e in it.enemies:
            if e not in ids:
                raise _err(f"{source}: item {it.id!r}: enemy {e!r} is not an item of this bank; "
                           f"remove it or add the item", item_id=it.id, field="enemies")
            if e == it.id:
                raise _err(f"{source}: item {it.id!r} lists itself as an enemy", item_id=it.id, field="enemies")
    start = doc.get("start_item")
    if start is not None:
        start = _str(start, "start_item", max_len=100)
        if start not in ids:
            raise _err(f"{source}: start_item {start!r} is not an item of this bank", field="start_item")
    prov = doc.get("provenance")
    prov = {} if prov is None else prov
    if not isinstance(prov, dict):
        raise _err(f"{source}: provenance must be an object", field="provenance")
    demo = doc.get("demo", False)
    if not isinstance(demo, bool):
        raise _err(f"{source}: demo must be true or false", field="demo")
    body = {k: v for k, v in doc.items() if k != "content_hash"}
    try:
        body_hash = content_hash(body)
    except (ValueError, TypeError):
        raise _err(f"{source}: the bank holds a value that is not plain JSON (NaN, Infinity or an object); "
                   f"check provenance and free-text fields", field="provenance") from None
    if "content_hash" in doc and doc["content_hash"] != body_hash:
        raise _err(f"{source}: content_hash does not match the content (the file was edited after it was "
                   f"hashed); remove the content_hash key or re-save the bank with `cat-prom bank validate --fix-hash`",
                   field="content_hash")
    return cls(id=bank_id, name=name, items=items, version=version,
               domain=texts["domain"], recall_period=texts["recall_period"],
               model=model, t_mean=t_mean, t_sd=t_sd, direction=direction, bands=bands, start_item=start,
               provenance=prov, demo=demo, disclaimer=texts["disclaimer"],
               description=texts["description"], instructions=texts["instructions"],
               language=texts["language"], doc=body)


def _parse_item(raw, i, bank_model, seen, source):
    where = f"items[{i}]"
    if not isinstance(raw, dict):
        raise _err(f"{source}: {where} must be an object", field=where)
    iid = raw.get("id")
    if not isinstance(iid, str) or not iid.strip() or len(iid) > 100:
        raise _err(f"{source}: {where}.id must be a non-empty string of at most 100 characters", field=where + ".id")
    label = f"item {iid!r}"
    unknown = set(raw) - _ITEM_KEYS
    if unknown:
        raise _err(f"{source}: {label}: unknown key {sorted(unknown)[0]!r}; allowed keys are {sorted(_ITEM_KEYS)}",
                   item_id=iid, field=sorted(unknown)[0])
    if iid in seen:
        raise _err(f"{source}: duplicate item id {iid!r} ({where}); item ids must be unique", item_id=iid, field="id")
    seen.add(iid)
    for key in ("a", "thresholds"):
        if key not in raw:
            raise _err(f"{source}: {label}: missing {key!r}", item_id=iid, field=key)
    a = _num(raw["a"], f"{label}: a")
    if a <= 0:
        raise _err(f"{source}: {label}: slope a must be > 0, got {a}; a negatively keyed item should be "
                   f"reverse-scored before calibration", item_id=iid, field="a")
    thr_raw = raw["thresholds"]
    if not isinstance(thr_raw, list) or not 1 <= len(thr_raw) < MAX_CATEGORIES:
        raise _err(f"{source}: {label}: thresholds must be a list of 1 to {MAX_CATEGORIES - 1} numbers",
                   item_id=iid, field="thresholds")
    thr = tuple(_num(t, f"{label}: thresholds[{j}]") for j, t in enumerate(thr_raw))
    model = raw.get("model", bank_model if bank_model != "mixed" else None)
    if model not in irt.MODELS:
        raise _err(f"{source}: {label}: model must be 'grm' or 'gpcm', got {model!r}", item_id=iid, field="model")
    if model == "grm":
        for j in range(1, len(thr)):
            if not thr[j] > thr[j - 1]:
                raise _err(f"{source}: {label}: GRM thresholds must be strictly increasing, but b{j + 1}={thr[j]} "
                           f"<= b{j}={thr[j - 1]}; reorder them or collapse the categories", item_id=iid,
                           field="thresholds")
    k = len(thr) + 1
    opts = raw.get("options")
    if opts is None:
        values, labels = tuple(range(k)), tuple(str(v) for v in range(k))
    else:
        if not isinstance(opts, list) or any(not isinstance(o, dict) for o in opts):
            raise _err(f"{source}: {label}: options must be a list of {{value, label}} objects", item_id=iid, field="options")
        if len(opts) != k:
            raise _err(f"{source}: {label}: has {len(thr)} thresholds, so {k} categories, but {len(opts)} response "
                       f"options; give one option per category", item_id=iid, field="options")
        values, labels = [], []
        for j, o in enumerate(opts):
            if set(o) - {"value", "label"} or "value" not in o or "label" not in o:
                raise _err(f"{source}: {label}: options[{j}] must have exactly 'value' and 'label'", item_id=iid, field="options")
            v = o["value"]
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise _err(f"{source}: {label}: options[{j}].value must be an integer or a string", item_id=iid, field="options")
            values.append(v)
            labels.append(_str(o["label"], f"{label}: options[{j}].label", max_len=200))
        if len(set(values)) != len(values):
            raise _err(f"{source}: {label}: response option values must be distinct", item_id=iid, field="options")
        values, labels = tuple(values), tuple(labels)
    stem = _str(raw.get("stem", iid), f"{label}: stem")
    content = raw.get("content")
    content = [] if content is None else content
    enemies = raw.get("enemies")
    enemies = [] if enemies is None else enemies
    for key, val in (("content", content), ("enemies", enemies)):
        if not isinstance(val, list) or any(not isinstance(x, str) for x in val):
            raise _err(f"{source}: {label}: {key} must be a list of strings", item_id=iid, field=key)
    ek = _num(raw.get("exposure_k", 1.0), f"{label}: exposure_k")
    if not 0 < ek <= 1:
        raise _err(f"{source}: {label}: exposure_k must be in (0, 1], got {ek}", item_id=iid, field="exposure_k")
    return Item(id=iid, stem=stem, values=values, labels=labels, a=a, thresholds=thr, model=model,
                content=tuple(content), enemies=tuple(enemies), exposure_k=ek)
