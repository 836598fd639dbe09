"""``jackgen bounce``: a session rendered offline through the engine's own per-block function.

Every track with a clip (the armed one, else the file it last played) plays it from the start, through its plugin chain
(the same ``ChainStage`` a live producer runs), into private shared-memory rings;
``EngineCore.process`` — the function the JACK callback calls — mixes them with
the session's gains, pans, mutes and solos into the master bus and its limiter,
block after block, as fast as the machine goes. So a bounce equals a real-time
recording of the same session sample for sample (for deterministic plugins),
and ``bounces/<name>.wav`` (+ per-track stems) is what Ardour would have captured.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from jackgen.bridge import layout as L
from jackgen.bridge import schema as S
from jackgen.bridge.instance import InstanceRings
from jackgen.daemon.config import Config
from jackgen.daemon.control.session import TrackSettings, live_chain, read_session
from jackgen.common.errors import JackgenError
from jackgen.common.files import write_failure
from jackgen.daemon.engine.blockcore import EngineCore, OfflineDriver
from jackgen.dsp.mix import integrated_lufs, true_peak_dbfs
from jackgen.plugins.host import Chain
from jackgen.generators.producer import ChunkReader, file_chunks, through_chain
from jackgen.plugins.chainstage import stage_for

SETTLE_BLOCKS = 4  # silent blocks first, so faders have reached their values when the clips start
FORMATS = {"16": ("WAV", "PCM_16"), "24": ("WAV", "PCM_24"), "32f": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24")}


class _Source:
    """One track's clip, through its chain, pulled block by block: the producers' own loop
    (``file_chunks`` read and resampled, ``through_chain``), driven by the render loop."""

    def __init__(self, path: str, rate: int, chain: list[dict], extra_dirs) -> None:
        self.stage = stage_for({"chain": chain, "vst3_dirs": list(extra_dirs)}, rate) if chain else None
        with sf.SoundFile(path) as f:
            self.frames = int(round(f.frames * rate / f.samplerate))
        self.reader = ChunkReader(through_chain(file_chunks(path, rate), self.stage))
        self.take = self.reader.take

    @property
    def exhausted(self) -> bool:
        """Everything this clip makes has been taken."""
        return self.reader.done and not self.reader.buf.shape[0]


LUFS_TOLERANCE = 0.5  # LU: a loudness-targeted bounce stops re-rendering once this close
LUFS_PASSES = 4


def bounce(cfg: Config, session: str, out: str | None = None, fmt: str = "24", stems: bool = False,
           rate: int = 48000, block: int = 512, tail_s: float = 0.0,
           progress: Callable[[float], None] | None = None, lufs: float | None = None) -> dict:
    """Render ``session``; with ``lufs`` the master's makeup gain is set so the bounce's
    integrated loudness lands within LUFS_TOLERANCE of it (the limiter holds the ceiling,
    so loud targets take a pass or two more: each pass measures and corrects)."""
    if fmt not in FORMATS:
        raise JackgenError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if lufs is not None and not -60.0 <= lufs <= 0.0:
        raise JackgenError(f"loudness target must be between -60 and 0 LUFS, got {lufs:g}")
    session_dir = cfg.session_dir(session)
    data = read_session(session_dir)
    tracks = data.tracks
    master_settings = dict(data.master)
    sources = {t: tr for t, tr in enumerate(tracks) if tr.bounce_clip}  # armed, else the file it last played
    for t, tr in sources.items():
        if not Path(tr.bounce_clip).is_file():
            raise JackgenError(f"track {t + 1}'s clip {tr.bounce_clip} is missing")
    if not sources:
        raise JackgenError(f"session {session!r} has no clips to bounce: play or load one on a track "
                           "(jackgen play TRACK FILE, jackgen load TRACK FILE)")
    out_path = Path(out) if out else session_dir / "bounces" / f"{session}-{time.strftime('%Y%m%d-%H%M%S')}.{'flac' if fmt == 'flac' else 'wav'}"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    passes = []
    rendering = 0.0
    for p in range(LUFS_PASSES if lufs is not None else 1):
        def prog(f: float, p=p) -> None:  # passes share the bar; one that lands early jumps to the end
            if progress is not None:
                progress((p + f) / LUFS_PASSES if lufs is not None else f)
        info = _render(cfg, tracks, sources, master_settings, out_path, fmt, stems, rate, block, tail_s, prog)
        rendering += info["render_s"]
        passes.append({"gain_db": round(float(master_settings.get("gain_db", 0.0)), 2),
                       "integrated_lufs": info["integrated_lufs"]})
        if lufs is None or info["integrated_lufs"] is None:
            break
        err = lufs - info["integrated_lufs"]
        if abs(err) <= LUFS_TOLERANCE:
            break
        master_settings["gain_db"] = float(min(24.0, max(-60.0, master_settings.get("gain_db", 0.0) + err)))
    if progress is not None:
        progress(1.0)
    info["render_s"] = round(rendering, 3)  # the block loop, all passes: what "× real time" measures
    info["total_s"] = round(time.perf_counter() - t0, 3)  # plus reading the session and loading plugins
    info["realtime_factor"] = round(info["seconds"] * len(passes) / rendering, 1) if rendering else None
    if lufs is not None:
        info["loudness_target_lufs"] = lufs
        info["passes"] = passes
    info["master"] = {"gain_db": round(float(master_settings.get("gain_db", 0.0)), 2),
                      "eq": master_settings.get("eq") or [], "ceiling_dbtp": cfg.engine.limiter_ceiling_db}
    return info


def _render(cfg: Config, tracks: list[TrackSettings], clips: dict[int, TrackSettings], master_settings: dict,
            out_path: Path, fmt: str, stems: bool, rate: int, block: int, tail_s: float,
            progress: Callable[[float], None]) -> dict:
    # each chain as its live host runs it: without the plugins marked failed (they crashed a host)
    sources = {t: _Source(tr.bounce_clip, rate, live_chain(tr.chain), cfg.plugins.vst3_dirs) for t, tr in clips.items()}
    length = max(s.frames + (s.stage.latency if s.stage else 0) for s in sources.values()) + int(tail_s * rate)
    t0 = time.perf_counter()
    inst = f"bounce-{os.getpid()}"
    rings = InstanceRings.create(inst, max(1 << 14, 4 * block), rate)
    try:
        e = cfg.engine
        core = EngineCore(rings.tracks, rings.commands, rings.events, rate, block,
                          max_commands_per_block=1024, fade_ms=e.fade_ms, gain_smoothing_ms=e.gain_smoothing_ms,
                          limiter_ceiling_db=e.limiter_ceiling_db, limiter_release_ms=e.limiter_release_ms,
                          limiter_lookahead_ms=e.limiter_lookahead_ms, master=master_settings,
                          meter_hz=e.meter_hz)
        master_chain = live_chain(master_settings.get("chain") or [])
        if master_chain:  # built here, as the engine's loader builds it, and run by EngineCore.process
            core.master_chain.chain = Chain.from_state(master_chain, rate, cfg.plugins.vst3_dirs)
            core.master_chain.latency = core.master_chain.chain.latency_frames
        drv = OfflineDriver(core, start_frame=0)
        for t, tr in enumerate(tracks):
            for op, v in ((S.CMD_GAIN, tr.gain_db), (S.CMD_PAN, tr.pan), (S.CMD_MUTE, int(tr.mute)),
                          (S.CMD_SOLO, int(tr.solo))):
                rings.commands.put(S.pack(op, t, v))
        for t in sources:
            rings.tracks[t].begin_stream(1, rate)
        start = SETTLE_BLOCKS * block
        for t in sources:
            rings.commands.put(S.pack(S.CMD_PLAY, t, 1, start, 0))
        fmt_name, subtype = FORMATS[fmt]
        tmp = out_path.with_name(f".{out_path.name}.part")
        parts: dict[Path, Path] = {tmp: out_path}  # part file -> final name: renamed only when all is written
        master = sf.SoundFile(str(tmp), "w", rate, 2, subtype, format=fmt_name)
        stem_files = {}
        if stems:
            stem_dir = out_path.with_suffix("")
            stem_dir.mkdir(parents=True, exist_ok=True)
            for t in sources:
                final = stem_dir / f"track_{t + 1:02d}.{out_path.suffix[1:]}"
                part = final.with_name(f".{final.name}.part")
                parts[part] = final
                stem_files[t] = sf.SoundFile(str(part), "w", rate, 2, subtype, format=fmt_name)
        lat = core.master.latency + core.master_chain.latency  # the master comes out this much later: written aligned
        written = -start
        try:
            peak = _render_loop(drv, rings, sources, stem_files, master, length, lat, written, block, progress)
            master.close()
            for f in stem_files.values():
                f.close()
        except (OSError, sf.LibsndfileError) as e:
            for f in (master, *stem_files.values()):
                with contextlib.suppress(Exception):
                    f.close()
            for part in parts:
                part.unlink(missing_ok=True)
            raise JackgenError(write_failure(out_path, e), status=507) from None
        rendered, _ = sf.read(str(tmp), dtype="float32", always_2d=True)
        loudness = {"integrated_lufs": integrated_lufs(rendered, rate), "true_peak_dbtp": true_peak_dbfs(rendered)}
        for part, final in parts.items():
            os.replace(part, final)
        took = time.perf_counter() - t0
        errors = [f"track {t + 1}: {e}" for t, s in sources.items() if s.stage for e in s.stage.errors]
        return {"path": str(out_path), "seconds": round(length / rate, 3), "frames": length, "render_s": round(took, 3),
                "realtime_factor": round(length / rate / took, 1) if took else None, "sample_rate": rate,
                "peak_dbfs": round(20 * np.log10(max(peak, 1e-12)), 2), "tracks": [t + 1 for t in sources],
                "stems": str(out_path.with_suffix("")) if stems else None, "format": fmt, "errors": errors,
                **{k: None if v is None else round(v, 2) for k, v in loudness.items()}}
    finally:
        rings.close(unlink=True)


def _render_loop(drv, rings, sources, stem_files, master, length: int, lat: int, written: int, block: int,
                 progress) -> float:
    """Feed the rings, run the engine block by block, write the master (and stems); returns the peak."""
    peak = 0.0
    while written < length + lat:
        for t, src in sources.items():
            ring = rings.tracks[t]
            if src.exhausted:
                if (ring.stream_word() & 0xFF) == L.STATE_OPEN:  # no more audio is coming
                    ring.end_stream()
                continue
            need = 2 * block - ring.available()
            if need > 0:
                chunk = src.take(need)
                if chunk.shape[0]:
                    ring.write(chunk)
                if src.exhausted:
                    ring.end_stream()
        track_out, master_out = drv.run_block(block)
        while rings.events.get() is not None:  # meters and status: nobody listens offline
            pass
        # (2, n) planar rows, as the ports get them; each file cut to [0, length)
        a, b = max(0, -written), min(block, length - written)
        if b > a:
            for t, f in stem_files.items():
                f.write(track_out[t, :, a:b].T)
        a, b = max(0, lat - written), min(block, length + lat - written)
        if b > a:
            m = master_out[:, a:b].T
            master.write(m)
            peak = max(peak, float(np.abs(m).max()))
        written += block
        if written > 0:
            progress(min(1.0, written / (length + lat)))
    return peak
