"""Small helpers shared by the ``cat-prom`` command modules: options, output, files, progress.

Only the standard library is imported here (numpy and the engine inside the
functions that need them), so that building the parser stays fast.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

from ..errors import InvalidDataError, InvalidDesignError

__all__ = ["info", "warn", "out_stream", "ensure_parent", "save_bank", "load_bank", "read_design", "add_grid_prior",
           "grid_prior", "num", "split_list", "values_list", "Progress"]


def info(msg: str) -> None:
    """A message for the user on standard error (standard output is for results)."""
    print(msg, file=sys.stderr)


def warn(msg: str) -> None:
    info(f"cat-prom: warning: {msg}")


class _NoClose:
    def __init__(self, fh):
        self.fh = fh

    def __enter__(self):
        return self.fh

    def __exit__(self, *exc):
        self.fh.flush()
        return False


def ensure_parent(path: str) -> None:
    """Create the folder an output file goes into (``out/scores.csv`` works in a fresh checkout)."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise InvalidDataError(f"cannot create {folder!r}: {e.strerror}") from None


def out_stream(path: str | None):
    """A text stream for ``--out`` (standard output when absent or '-')."""
    if path in (None, "-"):
        return _NoClose(sys.stdout)
    ensure_parent(path)
    try:
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as e:
        raise InvalidDataError(f"cannot write {path!r}: {e.strerror}") from None


def save_bank(bank, path: str) -> None:
    """``bank.save(path)``, creating its folder, with a domain error for an unwritable path."""
    ensure_parent(path)
    try:
        bank.save(path)
    except OSError as e:
        raise InvalidDataError(f"cannot write {path!r}: {e.strerror}") from None


def load_bank(path: str):
    from ..bank import ItemBank
    return ItemBank.load(path)


def read_design(path: str | None):
    """The design in a JSON file (the PROMIS default design without one), read strictly
    (:func:`cat_prom.jsonfile.read_json`)."""
    from ..design import Design
    from ..jsonfile import read_json
    if path is None:
        return Design()
    doc = read_json(path, error=InvalidDesignError, what="design file", fields={"field": "design"})
    try:
        return Design.from_dict(doc)
    except InvalidDesignError as e:
        raise e.with_source(os.path.basename(path))


def add_grid_prior(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("quadrature grid and prior")
    g.add_argument("--grid-points", type=int, default=81, metavar="N",
                   help="points of the θ grid (default 81); also bounds ML/WLE/MAP's search")
    g.add_argument("--grid-range", type=float, nargs=2, default=(-6.0, 6.0), metavar=("MIN", "MAX"),
                   help="ends of the θ grid (default -6 6)")
    g.add_argument("--prior-mean", type=float, default=0.0, metavar="M", help="mean of the normal prior (default 0)")
    g.add_argument("--prior-sd", type=float, default=1.0, metavar="S", help="SD of the normal prior (default 1)")


def grid_prior(args) -> tuple[tuple, tuple]:
    """``(grid, prior)`` of the options added by :func:`add_grid_prior`, checked."""
    if args.grid_points < 5 or args.grid_points > 2001:
        raise InvalidDataError(f"--grid-points must be between 5 and 2001, got {args.grid_points}")
    lo, hi = args.grid_range
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise InvalidDataError(f"--grid-range needs MIN < MAX, got {lo} {hi}")
    if not (math.isfinite(args.prior_sd) and args.prior_sd > 0):
        raise InvalidDataError(f"--prior-sd must be > 0, got {args.prior_sd}")
    if not math.isfinite(args.prior_mean):
        raise InvalidDataError(f"--prior-mean must be finite, got {args.prior_mean}")
    return (lo, hi, args.grid_points), (args.prior_mean, args.prior_sd)


def num(x: float, digits: int) -> str:
    """A number for a CSV cell: fixed decimals, ``inf``/``-inf``, empty for NaN."""
    if not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "")
    return f"{x:.{digits}f}"


def split_list(s: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; an empty entry is an error."""
    if s is None:
        return None
    parts = [p.strip() for p in s.split(",")]
    if any(not p for p in parts):
        raise InvalidDataError(f"empty entry in the list {s!r}; separate entries with commas")
    return parts


def values_list(s: str | None):
    """Response values given on the command line: integers where they are integers, else text."""
    parts = split_list(s)
    if parts is None:
        return None
    out = []
    for p in parts:
        try:
            out.append(int(p))
        except ValueError:
            out.append(p)
    return out


class Progress:
    """A one-line text progress bar on stderr, drawn only when stderr is a terminal (and not --quiet)."""

    WIDTH = 28

    def __init__(self, label: str, *, quiet: bool = False, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.enabled = tty and not quiet
        self.label = label
        self._last = 0.0
        self._drawn = False
        self._c0 = None

    def _draw(self, frac: float, text: str, force: bool = False) -> None:
        import time
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        frac = min(max(frac, 0.0), 1.0)
        n = int(round(frac * self.WIDTH))
        self.stream.write(f"\r{self.label} [{'#' * n}{'-' * (self.WIDTH - n)}] {text}\033[K")
        self.stream.flush()
        self._drawn = True

    def em(self, cycle: int, loglik: float, change: float, *, max_iter: int, tol: float) -> None:
        """calibrate(progress=...) callback: progress towards max change < tol (log scale) or max_iter."""
        if not self.enabled:
            return
        if self._c0 is None or not math.isfinite(self._c0):
            self._c0 = max(change, tol * 10)
        by_change = math.log(self._c0 / max(change, 1e-300)) / math.log(self._c0 / tol) if self._c0 > tol else 1.0
        frac = 1.0 if change < tol else max(by_change, cycle / max_iter)
        self._draw(frac, f"cycle {cycle:4d}  loglik {loglik:,.2f}  change {change:.2e}", force=change < tol)

    def count(self, done: int, total: int) -> None:
        if self.enabled:
            self._draw(done / max(total, 1), f"{done:,}/{total:,}", force=done >= total)

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
