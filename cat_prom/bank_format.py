"""The bank document format ``cat-prom-bank/1``: reading, validation and serialisation.

A bank is one JSON document (schema in ``docs/bank.schema.json``). This module turns a file
or a parsed document into validated plain values — all or nothing: a corrupt or hostile
document is rejected with an :class:`~cat_prom.errors.InvalidBankError` that names the field
and says how to fix it — and writes documents back (:func:`build_document`,
:func:`content_hash`). :class:`cat_prom.bank.ItemBank` builds the engine's objects from
what :func:`parse_document` returns; this module creates none of them.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any, Iterable, Mapping

from . import irt
from .errors import InvalidBankError

__all__ = ["BANK_FORMAT", "DIRECTIONS", "DEMO_DISCLAIMER", "MAX_BANK_BYTES", "MAX_ITEMS", "MAX_CATEGORIES",
           "content_hash", "read_document", "parse_document", "build_document"]

BANK_FORMAT = "cat-prom-bank/1"
DIRECTIONS = ("higher_is_worse", "higher_is_better")
DEMO_DISCLAIMER = (
    "Demonstration bank: item wording written for cat-prom and parameters calibrated on "
    "simulated data. Not clinically validated; do not use for patient care."
)
MAX_BANK_BYTES = 20 * 1024 * 1024
MAX_ITEMS = 20000
MAX_CATEGORIES = 20
_TOP_KEYS = {
    "format", "id", "name", "version", "domain", "recall_period", "model", "metric",
    "severity_bands", "start_item", "items", "provenance", "demo", "disclaimer",
    "description", "content_hash", "instructions", "language",
}
_ITEM_KEYS = {"id", "stem", "options", "a", "thresholds", "model", "content", "enemies", "exposure_k"}


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


def _reject_constant(name):
    raise _err(f"bank file contains {name}; only finite numbers are allowed")


def read_document(path: str | os.PathLike) -> Any:
    """Read a bank file as parsed JSON (size-limited, UTF-8, finite numbers only)."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise _err(f"cannot read bank file {path!r}: {e.strerror}") from None
    if size > MAX_BANK_BYTES:
        raise _err(f"bank file {path!r} is {size} bytes; the limit is {MAX_BANK_BYTES}")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise _err(f"bank file {path!r} is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise _err(f"bank file {path!r} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise _err(f"bank file {path!r} is nested too deeply") from None


def build_document(*, id, name, items: Iterable, model="grm", direction="higher_is_worse",
                   start_item=None, version="0", domain="", recall_period="", t_mean=50.0, t_sd=10.0,
                   bands=(), provenance=None, demo=False, disclaimer="", description="") -> dict:
    """A bank document from its parts; ``items`` are :class:`~cat_prom.bank.Item`-like, ``bands``
    objects with ``label``, ``min_t``, ``max_t`` or mappings of them."""
    doc = {
        "format": BANK_FORMAT, "id": id, "name": name, "version": version, "domain": domain or id,
        "recall_period": recall_period, "model": model,
        "metric": {"t_mean": t_mean, "t_sd": t_sd, "direction": direction},
        "severity_bands": [dict(b) if isinstance(b, Mapping) else {"label": b.label, "min_t": b.min_t, "max_t": b.max_t}
                           for b in bands],
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


def _parse_metric_and_bands(doc: Mapping, source: str):
    """The T metric (t_mean, t_sd, direction) and the severity bands [(label, min_t, max_t)]."""
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
        bands.append((_str(bd["label"], where + ".label", max_len=100), lo, hi))
    return t_mean, t_sd, direction, bands


def parse_document(doc: Any, source: str = "bank") -> dict:
    """Validate a parsed bank document (all or nothing).

    Returns the keyword arguments of :class:`~cat_prom.bank.ItemBank` as plain values: ``items``
    a list of dicts of :class:`~cat_prom.bank.Item` fields, ``bands`` a list of
    (label, min_t, max_t) and ``doc`` the document without its ``content_hash``.
    """
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
    t_mean, t_sd, direction, bands = _parse_metric_and_bands(doc, source)
    items_raw = doc["items"]
    if not isinstance(items_raw, list) or not items_raw:
        raise _err(f"{source}: items must be a non-empty list", field="items")
    if len(items_raw) > MAX_ITEMS:
        raise _err(f"{source}: {len(items_raw)} items exceeds the limit of {MAX_ITEMS}", field="items")
    items = []
    seen = set()
    for i, raw in enumerate(items_raw):
        items.append(_parse_item(raw, i, model, seen, source))
    ids = {it["id"] for it in items}
    for it in items:
        for e in it["enemies"]:
            if e not in ids:
                raise _err(f"{source}: item {it['id']!r}: enemy {e!r} is not an item of this bank; "
                           f"remove it or add the item", item_id=it["id"], field="enemies")
            if e == it["id"]:
                raise _err(f"{source}: item {it['id']!r} lists itself as an enemy", item_id=it["id"], field="enemies")
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
    return dict(id=bank_id, name=name, items=items, version=version,
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
    return dict(id=iid, stem=stem, values=values, labels=labels, a=a, thresholds=thr, model=model,
                content=tuple(content), enemies=tuple(enemies), exposure_k=ek)
