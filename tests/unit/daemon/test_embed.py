"""jackgen's numpy MiniLM against sentence-transformers' own vectors, and the weights check."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from jackgen.daemon.library.embed import EmbeddingUnavailable, Embedder, model_dir

TEXTS = ["dark trap beat with heavy 808s at 140 bpm", "boom bap", "a",
         "liquid drum and bass with rolling breaks, warm pads and a long intro " * 6,  # past 256 tokens: truncated
         "Ünïcödé — lo-fi 🎹 beat", ""]


def test_the_numpy_runtime_gives_sentence_transformers_vectors():
    st = pytest.importorskip("sentence_transformers")  # installed by the test setup (scripts/setup.sh --musicgen)
    ours = Embedder().embed(TEXTS)
    ref = st.SentenceTransformer(str(model_dir()), device="cpu").encode(TEXTS, normalize_embeddings=True)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    cos = (ours * ref).sum(1)
    assert cos.min() > 0.99999, cos
    assert np.abs(ours - ref).max() < 1e-3  # GELU in its tanh form (embed.py says why)
    # one at a time equals in a batch (padding never leaks into the mean)
    assert np.allclose(Embedder().embed([TEXTS[1]])[0], ours[1], atol=1e-5)


def test_weights_that_are_not_the_published_ones_are_refused(tmp_path):
    d = tmp_path / "model"
    shutil.copytree(model_dir(), d, ignore=shutil.ignore_patterns("model.safetensors"))
    (d / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(EmbeddingUnavailable, match="not the published"):
        Embedder(d)
    (d / "model.safetensors").unlink()
    with pytest.raises(EmbeddingUnavailable, match="missing"):
        Embedder(d)
