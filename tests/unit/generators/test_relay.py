"""The relay's reading of a remote stream, with a real redis-server: order, gaps filled with silence
and counted, forged and truncated entries skipped and counted, never a crash; and a take upload landed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import redis

from jackgen.bridge.jobqueue import Keys
from jackgen.generators.relay import Lander, RelayError, encode_chunk, relay_chunks, send_take


def test_gaps_become_counted_silence_and_bad_entries_are_skipped(redis_server):
    r = redis.Redis.from_url(redis_server.url)
    key = "jackgen:t:audio:j:1"
    rng = np.random.default_rng(1)
    chunks = [rng.standard_normal((100, 2)).astype(np.float32) for _ in range(4)]
    r.xadd(key, encode_chunk(0, chunks[0], 48000))
    # chunk 1 (frames 100-199) is dropped on purpose
    r.xadd(key, encode_chunk(200, chunks[2], 48000))
    r.xadd(key, {"pos": 300, "frames": 100, "rate": 48000, "ch": 2, "data": b"\x00" * 7})  # truncated
    r.xadd(key, {"pos": "x"})  # forged
    r.xadd(key, {**encode_chunk(300, chunks[3], 48000), "rate": 44100})  # not this stream's rate
    r.xadd(key, {"pos": 10**12, "frames": 1, "rate": 48000, "ch": 2, "data": b"\x00" * 8})  # absurd jump
    r.xadd(key, encode_chunk(300, chunks[3], 48000))
    r.xadd(key, encode_chunk(350, chunks[3], 48000))  # overlaps the last one: only the new half counts
    r.xadd(key, {"eos": 1})
    counters: dict = {}
    out = list(relay_chunks(r, key, 48000, counters, lambda: False))
    assert out[-1][1] is True
    audio = np.concatenate([a for a, _ in out])
    want = np.concatenate([chunks[0], np.zeros((100, 2), np.float32), chunks[2], chunks[3], chunks[3][50:]])
    assert np.array_equal(audio, want)
    assert counters == {"gaps": 1, "gap_frames": 100, "bad": 4}


def test_a_stream_that_stops_coming_ends_as_an_error(redis_server):
    r = redis.Redis.from_url(redis_server.url)
    key = "jackgen:t:audio:j:2"
    r.xadd(key, encode_chunk(0, np.zeros((10, 2), np.float32), 48000))
    with pytest.raises(RelayError, match="sent nothing"):
        list(relay_chunks(r, key, 48000, {}, lambda: False, stall_s=0.3))


def test_an_uploaded_take_lands_whole_or_not_at_all(redis_server, tmp_path):
    r = redis.Redis.from_url(redis_server.url)
    keys = Keys("t")
    src = tmp_path / "remote" / "20261201-000000-abcdef.wav"
    src.parent.mkdir()
    src.write_bytes(np.random.default_rng(2).bytes(3 * (1 << 20) + 17))  # four pieces
    lander = Lander(r, keys, str(tmp_path / "sessions"))
    key = send_take(r, keys, "20261201-000000-abcdef", 1, "s", src, {"seed": 7})
    entry = r.xrange(keys.prefix + "landing")[-1][1]
    lander.land({k.decode(): v.decode() for k, v in entry.items()})
    out = tmp_path / "sessions" / "s" / "audio_gen" / src.name
    assert out.read_bytes() == src.read_bytes()
    assert json.loads(out.with_suffix(".json").read_text()) == {"seed": 7}
    assert r.hget(keys.job("20261201-000000-abcdef"), "landed:20261201-000000-abcdef").decode() == str(out)
    assert not r.exists(key)
    # a damaged upload never takes the final name; a forged announcement is refused
    src2 = src.with_name("20261201-000000-bbbbbb.wav")
    src2.write_bytes(src.read_bytes())
    send_take(r, keys, "20261201-000000-bbbbbb", 1, "s", src2, {})
    bad_key = keys.prefix + "take:20261201-000000-bbbbbb:20261201-000000-bbbbbb"
    first = r.xrange(bad_key)[0][0]
    r.xdel(bad_key, first)
    with pytest.raises(RelayError):
        lander.land({"job": "20261201-000000-bbbbbb", "take": "20261201-000000-bbbbbb",
                     "file": "20261201-000000-bbbbbb.wav", "session": "s", "key": bad_key, "fence": "1"})
    assert not (out.parent / "20261201-000000-bbbbbb.wav").exists()
    with pytest.raises(RelayError, match="no valid"):
        lander.land({"job": "x", "take": "../../etc", "file": "passwd", "session": "..", "key": "k"})
