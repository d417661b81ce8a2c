"""The one response-CSV reader (``cat_prom.io.responses``) against a plain cell-by-cell decoder.

The reader codes each distinct cell text once per column and gathers the table with numpy; the
reference below decodes every cell on its own with the csv module and the rules the docstring states
(bank values, ``3`` and ``3.0`` alike, empty/NA missing; raw integers 0..k-1 or 1..k; ``values``).
Hypothesis draws the tables, including whitespace, ``x.0`` spellings, missing markers and bad cells.
"""
from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cat_prom import ItemBank
from cat_prom.errors import InvalidDataError
from cat_prom.io import ResponseTable, read_responses, read_responses_csv
from cat_prom.io.csvfile import MISSING

IDS = ["Q1", "Q2", "Q3"]


def _bank():
    bank = ItemBank.from_params([1.0, 1.5, 2.0], [[-1, 0, 1, 2], [-1, 0.5, np.nan, np.nan], [0, 1, 2, np.nan]],
                                ids=IDS, id="b")
    doc = bank.to_dict()
    doc.pop("content_hash")
    doc["items"][0]["options"] = [{"value": v, "label": str(v)} for v in (1, 2, 3, 4, 5)]
    doc["items"][2]["options"] = [{"value": v, "label": v} for v in ("never", "sometimes", "often", "always")]
    return ItemBank.from_dict(doc)


BANK = _bank()


def reference_bank_decode(text: str, bank) -> tuple[list[str], np.ndarray, list]:
    """Cell by cell: (ids, categories aligned to the bank, [(line, column) of invalid cells])."""
    rows = [r for r in csv.reader(io.StringIO(text))]
    header = rows[0]
    x = np.full((len(rows) - 1, bank.n_items), np.nan)
    bad = []
    for r, cells in enumerate(rows[1:]):
        for h, cell in zip(header[1:], cells[1:]):
            it = bank.item(h)
            c = cell.strip()
            values = [str(v) for v in it.values]
            if c in values:
                x[r, bank.index(h)] = values.index(c)
            elif c in MISSING:
                continue
            else:
                try:
                    f = float(c)
                    k = values.index(str(int(f))) if f.is_integer() else None
                except (ValueError, OverflowError):
                    k = None
                if k is None:
                    bad.append((r + 2, h))
                else:
                    x[r, bank.index(h)] = k
    return [cells[0].strip() for cells in rows[1:]], x, bad


def cell_for(item):
    good = st.sampled_from([str(v) for v in item.values])
    spelled = st.sampled_from([f"{v}.0" for v in item.values if isinstance(v, int)] or ["NA"])
    return st.one_of(good, spelled, st.sampled_from(["", "NA", " ", "."]),
                     st.builds(lambda v, pad: f"{pad}{v}{pad}", good, st.sampled_from(["", " "])),
                     st.sampled_from(["7", "x", "2.5", "-1"]))


@st.composite
def bank_tables(draw):
    cols = draw(st.permutations(IDS).flatmap(lambda p: st.lists(st.sampled_from(p), min_size=1, max_size=3,
                                                                  unique=True)))
    n = draw(st.integers(1, 12))
    rows = [[f"p{r}"] + [draw(cell_for(BANK.item(c))) for c in cols] for r in range(n)]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["id", *cols], *rows])
    return buf.getvalue()


@settings(max_examples=150, deadline=None)
@given(bank_tables())
def test_bank_mode_matches_cell_by_cell_decoding(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("r") / "resp.csv"
    path.write_text(text, encoding="utf-8")
    ids, want, bad = reference_bank_decode(text, BANK)
    if bad:
        with pytest.raises(InvalidDataError) as e:
            read_responses_csv(path, BANK)
        line, col = bad[0]
        assert e.value.fields["line"] == line and e.value.fields["column"] == col
        assert (f"({len(bad) - 1} more invalid cell" in e.value.message) == (len(bad) > 1)
        return
    got_ids, got = read_responses_csv(path, BANK)
    assert got_ids == ids
    np.testing.assert_array_equal(got, want)  # NaN where not answered or not in the file


@st.composite
def raw_tables(draw):
    lo = draw(st.sampled_from([0, 1]))
    k = draw(st.integers(2, 6))
    n, m = draw(st.integers(1, 10)), draw(st.integers(1, 4))
    cells = draw(st.lists(st.lists(st.one_of(st.integers(lo, lo + k - 1).map(str), st.sampled_from(["", "NA"])),
                                   min_size=m, max_size=m), min_size=n, max_size=n))
    return lo, cells


@settings(max_examples=150, deadline=None)
@given(raw_tables())
def test_raw_integer_cells_are_shifted_by_the_smallest_value(tmp_path_factory, table):
    lo, cells = table
    m = len(cells[0])
    path = tmp_path_factory.mktemp("r") / "raw.csv"
    path.write_text("id," + ",".join(f"I{j}" for j in range(m)) + "\n"
                    + "".join(f"p{r}," + ",".join(row) + "\n" for r, row in enumerate(cells)), encoding="utf-8")
    answered = [int(c) for row in cells for c in row if c not in ("", "NA")]
    smallest = min(answered) if answered else 0
    if smallest not in (0, 1):  # every answer 2 or more: the rule cannot tell, and says so
        with pytest.raises(InvalidDataError, match=f"response value {smallest}; without --values"):
            read_responses(path)
        return
    t = read_responses(path)
    want = np.array([[np.nan if c in ("", "NA") else int(c) - smallest for c in row] for row in cells], float)
    np.testing.assert_array_equal(t.categories, want)
    assert t.item_ids == tuple(f"I{j}" for j in range(m)) and t.person_ids == tuple(f"p{r}" for r in range(len(cells)))
    if answered:
        assert t.coding["values"] == list(range(smallest, max(answered) + 1))
        assert t.coding["rule"].startswith("cells are 0-based" if smallest == 0 else "cells are response values 1..k")


def test_values_and_anchor_columns(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,Q1,N1,N2\na,5,never,often\nb,,always,NA\nc,1.0,sometimes,never\n", encoding="utf-8")
    words = ["never", "sometimes", "often", "always"]
    t = read_responses(path, values=words, anchor=BANK)
    want = np.array([[4, 0, 2], [np.nan, 3, np.nan], [0, 1, 0]])
    np.testing.assert_array_equal(t.categories, want)
    assert t.coding["values"] == words and "anchor_items" in t.coding and t.source == "r.csv"
    with pytest.raises(InvalidDataError, match=r"line 2, column 'N2': 'often' is not one of the response values"):
        read_responses(path, values=["never", "sometimes", "always"], anchor=BANK)
    path.write_text("id,Q1,N1\na,6,1\n", encoding="utf-8")
    with pytest.raises(InvalidDataError, match=r"'6' is not a response value of anchor item 'Q1' in bank 'b'"):
        read_responses(path, anchor=BANK)


def test_from_array_and_alignment():
    t = ResponseTable.from_array([[0, -1], [2, 1]], ["Q3", "Q1"])
    assert t.person_ids == ("1", "2") and math.isnan(t.categories[0, 1])
    x = t.for_bank(BANK)
    np.testing.assert_array_equal(x, [[np.nan, np.nan, 0], [1, np.nan, 2]])
    with pytest.raises(InvalidDataError, match="unique"):
        ResponseTable.from_array([[0, 1]], ["Q1", "Q1"])
    with pytest.raises(InvalidDataError, match="shape"):
        ResponseTable.from_array([0, 1])


def test_bank_and_raw_options_are_exclusive(tmp_path):
    (tmp_path / "r.csv").write_text("id,Q1\na,1\n", encoding="utf-8")
    with pytest.raises(InvalidDataError, match="not both"):
        read_responses(tmp_path / "r.csv", bank=BANK, values=[1, 2])
