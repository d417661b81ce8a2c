"""Monte Carlo CAT simulation of a design on a bank (researchers)."""
from __future__ import annotations

from flask import current_app
from flask.views import MethodView

from cat_prom.errors import CatPromError

from ..keys import require
from ..problems import Problem
from ..schemas import SimulationResultSchema, SimulationSchema
from ..smorest import Blueprint

blp = Blueprint("simulations", __name__, url_prefix="/v1/simulations",
                description="Monte Carlo simulation of a CAT design (researchers, admins).")


@blp.route("")
class Simulations(MethodView):
    @require("researcher", "admin")
    @blp.arguments(SimulationSchema)
    @blp.response(200, SimulationResultSchema)
    def post(self, args):
        """Simulate `n` patients (at most 2000; θ from the design's prior) taking the CAT of `design` on
        `bank`; returns bias, RMSE, test length, SE, exposure and stop reasons (cat_prom.simulation)."""
        from cat_prom.design import Design
        from cat_prom.simulation import simulate

        reg = current_app.extensions["cat_prom"].registry
        bank = reg.banks.get(args["bank"])
        if bank is None:
            raise Problem("bank-not-found", f"No item bank {args['bank']!r}; GET /v1/banks lists the banks.")
        design = args.get("design") or {}
        if "grid" in design:
            raise Problem("invalid-design", "The quadrature `grid` cannot be overridden through the API.",
                          errors={"design": ["`grid` cannot be overridden"]})
        try:
            d = Design.from_dict(design)
        except CatPromError as e:
            raise Problem("invalid-design", e.message, errors={"design": [e.message]}) from None
        result = simulate(bank, d, n=args["n"], seed=args.get("seed"))
        return result.summary()
