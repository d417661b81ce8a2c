"""The bank document format ``cat-prom-bank/1``: reading, validation and serialisation.

A bank is one JSON document (schema in ``docs/bank.schema.json``). This module turns a file
(read by the strict :func:`cat_prom.jsonfile.read_json`) or a parsed document into
validated plain values — all or nothing: a corrupt or hostile document is rejected with an
:class:`~cat_prom.errors.InvalidBankError` that names the field and says how to fix it — and
writes documents back (:func:`build_document`, :func:`content_hash`).

Parameters must lie in a plausible range (:data:`SLOPE_MAX`, :data:`THRESHOLD_MAX`,
:data:`T_MEAN_MAX`, :data:`T_SD_MAX`; :func:`slope_problem`, :func:`threshold_problem`, used
by the parameter-table importers too). Calibrated PRO banks such as PROMIS's have slopes of
roughly 0.5-6 and thresholds within roughly ±5 on the D = 1 θ metric; the bounds (slope in
(0, 20], thresholds within ±20) leave more than three times that, while values such as 1e308
pass a finiteness check and then overflow in scoring. With |θ| ≤ 6 (the default grid)
``a·|θ − b| <= 20·26 = 520``, so every ``exp`` of the models stays within the range of a
double (709). :class:`cat_prom.bank.ItemBank` builds the engine's objects from
what :func:`parse_document` returns; this module creates none of them.
"""
from __future__ import annotations

import hashlib
import math
import os
from typing import Any, Iterable, Mapping

from . import irt
from .errors import InvalidBankError
from .jsonable import canonical
from .jsonfile import MAX_JSON_BYTES, read_json

__all__ = ["BANK_FORMAT", "DIRECTIONS", "DEMO_DISCLAIMER", "MAX_BANK_BYTES", "MAX_ITEMS", "MAX_CATEGORIES", "MAX_CODES",
           "SLOPE_MAX", "THRESHOLD_MAX", "T_MEAN_MAX", "T_SD_MAX", "slope_problem", "threshold_problem",
           "content_hash", "read_document", "parse_document", "build_document"]

BANK_FORMAT = "cat-prom-bank/1"
DIRECTIONS = ("higher_is_worse", "higher_is_better")
DEMO_DISCLAIMER = (
    "Demonstration bank: item wording written for cat-prom and parameters calibrated on "
    "simulated data. Not clinically validated; do not use for patient care."
)
MAX_BANK_BYTES = MAX_JSON_BYTES
MAX_ITEMS = 20000
MAX_CATEGORIES = 20
#: Largest slope a (D = 1 logistic metric); a > 0.
SLOPE_MAX = 20.0
#: Largest |threshold| on the θ metric.
THRESHOLD_MAX = 20.0
#: Largest |metric.t_mean| and metric.t_sd of the reporting metric T = t_mean + t_sd·θ.
T_MEAN_MAX = 1000.0
T_SD_MAX = 1000.0
_SCALE_HINT = ("a value this far out means another scale (normal-ogive slopes times 1.702 at most; thresholds "
               "on the θ metric, not T-scores or mirt's intercepts d = -a·b) or a failed calibration (collapse "
               "sparse categories, add a slope prior or drop the item)")
_TOP_KEYS = {
    "format", "id", "name", "version", "domain", "recall_period", "model", "metric",
    "severity_bands", "start_item", "items", "provenance", "demo", "disclaimer",
    "description", "content_hash", "instructions", "language", "codes",
}
_ITEM_KEYS = {"id", "stem", "options", "a", "thresholds", "model", "content", "enemies", "exposure_k", "codes"}
_CODE_KEYS = {"system", "code", "display"}
#: Most standard codes a bank or an item may carry (LOINC, SNOMED CT, a licensor's own system, ...).
MAX_CODES = 10


def content_hash(doc: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a bank document, ``content_hash`` key excluded."""
    body = {k: v for k, v in doc.items() if k != "content_hash"}
    return "sha256:" + hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def _err(msg: str, **fields):
    return InvalidBankError(msg, **fields)


def _num(x, where: str, **fields) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise _err(f"{where} must be a number, got {type(x).__name__} {repr(x):.60}", field=where, **fields)
    try:
        x = float(x)
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise _err(f"{where} must be finite, got {x}", field=where, **fields)
    return x


def _str(x, where: str, *, allow_empty=False, max_len=2000, **fields) -> str:
    if not isinstance(x, str):
        raise _err(f"{where} must be a string, got {type(x).__name__}", field=where, **fields)
    if not allow_empty and not x.strip():
        raise _err(f"{where} must not be empty", field=where, **fields)
    if len(x) > max_len:
        raise _err(f"{where} is longer than {max_len} characters", field=where, **fields)
    return x


def _parse_codes(raw, where: str, **fields) -> tuple:
    """``codes``: standard codes of a bank or an item, a list of ``{system, code, display?}``
    (for example LOINC ``{"system": "http://loinc.org", "code": "..."}``), as a tuple of
    ``(system, code, display)`` tuples (display ``""`` when absent)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_CODES:
        raise _err(f"{where} must be a list of at most {MAX_CODES} {{system, code, display}} objects",
                   field=where, **fields)
    out = []
    for j, c in enumerate(raw):
        w = f"{where}[{j}]"
        if not isinstance(c, dict) or set(c) - _CODE_KEYS or not {"system", "code"} <= set(c):
            raise _err(f"{w} must be an object with 'system', 'code' and optionally 'display'", field=w, **fields)
        system = _str(c["system"], w + ".system", max_len=500, **fields)
        if any(ch.isspace() for ch in system) or ":" not in system:
            raise _err(f"{w}.system must be a URI such as 'http://loinc.org', got {system!r:.80}", field=w, **fields)
        code = _str(c["code"], w + ".code", max_len=200, **fields)
        if code != code.strip():
            raise _err(f"{w}.code must not start or end with whitespace", field=w, **fields)
        display = _str(c.get("display", ""), w + ".display", allow_empty=True, max_len=500, **fields)
        out.append((system, code, display))
    if len({(s, c) for s, c, _ in out}) != len(out):
        raise _err(f"{where} lists the same system and code twice", field=where, **fields)
    return tuple(out)


def codes_document(codes) -> list:
    """``codes`` tuples back to their document form."""
    return [{"system": s, "code": c, **({"display": d} if d else {})} for s, c, d in codes]


def slope_problem(a: float) -> str | None:
    """Why ``a`` is not a plausible slope (a message fragment), or None when 0 < a <= :data:`SLOPE_MAX`."""
    if a <= 0:
        return (f"slope a must be > 0, got {a}; a negatively keyed item should be reverse-scored before "
                f"calibration")
    if a > SLOPE_MAX:
        return f"slope a must be at most {SLOPE_MAX:g}, got {a:g}; {_SCALE_HINT}"
    return None


def threshold_problem(b: float, name: str = "threshold") -> str | None:
    """Why ``b`` is not a plausible threshold (a message fragment), or None when |b| <= :data:`THRESHOLD_MAX`."""
    if abs(b) > THRESHOLD_MAX:
        return f"{name} must be within ±{THRESHOLD_MAX:g} on the θ metric, got {b:g}; {_SCALE_HINT}"
    return None


def read_document(path: str | os.PathLike) -> Any:
    """Read a bank file as parsed JSON: at most :data:`MAX_BANK_BYTES` of strict UTF-8 JSON
    (:func:`cat_prom.jsonfile.read_json`: no duplicate keys, NaN/Infinity, oversized numbers
    or NUL characters)."""
    return read_json(path, error=InvalidBankError, what="bank file", max_bytes=MAX_BANK_BYTES)


def build_document(*, id, name, items: Iterable, model="grm", direction="higher_is_worse",
                   start_item=None, version="0", domain="", recall_period="", t_mean=50.0, t_sd=10.0,
                   bands=(), provenance=None, demo=False, disclaimer="", description="", codes=()) -> dict:
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
    if codes:
        doc["codes"] = codes_document(codes)
    for it in items:
        opts = it.options()
        for o, c in zip(opts, getattr(it, "option_codes", ()) or ()):
            if c is not None:
                o["code"] = codes_document([c])[0]
        d = {"id": it.id, "stem": it.stem, "options": opts, "a": it.a, "thresholds": list(it.thresholds)}
        if it.model != model:
            d["model"] = it.model
        if it.content:
            d["content"] = list(it.content)
        if it.enemies:
            d["enemies"] = list(it.enemies)
        if it.exposure_k != 1.0:
            d["exposure_k"] = it.exposure_k
        if getattr(it, "codes", ()):
            d["codes"] = codes_document(it.codes)
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
    if t_sd > T_SD_MAX or abs(t_mean) > T_MEAN_MAX:
        key, v, rng = (("t_sd", t_sd, f"at most {T_SD_MAX:g}") if t_sd > T_SD_MAX
                       else ("t_mean", t_mean, f"within ±{T_MEAN_MAX:g}"))
        raise _err(f"{source}: metric.{key} must be {rng}, got {v:g} (T = t_mean + t_sd·θ; PROMIS uses 50 and 10)",
                   field=f"metric.{key}")
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
    (label, min_t, max_t) and ``doc`` the document without its ``content_hash``. Every
    error message starts with ``source`` (the file name).
    """
    try:
        return _parse_document(doc, source)
    except InvalidBankError as e:  # the type checks of _num and _str name the field only
        raise e.with_source(source)


def _parse_document(doc: Any, source: str) -> dict:
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
    codes = _parse_codes(doc.get("codes"), "codes")
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
                language=texts["language"], codes=codes, doc=body)


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
    a = _num(raw["a"], f"{label}: a", item_id=iid)
    problem = slope_problem(a)
    if problem:
        raise _err(f"{source}: {label}: {problem}", item_id=iid, field="a")
    thr_raw = raw["thresholds"]
    if not isinstance(thr_raw, list) or not 1 <= len(thr_raw) < MAX_CATEGORIES:
        raise _err(f"{source}: {label}: thresholds must be a list of 1 to {MAX_CATEGORIES - 1} numbers",
                   item_id=iid, field="thresholds")
    thr = tuple(_num(t, f"{label}: thresholds[{j}]", item_id=iid) for j, t in enumerate(thr_raw))
    for j, t in enumerate(thr):
        problem = threshold_problem(t, f"thresholds[{j}] (b{j + 1})")
        if problem:
            raise _err(f"{source}: {label}: {problem}", item_id=iid, field="thresholds")
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
    option_codes = ()
    if opts is None:
        values, labels = tuple(range(k)), tuple(str(v) for v in range(k))
    else:
        if not isinstance(opts, list) or any(not isinstance(o, dict) for o in opts):
            raise _err(f"{source}: {label}: options must be a list of {{value, label}} objects", item_id=iid, field="options")
        if len(opts) != k:
            raise _err(f"{source}: {label}: has {len(thr)} thresholds, so {k} categories, but {len(opts)} response "
                       f"options; give one option per category", item_id=iid, field="options")
        values, labels, option_codes = [], [], []
        for j, o in enumerate(opts):
            if set(o) - {"value", "label", "code"} or "value" not in o or "label" not in o:
                raise _err(f"{source}: {label}: options[{j}] must have exactly 'value' and 'label' (and optionally 'code')",
                           item_id=iid, field="options")
            v = o["value"]
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise _err(f"{source}: {label}: options[{j}].value must be an integer or a string", item_id=iid, field="options")
            values.append(v)
            labels.append(_str(o["label"], f"{label}: options[{j}].label", max_len=200, item_id=iid))
            code = o.get("code")
            option_codes.append(None if code is None else
                                _parse_codes([code], f"{label}: options[{j}].code", item_id=iid)[0])
        if len(set(values)) != len(values):
            raise _err(f"{source}: {label}: response option values must be distinct", item_id=iid, field="options")
        coded = [c[:2] for c in option_codes if c is not None]
        if len(set(coded)) != len(coded):
            raise _err(f"{source}: {label}: two response options have the same code", item_id=iid, field="options")
        values, labels = tuple(values), tuple(labels)
        option_codes = tuple(option_codes) if coded else ()
    stem = _str(raw.get("stem", iid), f"{label}: stem", item_id=iid)
    content = raw.get("content")
    content = [] if content is None else content
    enemies = raw.get("enemies")
    enemies = [] if enemies is None else enemies
    for key, val in (("content", content), ("enemies", enemies)):
        if not isinstance(val, list) or any(not isinstance(x, str) for x in val):
            raise _err(f"{source}: {label}: {key} must be a list of strings", item_id=iid, field=key)
    ek = _num(raw.get("exposure_k", 1.0), f"{label}: exposure_k", item_id=iid)
    if not 0 < ek <= 1:
        raise _err(f"{source}: {label}: exposure_k must be in (0, 1], got {ek}", item_id=iid, field="exposure_k")
    codes = _parse_codes(raw.get("codes"), f"{label}: codes", item_id=iid)
    return dict(id=iid, stem=stem, values=values, labels=labels, a=a, thresholds=thr, model=model,
                content=tuple(content), enemies=tuple(enemies), exposure_k=ek, codes=codes, option_codes=option_codes)
