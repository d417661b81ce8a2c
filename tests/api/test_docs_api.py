"""docs/api.md stays true: its problem types, configuration variables and request bodies."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from api.config import _SETTINGS
from api.problems import PROBLEMS

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


@pytest.fixture(scope="module")
def text():
    return DOC.read_text(encoding="utf-8")


def test_every_problem_type_is_documented(text):
    table = text[text.index("| status | `type`"):]
    documented = set(re.findall(r"`([a-z-]+)`", table.split("\n\n")[0]))
    generic = {"conflict", "gone", "bad-request", "not-acceptable", "too-many-requests", "invalid-response"}
    missing = set(PROBLEMS) - documented - generic
    assert not missing, f"document these problem types in docs/api.md: {sorted(missing)}"


def test_every_setting_is_documented(text):
    for key in _SETTINGS:
        assert f"`CAT_PROM_{key}`" in text, key


def test_request_bodies_in_the_walkthrough_are_accepted(text, app, keys):
    """The -d '...' bodies of the curl examples, replayed in order on the test banks."""
    bodies = [json.loads(b) for b in re.findall(r"-d '(\{.*?\})'", text)]
    assert len(bodies) >= 2
    client = app.test_client()
    h = keys["patient-app"]
    create = next(b for b in bodies if "patient" in b)
    r = client.post("/v1/sessions", json=create, headers=h)
    assert r.status_code == 201, r.json
    q = r.json["question"]
    answer = next(b for b in bodies if "seq" in b)
    assert set(answer) == {"seq", "item_id", "value"}
    # the doc's item id belongs to the demo banks; use the offered item with the documented shape
    r = client.post(f"/v1/sessions/{r.json['id']}/responses", headers=h,
                    json=dict(answer, item_id=q["item_id"], value=q["options"][answer["value"] - 1]["value"]))
    assert r.status_code == 200, r.json


def test_example_replies_are_what_the_service_sends(text):
    """docs/examples/api/*.json and the ```json blocks after `<!-- example: NAME -->` in docs/api.md are
    real replies (docs/examples/make_api_examples.py). On failure, run that script and commit."""
    import importlib.util

    path = DOC.parent / "examples" / "make_api_examples.py"
    spec = importlib.util.spec_from_file_location("make_api_examples", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    examples = mod.generate()
    assert set(re.findall(r"<!-- example: ([a-z-]+) -->", text)) == set(examples)
    for name, obj in examples.items():
        assert (mod.OUT / f"{name}.json").read_text(encoding="utf-8") == mod.render(obj), name
    assert mod.doc_with(text, examples) == text, "docs/api.md examples drifted; run docs/examples/make_api_examples.py"


def test_every_serve_variable_is_documented(text):
    """The variables `cat-prom serve` reads (CAT_PROM_HOST, CAT_PROM_PORT, ...) are in docs/api.md's table
    and the README names the host and port ones."""
    cli = (DOC.parents[1] / "api" / "cli.py").read_text(encoding="utf-8")
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    names = set(re.findall(r'os\.environ\.get\("(CAT_PROM_[A-Z_]+)"', cli))
    assert {"CAT_PROM_HOST", "CAT_PROM_PORT"} <= names
    for name in names:
        assert f"| `{name}` |" in text, name
    assert "`CAT_PROM_HOST`" in readme and "`CAT_PROM_PORT`" in readme
