"""cat-prom: computerised adaptive testing for patient-reported outcome measures.

The engine: IRT models (:mod:`~cat_prom.irt`), item banks (:mod:`~cat_prom.bank`),
scoring (:mod:`~cat_prom.scoring`), item selection (:mod:`~cat_prom.selection`),
stop rules (:mod:`~cat_prom.stopping`), designs (:mod:`~cat_prom.design`) and
sessions (:mod:`~cat_prom.session`). It depends on numpy, scipy and girth only.
"""
from .bank import Item, ItemBank
from .design import Design, PROMIS_DEFAULT
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .session import Battery, CatSession, Step

__version__ = "0.1.0"
__all__ = ["Item", "ItemBank", "Design", "PROMIS_DEFAULT", "CatSession", "Battery", "Step", *_errors_all]
