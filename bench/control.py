#!/usr/bin/env python3
"""Control-plane benchmark: trigger -> onset latency, and OSC throughput under load.

    bench/control.py [--frames 256] [--trials 40] [--flood-rate 10000] [--flood-seconds 10] --json OUT

One run, one ``jackd -R -P 70 -d dummy`` and a real ``jackgen run``:

1. Latency, in samples, from a trigger to the first sample of the clip on the
   ports (the engine's reported start frame), for
   - OSC immediate: ``/jackgen/track/1/play`` over UDP; reference = the JACK frame
     when the packet was sent (``jack_frame_time``);
   - OSC timetagged: a bundle 200 ms ahead; reference = the frame of its timetag;
   - JACK MIDI: a note-on at a random in-block offset; reference = its frame.
2. Flood: 16 tracks streaming while a second process sends gain messages at
   ``--flood-rate`` for ``--flood-seconds``; reports messages handled per second,
   what jackgen dropped, control's private memory, and xruns during the flood
   beside xruns in a quiet window of the same length in the same run.
3. TCP flood: ``--tcp-messages`` gain messages sent as fast as one TCP connection
   takes them (OSC 1.0 size-prefixed), then ``/jackgen/sync``; messages per second
   from the first byte to ``/jackgen/synced``, and how many were dropped (none:
   TCP has flow control). The same flood of ``/c_set`` messages, then ``/sync``,
   goes to scsynth (Debian's supercollider-server, on the same JACK server) in the
   same run, when it is installed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jack
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import XrunObserver, machine, write_json  # noqa: E402
from jackgen.daemon.cli.jackserver import DummyJack  # noqa: E402
from jackgen.daemon.frontends.osc import build_message  # noqa: E402

SERVER = "jackgen-bench"  # fixed: see DummyJack on jack2's server registry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, interval=0.005):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError("condition not met")


def stats(xs: list[int]) -> dict:
    a = np.array(xs, dtype=np.float64)
    return {"n": len(xs), "min": float(a.min()), "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)), "max": float(a.max()), "mean": float(a.mean())}


def flood(port: int, rate: float, seconds: float, out) -> None:  # child process
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pkts = [build_message(f"/jackgen/track/{t}/gain", -float(t % 12)) for t in range(1, 17)]
    sent = 0
    t0 = time.monotonic()
    while (now := time.monotonic() - t0) < seconds:
        due = int(now * rate)
        while sent < due:
            s.sendto(pkts[sent % 16], ("127.0.0.1", port))
            sent += 1
        time.sleep(0.001)
    out.put(sent)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--flood-rate", type=float, default=10000.0)
    ap.add_argument("--flood-seconds", type=float, default=10.0)
    ap.add_argument("--tcp-messages", type=int, default=100_000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rate = 48000
    tmp = Path(tempfile.mkdtemp(prefix="jackgen-bench-"))
    http_port, osc_port = free_port(), free_port()
    cfg = tmp / "bench.toml"
    cfg.write_text(f'instance = "bench"\n[jack]\nautoconnect_master = false\n[control]\nhttp_port = {http_port}\n'
                   f'osc_port = {osc_port}\nsessions_dir = "{tmp}/sessions"\nmidi_api = "none"\n')
    url = f"http://127.0.0.1:{http_port}"
    jackd = DummyJack(SERVER, rate, args.frames, realtime=True).start()
    os.environ["JACK_DEFAULT_SERVER"] = SERVER
    jg = subprocess.Popen([sys.executable, "-m", "jackgen.daemon.cli", "run", "--config", str(cfg)],
                          stdout=open(tmp / "jackgen.log", "wb"), stderr=subprocess.STDOUT)
    res: dict = {"machine": machine(), "rate": rate, "frames": args.frames}
    try:
        wait_for(lambda: _get(url, "/health").get("jack"), 30, 0.1)
        session = tmp / "sessions" / "default"
        clip = session / "clip.wav"
        clip.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(clip), np.random.default_rng(0).uniform(-0.2, 0.2, (2400, 2)).astype(np.float32), rate,
                 subtype="FLOAT")
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe = jack.Client("bench-probe", no_start_server=True)
        httpx.post(url + "/api/tracks/1/load", json={"file": str(clip)}, timeout=10)

        def started() -> int | None:
            return _get(url, "/api/status")["tracks"][0]["started_frame"]

        def armed() -> bool:
            return _get(url, "/api/status")["tracks"][0]["state"] == "armed"

        lat: dict[str, list[int]] = {"osc_immediate": [], "osc_timetag": [], "jack_midi": []}
        for _ in range(args.trials):
            wait_for(armed)
            ref = probe.frame_time
            udp.sendto(build_message("/jackgen/track/1/play"), ("127.0.0.1", osc_port))
            lat["osc_immediate"].append(wait_for(started) - ref)
        from pythonosc import osc_message
        from pythonosc.osc_bundle_builder import OscBundleBuilder

        for _ in range(args.trials):
            wait_for(armed)
            when = time.time() + 0.2
            ref = probe.frame_time + int(round(0.2 * rate))
            b = OscBundleBuilder(when)
            b.add_content(osc_message.OscMessage(build_message("/jackgen/track/1/play")))
            udp.sendto(b.build().dgram, ("127.0.0.1", osc_port))
            lat["osc_timetag"].append(wait_for(started) - ref)
        from tests.integration.test_osc_midi import MidiSender  # the same JACK MIDI client the tests use

        midi = MidiSender("bench-midi")
        rng = np.random.default_rng(1)
        for _ in range(args.trials):
            wait_for(armed)
            sent_at = midi.note_on(36, int(rng.integers(0, args.frames)))
            lat["jack_midi"].append(wait_for(started) - sent_at)
        midi.close()
        res["latency_samples"] = {k: stats(v) for k, v in lat.items()}

        # ---- flood with 16 tracks streaming
        long = session / "long.wav"
        sf.write(str(long), np.random.default_rng(2).uniform(-0.05, 0.05, (60 * rate, 2)).astype(np.float32), rate,
                 subtype="FLOAT")
        for t in range(1, 17):
            httpx.post(url + f"/api/tracks/{t}/play", json={"file": str(long)}, timeout=20)
        observer = XrunObserver(SERVER)
        time.sleep(2.0)
        x0 = observer.count
        time.sleep(args.flood_seconds)
        quiet_xruns = observer.count - x0
        st0 = _get(url, "/api/status")
        pid = st0["processes"]["control"]
        anon0 = _rss_anon(pid)
        q: mp.Queue = mp.Queue()
        p = mp.Process(target=flood, args=(osc_port, args.flood_rate, args.flood_seconds, q))
        x0 = observer.count
        p.start()
        sent = q.get(timeout=args.flood_seconds + 30)
        p.join()
        flood_xruns = observer.count - x0
        time.sleep(1.0)
        st1 = _get(url, "/api/status")
        observer.close()
        res["flood"] = {
            "tracks_streaming": sum(1 for t in st1["tracks"] if t["state"] == "playing"),
            "target_rate": args.flood_rate,
            "seconds": args.flood_seconds,
            "sent": sent,
            "handled": st1["osc"]["messages"] - st0["osc"]["messages"],
            "handled_per_s": round((st1["osc"]["messages"] - st0["osc"]["messages"]) / args.flood_seconds, 1),
            "dropped_by_jackgen": st1["osc"]["dropped"] - st0["osc"]["dropped"],
            "errors": st1["osc"]["errors"] - st0["osc"]["errors"],
            "xruns_during_flood": flood_xruns,
            "xruns_quiet_window": quiet_xruns,
            "underruns": st1["underruns"] - st0["underruns"],
            "control_rss_anon_growth_kb": _rss_anon(pid) - anon0,
        }
        probe.close()
        for t in range(1, 17):
            httpx.post(url + f"/api/tracks/{t}/stop", json={}, timeout=20)

        # ---- TCP flood: every message taken, in order, at the pace control applies them
        st0 = _get(url, "/api/status")
        msgs = [build_message(f"/jackgen/track/{1 + k % 16}/gain", -float(k % 60)) for k in range(args.tcp_messages)]
        took = tcp_flood(osc_port, msgs, build_message("/jackgen/sync", 7), b"/jackgen/synced")
        st1 = _get(url, "/api/status")
        res["tcp_flood"] = {"messages": args.tcp_messages, "seconds": round(took, 3),
                            "messages_per_s": round(args.tcp_messages / took),
                            "dropped_by_jackgen": st1["osc"]["dropped"] - st0["osc"]["dropped"],
                            "errors": st1["osc"]["errors"] - st0["osc"]["errors"],
                            "applied": st1["osc"]["messages"] - st0["osc"]["messages"] - 1}
        res["tcp_flood"]["scsynth"] = scsynth_tcp_flood(args.tcp_messages, tmp)
    finally:
        stop(jg)
        jackd.stop()
    lt = res["latency_samples"]
    print(f"jackgen control bench on {res['machine']['cpu']} ({res['machine']['cores']} cores), "
          f"{args.frames} frames at {rate} Hz")
    for k, v in lt.items():
        print(f"  {k:14s} latency samples: p50 {v['p50']:8.0f}  p95 {v['p95']:8.0f}  min {v['min']:8.0f}  "
              f"max {v['max']:8.0f}  (n={v['n']})")
    f = res["flood"]
    print(f"  flood: {f['sent']} sent at {f['target_rate']:.0f}/s, {f['handled_per_s']}/s handled, "
          f"{f['dropped_by_jackgen']} dropped by jackgen, xruns {f['xruns_during_flood']} (quiet window "
          f"{f['xruns_quiet_window']}), {f['tracks_streaming']} tracks streaming, "
          f"control private memory {f['control_rss_anon_growth_kb']:+d} kB")
    f = res["tcp_flood"]
    sc = f["scsynth"]
    print(f"  TCP flood: {f['messages']} messages then sync in {f['seconds']} s = {f['messages_per_s']} msg/s, "
          f"{f['dropped_by_jackgen']} dropped, {f['errors']} errors; scsynth, same flood: "
          + (f"{sc['messages_per_s']} msg/s ({f['messages_per_s'] / sc['messages_per_s']:.2f}x)" if sc.get("messages_per_s")
             else sc.get("skipped", "?")))
    if args.json:
        write_json(args.json, res)
    return 0


def stop(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within ``timeout_s``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()


def tcp_flood(port: int, packets: list[bytes], sync: bytes, reply: bytes, timeout_s: float = 300.0) -> float:
    """Send every packet (OSC 1.0 size-prefixed) on one TCP connection, then ``sync``; seconds until
    the ``reply`` address comes back."""
    import struct
    import threading

    blob = b"".join(struct.pack(">I", len(p)) + p for p in packets) + struct.pack(">I", len(sync)) + sync
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    try:
        t0 = time.perf_counter()
        sender = threading.Thread(target=s.sendall, args=(blob,), daemon=True)
        sender.start()
        buf = b""
        while reply not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("the connection closed before the sync reply")
            buf += chunk
        took = time.perf_counter() - t0
        sender.join(5)
        return took
    finally:
        s.close()


def scsynth_tcp_flood(n: int, tmp: Path) -> dict:
    """The same TCP flood into scsynth: /c_set (a control bus; no reply), then /sync -> /synced."""
    import shutil

    exe = shutil.which("scsynth")
    if exe is None:
        return {"skipped": "scsynth is not installed (apt-get install supercollider-server)"}
    port = free_port()
    proc = subprocess.Popen([exe, "-t", str(port), "-u", "0", "-i", "0", "-o", "2", "-R", "0", "-l", "1"],
                            stdout=open(tmp / "scsynth.log", "wb"), stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(up, 20, 0.1)
        time.sleep(0.5)
        msgs = [build_message("/c_set", k % 64, float(k % 60)) for k in range(n)]
        took = tcp_flood(port, msgs, build_message("/sync", 7), b"/synced")
        return {"messages": n, "seconds": round(took, 3), "messages_per_s": round(n / took)}
    except Exception as e:  # the peer is a reference, not the subject: report, do not fail the run
        return {"skipped": f"scsynth did not run: {e}"}
    finally:
        stop(proc, 10.0)


def _get(url: str, path: str) -> dict:
    try:
        return httpx.get(url + path, timeout=5).json()
    except httpx.HTTPError:
        return {}


def _rss_anon(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("RssAnon"))


if __name__ == "__main__":
    sys.exit(main())
