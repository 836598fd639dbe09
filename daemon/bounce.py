"""``jackgen bounce``: a session rendered offline through the engine's own per-block function.

Every track with an armed clip plays it from the start, through its plugin chain
(the same ``ChainStage`` a live producer runs), into private shared-memory rings;
``EngineCore.process`` — the function the JACK callback calls — mixes them with
the session's gains, pans, mutes and solos into the master bus and its limiter,
block after block, as fast as the machine goes. So a bounce equals a real-time
recording of the same session sample for sample (for deterministic plugins),
and ``bounces/<name>.wav`` (+ per-track stems) is what Ardour would have captured.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from jackgen.bridge import layout as L
from jackgen.bridge import schema as S
from jackgen.bridge.instance import N_TRACKS, InstanceRings
from jackgen.daemon.config import Config
from jackgen.daemon.errors import JackgenError
from jackgen.daemon.rt import EngineCore, OfflineDriver
from jackgen.dsp.convert import StreamResampler, to_stereo
from jackgen.dsp.mix import integrated_lufs, true_peak_dbfs
from jackgen.generators.chainstage import stage_for

SETTLE_BLOCKS = 4  # silent blocks first, so faders have reached their values when the clips start
FORMATS = {"16": ("WAV", "PCM_16"), "24": ("WAV", "PCM_24"), "32f": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24")}


class _Source:
    """One track's clip, read, resampled and run through its chain on demand."""

    def __init__(self, path: str, rate: int, chain: list[dict], extra_dirs) -> None:
        self.f = sf.SoundFile(path)
        self.rs = StreamResampler(self.f.samplerate, rate)
        self.stage = stage_for({"chain": chain, "vst3_dirs": list(extra_dirs)}, rate) if chain else None
        self.frames = int(round(self.f.frames * rate / self.f.samplerate))
        self.done = False
        self.buf = np.zeros((0, 2), dtype=np.float32)

    def take(self, n: int) -> np.ndarray:
        while self.buf.shape[0] < n and not self.done:
            data = self.f.read(16384, dtype="float32", always_2d=True)
            last = data.shape[0] < 16384
            out = self.rs.process(to_stereo(data), last=last)
            if self.stage is not None:
                out = self.stage.process(out, last=last)
            self.buf = np.concatenate([self.buf, out]) if self.buf.shape[0] else out
            if last:
                self.done = True
                self.f.close()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def bounce(cfg: Config, session: str, out: str | None = None, fmt: str = "24", stems: bool = False,
           rate: int = 48000, block: int = 512, tail_s: float = 0.0,
           progress: Callable[[float], None] | None = None) -> dict:
    if fmt not in FORMATS:
        raise JackgenError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    session_dir = cfg.session_dir(session)
    sj = session_dir / "session.json"
    if not sj.is_file():
        raise JackgenError(f"session {session!r} does not exist (no {sj})")
    data = json.loads(sj.read_text())
    tracks = (data.get("tracks") or [])[:N_TRACKS]
    sources: dict[int, _Source] = {}
    for t, tr in enumerate(tracks):
        if tr.get("armed"):
            if not Path(tr["armed"]).is_file():
                raise JackgenError(f"track {t + 1}'s clip {tr['armed']} is missing")
            sources[t] = _Source(tr["armed"], rate, tr.get("chain") or [], cfg.plugins.vst3_dirs)
    if not sources:
        raise JackgenError(f"session {session!r} has no armed clips to bounce (jackgen load TRACK FILE)")
    length = max(s.frames + (s.stage.latency if s.stage else 0) for s in sources.values()) + int(tail_s * rate)
    t0 = time.perf_counter()
    inst = f"bounce-{os.getpid()}"
    rings = InstanceRings.create(inst, max(1 << 14, 4 * block), rate)
    try:
        e = cfg.engine
        core = EngineCore(rings.tracks, rings.commands, rings.events, rate, block,
                          max_commands_per_block=1024, fade_ms=e.fade_ms, gain_smoothing_ms=e.gain_smoothing_ms,
                          limiter_ceiling_db=e.limiter_ceiling_db, limiter_release_ms=e.limiter_release_ms,
                          meter_hz=e.meter_hz)
        drv = OfflineDriver(core, start_frame=0)
        for t, tr in enumerate(tracks):
            for op, v in ((S.CMD_GAIN, float(tr.get("gain_db", 0.0))), (S.CMD_PAN, float(tr.get("pan", 0.0))),
                          (S.CMD_MUTE, int(bool(tr.get("mute")))), (S.CMD_SOLO, int(bool(tr.get("solo"))))):
                rings.commands.put(S.pack(op, t, v))
        for t in sources:
            rings.tracks[t].begin_stream(1, rate)
        start = SETTLE_BLOCKS * block
        for t in sources:
            rings.commands.put(S.pack(S.CMD_PLAY, t, 1, start, 0))
        fmt_name, subtype = FORMATS[fmt]
        out_path = Path(out) if out else session_dir / "bounces" / f"{session}-{time.strftime('%Y%m%d-%H%M%S')}.{'flac' if fmt == 'flac' else 'wav'}"
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(f".{out_path.name}.part")
        master = sf.SoundFile(str(tmp), "w", rate, 2, subtype, format=fmt_name)
        stem_files = {}
        if stems:
            stem_dir = out_path.with_suffix("")
            stem_dir.mkdir(parents=True, exist_ok=True)
            for t in sources:
                stem_files[t] = sf.SoundFile(str(stem_dir / f"track_{t + 1:02d}.{out_path.suffix[1:]}"), "w", rate,
                                             2, subtype, format=fmt_name)
        peak = 0.0
        written = -start
        while written < length:
            for t, src in sources.items():
                ring = rings.tracks[t]
                if src.done and not src.buf.shape[0]:
                    if (ring.stream_word() & 0xFF) == L.STATE_OPEN:  # no more audio is coming
                        ring.end_stream()
                    continue
                need = 2 * block - ring.available()
                if need > 0:
                    chunk = src.take(need)
                    if chunk.shape[0]:
                        ring.write(chunk)
                    if src.done and not src.buf.shape[0]:
                        ring.end_stream()
            track_out, master_out = drv.run_block(block)
            while rings.events.get() is not None:  # meters and status: nobody listens offline
                pass
            if written >= 0:  # (2, n) planar rows, as the ports get them; the last block cut to length
                k = min(block, length - written)
                m = master_out[:, :k].T
                master.write(m)
                peak = max(peak, float(np.abs(m).max()))
                for t, f in stem_files.items():
                    f.write(track_out[t, :, :k].T)
            written += block
            if progress is not None and written > 0:
                progress(min(1.0, written / length))
        master.close()
        for f in stem_files.values():
            f.close()
        rendered, _ = sf.read(str(tmp), dtype="float32", always_2d=True)
        loudness = {"integrated_lufs": integrated_lufs(rendered, rate), "true_peak_dbtp": true_peak_dbfs(rendered)}
        os.replace(tmp, out_path)
        took = time.perf_counter() - t0
        errors = [f"track {t + 1}: {e}" for t, s in sources.items() if s.stage for e in s.stage.errors]
        return {"path": str(out_path), "seconds": round(length / rate, 3), "frames": length, "render_s": round(took, 3),
                "realtime_factor": round(length / rate / took, 1) if took else None, "sample_rate": rate,
                "peak_dbfs": round(20 * np.log10(max(peak, 1e-12)), 2), "tracks": [t + 1 for t in sources],
                "stems": str(out_path.with_suffix("")) if stems else None, "format": fmt, "errors": errors,
                **{k: None if v is None else round(v, 2) for k, v in loudness.items()}}
    finally:
        rings.close(unlink=True)
