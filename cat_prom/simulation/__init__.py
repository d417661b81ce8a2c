r"""Monte Carlo and post-hoc CAT simulation, vectorised across simulees.

A simulation runs the CAT of a :class:`~cat_prom.design.Design` on a bank for many
simulees at once with the engine's own CAT: a :class:`~cat_prom.state.CatState` of S rows
stepped by :func:`~cat_prom.simulation.run.run_cats`, the same state, selection
(:mod:`cat_prom.selection`), stop rules (:mod:`cat_prom.stopping`) and EAP kernel
(:func:`cat_prom.grid.eap`) a :class:`~cat_prom.session.CatSession` runs for one patient.
For a deterministic design (no exposure randomisation, no random selection) every simulee
therefore gets exactly the items a ``CatSession`` fed the same answers would give, and the
same θ̂ and SE.

Monte Carlo simulation draws true θ from the design's prior (or takes them as given) and
responses from the model; post-hoc ("real-data") simulation takes each simulee's answers
from a complete response matrix, in which NaN marks an item the person did not answer —
such an item is never offered to that person, as if it were excluded for them.

Modules: :mod:`~cat_prom.simulation.run` (:func:`simulate`, the step loop),
:mod:`~cat_prom.simulation.responders` (where answers come from),
:mod:`~cat_prom.simulation.result` (:class:`SimulationResult`, summary statistics, CSV),
:mod:`~cat_prom.simulation.exposure` (:func:`sympson_hetter`); the HTML/PNG report is
:mod:`cat_prom.reports.simulation`.

References
----------
Magis, D., & Raîche, G. (2012). Random generation of response patterns under
computerized adaptive testing with the R package catR. *Journal of Statistical
Software*, 48(8).
"""
from .exposure import sympson_hetter
from .result import THETA_BANDS, SimulationResult, overlap_rate
from .run import simulate

__all__ = ["simulate", "SimulationResult", "sympson_hetter", "overlap_rate", "THETA_BANDS"]
