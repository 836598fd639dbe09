from __future__ import annotations

import pytest

from jackgen.daemon.config import ConfigError, load_config
from jackgen.common.errors import JackgenError, check_finite, check_track


def test_defaults_need_no_file(monkeypatch):
    monkeypatch.delenv("JACKGEN_CONFIG", raising=False)
    cfg = load_config(None)
    assert cfg.control.http_host == "127.0.0.1", "servers bind to localhost unless configured"
    assert cfg.control.http_port == 8750 and cfg.engine.limiter_ceiling_db == -0.3
    assert cfg.control_url == "http://127.0.0.1:8750"


def test_errors_name_the_key_the_value_and_the_range(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[engine]\nfade_ms = -1\n[control]\nhttp_port = "x"\n')
    with pytest.raises(ConfigError) as e:
        load_config(f)
    msg = str(e.value)
    assert "engine.fade_ms = -1" in msg and "allowed: 0.5 .. 100.0" in msg
    assert "control.http_port = 'x'" in msg


def test_unknown_keys_and_bad_toml_are_reported(tmp_path):
    f = tmp_path / "typo.toml"
    f.write_text("[engine]\nfade_msec = 3\n")
    with pytest.raises(ConfigError, match=r"engine.fade_msec: unknown key"):
        load_config(f)
    f.write_text("[engine\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_overrides_and_session_names(tmp_path):
    cfg = load_config(None, {"control.session": "gig-2026", "instance": "studio"})
    assert cfg.control.session == "gig-2026" and cfg.instance == "studio"
    for bad in ("../etc", "a/b", ""):
        with pytest.raises(ConfigError, match="session"):
            load_config(None, {"control.session": bad})
    with pytest.raises(ConfigError, match="instance"):
        load_config(None, {"instance": "no spaces"})


def test_track_and_number_validation_messages():
    assert check_track(1) == 0 and check_track("16") == 15
    with pytest.raises(JackgenError, match="track 17 does not exist: tracks are 1-16"):
        check_track(17)
    with pytest.raises(JackgenError, match="not a number"):
        check_track("drums")
    with pytest.raises(JackgenError, match="finite"):
        check_finite("gain", float("nan"), -120, 24, "dB")
    with pytest.raises(JackgenError, match="out of range: allowed -120 to 24"):
        check_finite("gain", 30, -120, 24, "dB")


def test_redis_url_embedded_default_and_bad_urls(tmp_path, monkeypatch):
    from jackgen.daemon.config import ConfigError, load_config

    monkeypatch.setenv("JACKGEN_RUNTIME_DIR", str(tmp_path / "run"))
    cfg = load_config(None, {"instance": "studio", "data_dir": str(tmp_path / "data")})
    assert cfg.redis_embedded and cfg.redis_url == f"unix://{tmp_path}/run/jackgen/studio/redis.sock"
    assert cfg.redis_dir == tmp_path / "data" / "redis" / "studio"
    for url in ("redis://:pw@studio.local:6379/0", "rediss://user:pw@h:6380", "unix:///var/run/redis.sock"):
        c = load_config(None, {"redis.url": url})
        assert c.redis_url == url and not c.redis_embedded
    with pytest.raises(ConfigError, match=r"redis\.url"):
        load_config(None, {"redis.url": "http://localhost:6379"})
    with pytest.raises(ConfigError, match=r"redis\.appendfsync"):
        load_config(None, {"redis.appendfsync": "never"})
    with pytest.raises(ConfigError, match=r"jobs\.max_attempts"):
        load_config(None, {"jobs.max_attempts": 0})
