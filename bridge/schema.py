"""Message schema for the command ring (control -> engine) and event ring (engine -> control).

Every record is one msgpack array whose first element is the opcode. Arrays, not
maps: they are smaller, fit the fixed record size, and decode to a list the
engine can index without building a dict in its process callback. Tracks are
0-based on the wire (0..15); every user-facing surface is 1-based.

Frames are JACK frame times (the engine clock). ``at_frame == 0`` means "as soon
as possible" (the next block).
"""

from __future__ import annotations

import msgpack

CMD_RECORD_SIZE = 128
EVT_RECORD_SIZE = 1024
CMD_CAPACITY = 1024
EVT_CAPACITY = 4096

# ---- commands: [op, ...] ----
CMD_GAIN = 1  # [op, track, gain_db: float]
CMD_PAN = 2  # [op, track, pan: float -1..1]
CMD_MUTE = 3  # [op, track, on: int]
CMD_SOLO = 4  # [op, track, on: int]
CMD_PLAY = 5  # [op, track, epoch: int, at_frame: int, resume: int]
CMD_STOP = 6  # [op, track, at_frame: int]
CMD_PING = 7  # [op, token: int]   -> EVT_PONG once every command before it is applied
CMD_STATUS = 8  # [op]            -> an EVT_STATUS now
CMD_ARM = 9  # [op, track, epoch: int]  a clip waits in the ring; a trigger (note, play) starts it
CMD_MAP_NOTE = 10  # [op, note 0-127, track or -1]  JACK MIDI note-on -> trigger that track
CMD_GATE = 11  # [op, track, on]  note-off stops the track (gate mode)
CMD_MIDI_CC = 12  # [op, on]  default CC mapping on/off: CC7/CC10 on channel N -> gain/pan of track N
CMD_MASTER_GAIN = 13  # [op, gain_db]  mastering makeup gain (glides)
CMD_MASTER_EQ = 14  # [op, band 0-3, type 0-5, freq, gain_db, q]  mastering EQ band (glides); type 0 = off
CMD_MASTER_CHAIN = 15  # [op, gen]  build the master chain control wrote to /dev/shm/jackgen-<inst>-master-chain.json
CMD_MASTER_PARAM = 16  # [op, gen, index, name: str, value]  a master plugin's parameter (glides)
CMD_MASTER_BYPASS = 17  # [op, gen, index, on]  crossfaded over one block
CMD_TRANSPORT = 18  # [op, rolling: 0/1]  jack_transport_start/stop (real-time safe) from the engine's client
# CMD_GAIN/PAN/MUTE/SOLO take an optional trailing at_frame: applied in the block
# that contains that frame (OSC bundles with a future timetag).

# ---- events: [op, ...] ----
EVT_HELLO = 1  # [op, pid, sample_rate, block_size, tracks]
EVT_STATUS = 2  # [op, frame_time, xruns, underruns, dsp_load, cb_max_us, cb_mean_us,
#                   blocks, late_commands, block_size, sample_rate, events_dropped, callback_errors]
EVT_METERS = 3  # [op, frame_time, track_peaks[T*2], track_rms[T*2], master_peak[2], master_rms[2]]
EVT_TRACK = 4  # [op, track, state, epoch, frame]
EVT_PONG = 5  # [op, token, frame_time]
EVT_ERROR = 6  # [op, code, track, detail: int]
EVT_MIDI = 7  # [op, frame, status, data1, data2]  every short message on midi_in (learn, mappings)
EVT_APPLIED = 8  # [op, opcode, track, frame]  a timed command took effect
EVT_MASTER_CHAIN = 9  # [op, gen, ok: 0/1, latency_frames, error: str]  a master chain took over (or failed)
EVT_RELOCK = 10  # [op, frame, skipped_frames, tracks]  JACK skipped cycles (xrun); playing streams skipped as much

# Track states reported in EVT_TRACK (and kept by the engine).
TRACK_IDLE = 0
TRACK_PENDING = 1  # waiting for its stream epoch / start frame
TRACK_PLAYING = 2
TRACK_STOPPING = 3  # fading out
TRACK_ENDED = 4  # event only: the stream reached its end
TRACK_UNDERRUN = 5  # event only: the ring ran dry while playing
TRACK_RECOVERED = 6  # event only: data came back after an underrun
TRACK_ABORTED = 7  # event only: the producer gave up
TRACK_ARMED = 8  # a clip waits in the ring for a trigger

TRACK_STATE_NAMES = {
    TRACK_IDLE: "idle",
    TRACK_PENDING: "pending",
    TRACK_PLAYING: "playing",
    TRACK_STOPPING: "stopping",
    TRACK_ENDED: "ended",
    TRACK_UNDERRUN: "underrun",
    TRACK_RECOVERED: "playing",
    TRACK_ABORTED: "aborted",
    TRACK_ARMED: "armed",
}

ERR_BAD_COMMAND = 1
ERR_BLOCK_TOO_LARGE = 2
ERR_TIMED_QUEUE_FULL = 3

MAX_MIDI_EVENTS_PER_BLOCK = 128
MAX_TIMED_COMMANDS = 256

STATUS_FIELDS = (
    "frame_time",
    "xruns",
    "underruns",
    "dsp_load",
    "cb_max_us",
    "cb_mean_us",
    "blocks",
    "late_commands",
    "block_size",
    "sample_rate",
    "events_dropped",
    "callback_errors",
    "cycle_usecs",  # JACK time (CLOCK_MONOTONIC_RAW, µs) at frame_time
    "period_usecs",  # JACK's estimate of the period, µs (maps µs <-> frames)
    "midi_events",
    "late_timed",
    "bbt",  # None, or [frame, bar, beat, tick, ticks_per_beat, beats_per_bar, bpm] while a
    #          timebase master rolls the JACK transport: that BBT holds exactly at frame
    "skipped_frames",  # frames the streams dropped to stay on the frame clock (re-locks, late starts)
)


FRAME_MASK = (1 << 32) - 1  # JACK frame times are jack_nframes_t: they wrap every 2^32 frames


def frames_until(at: int, now: int) -> int:
    """Signed frames from ``now`` to ``at`` on JACK's 32-bit frame clock (wraps every
    24.85 h at 48 kHz; a daemon started at boot gets there). Valid within ±2^31 frames."""
    return ((at - now + (1 << 31)) & FRAME_MASK) - (1 << 31)


def unwrap_frame(frame32: int, near: int) -> int:
    """The 64-bit frame equal to ``frame32`` modulo 2^32 that is closest to ``near``."""
    return near + frames_until(frame32 & FRAME_MASK, near & FRAME_MASK)


def pack(*fields: object) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def unpack(data: bytes | memoryview) -> list:
    return msgpack.unpackb(data, use_list=True, raw=False, strict_map_key=False)
