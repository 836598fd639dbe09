"""What ``jackgen status`` and ``/health`` show: engine counters, tracks, processes, jobs, health.

Mixed into :class:`jackgen.daemon.control.control.Control`. Front ends add their own counters
through ``status_parts`` (the OSC server's packets, drops and subscribers).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path


class Status:
    # ------------------------------------------------------------ status
    def processes(self) -> dict[str, int | None]:
        procs: dict[str, int | None] = {"control": os.getpid()}
        sup = self.supervised()
        eng = (sup.get("engine") or {}).get("pid")
        procs["engine"] = self.engine_pid if self.engine_alive() and self.engine_pid else eng
        procs["feeder"] = self.feeder.pid if self.feeder else None
        for role, info in sup.items():  # the supervisor's workers, before (and after) the queue sees them
            if role.startswith("worker ") and isinstance(info, dict):
                procs[role] = info.get("pid")
        if self.jobs:
            here = self.jobs.local_host
            for w in self.jobs.workers_seen:
                if w.get("host") == here and not w.get("remote"):
                    procs.setdefault(f"worker {w['backend']}", w["pid"])
        return procs

    def jack_info(self) -> dict:
        """What the engine last said about the JACK server (``<runtime>/engine.json``)."""
        data = self.runtime_json("engine.json")
        alive = self.engine_alive()
        state = "running" if alive else str(data.get("state") or "unknown")
        if not alive and state == "running":
            state = "engine not answering"
        return {"ok": alive, "state": state, "message": "" if alive else str(data.get("message") or "")}

    def _restarts(self, role: str, seen: int) -> int:
        """The supervisor's count (``jackgen run``), else what control has seen itself."""
        n = (self.supervised().get(role) or {}).get("restarts")
        return int(n) if isinstance(n, int) else seen

    def redis_info(self) -> dict:
        j = self.jobs
        return {"url": self.cfg.redis_url if j is None else j.url, "ok": bool(j and j.ok),
                "embedded": self.cfg.redis_embedded, **({"error": j.error} if j and j.error else {})}

    def workers_info(self) -> list[dict]:
        return list(self.jobs.workers_seen) if self.jobs else []

    def status(self) -> dict:
        st = self.engine_status
        tracks = []
        for i, tr in enumerate(self.tracks):
            d = asdict(tr)
            d["track"] = i + 1
            if self.meters:
                d["peak"] = self.meters["track_peak"][2 * i : 2 * i + 2]
            tracks.append(d)
        return {
            "session": self.session,
            "instance": self.cfg.instance,
            "engine_running": self.engine_alive(),
            "jack_server": self.jack_info(),
            "xruns": int(st.get("xruns", 0)),
            "underruns": int(st.get("underruns", 0)),
            "dsp_load": float(st.get("dsp_load", 0.0)),
            "callback_max_us": float(st.get("cb_max_us", 0.0)),
            "callback_mean_us": float(st.get("cb_mean_us", 0.0)),
            "sample_rate": int(st.get("sample_rate", 0)),
            "block_size": int(st.get("block_size", 0)),
            "frame_time": int(st.get("frame_time", 0)),
            "late_commands": int(st.get("late_commands", 0)),
            "callback_errors": int(st.get("callback_errors", 0)),
            "engine_restarts": self._restarts("engine", max(0, self.engine_hellos - 1)),
            "feeder_restarts": self._restarts("feeder", self.feeder.restarts if self.feeder else 0),
            "control_restarts": self._restarts("control", 0),
            "reattached": self.reattached,
            "tempo_bpm": self.tempo.bpm,
            "beats_per_bar": self.tempo.beats_per_bar,
            "tempo_anchor_frame": self.tempo.anchor_frame,
            "tempo_source": self.tempo_source,
            "midi_events": int(st.get("midi_events", 0)),
            "late_timed": int(st.get("late_timed", 0)),
            "skipped_cycles": self.relocks,
            "skipped_frames": int(st.get("skipped_frames") or 0),
            "master_peak": self.meters.get("master_peak"),
            "master": self.master_info(),
            "tracks": tracks,
            "jobs": self.jobs.summary() if self.jobs else [],
            "queue_length": self.jobs.queue_length() if self.jobs else 0,
            "processes": self.processes(),
            "redis": self.redis_info(),
            "workers": self.workers_info(),
            "relay": {"gaps": 0, "gap_frames": 0, "bad": 0, **self.relay_counters},
            "uptime_s": round(time.monotonic() - self.started_mono, 1),
            "osc": None,  # the OSC server's counters, when it runs (status_parts)
            **{name: part() for name, part in self.status_parts.items()},
        }

    async def redis_ping(self) -> dict:
        """One PING with a 1 s limit: a stopped (SIGSTOP) server fails this as a dead one does."""
        info = self.redis_info()
        if self.jobs is None:
            return {**info, "ok": False}
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(self.jobs.r.ping(), 1.0)
            return {**info, "ok": True, "latency_ms": round((time.perf_counter() - t0) * 1e3, 2)}
        except asyncio.TimeoutError:
            return {**info, "ok": False, "error": "no answer to PING within 1 s (a hung or stopped redis-server)"}
        except Exception as e:
            return {**info, "ok": False, "error": str(e)[:300]}

    def engine_info(self) -> dict:
        st = self.engine_status
        age = time.monotonic() - self._status_rx_mono if self._status_rx_mono else None
        return {"ok": self.engine_alive(), "pid": self.engine_pid,
                "last_status_age_s": None if age is None else round(age, 3),
                "xruns": int(st.get("xruns", 0)), "underruns": int(st.get("underruns", 0)),
                "callback_errors": int(st.get("callback_errors", 0))}

    async def health(self) -> dict:
        """Every part, asked now: JACK server, engine, Redis, database, feeder, workers, disk, GPU.
        ``failing`` names the required parts that are not up (HTTP answers 503 then)."""
        redis, db = await asyncio.gather(self.redis_ping(), self.library.ping())
        disk_dir = self.session_dir if self.session_dir.exists() else Path(self.cfg.control.sessions_dir)
        try:
            disk = shutil.disk_usage(disk_dir if disk_dir.exists() else Path.cwd())
            disk_info = {"path": str(disk_dir), "free_bytes": disk.free, "total_bytes": disk.total,
                         "ok": disk.free > DISK_LOW_BYTES}
        except OSError as e:
            disk_info = {"path": str(disk_dir), "ok": False, "error": str(e)}
        jack = self.jack_info()
        st = self.engine_status
        jack.update({"sample_rate": int(st.get("sample_rate", 0)) or None,
                     "period_frames": int(st.get("block_size", 0)) or None})
        engine = self.engine_info()
        feeder_ok = bool(self.feeder and self.feeder.pid)
        parts = (("jack", jack["ok"]), ("engine", engine["ok"]), ("redis", redis["ok"]), ("database", db["ok"]),
                 ("feeder", feeder_ok), ("disk", disk_info["ok"]))
        failing = [name for name, ok in parts if not ok]
        by_backend: dict = {}
        workers = []
        for w in self.workers_info():
            workers.append({k: w.get(k) for k in ("id", "backends", "host", "pid", "device", "model", "busy",
                                                   "remote", "heartbeat_age_s")} | {"warm": True})
            for b in w.get("backends", []):
                d = by_backend.setdefault(b, {"running": True, "ready": True, "error": None, "busy": None,
                                              "count": 0})
                d["count"] += 1
                d["busy"] = d["busy"] or w.get("busy")
        for b, why in (self.jobs.unavailable.items() if self.jobs else ()):
            by_backend.setdefault(b, {"running": False, "ready": False, "busy": None, "count": 0})["error"] = why
        return {
            "status": "ok" if not failing else "degraded",
            "failing": failing,
            "jack": jack["ok"],
            "jack_server": jack,
            "engine": engine,
            "redis": redis,
            "database": db,
            "gpu": await self._gpu_info(),
            "disk": disk_info,
            "queue_length": self.jobs.queue_length() if self.jobs else 0,
            "workers": {"feeder": feeder_ok, **by_backend, "live": workers},
            "xruns": int(self.engine_status.get("xruns", 0)),
        }

    async def _gpu_info(self) -> dict | None:
        """What the MusicGen workers run on (control itself never imports torch), and what
        ``nvidia-smi`` says of this machine's GPUs when it is there (cached 10 s)."""
        ws = [w for w in self.workers_info() if "musicgen" in w.get("backends", [])]
        smi = await _nvidia_smi()
        if not ws and not smi:
            return None
        out: dict = {"gpus": smi}
        if ws:
            out.update({"device": ws[0].get("device"), "model": ws[0].get("model"), "workers": len(ws)})
        return out


DISK_LOW_BYTES = 1 << 30  # below 1 GiB free in the session's folder, health fails "disk"
_SMI: dict = {"at": 0.0, "gpus": None}


async def _nvidia_smi() -> list | None:
    if time.monotonic() - _SMI["at"] < 10.0:
        return _SMI["gpus"]
    _SMI["at"] = time.monotonic()
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(
            "nvidia-smi", "--query-gpu=name,memory.used,memory.total,temperature.gpu", "--format=csv,noheader,nounits",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(proc.communicate(), 3.0)
    except (OSError, asyncio.TimeoutError):
        return _SMI["gpus"]
    gpus = []
    for line in out.decode(errors="replace").splitlines():
        f = [x.strip() for x in line.split(",")]
        if len(f) == 4:
            def num(v):
                try:
                    return float(v)
                except ValueError:
                    return None
            gpus.append({"name": f[0], "memory_used_mib": num(f[1]), "memory_total_mib": num(f[2]),
                         "temperature_c": num(f[3])})
    _SMI["gpus"] = gpus or None
    return _SMI["gpus"]
