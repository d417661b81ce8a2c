"""``cat-prom link``: put a bank on another bank's metric, over :func:`cat_prom.calibration.link_bank`."""
from __future__ import annotations

import os

from ..errors import InvalidDataError
from .common import load_bank, save_bank, split_list, warn

HELP = "put a bank on another bank's metric (Stocking-Lord or mean-sigma linking)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "link", help=HELP,
        description="Estimate the linking constants A, B (θ_old = A·θ_new + B) from anchor items common to "
                    "NEW_BANK and OLD_BANK, and write NEW_BANK's items on OLD_BANK's metric: a* = a/A, "
                    "b* = A·b + B. The linked bank takes OLD_BANK's T metric and records the linking in its "
                    "provenance.")
    p.add_argument("new", metavar="NEW_BANK.json")
    p.add_argument("--to", required=True, metavar="OLD_BANK.json", help="the bank whose metric to adopt")
    p.add_argument("--method", choices=("stocking-lord", "mean-sigma"), default="stocking-lord",
                   help="linking method (default stocking-lord)")
    p.add_argument("--anchors", metavar="ID,ID,...", help="anchor items (default: every item id in both banks)")
    p.add_argument("--out", required=True, metavar="LINKED.json", help="linked bank to write")
    p.set_defaults(func=run)


def _check_anchors(anchors, new, old, args) -> list[str]:
    """The anchor items: as given (each in both banks, once) or every common item id (at least 2)."""
    if anchors is None:
        common = [i for i in new.ids if i in set(old.ids)]
        if len(common) < 2:
            raise InvalidDataError(f"banks {new.id!r} and {old.id!r} share {len(common)} item id(s); linking needs "
                                   f"at least 2 common anchor items (or name them with --anchors)")
        return common
    for a in anchors:
        if a not in set(new.ids):
            raise InvalidDataError(f"--anchors: {a!r} is not an item of {os.path.basename(args.new)} "
                                   f"(bank {new.id!r})")
        if a not in set(old.ids):
            raise InvalidDataError(f"--anchors: {a!r} is not an item of {os.path.basename(args.to)} "
                                   f"(bank {old.id!r})")
    if len(set(anchors)) != len(anchors):
        raise InvalidDataError("--anchors lists an item twice")
    return anchors


def run(args) -> int:
    import numpy as np

    from ..calibration.workflow import link_bank
    new, old = load_bank(args.new), load_bank(args.to)
    anchors = _check_anchors(split_list(args.anchors), new, old, args)
    if new.direction != old.direction:
        warn(f"{new.id!r} says {new.direction} but {old.id!r} says {old.direction}; the linked bank takes "
             f"{old.id!r}'s metric ({old.direction})")
    out_bank, link = link_bank(new, old, method=args.method, anchors=anchors)
    save_bank(out_bank, args.out)
    print(f"Linked {new.id!r} ({new.n_items} items) to the metric of {old.id!r} by {args.method}")
    print(f"  A = {link.A:.6f}   B = {link.B:.6f}   (θ_old = A·θ_new + B)" +
          (f"   criterion {link.criterion:.3g}" if args.method == "stocking-lord" else ""))
    print(f"  anchors ({len(link.anchors)}): {', '.join(link.anchors)}")
    w = max(6, *(len(i) for i in link.anchors))
    print(f"  {'anchor':<{w}}  {'a old':>7} {'a linked':>8}  max |Δb|")
    for iid in link.anchors:
        jn, jo = new.index(iid), old.index(iid)
        k = int(new.n_cat[jn]) - 1
        db = float(np.max(np.abs(link.b[jn, :k] - old.b[jo, :k])))
        print(f"  {iid:<{w}}  {old.a[jo]:7.3f} {link.a[jn]:8.3f}  {db:.3f}")
    print(f"wrote {args.out}: bank {out_bank.id!r}, {out_bank.n_items} items, {out_bank.content_hash}")
    return 0
