"""``jackgen demo``: the whole path end to end on the embedded default, no GPU, no model.

JACK (a dummy-backend jackd is started if no server runs; a running one is left
alone) -> ``jackgen run`` -> a procedural generation job (composed, rendered by
FluidSynth) streamed into track 1 while it renders -> master captured from the
JACK ports into ``sessions/<name>/recordings/`` -> a summary with the take, its
MIDI stems and the time to first audio.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np

from jackgen.daemon.config import Config
from jackgen.daemon.cli.jackserver import DummyJack, server_running
from jackgen.daemon.cli.recorder import record, resolve_ports


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jackgen run exited with code {proc.returncode}")
        try:
            h = httpx.get(url + "/health", timeout=2).json()
            if h.get("jack"):
                return h
            last = str(h)
        except httpx.HTTPError as e:
            last = str(e)
        time.sleep(0.2)
    raise RuntimeError(f"jackgen did not become healthy within {timeout_s:.0f} s ({last})")


def run_demo(cfg: Config, config_path: str | None, seconds: float) -> int:
    from rich.console import Console
    from rich.markup import escape

    con = Console()
    session_dir = cfg.session_dir()
    logs = session_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    jackd: DummyJack | None = None
    jg: subprocess.Popen | None = None
    try:
        if server_running(cfg.jack_server):
            con.print(f"[green]✓[/] JACK server '{cfg.jack_server or 'default'}' is running; using it")
        else:
            for rt in (True, False):
                try:
                    jackd = DummyJack(cfg.jack_server, 48000, 256, realtime=rt, log_path=str(logs / "jackd.log")).start()
                    break
                except RuntimeError:
                    if not rt:
                        raise
            con.print(f"[green]✓[/] started jackd (dummy backend, 48 kHz, 256 frames, "
                      f"{'SCHED_FIFO' if jackd and jackd.realtime else 'no real-time'})")

        argv = [sys.executable, "-m", "jackgen.daemon.cli", "run", "--session", session_dir.name]
        if config_path:
            argv += ["--config", config_path]
        log_file = open(logs / "jackgen.log", "ab")
        jg = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=dict(os.environ))
        _wait_healthy(cfg.control_url, jg)
        st = httpx.get(cfg.control_url + "/api/status", timeout=5).json()
        rate = st["sample_rate"]
        con.print(f"[green]✓[/] jackgen running: engine pid {st['processes']['engine']}, {rate} Hz, "
                  f"{st['block_size']} frames/block, control on {cfg.control_url}")

        deadline = time.monotonic() + 30
        while not st["workers"] and time.monotonic() < deadline:  # the workers load their SoundFont
            time.sleep(0.1)
            st = httpx.get(cfg.control_url + "/api/status", timeout=5).json()
        rd = st["redis"]
        workers = ", ".join(f"{w['backend']} (pid {w['pid']})" for w in st["workers"]) or "none yet"
        embedded = " (embedded, append-only file on)" if rd["embedded"] else ""
        con.print(f"[green]✓[/] job queue on Redis {rd['url']}{embedded}; workers: {workers}")
        job_req = {"prompt": "chill lofi beat with rhodes", "style": "lofi", "key": "A minor", "bpm": 84,
                   "duration": seconds + 2.0, "track": 1, "seed": 2026}
        r = httpx.post(cfg.control_url + "/api/music-generation", json=job_req, timeout=15)
        if r.status_code >= 400:
            raise RuntimeError(f"generate failed: {r.json().get('error', r.text)}")
        job_id = r.json()["job_id"]
        con.print(f"[green]✓[/] job {job_id} queued: procedural lofi in A minor at 84 bpm, streaming into track 1")
        deadline = time.monotonic() + 30
        while True:
            st = httpx.get(cfg.control_url + "/api/status", timeout=5).json()
            if st["tracks"][0]["state"] == "playing":
                break
            job = httpx.get(f"{cfg.control_url}/api/jobs/{job_id}", timeout=5).json()
            if job["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}")
            if time.monotonic() > deadline:
                raise RuntimeError("track 1 did not start playing within 30 s")
            time.sleep(0.02)
        con.print("[green]✓[/] track 1 is playing the generated audio; recording master …")
        rec = record(resolve_ports("master", cfg.jack.client_name), seconds, server=cfg.jack_server)
        job = httpx.get(f"{cfg.control_url}/api/jobs/{job_id}", timeout=5).json()
        while job["status"] not in ("done", "failed", "cancelled"):
            time.sleep(0.1)
            job = httpx.get(f"{cfg.control_url}/api/jobs/{job_id}", timeout=5).json()
        if job["status"] != "done":
            raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = session_dir / "recordings" / f"master-{stamp}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        rec.write(str(out))
        st = httpx.get(cfg.control_url + "/api/status", timeout=5).json()
        lib = None
        for _ in range(50):  # control records the take when the job's done event arrives
            r = httpx.get(f"{cfg.control_url}/api/generations/{job['takes'][0]}", timeout=5)
            if r.status_code == 200:
                lib = r.json()
                break
            time.sleep(0.1)

        data = rec.data
        peak = float(np.abs(data).max())
        rms = float(np.sqrt(np.mean(data.astype(np.float64) ** 2)))
        peak_db = 20 * np.log10(max(peak, 1e-12))
        rms_db = 20 * np.log10(max(rms, 1e-12))
        rows = [
            ("recording", str(out)),
            ("take", f"{job['outputs'][0]['path']} (+ .json with every parameter, seed and timing)"),
            ("MIDI stems", str(Path(job['outputs'][0]['path']).parent.parent / "midi_stems" / job["takes"][0])),
            ("library", f"#{lib['id']}, {lib['loudness_lufs']} LUFS (jackgen takes show {lib['take']}; "
                        f"jackgen takes similar \"{job_req['prompt']}\")" if lib else "not recorded (see the log)"),
            ("time to first audio", f"{job['timings']['ttfa_s'] * 1000:.0f} ms (submission to audio in the ring); "
                                    f"{job_req['duration']:.0f} s rendered in {job['timings']['done_s']:.2f} s"),
            ("duration", f"{data.shape[0] / rec.sample_rate:.2f} s ({data.shape[0]} frames, {rec.sample_rate} Hz)"),
            ("peak / RMS", f"{peak_db:.1f} dBFS / {rms_db:.1f} dBFS"),
            ("xruns", f"{rec.xruns_during()} during the recording, {st['xruns']} since the engine started "
                      "(JACK graph changes, e.g. clients connecting, often cause a few)"),
            ("underruns", str(st["underruns"])),
            ("DSP load (JACK)", f"{st['dsp_load']:.1f} %"),
            ("callback mean / max", f"{st['callback_mean_us']:.0f} µs / {st['callback_max_us']:.0f} µs "
                                    f"(period {st['block_size'] / rate * 1e6:.0f} µs)"),
        ]
        # plain lines, never a table: a table cuts long paths with "…" on an 80-column terminal, and
        # these paths are meant to be copied
        con.print("[bold]jackgen demo[/]")
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            con.print(f"  {k:>{width}}  {escape(v)}", soft_wrap=True, highlight=False)
        if peak < 1e-3:
            con.print("[red]✗ the recording is silent: something is wrong (see logs in "
                      f"{logs})[/]")
            return 1
        con.print("[green]✓ demo done[/]")
        return 0
    except Exception as e:  # the demo is a user-facing command: say what broke, where the logs are
        con.print(f"[red]✗ demo failed: {e}[/]  (logs: {logs})")
        return 1
    finally:
        if jg and jg.poll() is None:
            jg.terminate()
            try:
                jg.wait(15)
            except subprocess.TimeoutExpired:
                jg.kill()
        if jackd:
            jackd.stop()
