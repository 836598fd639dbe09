"""Shared-memory ring layout: the single definition both sides use.

Every ring (track audio, command, event) is one POSIX shared-memory object,
``/dev/shm/jackgen.<instance>.<role>``, laid out as a 256-byte header followed by
the body. The C helper (``_ringc``) is generated from these constants at build
time, so Python and C cannot disagree about an offset.

Header, byte offsets (all integers little-endian, naturally aligned)::

      0  u64  MAGIC            b"JGRING01"
      8  u32  VERSION          layout version, bumped on any change here
     12  u32  KIND             KIND_AUDIO or KIND_MESSAGES
     16  u32  CHANNELS         audio: interleaved channels; messages: record size (bytes)
     20  u32  SAMPLE_RATE      audio: rate of the frames the producer writes (0 = unknown)
     24  u64  CAPACITY         frames (audio) or records (messages); a power of two
     32  u64  CREATOR_PID      process that created the segment
     64  u64  WRITE            monotonic write counter (producer only; release store)
    128  u64  READ             monotonic read counter (consumer only; release store)
    192  u64  STREAM           (epoch << 8) | state, producer only; one word so epoch
                               and state change together
    200  u64  STREAM_START     WRITE value at which the current epoch's stream begins
    208  u64  PRODUCER_PID     pid of the producer that owns the current epoch
    216  u64  DROPPED          messages the producer dropped because the ring was full
    256       body             float32 frames, or fixed-size records [u32 len][payload]

WRITE and READ sit on their own 64-byte cache lines so producer and consumer do
not false-share. Counters never wrap in practice (2**64 frames is 12 million
years at 48 kHz); the position in the body is ``counter & (capacity - 1)``.
"""

from __future__ import annotations

MAGIC = int.from_bytes(b"JGRING01", "little")
VERSION = 1

KIND_AUDIO = 1
KIND_MESSAGES = 2

OFF_MAGIC = 0
OFF_VERSION = 8
OFF_KIND = 12
OFF_CHANNELS = 16
OFF_SAMPLE_RATE = 20
OFF_CAPACITY = 24
OFF_CREATOR_PID = 32
OFF_WRITE = 64
OFF_READ = 128
OFF_STREAM = 192
OFF_STREAM_START = 200
OFF_PRODUCER_PID = 208
OFF_DROPPED = 216
HEADER_SIZE = 256

# Stream states (low 8 bits of STREAM).
STATE_IDLE = 0
STATE_OPEN = 1
STATE_EOS = 2  # producer finished; frames up to WRITE are the end of the stream
STATE_ABORTED = 3  # producer gave up (error); the consumer fades out

MSG_LEN_BYTES = 4  # each record starts with a u32 payload length


def c_defines() -> str:
    """The constants above as C ``#define`` lines, for the cffi build script."""
    names = [n for n in globals() if n.isupper() and isinstance(globals()[n], int)]
    return "\n".join(f"#define JG_{n} {globals()[n]}ULL" for n in sorted(names)) + "\n"
