"""Streaming MusicGen: tokens as the language model makes them, audio as the codec can decode it.

Imports torch and audiocraft: only the musicgen worker loads this module.

``stream_tokens`` is audiocraft's generation with the loop opened up. It follows
``MusicGen._generate_tokens`` (windowed continuation beyond ``max_duration``) and
``LMModel.generate`` (one sequence step at a time inside ``lm.streaming()``, so
the transformer's KV cache carries the context; classifier-free guidance by
doubling the batch; the codebook delay pattern) call for call, with the same
sampling function (``lm._sample_next_token``) consuming the random generator in
the same order. It yields each timestep as soon as all its codebooks exist, so
the same seed gives the same tokens as the stock ``generate()``.

``StreamingDecoder`` decodes EnCodec tokens chunk by chunk with exactly the
arithmetic of one whole-sequence decode: it walks the decoder's layers and gives
each a streaming form — convolutions keep the input tail they still need and
hold back their right look-ahead (non-causal padding) until the next chunk or
the end, transposed convolutions overlap-add their tails, the LSTM carries its
(h, c) state, residual blocks align their two branches. Reflect padding at the
very start and end is applied where the whole-sequence decode applies it. So
chunk joins are not crossfades and there is nothing to hear at them: the
streamed waveform equals the stock decode to float rounding (tested on
audiocraft's SEANet with ``lstm=2, causal=False`` and on transformers'
EncodecModel, which real MusicGen checkpoints load as their codec).
"""

from __future__ import annotations

import math
import typing as tp

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------- tokens


def _timestep_steps(pattern, max_gen_len: int) -> tuple[torch.Tensor, list[int]]:
    """For the pattern: the sequence step holding each (codebook, timestep), and per timestep
    the step after which it is complete."""
    K = pattern.n_q
    step_of = torch.full((K, max_gen_len), -1, dtype=torch.long)
    for s, coords in enumerate(pattern.layout):
        for c in coords:
            if c.t < max_gen_len:
                step_of[c.q, c.t] = s
    complete_after = step_of.max(dim=0).values.tolist()
    return step_of, complete_after


@torch.no_grad()
def lm_stream(lm, prompt: torch.Tensor | None, conditions: list, max_gen_len: int, use_sampling: bool = True,
              temp: float = 1.0, top_k: int = 250, top_p: float = 0.0, cfg_coef: float | None = None,
              two_step_cfg: bool | None = None, should_stop: tp.Callable[[], bool] = lambda: False,
              ) -> tp.Iterator[torch.Tensor]:
    """``LMModel.generate``, yielding [B, K, n] tokens for timesteps after the prompt as they complete."""
    from audiocraft.modules.conditioners import ClassifierFreeGuidanceDropout

    assert not lm.training
    device = next(iter(lm.parameters())).device
    two_step_cfg = lm.two_step_cfg if two_step_cfg is None else two_step_cfg
    if conditions:
        null_conditions = ClassifierFreeGuidanceDropout(p=1.0)(conditions)
        if two_step_cfg:
            cfg_conditions = (lm.condition_provider(lm.condition_provider.tokenize(conditions)),
                              lm.condition_provider(lm.condition_provider.tokenize(null_conditions)))
        else:
            tokenized = lm.condition_provider.tokenize(conditions + null_conditions)
            cfg_conditions = lm.condition_provider(tokenized)
        num_samples = len(conditions)
    else:
        cfg_conditions = {}
        num_samples = 1 if prompt is None else prompt.shape[0]
    if prompt is None:
        prompt = torch.zeros((num_samples, lm.num_codebooks, 0), dtype=torch.long, device=device)
    B, K, T = prompt.shape
    start_offset = T
    assert start_offset < max_gen_len
    pattern = lm.pattern_provider.get_pattern(max_gen_len)
    unknown_token = -1
    gen_codes = torch.full((B, K, max_gen_len), unknown_token, dtype=torch.long, device=device)
    gen_codes[..., :start_offset] = prompt
    gen_sequence, _, mask = pattern.build_pattern_sequence(gen_codes, lm.special_token_id)
    start_offset_sequence = pattern.get_first_step_with_timesteps(start_offset)
    assert start_offset_sequence is not None
    step_of, complete_after = _timestep_steps(pattern, max_gen_len)
    step_of = step_of.to(device)
    next_t = start_offset  # first timestep not yet yielded
    with lm.streaming():
        unconditional_state = lm.get_streaming_state()
        prev_offset = 0
        for offset in range(start_offset_sequence, gen_sequence.shape[-1]):
            if should_stop():
                break
            curr_sequence = gen_sequence[..., prev_offset:offset]
            next_token = lm._sample_next_token(curr_sequence, cfg_conditions, unconditional_state, use_sampling,
                                               temp, top_k, top_p, cfg_coef=cfg_coef, two_step_cfg=two_step_cfg)
            valid_mask = mask[..., offset:offset + 1].expand(B, -1, -1)
            next_token[~valid_mask] = lm.special_token_id
            gen_sequence[..., offset:offset + 1] = torch.where(
                gen_sequence[..., offset:offset + 1] == unknown_token, next_token, gen_sequence[..., offset:offset + 1])
            prev_offset = offset
            end_t = next_t
            while end_t < max_gen_len and complete_after[end_t] <= offset:
                end_t += 1
            if end_t > next_t:
                idx = step_of[:, next_t:end_t]  # [K, n]
                codes = torch.gather(gen_sequence, 2, idx.unsqueeze(0).expand(B, -1, -1))
                next_t = end_t
                yield codes
        unconditional_state.clear()


@torch.no_grad()
def stream_tokens(model, attributes: list, prompt_tokens: torch.Tensor | None,
                  should_stop: tp.Callable[[], bool] = lambda: False) -> tp.Iterator[torch.Tensor]:
    """``MusicGen._generate_tokens`` (windowed beyond ``max_duration``), yielding new tokens as they complete."""
    from audiocraft.modules.conditioners import WavCondition

    total_gen_len = int(model.duration * model.frame_rate)
    params = dict(model.generation_params)
    if model.duration <= model.max_duration:
        with model.autocast:
            yield from lm_stream(model.lm, prompt_tokens, attributes, total_gen_len, should_stop=should_stop,
                                 **params)
        return
    ref_wavs = [attr.wav["self_wav"] for attr in attributes]
    prompt_length = 0 if prompt_tokens is None else prompt_tokens.shape[-1]
    assert model.extend_stride is not None and model.extend_stride < model.max_duration
    stride_tokens = int(model.frame_rate * model.extend_stride)
    current_gen_offset = 0
    while current_gen_offset + prompt_length < total_gen_len:
        time_offset = current_gen_offset / model.frame_rate
        chunk_duration = min(model.duration - time_offset, model.max_duration)
        max_gen_len = int(chunk_duration * model.frame_rate)
        for attr, ref_wav in zip(attributes, ref_wavs):
            wav_length = ref_wav.length.item()
            if wav_length == 0:
                continue
            initial_position = int(time_offset * model.sample_rate)
            wav_target_length = int(model.max_duration * model.sample_rate)
            positions = torch.arange(initial_position, initial_position + wav_target_length, device=model.device)
            attr.wav["self_wav"] = WavCondition(ref_wav[0][..., positions % wav_length],
                                                torch.full_like(ref_wav[1], wav_target_length),
                                                [model.sample_rate] * ref_wav[0].size(0), [None], [0.0])
        window = []
        with model.autocast:
            for codes in lm_stream(model.lm, prompt_tokens, attributes, max_gen_len, should_stop=should_stop,
                                   **params):
                window.append(codes)
                yield codes
        if should_stop():
            return
        new = torch.cat(window, dim=-1)
        gen_tokens = new if prompt_tokens is None else torch.cat([prompt_tokens, new], dim=-1)
        prompt_tokens = gen_tokens[:, :, stride_tokens:]
        prompt_length = prompt_tokens.shape[-1]
        current_gen_offset += stride_tokens


# ---------------------------------------------------------------------------- codec


def _empty_like(x: torch.Tensor, channels: int | None = None) -> torch.Tensor:
    return x.new_zeros((x.shape[0], channels if channels is not None else x.shape[1], 0))


class _Op:
    def push(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def flush(self) -> torch.Tensor | None:
        return None


class _Pointwise(_Op):
    def __init__(self, fn: nn.Module) -> None:
        self.fn = fn

    def push(self, x):
        return self.fn(x) if x.shape[-1] else x


class _Conv(_Op):
    """Stride-1 Conv1d with jackgen's reading of the encodec padding rule (left/right split)."""

    def __init__(self, conv: nn.Conv1d, causal: bool, pad_mode: str, norm: nn.Module | None = None) -> None:
        if conv.stride[0] != 1:
            raise NotImplementedError("strided convolutions are not used by the decoder")
        if norm is not None and not isinstance(norm, nn.Identity):
            raise NotImplementedError(f"{type(norm).__name__} normalisation is not streamable")
        self.conv = conv
        self.mode = pad_mode
        k = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
        self.total = k - 1
        self.right = 0 if causal else self.total // 2
        self.left = self.total - self.right
        self.buf: torch.Tensor | None = None
        self.started = False

    def _pad(self, x: torch.Tensor, left: int, right: int) -> torch.Tensor:
        if left == right == 0:
            return x
        if self.mode == "constant":
            return F.pad(x, (left, right))
        return F.pad(x, (left, right), mode=self.mode)

    def push(self, x):
        self.buf = x if self.buf is None else torch.cat([self.buf, x], dim=-1)
        if not self.started:
            if self.buf.shape[-1] <= self.left:  # reflect needs more than `left` frames
                return _empty_like(x, self.conv.out_channels)
            self.buf = self._pad(self.buf, self.left, 0)
            self.started = True
        if self.buf.shape[-1] <= self.total:
            return _empty_like(x, self.conv.out_channels)
        y = self.conv(self.buf)
        self.buf = self.buf[..., self.buf.shape[-1] - self.total:] if self.total else self.buf[..., :0]
        return y

    def flush(self):
        if self.buf is None:
            return None
        if not self.started:
            raise ValueError("stream too short for the decoder's padding")
        y = self.conv(self._pad(self.buf, 0, self.right)) if self.buf.shape[-1] + self.right > self.total else None
        self.buf = None
        return y


def _weight(m: nn.Module) -> torch.Tensor:
    """The effective weight, also under the old-style weight_norm hook (which refreshes
    ``weight`` only when the module is called)."""
    if hasattr(m, "weight_v") and hasattr(m, "weight_g"):
        return torch._weight_norm(m.weight_v, m.weight_g, 0)
    return m.weight


class _ConvTr(_Op):
    def __init__(self, convtr: nn.ConvTranspose1d, causal: bool, trim_right_ratio: float) -> None:
        self.m = convtr
        self.k, self.s = convtr.kernel_size[0], convtr.stride[0]
        self.total = self.k - self.s
        self.right = math.ceil(self.total * trim_right_ratio) if causal else self.total // 2
        self.left = self.total - self.right
        self.tail: torch.Tensor | None = None  # last `total` samples, without bias, still receiving overlap
        self.to_skip = self.left

    def _emit(self, y: torch.Tensor) -> torch.Tensor:
        if self.m.bias is not None:
            y = y + self.m.bias[None, :, None]
        if self.to_skip:
            cut = min(self.to_skip, y.shape[-1])
            y = y[..., cut:]
            self.to_skip -= cut
        return y

    def push(self, x):
        if not x.shape[-1]:
            return _empty_like(x, self.m.out_channels)
        y = F.conv_transpose1d(x, _weight(self.m), None, self.s, 0, 0, self.m.groups, self.m.dilation[0])
        if self.tail is not None and self.total:
            y[..., : self.total] += self.tail
        n = y.shape[-1] - self.total
        self.tail = y[..., n:].clone()
        return self._emit(y[..., :n])

    def flush(self):
        if self.tail is None:
            return None
        y = self._emit(self.tail[..., : self.total - self.right])
        self.tail = None
        return y


class _LSTM(_Op):
    def __init__(self, lstm: nn.LSTM, skip: bool) -> None:
        self.lstm, self.skip, self.state = lstm, skip, None

    def push(self, x):
        if not x.shape[-1]:
            return x
        xt = x.permute(2, 0, 1)
        y, self.state = self.lstm(xt, self.state)
        if self.skip:
            y = y + xt
        return y.permute(1, 2, 0)


class _Seq(_Op):
    def __init__(self, ops: list[_Op]) -> None:
        self.ops = ops

    def push(self, x):
        for op in self.ops:
            x = op.push(x)
        return x

    def flush(self):
        carry: torch.Tensor | None = None
        for op in self.ops:
            parts = []
            if carry is not None and carry.shape[-1]:
                parts.append(op.push(carry))
            tail = op.flush()
            if tail is not None:
                parts.append(tail)
            parts = [p for p in parts if p is not None and p.shape[-1]]
            carry = torch.cat(parts, dim=-1) if parts else None
        return carry


class _Residual(_Op):
    """shortcut(x) + block(x): the branches hold back different amounts; add what both have."""

    def __init__(self, block: _Op, shortcut: _Op) -> None:
        self.block, self.shortcut = block, shortcut
        self.a: torch.Tensor | None = None
        self.b: torch.Tensor | None = None

    def _add(self, ya, yb):
        for name, y in (("a", ya), ("b", yb)):
            if y is not None and y.shape[-1]:
                cur = getattr(self, name)
                setattr(self, name, y if cur is None else torch.cat([cur, y], dim=-1))
        if self.a is None or self.b is None:
            return None
        n = min(self.a.shape[-1], self.b.shape[-1])
        out = self.a[..., :n] + self.b[..., :n]
        self.a, self.b = self.a[..., n:], self.b[..., n:]
        return out

    def push(self, x):
        out = self._add(self.shortcut.push(x), self.block.push(x))
        return out if out is not None else x[..., :0]

    def flush(self):
        return self._add(self.shortcut.flush(), self.block.flush())


def _build(m: nn.Module) -> _Op:
    name = type(m).__name__
    if name == "StreamableConv1d":  # audiocraft
        return _Conv(m.conv.conv, m.causal, m.pad_mode, m.conv.norm)
    if name == "EncodecConv1d":  # transformers
        norm = getattr(m, "norm", None) if getattr(m, "norm_type", "") == "time_group_norm" else None
        return _Conv(m.conv, m.causal, m.pad_mode, norm)
    if name == "StreamableConvTranspose1d":
        if not isinstance(m.convtr.norm, nn.Identity):
            raise NotImplementedError("normalised transposed convolutions are not streamable")
        return _ConvTr(m.convtr.convtr, m.causal, m.trim_right_ratio)
    if name == "EncodecConvTranspose1d":
        if getattr(m, "norm_type", "") == "time_group_norm":
            raise NotImplementedError("time_group_norm is not streamable")
        return _ConvTr(m.conv, m.causal, m.trim_right_ratio)
    if name == "StreamableLSTM":
        return _LSTM(m.lstm, m.skip)
    if name == "EncodecLSTM":
        return _LSTM(m.lstm, True)
    if name in ("SEANetResnetBlock", "EncodecResnetBlock"):
        return _Residual(_Seq([_build(c) for c in m.block]), _build(m.shortcut))
    if isinstance(m, (nn.Sequential, nn.ModuleList)):
        return _Seq([_build(c) for c in m])
    if not any(True for _ in m.parameters()):  # ELU, Tanh, Identity …: pointwise
        return _Pointwise(m)
    raise NotImplementedError(f"no streaming form for decoder layer {name}")


class StreamingDecoder:
    """Decode [B, K, T] token chunks of one stream into audio chunks [B, C, n]."""

    def __init__(self, compression_model) -> None:
        cm = compression_model
        if type(cm).__name__ == "HFEncodecCompressionModel":
            hf = cm.model
            self._latent = lambda codes: hf.quantizer.decode(codes.transpose(0, 1))
            self.op = _Seq([_build(layer) for layer in hf.decoder.layers])
        elif hasattr(cm, "decoder") and hasattr(cm, "quantizer"):
            if getattr(cm, "renormalize", False):
                raise NotImplementedError("renormalised codecs need per-stream scales")
            self._latent = cm.quantizer.decode
            self.op = _build(cm.decoder.model)
        else:
            raise NotImplementedError(f"cannot stream-decode {type(cm).__name__}")
        self.frames_in = 0

    @torch.no_grad()
    def push(self, codes: torch.Tensor) -> torch.Tensor:
        self.frames_in += codes.shape[-1]
        return self.op.push(self._latent(codes))

    @torch.no_grad()
    def flush(self) -> torch.Tensor | None:
        return self.op.flush()
