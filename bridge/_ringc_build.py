"""cffi build script for ``jackgen.bridge._ringc``: counters and copies for the rings.

Why C: the ring counters need release stores and acquire loads. numpy/Python
stores give that ordering on x86-64 only (TSO); on aarch64 (the DGX Spark's Grace
CPU) a reader could see the new WRITE counter before the frames it covers. The
GCC/Clang ``__atomic`` builtins emit ``stlr``/``ldar`` there and plain moves on
x86-64. Doing the copy inside the same C call also keeps the engine's per-track
work to one foreign call per block.

Run by setuptools at install time (``cffi_modules`` in setup.py).
"""

from __future__ import annotations

import importlib.util
import pathlib

from cffi import FFI

_here = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_jg_layout", _here / "layout.py")
assert _spec is not None and _spec.loader is not None
layout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layout)

CDEF = """
uint64_t jg_load_acquire(const uint64_t *p);
void jg_store_release(uint64_t *p, uint64_t v);
uint64_t jg_audio_available(const uint8_t *base);
uint64_t jg_audio_space(const uint8_t *base);
uint64_t jg_audio_write(uint8_t *base, const float *src, uint64_t frames);
uint64_t jg_audio_read(uint8_t *base, float *dst, uint64_t frames);
uint64_t jg_audio_skip_to(uint8_t *base, uint64_t frame);
uint32_t jg_read_tracks(uint8_t **bases, const uint8_t *mode, float *dst, uint32_t n_tracks,
                        uint32_t frames, uint64_t *got);
int64_t jg_msg_write(uint8_t *base, const uint8_t *data, uint32_t len);
int64_t jg_msg_read(uint8_t *base, uint8_t *out, uint32_t out_cap);
uint64_t jg_msg_pending(const uint8_t *base);
"""

SOURCE = layout.c_defines() + r"""
#include <stdint.h>
#include <string.h>

#define U64(base, off) ((uint64_t *)((base) + (off)))
#define U32(base, off) ((uint32_t *)((base) + (off)))

uint64_t jg_load_acquire(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
void jg_store_release(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* The producer reads its own WRITE relaxed and the consumer's READ with acquire
   (so it never overwrites frames still being copied out); the consumer the
   mirror image. */

uint64_t jg_audio_available(const uint8_t *base) {
    uint64_t w = __atomic_load_n(U64(base, JG_OFF_WRITE), __ATOMIC_ACQUIRE);
    uint64_t r = __atomic_load_n(U64(base, JG_OFF_READ), __ATOMIC_RELAXED);
    return w - r;
}

uint64_t jg_audio_space(const uint8_t *base) {
    uint64_t cap = *U64(base, JG_OFF_CAPACITY);
    uint64_t w = __atomic_load_n(U64(base, JG_OFF_WRITE), __ATOMIC_RELAXED);
    uint64_t r = __atomic_load_n(U64(base, JG_OFF_READ), __ATOMIC_ACQUIRE);
    return cap - (w - r);
}

uint64_t jg_audio_write(uint8_t *base, const float *src, uint64_t frames) {
    uint64_t cap = *U64(base, JG_OFF_CAPACITY);
    uint64_t ch = *U32(base, JG_OFF_CHANNELS);
    uint64_t w = __atomic_load_n(U64(base, JG_OFF_WRITE), __ATOMIC_RELAXED);
    uint64_t r = __atomic_load_n(U64(base, JG_OFF_READ), __ATOMIC_ACQUIRE);
    uint64_t space = cap - (w - r);
    uint64_t n = frames < space ? frames : space;
    float *body = (float *)(base + JG_HEADER_SIZE);
    uint64_t pos = w & (cap - 1);
    uint64_t first = cap - pos < n ? cap - pos : n;
    memcpy(body + pos * ch, src, first * ch * sizeof(float));
    if (n > first) memcpy(body, src + first * ch, (n - first) * ch * sizeof(float));
    __atomic_store_n(U64(base, JG_OFF_WRITE), w + n, __ATOMIC_RELEASE);
    return n;
}

uint64_t jg_audio_read(uint8_t *base, float *dst, uint64_t frames) {
    uint64_t cap = *U64(base, JG_OFF_CAPACITY);
    uint64_t ch = *U32(base, JG_OFF_CHANNELS);
    uint64_t w = __atomic_load_n(U64(base, JG_OFF_WRITE), __ATOMIC_ACQUIRE);
    uint64_t r = __atomic_load_n(U64(base, JG_OFF_READ), __ATOMIC_RELAXED);
    uint64_t avail = w - r;
    uint64_t n = frames < avail ? frames : avail;
    const float *body = (const float *)(base + JG_HEADER_SIZE);
    uint64_t pos = r & (cap - 1);
    uint64_t first = cap - pos < n ? cap - pos : n;
    memcpy(dst, body + pos * ch, first * ch * sizeof(float));
    if (n > first) memcpy(dst + first * ch, body, (n - first) * ch * sizeof(float));
    __atomic_store_n(U64(base, JG_OFF_READ), r + n, __ATOMIC_RELEASE);
    return n;
}

/* Consumer: drop everything before `frame` (clamped to WRITE). Returns READ. */
uint64_t jg_audio_skip_to(uint8_t *base, uint64_t frame) {
    uint64_t w = __atomic_load_n(U64(base, JG_OFF_WRITE), __ATOMIC_ACQUIRE);
    uint64_t r = __atomic_load_n(U64(base, JG_OFF_READ), __ATOMIC_RELAXED);
    uint64_t target = frame < w ? frame : w;
    if (target > r) {
        __atomic_store_n(U64(base, JG_OFF_READ), target, __ATOMIC_RELEASE);
        r = target;
    }
    return r;
}

/* One call for every track ring in a block. mode[t]: 0 = idle (zero the block),
   1 = steady playback (read up to `frames`, zero the rest, got[t] = frames read),
   2 = handled by the caller (block untouched, got[t] = frames). dst is (n_tracks, frames, channels).
   Returns how many mode-1 tracks came up short, so the caller only looks
   further when something happened. */
uint32_t jg_read_tracks(uint8_t **bases, const uint8_t *mode, float *dst, uint32_t n_tracks,
                        uint32_t frames, uint64_t *got) {
    uint32_t short_reads = 0;
    for (uint32_t t = 0; t < n_tracks; t++) {
        uint8_t *base = bases[t];
        uint64_t ch = *U32(base, JG_OFF_CHANNELS);
        float *d = dst + (size_t)t * frames * ch;
        if (mode[t] == 0) {
            memset(d, 0, frames * ch * sizeof(float));
            got[t] = 0;
        } else if (mode[t] == 1) {
            uint64_t n = jg_audio_read(base, d, frames);
            if (n < frames) {
                memset(d + n * ch, 0, (frames - n) * ch * sizeof(float));
                short_reads++;
            }
            got[t] = n;
        } else {
            got[t] = frames; /* not ours to judge: never reported as short */
        }
    }
    return short_reads;
}

int64_t jg_msg_write(uint8_t *base, const uint8_t *data, uint32_t len) {
    uint64_t cap = *U64(base, JG_OFF_CAPACITY);
    uint64_t rec = *U32(base, JG_OFF_CHANNELS);
    if ((uint64_t)len + JG_MSG_LEN_BYTES > rec) return -1;
    uint64_t w = __atomic_load_n(U64(base, JG_OFF_WRITE), __ATOMIC_RELAXED);
    uint64_t r = __atomic_load_n(U64(base, JG_OFF_READ), __ATOMIC_ACQUIRE);
    if (w - r >= cap) {
        __atomic_fetch_add(U64(base, JG_OFF_DROPPED), 1, __ATOMIC_RELAXED);
        return 0;
    }
    uint8_t *slot = base + JG_HEADER_SIZE + (w & (cap - 1)) * rec;
    memcpy(slot, &len, JG_MSG_LEN_BYTES);
    memcpy(slot + JG_MSG_LEN_BYTES, data, len);
    __atomic_store_n(U64(base, JG_OFF_WRITE), w + 1, __ATOMIC_RELEASE);
    return 1;
}

int64_t jg_msg_read(uint8_t *base, uint8_t *out, uint32_t out_cap) {
    uint64_t cap = *U64(base, JG_OFF_CAPACITY);
    uint64_t rec = *U32(base, JG_OFF_CHANNELS);
    uint64_t w = __atomic_load_n(U64(base, JG_OFF_WRITE), __ATOMIC_ACQUIRE);
    uint64_t r = __atomic_load_n(U64(base, JG_OFF_READ), __ATOMIC_RELAXED);
    if (w == r) return -1;
    const uint8_t *slot = base + JG_HEADER_SIZE + (r & (cap - 1)) * rec;
    uint32_t len;
    memcpy(&len, slot, JG_MSG_LEN_BYTES);
    if (len > rec - JG_MSG_LEN_BYTES) len = 0; /* corrupt record: skip it */
    uint32_t n = len < out_cap ? len : out_cap;
    memcpy(out, slot + JG_MSG_LEN_BYTES, n);
    __atomic_store_n(U64(base, JG_OFF_READ), r + 1, __ATOMIC_RELEASE);
    return (int64_t)n;
}

uint64_t jg_msg_pending(const uint8_t *base) {
    uint64_t w = __atomic_load_n(U64(base, JG_OFF_WRITE), __ATOMIC_ACQUIRE);
    uint64_t r = __atomic_load_n(U64(base, JG_OFF_READ), __ATOMIC_RELAXED);
    return w - r;
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("jackgen.bridge._ringc", SOURCE, extra_compile_args=["-O2", "-std=c11"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
