"""docs/api.md §10 runs as written: every curl command of the clinical section, replayed in order on
the test app with the key it names, is accepted; its Python signature check accepts our signatures."""
from __future__ import annotations

import re
import shlex
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from api import webhooks
from apihelpers import run_session

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _section() -> str:
    text = DOC.read_text()
    return text[text.index("## 10. Goals, change and alerts"):text.index("## Configuration")]


def _commands(section):
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            if line.startswith("$ curl"):
                yield line[2:].split("  #")[0]


def _parse(cmd, env):
    for k, v in env.items():
        cmd = cmd.replace(f"'${k}'", v).replace(f"${k}", v)
    argv = shlex.split(cmd)
    method = argv[argv.index("-X") + 1] if "-X" in argv else "GET"
    url = next(a for a in argv if a.startswith("http://api"))
    key = next(a for a in argv if a.startswith("Authorization: Bearer ")).split()[-1]
    body = argv[argv.index("-d") + 1] if "-d" in argv else None
    return method, url[len("http://api"):], key, body


def test_section_10_curl_commands_run_as_written(client, keys):
    app_h = keys["patient-app"]
    # a patient with three finished sittings, the last one clearly worse, to give the section something to read
    for category in (1, 1, 4):
        first, _, _ = run_session(client, app_h, {"banks": ["pain-intensity"], "patient": "pt-7f3a9c"},
                                  answer=lambda q: q["options"][category]["value"])
    headers = {"APP_KEY": app_h, "CLINICIAN_KEY": keys["clinician"], "ADMIN_KEY": keys["admin"]}
    env = {"API": "http://api", "SID": first["id"]}
    cmds = list(_commands(_section()))
    assert len(cmds) >= 15
    for cmd in cmds:
        if "$ALERT_ID" in cmd and "ALERT_ID" not in env:
            alerts = client.get("/v1/alerts", headers=keys["clinician"]).json["alerts"]
            env["ALERT_ID"] = alerts[0]["id"]
        method, url, key, body = _parse(cmd, env)
        parts = urlsplit(url)
        r = client.open(parts.path, method=method, query_string=dict(parse_qsl(parts.query)),
                        headers=headers[key.lstrip("$")],
                        data=body, content_type="application/json" if body else None)
        assert r.status_code < 400, (cmd, r.status_code, r.json)
        if method == "POST" and parts.path.endswith("/personal-goals"):
            env["GOAL_ID"] = r.json["id"]
        if method == "POST" and parts.path == "/v1/webhooks":
            env["HOOK_ID"] = r.json["id"]
    assert {"GOAL_ID", "HOOK_ID", "ALERT_ID"} <= set(env)


def test_section_10_signature_check_accepts_our_signatures():
    code = re.search(r"```python\n(.*?)```", _section(), re.S).group(1)
    ns: dict = {}
    exec(code, ns)  # noqa: S102 - our own documentation
    body = b'{"alert_id":"al_1"}'
    header = webhooks.sign("whsec_doc", body, int(time.time()))
    assert ns["verified"]("whsec_doc", header, body)
    assert not ns["verified"]("whsec_other", header, body)
    assert not ns["verified"]("whsec_doc", webhooks.sign("whsec_doc", body, int(time.time()) - 3600), body)
