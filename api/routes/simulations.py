"""Monte Carlo CAT simulation of a design on a bank (researchers): queued as a job, run by the worker."""
from __future__ import annotations

import secrets

import marshmallow as ma
from flask import current_app, g, url_for
from flask.views import MethodView
from marshmallow import fields

from .. import sim_jobs
from ..keys import require
from ..problems import Problem
from ..schemas import ProblemSchema, SimulationResultSchema, SimulationSchema
from ..smorest import Blueprint
from ..store import utcnow

blp = Blueprint("simulations", __name__, url_prefix="/v1/simulations",
                description="Monte Carlo simulation of a CAT design (researchers, admins), run as a job by "
                            "`cat-prom worker`.")
_PROBLEM = {"schema": ProblemSchema, "content_type": "application/problem+json"}


class SimulationJobSchema(ma.Schema):
    id = fields.String()
    status = fields.String(metadata={"description": "`queued`, `running`, `done` or `failed`"})
    request = fields.Dict(metadata={"description": "The simulation asked for (bank, design, n, seed)."})
    created_at = fields.String()
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    result = fields.Nested(SimulationResultSchema, allow_none=True, metadata={"description": "When `done`."})
    error = fields.String(allow_none=True, metadata={"description": "Why it failed, when `failed`."})
    location = fields.String(metadata={"description": "This job's address (poll it)."})


def _cfg(name):
    return current_app.config["CAT_PROM_SIM_" + name]


@blp.route("")
class Simulations(MethodView):
    @require("researcher", "admin")
    @blp.arguments(SimulationSchema)
    @blp.response(202, SimulationJobSchema, headers={"Location": {"description": "The job; poll it with GET",
                                                                  "schema": {"type": "string"}}})
    @blp.alt_response(404, description="bank-not-found", **_PROBLEM)
    @blp.alt_response(422, description="validation-error (n or the bank beyond CAT_PROM_SIM_MAX_SIMULEES / "
                                        "CAT_PROM_SIM_MAX_ITEMS) or invalid-design", **_PROBLEM)
    @blp.alt_response(429, description="too-many-requests: your tenant has CAT_PROM_SIM_MAX_ACTIVE jobs queued or "
                                       "running; see Retry-After", **_PROBLEM,
                      headers={"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}})
    def post(self, args):
        """Queue a simulation of `n` patients (θ from the design's prior) taking the CAT of `design` on `bank`.
        Returns `202` and the job (`Location`); `cat-prom worker` runs it, and GET on the job gives bias, RMSE,
        test length, SE, exposure and stop reasons (cat_prom.simulation) once `done`."""
        ext = current_app.extensions["cat_prom"]
        request = {k: args[k] for k in ("bank", "design", "n", "seed") if k in args}
        sim_jobs.checked(ext.registry, request, max_simulees=_cfg("MAX_SIMULEES"), max_items=_cfg("MAX_ITEMS"))
        job = ext.store.enqueue_job(id="sim_" + secrets.token_hex(8), tenant=g.principal.tenant,
                                    key_id=g.principal.key_id, request=request, now=utcnow(),
                                    max_active=_cfg("MAX_ACTIVE"))
        if job is None:
            raise Problem("too-many-requests", f"Your clinic already has {_cfg('MAX_ACTIVE')} simulation jobs queued "
                          f"or running (CAT_PROM_SIM_MAX_ACTIVE); wait for one to finish.",
                          headers={"Retry-After": "10"})
        loc = url_for("simulations.SimulationJob", job_id=job.id)
        return sim_jobs.view(job, loc), 202, {"Location": loc}


@blp.route("/<string:job_id>")
class SimulationJob(MethodView):
    @require("researcher", "admin")
    @blp.response(200, SimulationJobSchema)
    @blp.alt_response(404, description="not-found: no such job in your tenant", **_PROBLEM)
    def get(self, job_id):
        """A simulation job: its status, and its result once `done` (or its error once `failed`)."""
        job = current_app.extensions["cat_prom"].store.get_job(g.principal.tenant, job_id)
        if job is None:
            raise Problem("not-found", "No simulation job with this id in your tenant.")
        return sim_jobs.view(job, url_for("simulations.SimulationJob", job_id=job.id))
