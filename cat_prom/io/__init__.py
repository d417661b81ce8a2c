"""Files researchers bring: item-parameter tables and response data (CSV).

* :mod:`~cat_prom.io.params` — parameter tables in the csv, mirt and catR layouts
  (:func:`read_params_csv`, :func:`write_params`) and item wording (:func:`read_stems_csv`);
* :mod:`~cat_prom.io.responses` — the one response-CSV reader (:func:`read_responses`),
  for a bank's response values or raw values coded for a calibration;
* :mod:`~cat_prom.io.csvfile` — the CSV layer both use (line numbers, precise errors).
"""
from .csvfile import read_csv_rows
from .params import FORMATS, read_params_csv, read_stems_csv, write_params
from .responses import ResponseTable, read_responses, read_responses_csv

__all__ = ["FORMATS", "read_params_csv", "write_params", "read_stems_csv", "ResponseTable", "read_responses",
           "read_responses_csv", "read_csv_rows"]
