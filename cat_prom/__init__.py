"""cat-prom: computerised adaptive testing for patient-reported outcome measures.

The engine: IRT models (:mod:`~cat_prom.irt`), item banks (:mod:`~cat_prom.bank`),
scoring (:mod:`~cat_prom.scoring`), item selection (:mod:`~cat_prom.selection`),
stop rules (:mod:`~cat_prom.stopping`), designs (:mod:`~cat_prom.design`), the state of
S CATs and one step of all of them (:mod:`~cat_prom.state`), sessions (:mod:`~cat_prom.session`,
a CAT state of one row) and simulation (:mod:`~cat_prom.simulation`, of many rows). It
depends on numpy, scipy and girth only.

The names below are imported on first use (PEP 562), so that ``import cat_prom``
(and ``cat-prom --help``) does not load numpy and scipy until something needs them.
"""
from importlib import import_module

from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all

__version__ = "0.1.0"

#: Public name -> module that defines it.
_LAZY = {"Item": ".bank", "ItemBank": ".bank", "Design": ".design", "PROMIS_DEFAULT": ".design",
         "CatSession": ".session", "Battery": ".session", "Step": ".session"}

__all__ = ["Item", "ItemBank", "Design", "PROMIS_DEFAULT", "CatSession", "Battery", "Step", *_errors_all]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cat_prom' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
