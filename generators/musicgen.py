"""The MusicGen backend (audiocraft), streamed: the first audio comes after a fraction of a second.

Weights load once per worker through audiocraft's own loader
(``MusicGen.get_pretrained``): a name (``small``, ``medium``, ``large``,
``melody`` or ``facebook/musicgen-…``) resolves in the Hugging Face cache, a
folder must hold audiocraft's exported ``state_dict.bin`` and
``compression_state_dict.bin``. CUDA with fp16 (or bf16) autocast when a GPU is
there, float32 on the CPU.

bpm and key are folded into the text prompt ("…, 120 bpm, in A minor"): MusicGen
has no other way to hear them. ``random_checkpoint`` writes a random-weight
model in audiocraft's checkpoint layout (tests and benchmarks: no downloads).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jackgen.dsp.convert import StreamResampler
from jackgen.generators.base import Backend, TakeContext
from jackgen.generators.job import JobError, JobSpec
from jackgen.generators.prompt import Interpretation, interpret_spec
from jackgen.generators.vocab import GENRES

log = logging.getLogger("jackgen.musicgen")

MODEL_IDS = {"small": "facebook/musicgen-small", "medium": "facebook/musicgen-medium",
             "large": "facebook/musicgen-large", "melody": "facebook/musicgen-melody"}
INSTALL_HINT = ("MusicGen needs the optional musicgen extra (torch 2.11, torchaudio 2.11, audiocraft 1.3.0): "
                "run `make setup-musicgen` (or scripts/setup.sh --musicgen)")


def prompt_text(spec: JobSpec, it: Interpretation | None = None) -> str:
    """The text MusicGen is conditioned on: the prompt, then what was asked or read from it, spelled out
    ('dnb roller F#m' → 'dnb roller F#m, drum and bass, in F# minor'); genre defaults are not added."""
    it = it or interpret_spec(spec)
    parts = [spec.prompt] if spec.prompt else []
    if it.source["genre"] != "default":
        parts.append(GENRES[it.genre].title)
    if it.source["bpm"] != "default":
        parts.append(f"{it.bpm:g} bpm")
    if it.source["key"] != "default":
        parts.append(f"in {it.key}")
    return ", ".join(parts)


def resolve_device(device: str) -> str:
    import torch

    if device in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"musicgen_device is {device!r} but torch sees no CUDA GPU")
    return device


def load_model(name: str, device: str, cache_dir: str | None = None):
    """audiocraft's loader, for a model name or a checkpoint folder."""
    from audiocraft.models import MusicGen

    if cache_dir:
        os.environ.setdefault("HF_HOME", cache_dir)
        os.environ.setdefault("AUDIOCRAFT_CACHE_DIR", cache_dir)
    ident = MODEL_IDS.get(name, name)
    p = Path(name).expanduser()
    if p.exists():
        for f in ("state_dict.bin", "compression_state_dict.bin"):
            if not (p / f).is_file():
                raise FileNotFoundError(f"MusicGen checkpoint folder {p} has no {f} (audiocraft's export layout)")
        ident = str(p.resolve())
    try:
        return MusicGen.get_pretrained(ident, device=device)
    except Exception as e:
        if "offline" in str(e).lower() or "connect" in str(e).lower() or "LocalEntryNotFound" in type(e).__name__:
            raise RuntimeError(f"MusicGen weights {ident!r} are not in the Hugging Face cache and cannot be "
                               f"downloaded from here: copy them into the cache or set "
                               f"generators.musicgen_model to a checkpoint folder ({e})") from None
        raise


class MusicGenBackend(Backend):
    name = "musicgen"

    def __init__(self, model: str = "small", device: str = "auto", dtype: str = "auto", chunk_s: float = 0.5,
                 first_chunk_s: float = 0.25, cache_dir: str | None = None, loaded=None) -> None:
        self.model_name = model
        self.device_pref = device
        self.dtype_pref = dtype
        self.chunk_s = chunk_s
        self.first_chunk_s = first_chunk_s
        self.cache_dir = cache_dir
        self.model = loaded
        self.device = "cpu"
        self.dtype = "float32"
        self.load_s = 0.0

    def load(self) -> None:
        t0 = time.perf_counter()
        try:
            import torch  # noqa: F401
            from audiocraft.models import MusicGen  # noqa: F401
        except ImportError as e:
            raise RuntimeError(f"{INSTALL_HINT} ({e})") from None
        import torch
        from audiocraft.utils.autocast import TorchAutocast

        if self.model is None:
            self.device = resolve_device(self.device_pref)
            self.model = load_model(self.model_name, self.device, self.cache_dir)
        self.device = str(next(iter(self.model.lm.parameters())).device)
        if self.device.startswith("cuda"):
            want = self.dtype_pref if self.dtype_pref != "auto" else "float16"
            self.dtype = want
            if want != "float32":
                self.model.autocast = TorchAutocast(enabled=True, device_type="cuda", dtype=getattr(torch, want))
        else:
            self.dtype = "float32"
        self.load_s = time.perf_counter() - t0
        log.info("MusicGen %s loaded on %s (%s) in %.1f s", self.model_name, self.device, self.dtype, self.load_s)

    def describe(self) -> dict:
        m = self.model
        def num(v):
            return None if v is None else float(v)

        return {"backend": self.name, "model": self.model_name, "device": self.device, "dtype": self.dtype,
                "model_sample_rate": num(getattr(m, "sample_rate", None)),
                "frame_rate": num(getattr(m, "frame_rate", None)),
                "max_duration_s": num(getattr(m, "max_duration", None)), "load_s": round(self.load_s, 3)}

    def stream(self, spec: JobSpec, should_stop=lambda: False, melody: np.ndarray | None = None,
               melody_rate: int = 0) -> Iterator[np.ndarray]:
        """Yield [B, C, n] float32 audio at the model's rate, B = variations, as it decodes."""
        import torch

        from jackgen.generators.mgstream import StreamingDecoder, stream_tokens

        m = self.model
        m.set_generation_params(use_sampling=True, top_k=spec.top_k, top_p=spec.top_p,
                                temperature=spec.temperature, duration=spec.duration_s, cfg_coef=spec.cfg_coef,
                                extend_stride=min(18.0, m.max_duration / 2))
        torch.manual_seed(int(spec.seed or 0))
        descriptions = [prompt_text(spec)] * spec.variations
        melody_wavs = None
        if melody is not None:
            if "self_wav" not in m.lm.condition_provider.conditioners:
                raise JobError(f"model {self.model_name} takes no melody: use musicgen_model = \"melody\"")
            w = torch.from_numpy(np.ascontiguousarray(melody.T)).float().to(m.device)
            from audiocraft.data.audio_utils import convert_audio

            w = convert_audio(w, melody_rate, m.sample_rate, m.audio_channels)
            melody_wavs = [w] * spec.variations
        with torch.no_grad():
            attributes, prompt_tokens = m._prepare_tokens_and_attributes(descriptions, None, melody_wavs)
            decoder = StreamingDecoder(m.compression_model)
            first = max(1, int(round(self.first_chunk_s * m.frame_rate)))
            every = max(1, int(round(self.chunk_s * m.frame_rate)))
            pending: list[torch.Tensor] = []
            n_pending = 0
            sent = 0
            for codes in stream_tokens(m, attributes, prompt_tokens, should_stop):
                pending.append(codes)
                n_pending += codes.shape[-1]
                if n_pending >= (first if sent == 0 else every):
                    audio = decoder.push(torch.cat(pending, dim=-1))
                    pending, n_pending = [], 0
                    sent += 1
                    if audio.shape[-1]:
                        yield audio.float().cpu().numpy()
                if should_stop():
                    return
            if pending:
                audio = decoder.push(torch.cat(pending, dim=-1))
                if audio.shape[-1]:
                    yield audio.float().cpu().numpy()
            tail = decoder.flush()
            if tail is not None and tail.shape[-1]:
                yield tail.float().cpu().numpy()

    def generate(self, spec: JobSpec, ctx: TakeContext) -> Iterator[tuple[int, np.ndarray]]:
        m = self.model
        melody = None
        rate_in = 0
        if spec.melody:
            import soundfile as sf

            melody, rate_in = sf.read(str(ctx.allowed(spec.melody, "melody file")), dtype="float32", always_2d=True)
        it = interpret_spec(spec)
        ctx.info.update({"prompt_text": prompt_text(spec, it), "interpreted": it.to_dict(), "top_k": spec.top_k,
                         "top_p": spec.top_p, "temperature": spec.temperature, "cfg_coef": spec.cfg_coef})
        if spec.variations > 1:
            # One batch from one random generator: take k is reproduced by the same seed and
            # batch size, not by seed+k alone, so each take records the batch's seed.
            ctx.info["seeds"] = [int(spec.seed or 0)] * spec.variations
            ctx.info["batch_size"] = spec.variations
        resamplers = [StreamResampler(int(m.sample_rate), ctx.rate) for _ in range(spec.variations)]
        total = spec.duration_s * m.sample_rate
        done = 0
        for audio in self.stream(spec, ctx.should_stop, melody, rate_in):
            done += audio.shape[-1]
            for k in range(audio.shape[0]):
                x = audio[k].T  # (n, C)
                x = np.repeat(x, 2, axis=1) if x.shape[1] == 1 else x[:, :2]
                y = resamplers[k].process(np.ascontiguousarray(x, dtype=np.float32))
                if y.shape[0]:
                    yield k, y
            ctx.progress(min(0.999, done / total))
        for k, rs in enumerate(resamplers):
            y = rs.process(np.zeros((0, 2), np.float32), last=True)
            if y.shape[0]:
                yield k, y


# ---------------------------------------------------------------------------- random checkpoints

SHAPES = {
    # a model that runs generate() on a CPU in well under a second (tests)
    "tiny": {"dim": 32, "num_heads": 2, "num_layers": 2, "card": 256, "n_q": 4, "lut_bins": 64,
             "n_filters": 4, "codec_dim": 16, "ratios": [8, 5, 4, 4], "sample_rate": 32000},
    # musicgen-small's real shape: 24 layers, dim 1024, 16 heads, 2048 cards, 4 codebooks, 32 kHz at 50 Hz
    "small": {"dim": 1024, "num_heads": 16, "num_layers": 24, "card": 2048, "n_q": 4, "lut_bins": 1024,
              "n_filters": 64, "codec_dim": 128, "ratios": [8, 5, 4, 4], "sample_rate": 32000},
}


def checkpoint_configs(shape: str = "tiny", segment_s: float = 30.0) -> tuple[dict, dict]:
    """(lm cfg, compression cfg) in audiocraft's config schema. The text conditioner is a
    lookup table with the ``noop`` tokenizer (T5 would need a download); the codec is
    SEANet as MusicGen's real one is built: non-causal, 2-layer LSTM, reflect padding."""
    s = SHAPES[shape]
    lm = {
        "lm_model": "transformer_lm", "device": "cpu", "dtype": "float32",
        "transformer_lm": {"n_q": s["n_q"], "card": s["card"], "dim": s["dim"], "num_heads": s["num_heads"],
                           "num_layers": s["num_layers"], "hidden_scale": 4, "norm": "layer_norm",
                           "norm_first": True, "bias_proj": False, "bias_ff": False, "bias_attn": False,
                           "past_context": None, "causal": True, "custom": False, "memory_efficient": False,
                           "attention_as_float32": False, "layer_scale": None, "positional_embedding": "sin",
                           "xpos": False, "checkpointing": "none", "weight_init": "gaussian",
                           "depthwise_init": "current", "zero_bias_init": True, "emb_lr": None,
                           "q_modeling": None, "activation": "gelu"},
        "codebooks_pattern": {"modeling": "delay", "delay": {"delays": list(range(s["n_q"])), "flatten_first": 0,
                                                             "empty_initial": 0}},
        "classifier_free_guidance": {"training_dropout": 0.0, "inference_coef": 3.0},
        "attribute_dropout": {},
        "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1, "sum": [],
                  "prepend": [], "cross": ["description"], "input_interpolate": []},
        "conditioners": {"description": {"model": "lut", "lut": {"n_bins": s["lut_bins"], "dim": s["dim"],
                                                                 "tokenizer": "noop"}}},
        "dataset": {"segment_duration": segment_s},
    }
    codec = {
        "compression_model": "encodec", "device": "cpu", "dtype": "float32", "sample_rate": s["sample_rate"],
        "channels": 1,
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": s["sample_rate"], "channels": 1,
                    "causal": False, "renormalize": False},
        "seanet": {"dimension": s["codec_dim"], "channels": 1, "causal": False, "n_filters": s["n_filters"],
                   "n_residual_layers": 1, "ratios": s["ratios"], "activation": "ELU",
                   "activation_params": {"alpha": 1.0}, "norm": "weight_norm", "norm_params": {},
                   "kernel_size": 7, "last_kernel_size": 7, "residual_kernel_size": 3, "dilation_base": 2,
                   "pad_mode": "reflect", "true_skip": True, "compress": 2, "lstm": 2,
                   "disable_norm_outer_blocks": 0, "encoder": {}, "decoder": {"trim_right_ratio": 1.0}},
        "rvq": {"n_q": s["n_q"], "q_dropout": False, "bins": s["card"], "decay": 0.99, "kmeans_init": False,
                "kmeans_iters": 1, "threshold_ema_dead_code": 2, "orthogonal_reg_weight": 0.0,
                "orthogonal_reg_active_codes_only": False, "orthogonal_reg_max_codes": None},
    }
    return lm, codec


def random_model(shape: str = "tiny", seed: int = 0, device: str = "cpu", segment_s: float = 30.0):
    """(lm, codec, lm cfg, codec cfg): a random-weight MusicGen of ``shape``, built in code."""
    import torch
    from audiocraft.models import builders
    from omegaconf import OmegaConf

    lm_cfg, codec_cfg = checkpoint_configs(shape, segment_s)
    lm_cfg["device"] = codec_cfg["device"] = device
    lm_cfg["dtype"] = "float16" if device.startswith("cuda") else "float32"
    torch.manual_seed(seed)
    lm = builders.get_lm_model(OmegaConf.create(lm_cfg)).eval()
    codec = builders.get_compression_model(OmegaConf.create(codec_cfg)).eval()
    for p in codec.quantizer.parameters():  # random codebooks (no k-means on data)
        p.data.normal_()
    for name, buf in codec.quantizer.named_buffers():
        if name.endswith("embed"):
            buf.normal_()
        elif name.endswith("inited"):
            buf.fill_(1.0)
    return lm, codec, lm_cfg, codec_cfg


def random_checkpoint(folder: str | os.PathLike[str], shape: str = "tiny", seed: int = 0,
                      segment_s: float = 30.0) -> Path:
    """A random-weight MusicGen saved as audiocraft exports real ones: ``state_dict.bin`` and
    ``compression_state_dict.bin``, each with ``xp.cfg`` (YAML) and ``best_state``."""
    import torch
    from omegaconf import OmegaConf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lm, codec, lm_cfg, codec_cfg = random_model(shape, seed, "cpu", segment_s)
    for obj, cfg, name in ((lm, lm_cfg, "state_dict.bin"), (codec, codec_cfg, "compression_state_dict.bin")):
        torch.save({"xp.cfg": OmegaConf.to_yaml(OmegaConf.create(cfg)), "best_state": obj.state_dict(),
                    "exported": True, "version": "jackgen-random"}, folder / name)
    return folder
