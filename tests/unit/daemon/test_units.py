from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from jackgen.daemon.cli.units import UNITS, render


@pytest.mark.parametrize("user", [True, False], ids=["user", "system"])
def test_rendered_units_pass_systemd_analyze_verify(tmp_path, user):
    cfg = tmp_path / "jackgen.toml"
    cfg.write_text('instance = "studio"\n')
    paths = render(tmp_path / "units", user, str(cfg), str(tmp_path), run_as=None if user else "root")
    assert [p.name for p in paths] == [*UNITS, "slice.conf"]
    assert (tmp_path / "units" / "jackgen-worker@musicgen.service.d" / "slice.conf").read_text().count(
        "Slice=jackgen-gpu.slice") == 1
    assert "MemoryMax=" in (tmp_path / "units" / "jackgen-gpu.slice").read_text()
    for name in ("jackgen-engine.service", "jackgen-control.service", "jackgen-feeder.service",
                 "jackgen-worker@.service"):
        unit = (tmp_path / "units" / name).read_text()
        assert "Type=notify" in unit and "WatchdogSec=" in unit and "Restart=" in unit, name
        assert "NoNewPrivileges=yes" in unit and "ProtectSystem=strict" in unit and "ProtectHome=read-only" in unit
        rw = next(line for line in unit.splitlines() if line.startswith("ReadWritePaths="))
        assert "-/dev/shm" in rw and str(tmp_path) in rw, rw  # JACK's and the rings' memory, the work folder
        assert "JACKGEN_RUNTIME_DIR=%t" in unit  # every unit finds the others' sockets in the same place
    assert "feeder --config" in (tmp_path / "units" / "jackgen-feeder.service").read_text()
    assert "jackgen-feeder.service" in (tmp_path / "units" / "jackgen.target").read_text()
    engine = (tmp_path / "units" / "jackgen-engine.service").read_text()
    assert "Type=notify" in engine and "Restart=always" in engine and "WatchdogSec=" in engine
    assert f"engine --config {cfg}" in engine
    assert any(line.startswith("User=") for line in engine.splitlines()) is (not user)
    assert "\n\n\n" not in engine
    exe = engine.split("ExecStart=", 1)[1].split()[0]
    assert subprocess.run([exe, "engine", "--help"], capture_output=True).returncode == 0
    target = (tmp_path / "units" / "jackgen.target").read_text()
    assert ("default.target" if user else "multi-user.target") in target
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian's systemd) is part of the test setup"
    # --user verification needs a user session's runtime dir; unit syntax is the same
    r = subprocess.run([analyze, "verify", *(str(p) for p in paths if p.suffix != ".conf")], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr


def test_install_units_cli_refuses_a_bad_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nfade_ms = -1\n")
    r = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "install-units", "--user", "--output",
                        str(tmp_path / "u"), "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "engine.fade_ms" in r.stderr
    assert not (tmp_path / "u").exists()
