"""Code imports its own modules only as jackgen.…, and dependencies point one way."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["bridge", "common", "dsp", "plugins", "generators", "daemon"]
ALLOWED = {  # package -> jackgen packages it may import (.importlinter has the finer contracts)
    "bridge": {"bridge"},
    "common": {"common"},
    "dsp": {"dsp"},
    "plugins": {"plugins", "dsp", "bridge", "common"},
    "generators": {"generators", "bridge", "dsp", "plugins", "common"},
    "daemon": {"daemon", "bridge", "dsp", "plugins", "generators", "common"},
}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_no_bare_imports_of_repo_folders_and_dependencies_point_one_way():
    problems = []
    for pkg in PACKAGES:
        for f in (REPO / pkg).rglob("*.py"):
            if f.name.endswith("_build.py"):
                continue  # cffi build scripts run before jackgen is installed
            for mod in _imports(f):
                top = mod.split(".")[0]
                if top in PACKAGES:
                    problems.append(f"{f.relative_to(REPO)} imports bare '{mod}' (use jackgen.{mod})")
                if top == "jackgen" and mod.count(".") >= 1:
                    sub = mod.split(".")[1]
                    target = ".".join(mod.split(".")[1:3])
                    if sub not in ALLOWED[pkg] and target not in ALLOWED[pkg]:
                        problems.append(f"{f.relative_to(REPO)} ({pkg}) imports {mod}")
    assert not problems, "\n".join(problems)


def test_engine_control_and_fluid_workers_never_load_torch():
    """torch/audiocraft stay in the musicgen worker: importing them costs seconds and GBs."""
    import subprocess
    import sys

    code = ("import sys, jackgen.daemon.engine.driver, jackgen.daemon.control.control, jackgen.daemon.jobs.board, jackgen.daemon.frontends.http, "
            "jackgen.daemon.frontends.osc, jackgen.generators.worker, jackgen.generators.backends, jackgen.generators.synth; "
            "from jackgen.generators.backends import make_backend; make_backend('procedural'); "
            "print(sorted(m for m in ('torch', 'audiocraft', 'torchaudio', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout
