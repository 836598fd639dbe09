from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jackgen.bridge import layout as L
from jackgen.bridge.instance import InstanceRings, pow2_at_least
from jackgen.bridge.ring import AudioRing, InstanceLock, MessageRing, RingError, pid_alive, ring_name


def _name(tag: str = "r") -> str:
    return f"jackgen.t{os.getpid()}-{uuid.uuid4().hex[:6]}.{tag}"


@pytest.fixture
def ring_factory():
    made = []

    def make(kind="audio", **kw):
        r = (AudioRing if kind == "audio" else MessageRing).create(_name(kind), **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.unlink()
        r.close()


@settings(max_examples=60, deadline=None)
@given(
    cap_pow=st.integers(2, 8),
    ops=st.lists(st.tuples(st.sampled_from(["w", "r"]), st.integers(0, 300)), min_size=1, max_size=60),
)
def test_audio_ring_matches_a_fifo_model(cap_pow, ops):
    """Any interleaving of partial writes and reads behaves like a bounded FIFO."""
    cap = 1 << cap_pow
    ring = AudioRing.create(_name(), capacity_frames=cap, channels=2)
    try:
        model: list[float] = []
        counter = 0
        for op, n in ops:
            if op == "w":
                frames = np.arange(counter, counter + n, dtype=np.float32).repeat(2).reshape(n, 2)
                frames[:, 1] *= -1
                w = ring.write(frames)
                assert w == min(n, cap - len(model))
                model.extend(range(counter, counter + w))
                counter += n
            else:
                got = ring.read(n)
                k = min(n, len(model))
                assert got.shape == (k, 2)
                assert got[:, 0].tolist() == model[:k]
                assert (got[:, 1] == -got[:, 0]).all()
                del model[:k]
            assert ring.available() == len(model)
            assert ring.space() == cap - len(model)
            assert ring.write_count - ring.read_count == len(model)
    finally:
        ring.unlink()
        ring.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.binary(min_size=0, max_size=60), st.none()), max_size=80))
def test_message_ring_matches_a_queue_model(ops):
    ring = MessageRing.create(_name("m"), capacity_records=8, record_size=64)
    try:
        model: list[bytes] = []
        dropped = 0
        for op in ops:
            if op is None:
                got = ring.get()
                assert got == (model.pop(0) if model else None)
            else:
                ok = ring.put(op)
                assert ok == (len(model) < 8)
                if ok:
                    model.append(op)
                else:
                    dropped += 1
        assert ring.dropped == dropped
    finally:
        ring.unlink()
        ring.close()


def test_message_too_large_is_refused(ring_factory):
    ring = ring_factory("m", capacity_records=4, record_size=16)
    with pytest.raises(ValueError, match="exceeds the record size"):
        ring.put(b"x" * 13)
    assert ring.put(b"x" * 12)


def test_capacity_must_be_a_power_of_two():
    with pytest.raises(RingError, match="power of two"):
        AudioRing.create(_name(), capacity_frames=1000)
    assert pow2_at_least(1000) == 1024 and pow2_at_least(1024) == 1024


def test_attach_sees_the_same_memory_and_validates_the_header(ring_factory):
    ring = ring_factory(capacity_frames=64, channels=2, sample_rate=48000)
    other = AudioRing.attach(ring.name)
    try:
        assert other.capacity == 64 and other.channels == 2 and other.sample_rate == 48000
        ring.write(np.ones((10, 2), np.float32))
        assert other.available() == 10
        with pytest.raises(RingError, match="not a jackgen ring"):
            MessageRing.attach(ring.name)  # wrong kind
    finally:
        other.close()
    with pytest.raises(RingError, match="does not exist"):
        AudioRing.attach(_name("missing"))
    with pytest.raises(RingError, match="already exists"):
        AudioRing.create(ring.name)


def test_new_stream_skips_the_tail_of_the_old_one(ring_factory):
    ring = ring_factory(capacity_frames=64)
    ring.begin_stream(1)
    ring.write(np.full((20, 2), 1.0, np.float32))
    start = ring.begin_stream(2)
    ring.write(np.full((5, 2), 2.0, np.float32))
    assert ring.stream_word() >> 8 == 2 and ring.stream_word() & 0xFF == L.STATE_OPEN
    ring.skip_to(ring.stream_start())
    assert start == 20
    assert (ring.read(10) == 2.0).all()
    ring.end_stream()
    assert ring.stream_word() == (2 << 8) | L.STATE_EOS


def _producer_forever(name: str) -> None:  # pragma: no cover - runs in a child
    ring = AudioRing.attach(name)
    ring.begin_stream(7)
    while True:
        ring.write(np.zeros((16, 2), np.float32))
        time.sleep(0.001)


def test_killed_producer_is_detected(ring_factory):
    ring = ring_factory(capacity_frames=1024)
    code = f"import sys; sys.path[:0] = {sys.path!r}; from tests.unit.bridge.test_ring import _producer_forever; _producer_forever({ring.name!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=os.path.dirname(__file__) + "/../../..")
    try:
        deadline = time.monotonic() + 10
        while ring.stream_word() >> 8 != 7:
            assert time.monotonic() < deadline, "producer never began its stream"
            time.sleep(0.01)
        assert ring.producer_pid() == proc.pid and ring.producer_alive()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not pid_alive(proc.pid)
        assert not ring.producer_alive()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stale_segments_are_reclaimed_and_a_live_instance_is_refused():
    inst = f"t{os.getpid()}-{uuid.uuid4().hex[:6]}"
    # a "crashed" run: segments exist, nobody holds the lock
    rings = InstanceRings.create(inst, 1024)
    rings.close(unlink=False)
    lock = InstanceLock(inst)
    lock.acquire()
    try:
        removed = lock.reclaim_stale()
        assert ring_name(inst, "cmd") in removed and len(removed) == 18
        fresh = InstanceRings.create(inst, 1024)  # would raise "already exists" if not reclaimed
        with pytest.raises(RingError, match="already running"):
            InstanceLock(inst).acquire()
        fresh.close(unlink=True)
    finally:
        lock.release()
