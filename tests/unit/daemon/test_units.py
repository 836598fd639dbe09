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
    assert [p.name for p in paths] == list(UNITS)
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
    r = subprocess.run([analyze, "verify", *map(str, paths)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_install_units_cli_refuses_a_bad_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nfade_ms = -1\n")
    r = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "install-units", "--user", "--output",
                        str(tmp_path / "u"), "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "engine.fade_ms" in r.stderr
    assert not (tmp_path / "u").exists()
