"""cat-prom: computerised adaptive testing for patient-reported outcome measures.

The engine: IRT models (:mod:`~cat_prom.irt`), item banks (:mod:`~cat_prom.bank`),
scoring (:mod:`~cat_prom.scoring`), item selection (:mod:`~cat_prom.selection`),
stop rules (:mod:`~cat_prom.stopping`), designs (:mod:`~cat_prom.design`), the state of
S CATs and one step of all of them (:mod:`~cat_prom.state`), sessions (:mod:`~cat_prom.session`,
a CAT state of one row) and simulation (:mod:`~cat_prom.simulation`, of many rows). It
depends on numpy, scipy and girth only.
"""
from .bank import Item, ItemBank
from .design import Design, PROMIS_DEFAULT
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .session import Battery, CatSession, Step

__version__ = "0.1.0"
__all__ = ["Item", "ItemBank", "Design", "PROMIS_DEFAULT", "CatSession", "Battery", "Step", *_errors_all]
