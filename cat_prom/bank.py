"""Item banks: the immutable description of a calibrated set of items.

A bank is one JSON document (format ``cat-prom-bank/1``, schema in
``docs/bank.schema.json``; read, validated and written by :mod:`cat_prom.bank_format`).
:class:`ItemBank` is built from it whole — a corrupt or hostile file is rejected, never
half-loaded — and precomputes, once per θ grid, the arrays every CAT step reads
(:class:`GridTables`).

Conventions: slope ``a`` and ordered thresholds ``b1 < ... < b(k-1)`` (GRM) or
step parameters (GPCM), D = 1; categories are 0-based inside the engine and
each maps to the response *value* and *label* the patient sees.
"""
from __future__ import annotations

import copy
import json
import numbers
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping, Sequence

import numpy as np

from . import bank_format, irt
from .bank_format import BANK_FORMAT, DEMO_DISCLAIMER, DIRECTIONS, content_hash
from .errors import InvalidBankError, UnknownItemError, ValueOutOfRangeError

__all__ = ["Item", "ItemBank", "GridTables", "Band", "BANK_FORMAT", "DEMO_DISCLAIMER", "DIRECTIONS", "content_hash"]

GRID_CACHE_SIZE = 4  # grids whose tables a bank keeps; each is ~ (n_points + 1201) x n_items x 8 bytes and more


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
    codes: tuple = ()  # standard codes ((system, code, display), ...), e.g. LOINC; see bank_format
    option_codes: tuple = ()  # () or, per option, None or its standard code (system, code, display), e.g. a LOINC LA code

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
        self.fine_lo = lo  # fine_theta[0] as a Python float (info_at for one θ)
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
            x = (theta - self.fine_lo) / self.fine_step
            if x <= 0:
                return f[0]
            if x >= n - 1:
                return f[n - 1]
            j = int(x)
            w = x - j
            return f[j] * (1.0 - w) + f[j + 1] * w
        x = (np.asarray(theta, dtype=float) - self.fine_lo) / self.fine_step
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
                 codes: Sequence[tuple] = (), doc: Mapping | None = None):
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
        self.codes = tuple(codes)  # standard codes of the whole bank ((system, code, display), ...)
        self.items = tuple(items)
        self.ids = tuple(it.id for it in self.items)
        self._index = {iid: i for i, iid in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            raise InvalidBankError("duplicate item ids; item ids must be unique", field="id")
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
                raise InvalidBankError(f"item {ids[i]!r}: GRM thresholds must be strictly increasing, got {list(thr)}",
                                       item_id=str(ids[i]), field="thresholds")
            items.append(Item(id=str(ids[i]), stem=stems[i] if stems else str(ids[i]), values=tuple(range(k)),
                              labels=tuple(str(v) for v in range(k)), a=float(p.a[i]), thresholds=thr,
                              model=str(models[i]), content=tuple(content[i]) if content else ()))
        bank_model = "gpcm" if p.is_gpcm.all() else ("grm" if not p.is_gpcm.any() else "mixed")
        doc = bank_format.build_document(id=id, name=name or id, items=items, model=bank_model,
                                         direction=direction, start_item=start_item, **kw)
        return cls.from_dict(doc)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ItemBank":
        """Load and validate a bank JSON file."""
        path = os.fspath(path)
        return cls.from_dict(bank_format.read_document(path), source=path)

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "bank") -> "ItemBank":
        """Validate a parsed bank document and build the bank (all-or-nothing)."""
        kw = bank_format.parse_document(doc, source)
        kw["items"] = [Item(**it) for it in kw["items"]]
        kw["bands"] = [Band(*b) for b in kw["bands"]]
        return cls(**kw)

    def to_dict(self) -> dict:
        """The bank as a JSON-ready document (with its content hash)."""
        if self._doc is not None:
            doc = copy.deepcopy(self._doc)
        else:  # pragma: no cover - every constructor path sets _doc
            doc = bank_format.build_document(id=self.id, name=self.name, items=self.items, model=self.model)
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


