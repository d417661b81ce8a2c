"""Files researchers bring: item-parameter tables and response data (CSV), and the JSON reader.

* :mod:`~cat_prom.io.params` — parameter tables in the csv, mirt and catR layouts
  (:func:`read_params_csv`, :func:`write_params`) and item wording (:func:`read_stems_csv`);
* :mod:`~cat_prom.io.responses` — the one response-CSV reader (:func:`read_responses`),
  for a bank's response values or raw values coded for a calibration;
* :mod:`~cat_prom.io.csvfile` — the CSV layer every reader and writer uses (line numbers,
  precise errors, and output cells neutralised against spreadsheet formula injection);
* :mod:`~cat_prom.io.jsonfile` — the one strict JSON reader (banks, batteries, designs).

The names below are imported on first use (PEP 562): :mod:`cat_prom.bank_format` reads
bank files through :mod:`~cat_prom.io.jsonfile`, and :mod:`~cat_prom.io.params` builds
banks, so importing every submodule here would be circular.
"""
from importlib import import_module

#: Public name -> submodule that defines it.
_LAZY = {"read_csv_rows": ".csvfile", "csv_writer": ".csvfile", "FORMATS": ".params", "read_params_csv": ".params",
         "read_stems_csv": ".params", "write_params": ".params", "ResponseTable": ".responses",
         "read_responses": ".responses", "read_responses_csv": ".responses", "read_json": ".jsonfile",
         "parse_json": ".jsonfile"}

__all__ = ["FORMATS", "read_params_csv", "write_params", "read_stems_csv", "ResponseTable", "read_responses",
           "read_responses_csv", "read_csv_rows", "csv_writer", "read_json", "parse_json"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cat_prom.io' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
