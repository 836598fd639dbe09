"""Two processes stream 10^8 samples through a small ring: nothing torn, lost or reordered.

Each stereo frame carries its sequence number split across the channels (low
and high 16 bits, exact in float32). Chunk sizes are random on both sides so the
ring wraps at every possible position and partial reads/writes are the norm.
On x86-64 this checks the counter arithmetic and wraparound; the release/acquire
ordering it also relies on is what the C helper provides on aarch64.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import uuid

import numpy as np

from jackgen.bridge.ring import AudioRing

TOTAL_SAMPLES = 100_000_000
CHANNELS = 2
TOTAL_FRAMES = TOTAL_SAMPLES // CHANNELS
CAPACITY = 1 << 14


def _frames(start: int, n: int) -> np.ndarray:
    seq = np.arange(start, start + n, dtype=np.int64)
    out = np.empty((n, 2), dtype=np.float32)
    out[:, 0] = seq & 0xFFFF
    out[:, 1] = seq >> 16
    return out


def _producer(name: str, seed: int) -> None:  # runs in a child process
    ring = AudioRing.attach(name)
    rng = np.random.default_rng(seed)
    ring.begin_stream(1)
    sent = 0
    while sent < TOTAL_FRAMES:
        n = min(int(rng.integers(1, 12_000)), TOTAL_FRAMES - sent)
        chunk = _frames(sent, n)
        done = 0
        while done < n:
            w = ring.write(chunk[done:])
            done += w
            if w == 0:
                time.sleep(0)
        sent += n
    ring.end_stream()
    ring.close()


def test_two_process_stream_of_1e8_samples_is_intact():
    name = f"jackgen.t{os.getpid()}-{uuid.uuid4().hex[:6]}.stress"
    ring = AudioRing.create(name, capacity_frames=CAPACITY, channels=CHANNELS)
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=_producer, args=(name, 1234), daemon=True)
    rng = np.random.default_rng(99)
    buf = np.empty((12_000, 2), dtype=np.float32)
    from jackgen.bridge._ringc import ffi

    ptr = ffi.cast("float *", ffi.from_buffer(buf))
    received = 0
    errors = 0
    t0 = time.monotonic()
    try:
        proc.start()
        while received < TOTAL_FRAMES:
            assert time.monotonic() - t0 < 240, f"stalled at frame {received}"
            want = int(rng.integers(1, 12_000))
            n = ring.read_into(ptr, want)
            if n == 0:
                assert proc.is_alive() or ring.available(), "producer died early"
                time.sleep(0)
                continue
            got = buf[:n]
            seq = got[:, 0].astype(np.int64) + (got[:, 1].astype(np.int64) << 16)
            expected = np.arange(received, received + n, dtype=np.int64)
            errors += int(np.count_nonzero(seq != expected))
            assert errors == 0, f"torn/lost/reordered data at frame {received}"
            received += n
        proc.join(30)
        assert proc.exitcode == 0
        assert ring.available() == 0
        assert ring.read_count == TOTAL_FRAMES == ring.write_count
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        ring.unlink()
        ring.close()
    assert received * CHANNELS == TOTAL_SAMPLES
