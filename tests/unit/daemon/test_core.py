"""EngineCore through the offline driver: the same per-block function JACK calls."""

from __future__ import annotations

import gc
import os
import sys
import uuid

import numpy as np
import pytest

from jackgen.bridge import schema as S
from jackgen.bridge.instance import InstanceRings
from jackgen.daemon.engine.blockcore import EngineCore, OfflineDriver

RATE = 48000
ODD_BLOCKS = [1, 33, 256, 4096]


@pytest.fixture
def rings():
    r = InstanceRings.create(f"t{os.getpid()}-{uuid.uuid4().hex[:6]}", 1 << 15)
    yield r
    r.close(unlink=True)


def make_core(rings, n=256, **kw) -> tuple[EngineCore, OfflineDriver]:
    core = EngineCore(rings.tracks, rings.commands, rings.events, RATE, n, **kw)
    return core, OfflineDriver(core, start_frame=10_000)


def events(rings) -> list[list]:
    out = []
    while (raw := rings.events.get()) is not None:
        out.append(S.unpack(raw))
    return out


def track_events(evs, t):
    return [(e[2], e[4]) for e in evs if e[0] == S.EVT_TRACK and e[1] == t]


def start_stream(rings, t, frames, at=0, end=False, epoch=1):
    """Producer side: put ``frames`` in track ``t``'s ring as stream ``epoch``; tell the engine to play it."""
    ring = rings.tracks[t]
    ring.begin_stream(epoch)
    ring.write(frames)
    if end:
        ring.end_stream()
    rings.commands.put(S.pack(S.CMD_PLAY, t, epoch, at, 0))
    return ring


def run(drv, blocks, n, track=None):
    tr, ms = [], []
    for _ in range(blocks):
        t, m = drv.run_block(n)
        if track is not None:
            tr.append(t[track].T.copy())
        ms.append(m.T.copy())
    return (np.concatenate(tr) if tr else None), np.concatenate(ms)


def noise(frames, seed=0, level=0.5):
    return np.random.default_rng(seed).uniform(-level, level, (frames, 2)).astype(np.float32)


@pytest.mark.parametrize("n", ODD_BLOCKS)
def test_scheduled_stream_comes_out_exactly_at_its_frame(rings, n):
    core, drv = make_core(rings, n)
    x = noise(9000, seed=n)
    at = drv.frame + 1234
    start_stream(rings, 2, x, at=at, end=True)
    lat = core.master.latency  # the mastering limiter's look-ahead: below its ceiling, a pure delay
    blocks = (1234 + 9000 + lat + 2 * n) // n + 1
    tr, ms = run(drv, blocks, n, track=2)
    k = 1234
    assert np.array_equal(tr[k : k + 9000], x), "track output differs from the stream"
    assert np.array_equal(ms[k + lat : k + lat + 9000], x), "master differs from the only playing track"
    assert not ms[: k + lat].any()
    assert not tr[:k].any() and not tr[k + 9000 :].any()
    evs = track_events(events(rings), 2)
    assert evs == [(S.TRACK_PLAYING, at), (S.TRACK_ENDED, at + 9000)]
    assert core.underruns == 0 and core.late_commands == 0


def test_gain_change_starts_at_the_next_block_and_is_smooth(rings):
    n = 256
    core, drv = make_core(rings, n, gain_smoothing_ms=10.0)
    start_stream(rings, 0, np.full((30000, 2), 0.5, np.float32))
    before, _ = run(drv, 4, n, track=0)
    assert np.allclose(before, 0.5)
    rings.commands.put(S.pack(S.CMD_GAIN, 0, -6.0))
    after, _ = run(drv, 8, n, track=0)
    target = 0.5 * 10 ** (-6 / 20)
    assert after[0, 0] < 0.5, "the change must begin in the first block after the command"
    smooth = int(0.010 * RATE)
    ramp_end = ((smooth + n - 1) // n) * n
    assert np.allclose(after[ramp_end:], target, atol=1e-6), "gain must settle exactly on target"
    steps = np.abs(np.diff(after[:, 0]))
    assert steps.max() < (0.5 - target) / 100, "gain ramp has zipper-sized steps"
    assert (np.diff(after[:ramp_end, 0]) <= 1e-7).all(), "ramp must be monotonic"


def test_mute_and_solo(rings):
    n = 128
    core, drv = make_core(rings, n, gain_smoothing_ms=2.0)
    for t, level in ((0, 0.25), (1, 0.125)):
        start_stream(rings, t, np.full((20000, 2), level, np.float32))
    _, m = run(drv, 2, n)
    assert np.allclose(m[-1], 0.375)
    rings.commands.put(S.pack(S.CMD_SOLO, 1, 1))
    _, m = run(drv, 4, n)
    assert np.allclose(m[-n:], 0.125), "solo must silence the other tracks"
    rings.commands.put(S.pack(S.CMD_MUTE, 1, 1))
    _, m = run(drv, 4, n)
    assert np.allclose(m[-n:], 0.0), "muted solo track is silent; others stay silenced by solo"
    rings.commands.put(S.pack(S.CMD_SOLO, 1, 0))
    _, m = run(drv, 4, n)
    assert np.allclose(m[-n:], 0.25)


def test_underrun_fades_out_counts_once_and_fades_back_in(rings):
    n = 256
    core, drv = make_core(rings, n, fade_ms=3.0)
    ring = start_stream(rings, 5, np.full((1000, 2), 0.5, np.float32))
    tr, _ = run(drv, 8, n, track=5)
    assert core.underruns == 1, "a dry spell of several blocks counts once"
    fade = core.fade_len
    assert np.allclose(tr[: 1000 - fade], 0.5)
    tail = tr[1000 - fade : 1000, 0]
    assert (np.diff(tail) < 0).all() and tail[-1] < 0.01, "the last frames fade to silence"
    assert not tr[1000:].any()
    ring.write(np.full((3000, 2), 0.5, np.float32))
    tr, _ = run(drv, 4, n, track=5)
    assert tr[0, 0] < 0.1 and np.allclose(tr[fade:], 0.5), "data coming back fades in"
    evs = track_events(events(rings), 5)
    assert [e[0] for e in evs] == [S.TRACK_PLAYING, S.TRACK_UNDERRUN, S.TRACK_RECOVERED]
    assert core.underruns == 1


def test_stop_fades_out_at_its_frame(rings):
    n = 256
    core, drv = make_core(rings, n)
    start_stream(rings, 0, np.full((20000, 2), 0.5, np.float32))
    run(drv, 2, n)
    stop_at = drv.frame + 300
    rings.commands.put(S.pack(S.CMD_STOP, 0, stop_at))
    start = drv.frame
    tr, _ = run(drv, 4, n, track=0)
    k = stop_at - start
    assert np.allclose(tr[:k], 0.5)
    fade = tr[k : k + core.fade_len, 0]
    assert (np.diff(fade) < 0).all()
    assert not tr[k + core.fade_len :].any()
    assert (S.TRACK_IDLE, stop_at + core.fade_len) in track_events(events(rings), 0)


def test_bad_commands_are_counted_and_the_engine_keeps_going(rings):
    core, drv = make_core(rings, 64)
    for bad in (b"\xc1garbage", S.pack(99, 0), S.pack(S.CMD_GAIN, 40, 0.0), S.pack(S.CMD_GAIN, 0, float("nan")),
                S.pack(S.CMD_PLAY, 0), S.pack("gain", 1, 2)):
        rings.commands.put(bad)
    rings.commands.put(S.pack(S.CMD_GAIN, 0, -120.0))
    drv.run_block(64)
    assert core.bad_commands == 6
    assert core.gain_db[0] == -120.0, "the good command after the bad ones is applied"
    errs = [e for e in events(rings) if e[0] == S.EVT_ERROR]
    assert len(errs) == 6


def test_commands_per_block_are_bounded(rings):
    core, drv = make_core(rings, 64, max_commands_per_block=8)
    for i in range(20):
        rings.commands.put(S.pack(S.CMD_PING, i))
    drv.run_block(64)
    assert rings.commands.pending() == 12
    drv.run_block(64)
    drv.run_block(64)
    assert rings.commands.pending() == 0
    pongs = [e[1] for e in events(rings) if e[0] == S.EVT_PONG]
    assert pongs == list(range(20))


def test_block_size_changes_mid_stream_keep_the_stream_exact(rings):
    core, drv = make_core(rings, 256)
    x = noise(20000, seed=7)
    start_stream(rings, 1, x, end=True)
    outs = []
    for n in [256] * 3 + [33] * 50 + [4096] * 3 + [1] * 100 + [512] * 20:
        t, _ = drv.run_block(n)
        outs.append(t[1].T.copy())
    y = np.concatenate(outs)
    assert np.array_equal(y[: len(x)], x)


def test_a_new_engine_resumes_a_stream_where_the_old_one_stopped(rings):
    x = noise(8192, seed=3)
    core, drv = make_core(rings, 256)
    start_stream(rings, 4, x, end=True)
    first, _ = run(drv, 10, 256, track=4)
    del core, drv  # the engine "crashes"; the rings (and their counters) live on
    core2, drv2 = make_core(rings, 256)
    rings.commands.put(S.pack(S.CMD_PLAY, 4, 1, 0, 1))  # control's replay after hello
    second, _ = run(drv2, 30, 256, track=4)
    assert np.array_equal(np.concatenate([first, second])[:8192], x)


def test_no_allocation_growth_over_100k_callbacks(rings):
    """Live Python memory stays flat while 16 tracks stream and commands arrive."""
    n = 64
    core, drv = make_core(rings, n)
    chunk = noise(4096, seed=1, level=0.05)
    for t in range(16):
        start_stream(rings, t, chunk)

    def blocks(count):
        for i in range(count):
            if i % 64 == 0:  # keep every ring fed
                for r in rings.tracks:
                    r.write(chunk[: r.space()])
            if i % 500 == 0:
                rings.commands.put(S.pack(S.CMD_GAIN, i % 16, -float(i % 12)))
            drv.run_block(n)
            while rings.events.get_view() is not None:
                pass

    # As the engine does: collect, then run with the GC off. A full collection
    # empties the interpreter's free lists (float, tuple, …), which refill once
    # (measured: +165 blocks in the first window, then flat), so warm up after it.
    gc.collect()
    gc.disable()
    try:
        blocks(20_000)
        before = sys.getallocatedblocks()
        blocks(100_000)
        after = sys.getallocatedblocks()
    finally:
        gc.enable()
    assert core.underruns == 0 and core.bad_commands == 0
    assert after - before < 64, f"live allocations grew by {after - before} blocks over 100k callbacks"


def test_frame_clock_wrap_helpers():
    from jackgen.bridge.schema import FRAME_MASK, frames_until, unwrap_frame

    assert frames_until(10, FRAME_MASK - 5) == 16
    assert frames_until(FRAME_MASK - 5, 10) == -16
    assert frames_until(500, 100) == 400
    assert unwrap_frame(10, FRAME_MASK - 5) == FRAME_MASK + 11
    assert unwrap_frame(FRAME_MASK - 5, (1 << 32) + 10) == FRAME_MASK - 5
    assert unwrap_frame(123, 5 * (1 << 32) + 100) == 5 * (1 << 32) + 123


def test_scheduling_across_the_32_bit_frame_wrap(rings):
    """JACK frame times wrap after 2^32 frames (24.85 h at 48 kHz): a start and a timed
    gain scheduled just past the wrap land exactly, not at once."""
    n = 256
    core = EngineCore(rings.tracks, rings.commands, rings.events, RATE, n, gain_smoothing_ms=0.0)
    start = (1 << 32) - 1000
    drv = OfflineDriver(core, start_frame=start)
    x = noise(4000, seed=11)
    at = (start + 1500) & ((1 << 32) - 1)  # = 500, after the wrap
    start_stream(rings, 3, x, at=at, end=True)
    rings.commands.put(S.pack(S.CMD_GAIN, 3, -120.0, (start + 3000) & ((1 << 32) - 1)))
    tr, _ = run(drv, 20, n, track=3)
    gain_block = (3000 // n) * n  # the timed gain ramps across the block that holds its frame
    assert not tr[:1500].any(), "must not start before its (wrapped) frame"
    assert np.array_equal(tr[1500:gain_block], x[: gain_block - 1500]), "starts exactly at the wrapped frame"
    assert not tr[gain_block + n :].any(), "the timed gain lands in its block, not at once nor never"
    assert tr[gain_block : gain_block + n].any() and core.late_commands == 0
    evs = track_events(events(rings), 3)
    assert evs[0] == (S.TRACK_PLAYING, at)


def _ramp(frames: int) -> np.ndarray:
    """A stereo stream whose sample k is (k + 1) · 1e-6: its value says which frame of it plays."""
    v = (np.arange(frames, dtype=np.float64) + 1) * 1e-6
    return np.repeat(v[:, None], 2, axis=1).astype(np.float32)


def _stream_index(out_row: np.ndarray, gain: float) -> np.ndarray:
    return np.rint(out_row / gain / 1e-6).astype(np.int64) - 1


def test_after_skipped_cycles_every_playing_stream_is_relocked_to_the_frame_clock(rings):
    """An xrun (JACK did not run us for two blocks): both tracks, started before and after it,
    play the frame of their stream that the frame clock says, never one block late."""
    n = 256
    core, drv = make_core(rings, n)
    f1 = drv.frame + 3 * n + 17
    start_stream(rings, 0, _ramp(1 << 14), at=f1)
    run(drv, 8, n)
    drv.frame += 2 * n  # two cycles JACK never ran (the frames went by)
    f2 = drv.frame + 5 * n + 101
    start_stream(rings, 1, _ramp(1 << 14), at=f2)
    got0, got1, frames = [], [], []
    for _ in range(12):
        frames.append(drv.frame)
        t, _ = drv.run_block(n)
        got0.append(t[0][0].copy())
        got1.append(t[1][0].copy())
    g = float(got0[0][0]) / ((frames[0] - f1 + 1) * 1e-6)  # the track's gain (pan law), from a sample
    for row, f0, start in ((np.concatenate(got0), frames[0], f1), (np.concatenate(got1), frames[0], f2)):
        fr = f0 + np.arange(row.size)
        playing = fr >= start + 200  # past the start's fade-in
        assert (_stream_index(row[playing], g) == (fr - start)[playing]).all()
    st = [e for e in events(rings) if e[0] == S.EVT_RELOCK]
    assert [(e[2], e[3]) for e in st] == [(2 * n, 1)]
    assert core.skipped_cycles == 1 and core.skipped_frames == 2 * n and core.relock_short == 0


def test_a_start_whose_frame_went_by_starts_where_it_would_be(rings):
    """A quantized start that arrives after its frame (the command was late, or cycles were
    skipped) starts that far into its stream: it lands on the grid, not late."""
    n = 256
    core, drv = make_core(rings, n)
    start = drv.frame - 300  # already 300 frames in the past
    start_stream(rings, 0, _ramp(1 << 14), at=start)
    f0 = drv.frame
    rows = [drv.run_block(n)[0][0][0].copy() for _ in range(4)]
    row = np.concatenate(rows)
    fr = f0 + np.arange(row.size)
    g = float(row[400]) / ((fr[400] - start + 1) * 1e-6)
    assert (_stream_index(row[200:], g) == (fr - start)[200:]).all()
    assert core.skipped_frames == 300
