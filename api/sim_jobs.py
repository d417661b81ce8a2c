"""Simulation jobs: the request is checked when it is queued (bank, design, size limits) and run by
``cat-prom worker`` (:meth:`api.worker.Worker.run_job`), never on a request thread. No SQL here."""
from __future__ import annotations

from cat_prom.errors import CatPromError
from cat_prom.jsonable import jsonable

from .problems import Problem
from .registry import Registry


def checked(registry: Registry, request: dict, *, max_simulees: int, max_items: int):
    """(bank, design) of a simulation request; Problem (404/422) when it cannot run within the limits."""
    from cat_prom.design import Design

    bank = registry.banks.get(request["bank"])
    if bank is None:
        raise Problem("bank-not-found", f"No item bank {request['bank']!r}; GET /v1/banks lists the banks.")
    if request["n"] > max_simulees:
        raise Problem("validation-error", f"A simulation job may have at most {max_simulees} simulees "
                      f"(CAT_PROM_SIM_MAX_SIMULEES); got {request['n']}.", errors={"n": [f"at most {max_simulees}"]})
    if bank.n_items > max_items:
        raise Problem("validation-error", f"Bank {request['bank']!r} has {bank.n_items} items; simulation jobs may "
                      f"use banks of at most {max_items} (CAT_PROM_SIM_MAX_ITEMS).",
                      errors={"bank": [f"more than {max_items} items"]})
    design = request.get("design") or {}
    if "grid" in design:
        raise Problem("invalid-design", "The quadrature `grid` cannot be overridden through the API.",
                      errors={"design": ["`grid` cannot be overridden"]})
    try:
        d = Design.from_dict(design)
    except CatPromError as e:
        raise Problem("invalid-design", e.message, errors={"design": [e.message]}) from None
    return bank, d


def run(registry: Registry, request: dict, *, max_simulees: int, max_items: int) -> dict:
    """The simulation summary (cat_prom.simulation) of a queued request, JSON-ready."""
    from cat_prom.simulation import simulate

    bank, design = checked(registry, request, max_simulees=max_simulees, max_items=max_items)
    return jsonable(simulate(bank, design, n=request["n"], seed=request.get("seed")).summary())


def view(job, location: str) -> dict:
    """A job as the API shows it."""
    return {"id": job.id, "status": job.status, "request": job.request,
            "created_at": job.created_at.isoformat(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "result": job.result, "error": job.error, "location": location}
