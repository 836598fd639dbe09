"""MusicGen streaming against audiocraft's own generate(), with a tiny random-weight model.

The model is built in code and saved in audiocraft's checkpoint layout, then
loaded back through ``MusicGen.get_pretrained`` — the loader real weights use.
Its codec is SEANet as MusicGen's real one is (non-causal, 2-layer LSTM).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jackgen.generators.backends import TakeContext
from jackgen.generators.job import JobSpec
from jackgen.generators.mgstream import StreamingDecoder
from jackgen.generators.musicgen import MusicGenBackend, prompt_text, random_checkpoint


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("mg") / "tiny", "tiny", seed=1)


@pytest.fixture(scope="module")
def backend(tiny_dir):
    b = MusicGenBackend(model=str(tiny_dir), device="cpu", chunk_s=0.2, first_chunk_s=0.1)
    b.load()
    b.model.max_duration = 1.0  # so a 2.3 s job exercises windowed continuation, as 30 s+ jobs do on real models
    return b


def stock(b: MusicGenBackend, spec: JobSpec) -> np.ndarray:
    m = b.model
    m.set_generation_params(use_sampling=True, top_k=spec.top_k, top_p=spec.top_p, temperature=spec.temperature,
                            duration=spec.duration_s, cfg_coef=spec.cfg_coef, extend_stride=m.max_duration / 2)
    torch.manual_seed(spec.seed)
    return m.generate([prompt_text(spec)] * spec.variations).numpy()


def test_checkpoint_loads_through_audiocrafts_loader(tiny_dir, backend):
    saved = torch.load(tiny_dir / "state_dict.bin", weights_only=True)["best_state"]
    live = backend.model.lm.state_dict()
    assert saved.keys() == live.keys()
    assert all(torch.equal(saved[k], live[k]) for k in saved)
    d = backend.describe()
    assert d["device"] == "cpu" and d["model_sample_rate"] == 32000 and d["frame_rate"] == 50
    import json

    json.dumps(d)  # travels as JSON from the worker
    assert d["max_duration_s"] == 1.0


@pytest.mark.parametrize("duration,variations", [(0.9, 1), (2.3, 2)])  # 2.3 s > max 1 s: windowed continuation
def test_streamed_audio_equals_stock_generate(backend, duration, variations):
    spec = JobSpec.from_dict({"prompt": "warm synth arpeggio", "duration": duration, "seed": 1234,
                              "variations": variations, "bpm": 100, "key": "C minor", "backend": "musicgen"})
    chunks = list(backend.stream(spec))
    ref = stock(backend, spec)
    got = np.concatenate(chunks, axis=-1)
    assert len(chunks) >= 4  # it streamed: audio came in pieces while tokens were still being made
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert np.abs(got - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
    # no step at the joins: each join's sample-to-sample change is like the rest of the signal
    joins = np.cumsum([c.shape[-1] for c in chunks])[:-1]
    jumps = np.abs(np.diff(got, axis=-1))
    assert jumps[..., joins - 1].max() <= jumps.max()
    assert np.allclose(got[..., joins], ref[..., joins], atol=1e-4)


def test_cancel_stops_within_one_chunk(backend):
    spec = JobSpec.from_dict({"prompt": "x", "duration": 3.0, "seed": 5, "backend": "musicgen"})
    stop = {"now": False}
    seen = 0
    for _ in backend.stream(spec, should_stop=lambda: stop["now"]):
        seen += 1
        if seen == 2:
            stop["now"] = True
    assert seen == 2


def test_backend_yields_stereo_at_the_engine_rate(backend, tmp_path):
    spec = JobSpec.from_dict({"prompt": "x", "duration": 1.0, "seed": 3, "backend": "musicgen"})
    ctx = TakeContext(48000, tmp_path, ["t"])
    out = [c for _, c in backend.generate(spec, ctx)]
    audio = np.concatenate(out)
    assert audio.shape[1] == 2 and audio.dtype == np.float32
    assert abs(audio.shape[0] - 48000) <= 2
    assert np.array_equal(audio[:, 0], audio[:, 1])  # mono model, both channels
    assert ctx.info["prompt_text"] == "x"


def test_streaming_decoder_matches_transformers_encodec():
    """Real MusicGen checkpoints load their codec as transformers' EncodecModel."""
    from transformers import EncodecConfig, EncodecModel

    from audiocraft.models.encodec import HFEncodecCompressionModel

    cfg = EncodecConfig(sampling_rate=32000, audio_channels=1, num_filters=4, hidden_size=16, num_lstm_layers=2,
                        upsampling_ratios=[8, 5, 4, 4], codebook_size=2048, target_bandwidths=[2.2],
                        use_causal_conv=False, pad_mode="reflect", norm_type="weight_norm", codebook_dim=16)
    torch.manual_seed(0)
    hf = EncodecModel(cfg).eval()
    cm = HFEncodecCompressionModel(hf).eval()
    codes = torch.randint(0, 2048, (2, cm.num_codebooks, 57))
    with torch.no_grad():
        ref = cm.decode(codes)
    dec = StreamingDecoder(cm)
    parts, i = [], 0
    for n in (1, 3, 7, 2, 11, 33):
        parts.append(dec.push(codes[..., i:i + n]))
        i += n
    parts.append(dec.flush())
    got = torch.cat([p for p in parts if p is not None], dim=-1)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-5)


def test_weights_that_are_not_there_say_so(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no state_dict.bin"):
        MusicGenBackend(model=str(tmp_path / "empty"), device="cpu").load()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("AUDIOCRAFT_CACHE_DIR", str(tmp_path / "hf"))
    with pytest.raises(RuntimeError, match="not in the Hugging Face cache"):
        MusicGenBackend(model="small", device="cpu").load()


def test_batched_variations_record_the_batch_seed(backend, tmp_path):
    spec = JobSpec.from_dict({"prompt": "x", "duration": 0.5, "seed": 77, "variations": 2, "backend": "musicgen"})
    ctx = TakeContext(48000, tmp_path, ["a", "b"])
    takes = {0: [], 1: []}
    for k, c in backend.generate(spec, ctx):
        takes[k].append(c)
    a, b = (np.concatenate(takes[k]) for k in (0, 1))
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert ctx.info["seeds"] == [77, 77] and ctx.info["batch_size"] == 2


def test_prompt_text_folds_in_what_was_asked_or_read():
    assert prompt_text(JobSpec.from_dict({"prompt": "dnb roller F#m", "backend": "musicgen"})) == \
        "dnb roller F#m, drum and bass, in F# minor"
    spec = JobSpec.from_dict({"prompt": "dreamy synth", "bpm": 90, "style": "boom-bap", "backend": "musicgen"})
    assert prompt_text(spec) == "dreamy synth, boom bap hip hop, 90 bpm"  # the genre's default key is not added
