"""schemathesis against the service's own OpenAPI document (``/v1/openapi.json``), in process.

Every operation of the document, for every way a client can present itself (no key, a wrong key,
a key of each role), gets ``EXAMPLES`` generated requests (hypothesis, fixed seed) through the
Flask test client (schemathesis' WSGI transport; no network). Each response is held to
schemathesis' checks: no 5xx, status code, content type, headers and body as documented, invalid
data refused, no response with auth that the document says needs it ignored.

One check is left out, and counted instead of failing the test: ``positive_data_acceptance``
("a schema-valid request must not get a 4xx"). The service has rules that JSON Schema in OpenAPI
3.0 cannot state: dates relative to now (`expires_at` within 168 h, `rated_on` not in the future),
`since` before `until`, no NUL character anywhere in a JSON body (keys included), webhook URLs
that must be http(s) to a host, GAS level keys among "-2".."2", and ids that must exist. Those
requests get a 4xx problem+json (checked by the other checks) and are tallied in
``RESULTS["rejected_schema_valid"]``.

Figures in docs/reliability.md ("schemathesis"); rerun:
    .venv/bin/python -m pytest -q -s tests/api/test_schemathesis.py
"""
from __future__ import annotations

import collections

import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from apihelpers import Keys

#: Generated requests per operation and per client identity; 36 operations x 6 identities x 25 > 5,000.
EXAMPLES = 25
IDENTITIES = ("no key", "wrong key", "patient-app", "clinician", "researcher", "admin")


def _headers(keys: Keys, who: str) -> dict:
    if who == "no key":
        return {}
    if who == "wrong key":
        return {"Authorization": "Bearer cpk_" + "0" * 40}
    return keys[who]


def _failure_names(exc: BaseException) -> list[str]:
    inner = getattr(exc, "exceptions", None)
    return [type(e).__name__ for e in inner] if inner else [type(exc).__name__]


def test_every_operation_with_and_without_keys(app):
    keys = Keys(app)
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app)
    counts = collections.Counter()
    failures = collections.Counter()
    first_failure: dict = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    for who in IDENTITIES:
        headers = _headers(keys, who)
        for op in operations:
            @seed(20261126)
            @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy())
            def run(case):
                counts["requests"] += 1
                response = case.call(headers=headers)
                counts[f"status {response.status_code // 100}xx"] += 1
                try:
                    case.validate_response(response, excluded_checks=[positive_data_acceptance], headers=headers)
                except (FailureGroup, AssertionError) as exc:  # one sub-exception per failing check
                    key = (who, op.label, ",".join(_failure_names(exc)))
                    failures[key] += 1
                    first_failure.setdefault(key, str(exc)[:2000])
                    return
                try:
                    case.validate_response(response, checks=[positive_data_acceptance], headers=headers)
                except (FailureGroup, AssertionError):
                    counts["rejected_schema_valid"] += 1

            run()
    print(f"\nschemathesis {schemathesis.__version__}: "
          f"{len(operations)} operations x {len(IDENTITIES)} identities x {EXAMPLES} examples; "
          + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
          + f"; failed checks: {sum(failures.values())}")
    for key, n in sorted(failures.items()):
        print(n, key, first_failure[key][:600])
    assert len(operations) >= 34, "every operation of the document"
    assert counts["requests"] >= 5000, counts
    assert counts["status 5xx"] == 0, failures
    assert not failures, "\n".join(f"{n} x {k}:\n{first_failure[k]}" for k, n in failures.items())

