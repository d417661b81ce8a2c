"""``cat-prom score`` and ``cat-prom score-table``: score response patterns; summed-score tables."""
from __future__ import annotations

import csv

from ..errors import InvalidDataError
from .common import add_grid_prior, grid_prior, info, load_bank, num, out_stream, split_list


HELP = {"score": "score a CSV of response patterns (EAP, MAP, ML or WLE)",
        "score-table": "summed-score to T-score table (Lord–Wingersky EAP[sum])"}


def register(subparsers) -> None:
    _register_score(subparsers)
    _register_score_table(subparsers)


def _register_score(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help=HELP["score"],
        description="Score every row of RESP.csv (header id,<item ids...>; cells hold the bank's response values, "
                    "empty or NA for a missing answer). Writes id,theta,se,t_score,t_se,n_answered,note.")
    p.add_argument("--bank", required=True, metavar="BANK.json")
    p.add_argument("--responses", required=True, metavar="RESP.csv")
    p.add_argument("--method", choices=("eap", "map", "ml", "wle"), default="eap", help="estimator (default eap)")
    p.add_argument("--out", metavar="OUT.csv", help="output file (default: standard output)")
    add_grid_prior(p)
    p.set_defaults(func=run_score)


NOTE_NO_RESPONSES = "no_responses: no item answered, no score"


def run_score(args) -> int:
    import numpy as np

    from .. import scoring
    from ..io.responses import read_responses_csv
    grid, prior = grid_prior(args)
    bank = load_bank(args.bank)
    ids, x = read_responses_csv(args.responses, bank)
    if ids:
        res = scoring.score(x, bank, args.method, grid=grid, prior=prior)  # one vectorised call for all rows
        theta, se, n_ans, flags = res.theta, res.se, res.n_answered, res.flags
    else:
        theta = se = np.zeros(0)
        n_ans, flags = np.zeros(0, dtype=int), []
    t = bank.t_mean + bank.t_sd * theta
    tse = bank.t_sd * se
    with out_stream(args.out) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "theta", "se", "t_score", "t_se", "n_answered", "note"])
        for r, pid in enumerate(ids):
            if n_ans[r] == 0:
                w.writerow([pid, "", "", "", "", 0, NOTE_NO_RESPONSES])
                continue
            w.writerow([pid, num(theta[r], 6), num(se[r], 6), num(t[r], 4), num(tse[r], 4), int(n_ans[r]),
                        flags[r]])
    if args.out not in (None, "-"):
        n_flag = sum(1 for r in range(len(ids)) if n_ans[r] == 0 or flags[r])
        info(f"scored {len(ids)} persons with {args.method.upper()} on bank {bank.id!r} → {args.out}"
             + (f" ({n_flag} with a note)" if n_flag else ""))
    return 0


def _register_score_table(subparsers) -> None:
    p = subparsers.add_parser(
        "score-table", help=HELP["score-table"],
        description="EAP[summed score] and its SD for every possible summed score of a fixed form (all the bank's "
                    "items, or --items), by the Lord–Wingersky recursion. The summed score is on the bank's "
                    "response values when every item's values are consecutive integers, else on 0-based categories.")
    p.add_argument("--bank", required=True, metavar="BANK.json")
    p.add_argument("--items", metavar="ID,ID,...", help="the form's items (default: every item of the bank)")
    p.add_argument("--out", metavar="OUT.csv", help="output file (default: standard output)")
    add_grid_prior(p)
    p.set_defaults(func=run_score_table)


def _sum_offset(items) -> tuple[int, int, str]:
    """(offset, sign, scale): summed value = offset + sign * (sum of 0-based categories)."""
    def step(it):
        v = it.values
        if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            d = [b - a for a, b in zip(v, v[1:])]
            if all(s == 1 for s in d):
                return 1
            if all(s == -1 for s in d):
                return -1
        return 0
    steps = {step(it) for it in items}
    if steps == {1}:
        return sum(it.values[0] for it in items), 1, "values"
    if steps == {-1}:
        return sum(it.values[0] for it in items), -1, "values"
    return 0, 1, "categories"


def run_score_table(args) -> int:
    from .. import scoring
    from ..irt import ItemParams
    grid, prior = grid_prior(args)
    bank = load_bank(args.bank)
    ids = split_list(args.items) or list(bank.ids)
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidDataError(f"--items lists {dup!r} twice")
    idx = [bank.index(i) for i in ids]  # UnknownItemError names the item
    p = bank.params
    sub = ItemParams(a=p.a[idx], b=p.b[idx], is_gpcm=p.is_gpcm[idx], n_cat=p.n_cat[idx])
    tab = scoring.summed_score_table(sub, grid=grid, prior=prior)
    items = [bank.items[j] for j in idx]
    offset, sign, scale = _sum_offset(items)
    if scale == "categories":
        info("note: the items' response values are not consecutive integers; summed scores are sums of 0-based "
             "categories")
    rows = list(range(len(tab["sum_score"])))
    if sign < 0:
        rows.reverse()
    with out_stream(args.out) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["sum_score", "theta", "se", "t_score", "t_se", "probability"])
        for r in rows:
            s = offset + sign * int(tab["sum_score"][r])
            th, se = float(tab["theta"][r]), float(tab["se"][r])
            w.writerow([s, num(th, 6), num(se, 6), num(bank.t_mean + bank.t_sd * th, 4),
                        num(bank.t_sd * se, 4), f"{float(tab['probability'][r]):.6g}"])
    if args.out not in (None, "-"):
        info(f"wrote {args.out}: {len(rows)} summed scores for {len(ids)} items of bank {bank.id!r}")
    return 0


