"""Single-producer/single-consumer rings in POSIX shared memory.

``AudioRing`` carries interleaved float32 frames for one track; ``MessageRing``
carries fixed-size msgpack records (commands control -> engine, events
engine -> control). Layout: ``jackgen.bridge.layout``. Counters are monotonic
64-bit and go through the compiled helper (release store / acquire load), which
is what makes the ring correct on aarch64 as well as x86-64.

Threading contract: exactly one producer and one consumer per ring, in any
processes. Methods marked *process thread safe* do no allocation beyond
cffi's small temporaries, take no lock and never block; they are what the
engine's JACK callback uses. Everything else (create, attach, unlink,
``write_blocking``) is for ordinary threads.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import time
from typing import Self

import numpy as np

from jackgen.bridge import layout as L
from jackgen.bridge._ringc import ffi, lib

SHM_DIR = "/dev/shm"


class RingError(RuntimeError):
    """A ring could not be created or attached (message says why and what to do)."""


def ring_name(instance: str, role: str) -> str:
    """Shared-memory object name for ``role`` (``track01``, ``cmd``, ``evt``)."""
    return f"jackgen.{instance}.{role}"


def _is_pow2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


class _Ring:
    kind = 0

    def __init__(self, name: str, fd: int, mm: mmap.mmap, owner: bool) -> None:
        self.name = name
        self._fd = fd
        self._mm = mm
        self._owner = owner
        self._base = ffi.from_buffer("uint8_t[]", mm)
        self._header = np.frombuffer(mm, dtype=np.uint8, count=L.HEADER_SIZE)
        # Preallocated pointers into the header for the counters (process thread).
        self._p_write = ffi.cast("uint64_t *", self._base + L.OFF_WRITE)
        self._p_read = ffi.cast("uint64_t *", self._base + L.OFF_READ)
        self._p_stream = ffi.cast("uint64_t *", self._base + L.OFF_STREAM)
        self._p_stream_start = ffi.cast("uint64_t *", self._base + L.OFF_STREAM_START)
        self._p_producer_pid = ffi.cast("uint64_t *", self._base + L.OFF_PRODUCER_PID)
        self.capacity = self._u64(L.OFF_CAPACITY)

    # ----- header access (not hot) -----
    def _u64(self, off: int) -> int:
        return int(self._header[off : off + 8].view(np.uint64)[0])

    def _u32(self, off: int) -> int:
        return int(self._header[off : off + 4].view(np.uint32)[0])

    def _set_u64(self, off: int, v: int) -> None:
        self._header[off : off + 8].view(np.uint64)[0] = v

    def _set_u32(self, off: int, v: int) -> None:
        self._header[off : off + 4].view(np.uint32)[0] = v

    # ----- lifecycle -----
    @classmethod
    def _open(cls, name: str, size: int | None, init) -> Self:
        path = os.path.join(SHM_DIR, name)
        if size is not None:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                raise RingError(
                    f"shared memory '{name}' already exists: another jackgen instance may be "
                    f"running; stop it, or remove {path} if it is stale"
                ) from None
            try:
                os.ftruncate(fd, size)
                mm = mmap.mmap(fd, size)
            except OSError:
                os.close(fd)
                os.unlink(path)
                raise
            init(mm)
            return cls(name, fd, mm, owner=True)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise RingError(
                f"shared memory '{name}' does not exist: start jackgen (`jackgen run`) first"
            ) from None
        st = os.fstat(fd)
        if st.st_size < L.HEADER_SIZE:
            os.close(fd)
            raise RingError(f"shared memory '{name}' is too small to be a jackgen ring")
        mm = mmap.mmap(fd, st.st_size)
        hdr = np.frombuffer(mm, dtype=np.uint8, count=L.HEADER_SIZE)
        magic = int(hdr[0:8].view(np.uint64)[0])
        version = int(hdr[8:12].view(np.uint32)[0])
        kind = int(hdr[12:16].view(np.uint32)[0])
        del hdr
        if magic != L.MAGIC or version != L.VERSION or kind != cls.kind:
            mm.close()
            os.close(fd)
            raise RingError(
                f"shared memory '{name}' is not a jackgen ring of this version "
                f"(magic {magic:#x}, version {version}, kind {kind}); restart jackgen"
            )
        return cls(name, fd, mm, owner=False)

    @staticmethod
    def _init_header(mm: mmap.mmap, kind: int, channels: int, rate: int, capacity: int) -> None:
        hdr = np.frombuffer(mm, dtype=np.uint8, count=L.HEADER_SIZE)
        hdr[:] = 0
        hdr[L.OFF_VERSION : L.OFF_VERSION + 4].view(np.uint32)[0] = L.VERSION
        hdr[L.OFF_KIND : L.OFF_KIND + 4].view(np.uint32)[0] = kind
        hdr[L.OFF_CHANNELS : L.OFF_CHANNELS + 4].view(np.uint32)[0] = channels
        hdr[L.OFF_SAMPLE_RATE : L.OFF_SAMPLE_RATE + 4].view(np.uint32)[0] = rate
        hdr[L.OFF_CAPACITY : L.OFF_CAPACITY + 8].view(np.uint64)[0] = capacity
        hdr[L.OFF_CREATOR_PID : L.OFF_CREATOR_PID + 8].view(np.uint64)[0] = os.getpid()
        # Magic last, so a reader that attaches mid-creation rejects the segment.
        hdr[L.OFF_MAGIC : L.OFF_MAGIC + 8].view(np.uint64)[0] = L.MAGIC

    def close(self) -> None:
        """Unmap (and unlink, for ``unlink=True`` via :meth:`unlink`)."""
        if self._mm is None:
            return
        ffi.release(self._base)
        self._header = None  # type: ignore[assignment]
        self._release_views()
        self._mm.close()
        os.close(self._fd)
        self._mm = None  # type: ignore[assignment]

    def _release_views(self) -> None:
        pass

    def replaced(self) -> bool:
        """True when this segment's name now leads elsewhere (or nowhere): it was unlinked."""
        try:
            return os.stat(os.path.join(SHM_DIR, self.name)).st_ino != os.fstat(self._fd).st_ino
        except OSError:
            return True

    def unlink(self) -> None:
        """Remove the segment's name; processes that have it mapped keep working."""
        try:
            os.unlink(os.path.join(SHM_DIR, self.name))
        except FileNotFoundError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- counters (process thread safe) -----
    @property
    def write_count(self) -> int:
        return lib.jg_load_acquire(self._p_write)

    @property
    def read_count(self) -> int:
        return lib.jg_load_acquire(self._p_read)

    @property
    def creator_pid(self) -> int:
        return self._u64(L.OFF_CREATOR_PID)


class AudioRing(_Ring):
    """Interleaved float32 frames; one per track.

    Producer side: :meth:`begin_stream`, :meth:`write`, :meth:`end_stream`.
    Consumer side (the engine): :meth:`stream_word`, :meth:`read_into`,
    :meth:`available`, :meth:`skip_to`.
    """

    kind = L.KIND_AUDIO

    @classmethod
    def create(cls, name: str, capacity_frames: int = 1 << 17, channels: int = 2, sample_rate: int = 0) -> AudioRing:
        if not _is_pow2(capacity_frames):
            raise RingError(f"ring capacity must be a power of two frames, got {capacity_frames}")
        if not 1 <= channels <= 64:
            raise RingError(f"ring channels must be 1..64, got {channels}")
        size = L.HEADER_SIZE + capacity_frames * channels * 4
        return cls._open(
            name, size, lambda mm: cls._init_header(mm, L.KIND_AUDIO, channels, sample_rate, capacity_frames)
        )

    @classmethod
    def attach(cls, name: str) -> AudioRing:
        return cls._open(name, None, None)

    def __init__(self, name: str, fd: int, mm: mmap.mmap, owner: bool) -> None:
        super().__init__(name, fd, mm, owner)
        self.channels = self._u32(L.OFF_CHANNELS)
        self.body = np.frombuffer(
            mm, dtype=np.float32, offset=L.HEADER_SIZE, count=self.capacity * self.channels
        ).reshape(self.capacity, self.channels)

    def _release_views(self) -> None:
        self.body = None  # type: ignore[assignment]

    @property
    def sample_rate(self) -> int:
        return self._u32(L.OFF_SAMPLE_RATE)

    # ----- producer -----
    def begin_stream(self, epoch: int, sample_rate: int = 0) -> int:
        """Claim the ring for a new stream ``epoch`` (1..2**56-1); returns its start frame.

        The consumer skips anything written before the returned frame, so a new
        stream never plays the tail of an old one.
        """
        if not 0 < epoch < (1 << 56):
            raise ValueError(f"epoch must be 1..2**56-1, got {epoch}")
        start = lib.jg_load_acquire(self._p_write)
        if sample_rate:
            self._set_u32(L.OFF_SAMPLE_RATE, sample_rate)
        lib.jg_store_release(self._p_producer_pid, os.getpid())
        lib.jg_store_release(self._p_stream_start, start)
        # The stream word last: a consumer that sees the new epoch sees its start.
        lib.jg_store_release(self._p_stream, (epoch << 8) | L.STATE_OPEN)
        return start

    def resume_stream(self, epoch: int) -> None:
        """Take over an open stream ``epoch`` after its producer died, appending where it stopped."""
        lib.jg_store_release(self._p_producer_pid, os.getpid())
        lib.jg_store_release(self._p_stream, (epoch << 8) | L.STATE_OPEN)

    def end_stream(self, aborted: bool = False) -> None:
        epoch = lib.jg_load_acquire(self._p_stream) >> 8
        lib.jg_store_release(self._p_stream, (epoch << 8) | (L.STATE_ABORTED if aborted else L.STATE_EOS))

    def space(self) -> int:
        return lib.jg_audio_space(self._base)

    def write(self, frames: np.ndarray) -> int:
        """Write as many frames as fit now; returns how many (never blocks)."""
        if frames.dtype != np.float32 or frames.ndim != 2 or frames.shape[1] != self.channels:
            raise ValueError(
                f"expected float32 frames of shape (n, {self.channels}), got {frames.dtype} {frames.shape}"
            )
        frames = np.ascontiguousarray(frames)
        return lib.jg_audio_write(self._base, ffi.cast("float *", ffi.from_buffer(frames)), frames.shape[0])

    def write_blocking(
        self, frames: np.ndarray, poll_s: float = 0.005, should_stop=None, timeout_s: float | None = None,
        max_ahead: int | None = None,
    ) -> int:
        """Write all frames, sleeping politely while the ring is full.

        ``max_ahead``: keep at most this many frames waiting for the consumer (a
        producer that applies live changes, e.g. a plugin chain, stays that close
        to the playhead). Stops early (returning frames written) when
        ``should_stop()`` turns true or ``timeout_s`` passes.
        """
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        done = 0
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while done < frames.shape[0]:
            if max_ahead is None:
                done += self.write(frames[done:])
            else:
                room = max(0, max_ahead - self.ahead())
                done += self.write(frames[done: done + room]) if room else 0
            if done >= frames.shape[0]:
                break
            if should_stop is not None and should_stop():
                break
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(poll_s)
        return done

    # ----- consumer (process thread safe) -----
    def stream_word(self) -> int:
        """``(epoch << 8) | state`` of the current stream (acquire)."""
        return lib.jg_load_acquire(self._p_stream)

    def stream_start(self) -> int:
        return lib.jg_load_acquire(self._p_stream_start)

    def producer_pid(self) -> int:
        return lib.jg_load_acquire(self._p_producer_pid)

    def available(self) -> int:
        return lib.jg_audio_available(self._base)

    def ahead(self) -> int:
        """Frames of the current stream waiting for the consumer: what a stopped stream left unread
        before it (the consumer skips it when the new one starts) does not count."""
        w = self.write_count
        return w - max(self.read_count, min(w, self.stream_start()))

    def read_into(self, dst_ptr, frames: int) -> int:
        """Copy up to ``frames`` frames to ``dst_ptr`` (a cffi ``float *``); returns count."""
        return lib.jg_audio_read(self._base, dst_ptr, frames)

    def read(self, frames: int) -> np.ndarray:
        """Convenience for non-real-time readers: returns a new (n, channels) array."""
        out = np.empty((frames, self.channels), dtype=np.float32)
        n = lib.jg_audio_read(self._base, ffi.cast("float *", ffi.from_buffer(out)), frames)
        return out[:n]

    def skip_to(self, frame: int) -> int:
        """Discard everything before ``frame`` (clamped to what is written); returns READ."""
        return lib.jg_audio_skip_to(self._base, frame)

    # ----- liveness -----
    def producer_alive(self) -> bool:
        """True if the producer that owns the current stream is still a live process."""
        pid = self.producer_pid()
        return pid != 0 and pid_alive(pid)


class MessageRing(_Ring):
    """Fixed-size records (``[u32 len][payload]``), e.g. msgpack commands and events."""

    kind = L.KIND_MESSAGES

    @classmethod
    def create(cls, name: str, capacity_records: int = 1024, record_size: int = 256) -> MessageRing:
        if not _is_pow2(capacity_records):
            raise RingError(f"message ring capacity must be a power of two, got {capacity_records}")
        if record_size < 8 or record_size % 8:
            raise RingError(f"record size must be a multiple of 8 bytes >= 8, got {record_size}")
        size = L.HEADER_SIZE + capacity_records * record_size
        return cls._open(
            name, size, lambda mm: cls._init_header(mm, L.KIND_MESSAGES, record_size, 0, capacity_records)
        )

    @classmethod
    def attach(cls, name: str) -> MessageRing:
        return cls._open(name, None, None)

    def __init__(self, name: str, fd: int, mm: mmap.mmap, owner: bool) -> None:
        super().__init__(name, fd, mm, owner)
        self.record_size = self._u32(L.OFF_CHANNELS)
        self.max_payload = self.record_size - L.MSG_LEN_BYTES
        self._scratch = bytearray(self.max_payload)
        self._scratch_ptr = ffi.from_buffer("uint8_t[]", self._scratch)
        self._scratch_view = memoryview(self._scratch)

    def _release_views(self) -> None:
        ffi.release(self._scratch_ptr)

    def put(self, payload: bytes) -> bool:
        """Append one record; False if the ring is full (counted in ``dropped``). Process thread safe."""
        r = lib.jg_msg_write(self._base, payload, len(payload))
        if r < 0:
            raise ValueError(f"message of {len(payload)} bytes exceeds the record size {self.max_payload}")
        return r == 1

    def get_view(self) -> memoryview | None:
        """Next record as a view into a reused scratch buffer (valid until the next call), or None.

        Process thread safe: no allocation other than the slice object.
        """
        n = lib.jg_msg_read(self._base, self._scratch_ptr, self.max_payload)
        if n < 0:
            return None
        return self._scratch_view[:n]

    def get(self) -> bytes | None:
        v = self.get_view()
        return None if v is None else bytes(v)

    def pending(self) -> int:
        return lib.jg_msg_pending(self._base)

    @property
    def dropped(self) -> int:
        return self._u64(L.OFF_DROPPED)


def mapped_by(name: str) -> list[int]:
    """Pids of other live processes that have the segment ``name`` mapped (from /proc/*/maps)."""
    needle = os.path.join(SHM_DIR, name).encode()
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/maps", "rb") as f:
                if needle in f.read():
                    out.append(int(entry))
        except OSError:
            continue
    return [p for p in out if pid_alive(p)]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return True


class InstanceLock:
    """One jackgen instance per name: an flock on ``/dev/shm/jackgen.<instance>.lock``.

    Whoever holds it owns the instance's segments. At start, a free lock means any
    segments left under the instance's name belong to a crashed run: they are
    reclaimed (unlinked) before new ones are created.
    """

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.path = os.path.join(SHM_DIR, f"jackgen.{instance}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise RingError(
                    f"jackgen instance '{self.instance}' is already running (pid {holder or '?'}); "
                    f"stop it first or pick another instance name"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def reclaim_stale(self) -> list[str]:
        """Unlink this instance's segments (call while holding the lock); returns their names."""
        prefix = f"jackgen.{self.instance}."
        removed = []
        for entry in os.listdir(SHM_DIR):
            if entry.startswith(prefix) and not entry.endswith(".lock"):
                try:
                    os.unlink(os.path.join(SHM_DIR, entry))
                    removed.append(entry)
                except FileNotFoundError:
                    pass
        return removed

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
