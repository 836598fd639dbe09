"""The one producer loop: audio for a track, through its plugin chain, into the track's ring.

Three places make a track's audio, and all three go through here:

- the feeder streams a file (``file_chunks``: audio, or a MIDI file for a track whose chain starts
  with an instrument — silent frames that carry the file's events, which the instrument plays),
- a generator worker streams a take while it is being made (its pump's chunks),
- ``jackgen bounce`` renders a session offline (pulling ``through_chain(file_chunks(...))`` itself).

``through_chain`` runs the track's chain (``jackgen.plugins.chainstage``) on each chunk and flushes
the plugins' latency at the end; ``RingFeed`` writes the result into the ring: the prefill first
("primed" once it is in, so the engine starts with audio waiting), then the rest at the ring's pace,
never more than the chain's lead ahead of the playhead. Every stream ends with one event,
``stream_end`` with ``state`` = ``eos`` | ``cancelled`` | ``error``; with ``primed`` that is the
whole vocabulary control hears from any producer.

Threading: a RingFeed is created, run and closed on one thread (the stream's), which builds and
runs the chain (VST3 plugins must stay on the thread that created them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf

from jackgen.dsp.convert import StreamResampler, to_stereo
from jackgen.plugins.base import release_on_loader
from jackgen.plugins.chainstage import ChainStage, stage_for

log = logging.getLogger("jackgen.producer")

CHUNK_FRAMES = 8192
EMPTY = np.zeros((0, 2), dtype=np.float32)

LIVE = "live:instrument"  # the source of a track whose instrument plays live MIDI (``jackgen live N on``)
MIDI_TAIL_S = 2.0  # a MIDI file's stream runs this long past its last event: the instrument's release
MIDI_SUFFIXES = (".mid", ".midi", ".smf")

# (frames (n, 2) float32 at the engine rate, last[, MIDI events: (frame offset in the chunk, bytes)])
Chunks = Iterable[tuple]
ALL_NOTES_OFF = [(0, bytes([0xB0 | ch, cc, 0])) for ch in range(16) for cc in (64, 123, 120)]  # sustain, notes, sound


def is_midi_file(path: str) -> bool:
    """A Standard MIDI File, by its name or its first bytes."""
    if str(path).lower().endswith(MIDI_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"MThd"
    except OSError:
        return False


def midi_events(path: str, rate: int) -> tuple[list[tuple[int, bytes]], int]:
    """A MIDI file's channel messages as (frame at ``rate``, bytes), in order (tempo changes
    followed), and the frame of its end."""
    import mido

    mid = mido.MidiFile(path)
    events, now = [], 0.0
    for msg in mid:  # merged tracks, times in seconds
        now += msg.time
        if not msg.is_meta and msg.type != "sysex":
            events.append((int(round(now * rate)), bytes(msg.bytes())))
    return events, int(round(now * rate))


def midi_chunks(path: str, rate: int, resume_from: int | None = None, chunk_frames: int = CHUNK_FRAMES) -> Chunks:
    """A MIDI file as silent stereo chunks carrying its events, for the instrument heading a chain;
    ``MIDI_TAIL_S`` past its end so the last notes ring out. A resumed stream (``resume_from``)
    plays the events from there on (a note held across the restart is not sounded again)."""
    events, end = midi_events(path, rate)
    total = end + int(MIDI_TAIL_S * rate)
    pos = int(resume_from or 0)
    i = 0
    while i < len(events) and events[i][0] < pos:
        i += 1
    while True:
        n = min(chunk_frames, max(0, total - pos))
        last = pos + n >= total
        ev = []
        while i < len(events) and (events[i][0] < pos + n or last):
            ev.append((max(0, min(n - 1, events[i][0] - pos)) if n else 0, events[i][1]))
            i += 1
        yield np.zeros((n, 2), dtype=np.float32), last, ev
        pos += n
        if last:
            return


def live_chunks(block: int = 256) -> Chunks:
    """Silence without end, a block at a time, for an instrument played live: its MIDI comes to the
    chain as it arrives (``ChainStage.submit_midi``), each event at its own stream frame."""
    zeros = np.zeros((block, 2), dtype=np.float32)
    zeros.flags.writeable = False
    while True:
        yield zeros, False, ()


def file_chunks(path: str, rate: int, resume_from: int | None = None, chunk_frames: int = CHUNK_FRAMES) -> Chunks:
    """A file read and resampled to ``rate`` (soxr), as stereo, from frame ``resume_from`` (at ``rate``);
    a MIDI file as ``midi_chunks``; ``LIVE`` as ``live_chunks``."""
    if path == LIVE:
        yield from live_chunks()
        return
    if is_midi_file(path):
        yield from midi_chunks(path, rate, resume_from, chunk_frames)
        return
    with sf.SoundFile(path) as f:
        rs = StreamResampler(f.samplerate, rate)
        if resume_from:
            f.seek(min(f.frames, int(int(resume_from) * f.samplerate / rate)))
        while True:
            data = f.read(chunk_frames, dtype="float32", always_2d=True)
            last = data.shape[0] < chunk_frames
            yield rs.process(to_stereo(data), last=last), last
            if last:
                return


def rechunk(chunks: Chunks, size: int) -> Iterator[tuple]:
    """The same stream in pieces of at most ``size`` frames (their MIDI with them)."""
    for item in chunks:
        frames, last = item[0], item[1]
        midi = item[2] if len(item) > 2 else None
        n = frames.shape[0]
        if n <= size:
            yield item
            continue
        for s in range(0, n, size):
            e = min(n, s + size)
            tail = e >= n
            if midi is None:
                yield frames[s:e], last and tail
            else:  # (an event at the very end of the chunk stays in the last piece)
                yield frames[s:e], last and tail, [(o - s, d) for o, d in midi if s <= o < e or (tail and o >= e)]


def through_chain(chunks: Chunks, stage: ChainStage | None) -> Iterator[tuple[np.ndarray, bool]]:
    """Each chunk through the track's chain (its MIDI, if it has any, to the chain's instrument);
    the last one also flushes the plugins' latency."""
    for item in chunks:
        frames, last = item[0], item[1]
        midi = item[2] if len(item) > 2 else None
        yield (stage.process(frames, last=last, midi=midi) if stage is not None else frames), last


class ChunkReader:
    """A stream of (frames, last) chunks read ``n`` frames at a time, for a loop that takes audio at
    its own pace (a bounce's render, an instrument's stem beside FluidSynth's)."""

    def __init__(self, chunks) -> None:
        self._it = iter(chunks)
        self.buf = EMPTY
        self.done = False  # the last chunk is in ``buf`` (what is left of it)

    def take(self, n: int) -> np.ndarray:
        """Up to ``n`` frames: fewer only at the end of the stream."""
        while self.buf.shape[0] < n and not self.done:
            frames, last = next(self._it)[:2]
            self.buf = np.concatenate([self.buf, frames]) if self.buf.shape[0] else frames
            self.done = last
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class RingFeed:
    """One stream into one track ring, with the events control hears about it."""

    def __init__(self, ring, track: int, epoch: int, rate: int, prefill: int, emit: Callable[[dict], None],
                 chain_req: dict | None = None, crumb: np.ndarray | None = None, stream_id: str | None = None,
                 resume_from: int | None = None) -> None:
        self.ring, self.track, self.epoch, self.rate = ring, track, epoch, rate
        self.prefill, self.emit = prefill, emit
        self.chain_req, self.crumb = chain_req or {}, crumb
        self.base = {"id": stream_id, "track": track, "epoch": epoch}
        self.resume_from = int(resume_from) if resume_from else None
        self.stage: ChainStage | None = None
        self.frames = 0
        self.primed = False

    def open(self) -> None:
        """Build the chain (on this thread, which will run it) and open the stream in the ring."""
        self.stage = stage_for(self.chain_req, self.rate, self.crumb)
        if self.stage is not None:
            self.prefill = min(self.prefill, self.stage.lead or self.prefill)
        if self.resume_from:
            self.ring.resume_stream(self.epoch)  # a restarted producer: the engine plays on where it was
            self.frames = self.resume_from
        else:
            self.ring.begin_stream(self.epoch, self.rate)

    def _on_primed(self, frames: int) -> None:
        self.primed = True
        self.emit({"event": "primed", "frames": frames, **self.base})

    def write(self, frames: np.ndarray, should_stop: Callable[[], bool]) -> None:
        """Frames (already through the chain) into the ring, the prefill first; blocks politely
        while the ring holds as much as it may."""
        stage = self.stage
        max_ahead = stage.max_ahead(self.ring) if stage is not None else None
        if not self.primed:
            k = max(0, self.prefill - self.frames)
            if k and max_ahead is not None:
                self.frames += self.ring.write_blocking(frames[:k], should_stop=should_stop, max_ahead=max_ahead)
                frames = frames[k:]
            if max_ahead is None:
                self.frames += self.ring.write_blocking(frames, should_stop=should_stop)
                frames = frames[:0]
            if self.frames >= self.prefill:
                self._on_primed(self.frames)
        if frames.shape[0]:
            self.frames += self.ring.write_blocking(frames, should_stop=should_stop, max_ahead=max_ahead)
        if stage is not None:
            stage.prepare_when_covered(self.ring)  # a new chain loads while old-chain audio covers it

    def run(self, chunks: Chunks, should_stop: Callable[[], bool]) -> str:
        """Open, write every chunk, close; returns how the stream ended (eos, cancelled, error)."""
        try:
            self.open()
            if self.stage is not None and self.stage.lead:
                # a chained stream stays ``lead`` ahead of the playhead: processing a whole file chunk
                # (8192 frames: 170 ms) before writing any of it let the ring run dry whenever several
                # chains shared the CPU. Pieces of at most half the lead are made and written in turn.
                chunks = rechunk(chunks, max(256, min(2048, self.stage.lead // 2 // 256 * 256)))
            for frames, _last in through_chain(chunks, self.stage):
                if should_stop():
                    break
                self.write(frames, should_stop)
            state = "cancelled" if should_stop() else "eos"
            self.close(state)
            return state
        except Exception as e:  # a file that breaks off, a ring that is gone: the engine fades the track out
            log.warning("stream %s on track %d failed: %s", self.base["id"], self.track + 1, e)
            self.close("error", str(e))
            return "error"

    def close(self, state: str, message: str | None = None) -> None:
        """End the stream in the ring (aborted unless it reached its end) and say how it ended. An
        instrument stopped mid-note hears all-notes-off before it is let go."""
        inst = self.stage.chain.instrument if self.stage is not None else None
        if inst is not None and state != "eos":
            try:
                inst.process(np.zeros((2, 256), dtype=np.float32), ALL_NOTES_OFF)
            except Exception as e:  # it is being discarded either way
                log.debug("all-notes-off on track %d: %s", self.track + 1, e)
        try:
            self.ring.end_stream(aborted=state != "eos")
        except Exception as e:  # the ring is gone (control restarted): nothing to end
            log.debug("ending the stream on track %d: %s", self.track + 1, e)
        if state == "eos" and not self.primed:
            self._on_primed(self.frames)  # shorter than the prefill: all of it is in
        if self.stage is not None:  # its plugins are freed on the thread that loaded them
            holder, self.stage = [self.stage], None
            release_on_loader(holder)
        self.emit({"event": "stream_end", "state": state, "frames": self.frames, **self.base,
                   **({"message": message} if message else {})})
