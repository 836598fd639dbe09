"""Streams into the track rings: the feeder's files, generator workers' takes, armed clips, play and stop.

Mixed into :class:`jackgen.daemon.control.control.Control`. One producer writes into a track's ring
at a time (the rings are single-producer): before a new stream starts, the old producer is told
to stop and awaited. Each stream has an epoch, so the engine never plays the tail of an old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from jackgen.bridge import schema as S
from jackgen.common.errors import JackgenError, Unavailable, check_track
from jackgen.daemon.control.state import Stream, parse_on_off
from jackgen.generators.producer import LIVE

log = logging.getLogger("jackgen.control")

FEEDER_WAIT_S = 5.0  # a play while the feeder (re)starts waits this long for it, then answers 503


class Streams:
    # ------------------------------------------------------------ producer events
    async def _on_feeder_line(self, line: str) -> None:
        if not line:
            return
        msg = json.loads(line)
        if msg.get("event") in ("primed", "stream_end"):
            self.on_stream_event(None, msg)
        elif msg.get("event") == "relay_counters":
            self.relay_counters = {k: v for k, v in msg.items() if k not in ("event", "state")}
        elif msg.get("event") == "error":
            log.error("feeder: %s", msg.get("message"))

    def on_stream_event(self, producer: Any, msg: dict) -> None:
        """The one handler for what any producer says about a stream (the producer loop's
        vocabulary: "primed", then "stream_end" with eos, cancelled or error). ``producer`` is
        None for the feeder, else the worker link of a generator."""
        t, epoch = msg.get("track"), msg.get("epoch")
        s = self.streams.get(t) if isinstance(t, int) else None
        if s is None or s.epoch != epoch or s.producer is not producer:
            return  # about a stream that has been replaced
        if msg["event"] == "primed":
            if s.primed.done():
                return
            s.primed.set_result(msg.get("frames", 0))
            if s.generated:
                self._start_generated(s, msg)  # a file's stream is started by play(), waiting on primed
            return
        state, why = msg.get("state"), msg.get("message")
        s.end()
        if state == "error":
            self.tracks[t].error = f"the stream of {s.path} broke off" + (f": {why}" if why else "")
            log.error("streaming %s into track %d failed: %s", s.path, t + 1, why or "the producer stopped")
            if not s.primed.done():
                s.primed.set_exception(JackgenError(f"cannot stream {s.path}: {why or 'it broke off'}"))
        elif not s.primed.done():
            s.primed.set_result(msg.get("frames", 0))

    async def _on_feeder_hello(self, msg: dict) -> None:
        """A feeder connected: after a feeder restart, its crash crumb is read; every unfinished
        file stream it does not feed (it restarted, or died while control was down) resumes where
        the ring says it stopped, without a plugin it died in."""
        feeds = {(f.get("track"), f.get("epoch")) for f in msg.get("feeds") or [] if isinstance(f, dict)}
        if self.feeder is not None and self.feeder.restarts != self._feeder_restarts_seen:
            self._feeder_restarts_seen = self.feeder.restarts
            self.check_crumb("feeder", self.exit_code_of("feeder"))
        log.info("feeder %s connected (streaming %d track(s))", msg.get("pid"), len(feeds))
        pending = [s for s in self.streams.values() if not s.done and s.producer is None and not s.relay_key
                   and (s.track, s.epoch) not in feeds]
        if pending:
            self._spawn(self._resume_streams(pending))

    async def _resume_streams(self, pending: list[Stream]) -> None:
        assert self.rings is not None and self.feeder is not None
        for _ in range(100):
            if self.feeder.pid:
                break
            await asyncio.sleep(0.1)
        for s in pending:
            if self.streams.get(s.track) is not s:
                continue
            ring = self.rings.tracks[s.track]
            delivered = ring.write_count - ring.stream_start()
            log.warning("feeder restarted: resuming %s on track %d at frame %d", s.path, s.track + 1, delivered)
            chain = self.chain_request(s.track)
            if s.path == LIVE:
                chain["lead_frames"] = self._live_lead_frames()
            with contextlib.suppress(JackgenError):
                await self.feeder.send({"op": "stream", "id": s.id, "track": s.track, "epoch": s.epoch,
                                        "path": s.path, "rate": self.sample_rate, "prefill_frames": 0,
                                        "resume_from": delivered, **chain})

    def _finish_stream(self, t: int) -> None:
        s = self.streams.get(t)
        if s:
            s.done = True  # the engine is done with it; the producer reports its own end

    async def claim_track(self, t: int, producer: Any, source: str, stream_id: str, take: str | None = None) -> int:
        """Stop whatever feeds track t and open a new epoch for ``producer``; returns the epoch."""
        assert self.rings is not None
        await self._cancel_stream(t)
        tr = self.tracks[t]
        epoch = max(tr.epoch, tr.armed_epoch, self.rings.tracks[t].stream_word() >> 8) + 1
        fut = asyncio.get_running_loop().create_future()
        self.streams[t] = Stream(stream_id, t, epoch, source, fut, producer=producer, take=take, generated=True)
        return epoch

    def _start_generated(self, s: Stream, msg: dict) -> None:
        """A generator's first audio is in the ring: the track starts playing it."""
        t = s.track
        tr = self.tracks[t]
        tr.epoch, tr.error, tr.stream_id = s.epoch, None, s.id
        tr.source = s.take or s.path
        if s.take:
            tr.clip = tr.source  # the take, once written: what a bounce renders on this track
            self.save_session()
        tr.started_frame = tr.ended_frame = None
        try:
            self.send(S.CMD_PLAY, t, s.epoch, 0, 0)
            tr.state = "pending"
        except JackgenError as e:
            log.error("cannot start track %d for %s: %s", t + 1, s.path, e)

    def abort_streams_of(self, worker: Any) -> None:
        """A worker died: its open streams end as aborted, so the engine fades those tracks out."""
        assert self.rings is not None
        for t, s in list(self.streams.items()):
            if s.producer is worker and not s.finished.is_set():
                if (self.rings.tracks[t].stream_word() >> 8) == s.epoch:
                    self.rings.tracks[t].end_stream(aborted=True)
                self.tracks[t].error = f"{s.path}: the worker producing it died"
                log.warning("track %d: the worker streaming %s died; the track fades out", t + 1, s.path)
                s.end()

    async def load(self, track: object, path: object) -> dict:
        """Arm a clip: it waits in the track's ring so a trigger starts it on the exact frame."""
        t = check_track(track)
        tr = self.tracks[t]
        tr.armed = self.check_track_file(t, path)
        tr.armed_epoch = 0
        self.save_session()
        if tr.state in ("playing", "pending", "underrun", "stopping"):
            return {"track": t + 1, "armed": tr.armed, "ready": False}  # armed once the current stream ends
        await self._arm(t)
        return {"track": t + 1, "armed": tr.armed, "ready": bool(tr.armed_epoch)}

    async def _arm(self, t: int) -> None:
        tr = self.tracks[t]
        if not tr.armed or not self.sample_rate or self.feeder is None:
            return
        try:
            epoch = await self._start_stream(t, tr.armed, prefill_all=True)
        except JackgenError as e:
            log.error("cannot arm %s on track %d: %s", tr.armed, t + 1, e)
            return
        tr.armed_epoch = epoch
        self.send(S.CMD_ARM, t, epoch)

    async def live(self, track: object, on: object = True) -> dict:
        """Play track N's instrument from live MIDI: channel N's messages from JACK midi_in (or a
        controller) sound ``plugins.live_latency_ms`` after their frame, exactly. Off: all notes off,
        the track stops."""
        t = check_track(track)
        flag = parse_on_off(on, "live")
        tr = self.tracks[t]
        latency_ms = self.cfg.plugins.live_latency_ms
        if not flag:
            if tr.source == LIVE:
                await self.stop_track(t + 1)
                tr.source = None
            return {"track": t + 1, "live": False}
        if not self.has_instrument(t):
            raise JackgenError(f"track {t + 1} has no instrument at the head of its chain to play live: add one "
                               f"(`jackgen chain {t + 1} add http://synthv1.sourceforge.net/lv2`)")
        if not self.sample_rate:
            raise Unavailable("the engine is not running yet (no sample rate): check `jackgen status`")
        block = self._block_size()
        lead = self._live_lead_frames()
        if lead + 256 + block > self.live_latency_frames():
            raise JackgenError(f"plugins.live_latency_ms ({latency_ms:g} ms) is too short for {block}-frame JACK "
                               f"periods: it needs more than {1e3 * (lead + 256 + block) / self.sample_rate:.0f} ms")
        epoch = await self._start_stream(t, LIVE, lead_frames=lead)
        self._start_playing(t, epoch, LIVE, 0)
        log.info("track %d plays its instrument live from MIDI channel %d (%.0f ms latency)", t + 1, t + 1,
                 latency_ms)
        return {"track": t + 1, "live": True, "channel": t + 1, "latency_ms": latency_ms,
                "latency_frames": self.live_latency_frames(), "stream": tr.stream_id, "epoch": epoch}

    def _block_size(self) -> int:
        return int(self.engine_status.get("block_size") or 256)

    def _live_lead_frames(self) -> int:
        """How far ahead a live instrument is made: two JACK periods (the engine never runs dry)."""
        return 2 * self._block_size()

    def _start_playing(self, t: int, epoch: int, source: str, at_frame: int) -> None:
        """Track t plays stream ``epoch`` (primed in its ring) from ``at_frame`` (0: the next block)."""
        tr = self.tracks[t]
        tr.epoch, tr.source, tr.error = epoch, source, None
        tr.stream_id = self.streams[t].id if t in self.streams else None
        tr.started_frame = tr.ended_frame = None
        self.send(S.CMD_PLAY, t, epoch, at_frame & S.FRAME_MASK, 0)
        tr.state = "pending"

    async def _start_stream(self, t: int, full: str, prefill_all: bool = False, lead_frames: int | None = None) -> int:
        """Have the feeder stream ``full`` into track t's ring as a new epoch; returns it once primed."""
        assert self.feeder is not None and self.rings is not None
        await self._cancel_stream(t)
        tr = self.tracks[t]
        epoch = max(tr.epoch, tr.armed_epoch, self.rings.tracks[t].stream_word() >> 8) + 1
        sid = uuid.uuid4().hex[:12]
        stream = Stream(sid, t, epoch, full, asyncio.get_running_loop().create_future())
        self.streams[t] = stream
        ring_frames = self.rings.tracks[t].capacity
        prefill = ring_frames if prefill_all else int(self.cfg.feeder.prefill_ms * 1e-3 * self.sample_rate)
        try:
            await self.feeder.wait_ready(FEEDER_WAIT_S)
            chain = self.chain_request(t)
            if lead_frames is not None:
                chain["lead_frames"] = lead_frames
                prefill = lead_frames
            await self.feeder.send({"op": "stream", "id": sid, "track": t, "epoch": epoch, "path": full,
                                    "rate": self.sample_rate, "prefill_frames": min(prefill, ring_frames),
                                    "resume_from": None, **chain})
        except JackgenError:
            stream.end()  # never started: nothing to resume
            raise
        try:
            await asyncio.wait_for(asyncio.shield(stream.primed), 10.0)
        except asyncio.TimeoutError:
            raise Unavailable(f"the feeder did not deliver audio for {full} within 10 s") from None
        return epoch

    async def play(self, track: object, path: object = None, at: str | int | None = "now") -> dict:
        t = check_track(track)
        tr = self.tracks[t]
        if path is None or path == "":
            if not tr.armed:
                raise JackgenError(f"track {t + 1} has no clip armed: give a file, or `jackgen load {t + 1} FILE` first")
            path = tr.armed
        full = self.check_track_file(t, path)
        if not self.sample_rate:
            raise Unavailable("the engine is not running yet (no sample rate): check `jackgen status`")
        at_frame = self.resolve_at(at)
        if full == tr.armed and tr.armed_epoch and tr.state == "armed":
            epoch = tr.armed_epoch  # already waiting in the ring: starts without any delay
        else:
            epoch = await self._start_stream(t, full)
        if tr.clip != full:
            tr.clip = full  # what a bounce renders on this track (with the armed clip, if any, first)
            self.save_session()
        self._start_playing(t, epoch, full, at_frame)
        return {"track": t + 1, "file": full, "stream": tr.stream_id, "epoch": epoch, "at_frame": at_frame}

    async def _cancel_stream(self, t: int) -> None:
        """Stop the producer feeding track t and wait until it has let go of the ring
        (two producers on one SPSC ring would corrupt it)."""
        s = self.streams.get(t)
        if s is None or s.finished.is_set():
            return
        try:
            if s.producer is None:
                if self.feeder is None:
                    return
                await self.feeder.send({"op": "cancel", "track": t})
            else:
                await s.producer.send({"op": "stop_stream", "track": t})
        except JackgenError:
            return  # the producer is not running: nothing writes to the ring
        try:
            await asyncio.wait_for(s.finished.wait(), 3.0)
        except asyncio.TimeoutError:
            log.warning("the producer of track %d did not stop within 3 s", t + 1)

    async def stop_track(self, track: object, at: str | int | None = "now") -> dict:
        t = check_track(track)
        at_frame = self.resolve_at(at)
        self.send(S.CMD_STOP, t, at_frame & S.FRAME_MASK)
        s = self.streams.get(t)
        if s and not s.done and at_frame == 0:
            await self._cancel_stream(t)
        return {"track": t + 1, "at_frame": at_frame}
