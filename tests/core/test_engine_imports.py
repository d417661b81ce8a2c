"""The engine never knows the service: no module of ``cat_prom/`` imports ``api``, Flask, marshmallow or
SQLAlchemy (or their extensions), at top level or inside a function (issue 7). Checked on the syntax tree of
every module, so a lazy import in a rarely used function is caught too; and at run time, that
``cat-prom --help`` and the engine's commands load none of them.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "cat_prom"
FORBIDDEN = ("api", "flask", "flask_smorest", "marshmallow", "sqlalchemy", "alembic", "webargs", "uvicorn",
             "a2wsgi", "limits", "redis", "psycopg")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement in a file, wherever it is (functions, classes, branches),
    plus string arguments of ``importlib.import_module``/``__import__`` calls."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def test_the_checker_finds_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\ndef f():\n    from flask import Flask\n    import api.cli as c\n"
                 "    importlib.import_module('sqlalchemy')\n", encoding="utf-8")
    assert imported_modules(f) == [(1, "os"), (3, "flask"), (4, "api.cli"), (5, "sqlalchemy")]


@pytest.mark.parametrize("path", sorted(ENGINE.rglob("*.py")), ids=lambda p: str(p.relative_to(ENGINE)))
def test_engine_module_imports_no_service_package(path):
    bad = [(line, m) for line, m in imported_modules(path) if m.split(".")[0] in FORBIDDEN]
    assert bad == [], f"{path.relative_to(ENGINE.parent)} imports {bad}"


def test_help_and_engine_commands_load_no_service_package():
    code = ("import sys\nfrom cat_prom.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
            "assert not bad, bad\nassert 'numpy' not in sys.modules, 'numpy loaded for --help'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
