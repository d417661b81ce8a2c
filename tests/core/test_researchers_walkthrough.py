"""The researcher walk-through runs as written, end to end, from a fresh copy of the repository.

Every shell command of ``docs/researchers.md`` (its ``bash`` blocks, in order) and of the README's
"Scoring a CSV" block is run with ``bash`` in a temporary copy of the repository's files, with
``cat-prom`` and ``python`` taken from this checkout's ``.venv/bin`` through ``PATH`` (what
``make shell`` gives a user). Checked for each command: exit status 0, and every file it promises
(``--out``/``--report`` paths and the files its shown output says it ``wrote``). ``cat-prom serve``
is started in the background on a free port (``CAT_PROM_PORT``, the port ``serve`` defaults to)
with a database of its own; the admin key it prints on first start becomes ``KEY``, and the one
rewrite of a command is the port in ``http://127.0.0.1:8000``. Finally nothing may have been
written outside ``out/`` (research outputs do not land in the repository).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mdblocks import fenced_blocks

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _commands(block: str) -> list[str]:
    """Logical command lines of a bash block (backslash continuations joined, comments and blanks dropped)."""
    cmds, cur = [], ""
    for line in block.splitlines():
        if cur:
            cur += " " + line.strip()
        elif line.strip() and not line.lstrip().startswith("#"):
            cur = line.strip()
        else:
            continue
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
        else:
            cmds.append(cur)
            cur = ""
    return cmds


def walkthrough() -> list[tuple[list[str], str]]:
    """(commands of a bash block, the output shown after it) for the README block and docs/researchers.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lang, text = fenced_blocks(readme[readme.index("## Scoring a CSV"):])[0]
    assert lang == "bash"
    steps = [(_commands(text), "")]
    blocks = fenced_blocks((ROOT / "docs" / "researchers.md").read_text(encoding="utf-8"))
    for n, (lang, text) in enumerate(blocks):
        if lang == "bash":
            shown = blocks[n + 1][1] if n + 1 < len(blocks) and blocks[n + 1][0] in ("", "json") else ""
            steps.append((_commands(text), shown))
    return steps


def promised_files(commands: list[str], shown: str) -> list[str]:
    """Paths a block writes: its commands' --out/--report arguments and cp targets, and what its output 'wrote'."""
    paths = []
    for command in commands:
        words = shlex.split(command)
        paths += [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--out", "--report")]
        if words[0] == "cp":
            paths.append(words[-1])
    for line in shown.splitlines():
        m = re.match(r"wrote (.+?)(?::|$)", line)
        if m:
            paths += [p.strip() for p in m.group(1).split(",")]
    return [p for p in paths if p != "-"]


def _tracked_files() -> list[str]:
    r = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                       check=True)
    return [f for f in r.stdout.splitlines() if (ROOT / f).is_file()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin_dir() -> Path:
    venv = ROOT / ".venv" / "bin"
    return venv if (venv / "cat-prom").exists() else Path(sys.executable).parent


def _start_server(command, cwd, env, log_path):
    """Run `cat-prom serve ...` in the background; return (process, admin key) once /readyz answers."""
    log = open(log_path, "wb")
    proc = subprocess.Popen(["bash", "-c", "exec " + command], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log_path.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{env['CAT_PROM_PORT']}/readyz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "server not ready: " + log_path.read_text()
        time.sleep(0.3)
    keys = dict(re.findall(r"^\s+(admin|patient-app)\s+key_\w+\s+(cpk_\S+)", log_path.read_text(), re.M))
    assert "admin" in keys, log_path.read_text()
    return proc, log, keys["admin"]


def _stop(proc, log) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def test_walkthrough_steps_are_found():
    steps = walkthrough()
    commands = [c for block, _ in steps for c in block]
    assert commands[0].startswith("cat-prom score --bank item_banks/pain-interference.json")
    assert sum(c.startswith("cat-prom calibrate") for c in commands) == 3
    assert any(c.startswith("cat-prom serve") for c in commands) and any(c.startswith("curl") for c in commands)
    first = next(step for step in steps if step[0][0].startswith("cat-prom calibrate docs/examples/worry-form-a"))
    assert promised_files(*first) == ["out/pain-worry.json", "out/report-worry", "out/pain-worry.json",
                                      "out/report-worry/report.html"]


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("git") is None or shutil.which("curl") is None,
                    reason="needs bash, git and curl")
def test_researcher_walkthrough_runs_as_written(tmp_path):
    repo = tmp_path / "repo"
    files = _tracked_files()
    for f in files:
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, repo / f)
    port = _free_port()
    env = dict(os.environ, PATH=f"{_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1",
               SOURCE_DATE_EPOCH="1795348800", CAT_PROM_PORT=str(port),
               CAT_PROM_DATABASE_URL=f"sqlite:///{tmp_path / 'service.sqlite'}")
    for var in ("CAT_PROM_BANKS_DIR", "VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(var, None)
    server = None
    ran = []
    try:
        for commands, shown in walkthrough():
            for command in commands:
                if command.startswith("cat-prom serve"):
                    server = _start_server(command, repo, env, tmp_path / "serve.log")
                    env["KEY"] = server[2]
                    continue
                run = command.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
                r = subprocess.run(["bash", "-c", run], cwd=repo, env=env, capture_output=True, text=True,
                                   timeout=600)
                assert r.returncode == 0, f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
                ran.append((command, r.stdout))
            for path in promised_files(commands, shown):
                assert (repo / path).exists(), f"{commands!r} promised {path}"
    finally:
        if server is not None:
            _stop(server[0], server[1])
    assert server is not None
    listing = json.loads(next(out for c, out in ran if c.startswith("curl")))
    bank = json.loads((repo / "out" / "banks" / "pain-worry.json").read_text(encoding="utf-8"))
    assert [(b["id"], b["content_hash"]) for b in listing["banks"]] == [("pain-worry", bank["content_hash"])]
    # research outputs stay in out/: nothing else was added to the copy (bytecode caches aside)
    before = set(files)
    after = {str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()}
    stray = sorted(f for f in after - before if not f.startswith("out/") and "__pycache__" not in f)
    assert stray == []
