"""libjack's time functions that JACK-Client does not bind (ABI-mode cffi handle).

``jack_get_cycle_times`` (the engine, each block) and ``jack_time_to_frames``
(control: OSC timetags, the transport's BBT position). JACK time is
CLOCK_MONOTONIC_RAW in µs. ``jack_time_to_frames`` uses JACK's own filtered
frame timer: measured here, it maps a cycle's µs to exactly that cycle's frame,
also from a client that is never activated (control's).
"""

from __future__ import annotations

import cffi
import jack

ffi = cffi.FFI()
ffi.cdef(
    "int jack_get_cycle_times(void *client, uint32_t *current_frames, uint64_t *current_usecs,"
    " uint64_t *next_usecs, float *period_usecs);"
    "uint32_t jack_time_to_frames(void *client, uint64_t usecs);"
)
lib = ffi.dlopen("libjack.so.0")


def handle(client: jack.Client):
    """The client's ``jack_client_t *`` as this handle's ``void *``."""
    return ffi.cast("void *", jack._ffi.cast("uintptr_t", client._ptr))  # noqa: SLF001


def time_to_frames(client: jack.Client, usecs: float) -> int:
    return int(lib.jack_time_to_frames(handle(client), int(usecs)))
