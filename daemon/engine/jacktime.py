"""libjack's functions that JACK-Client does not bind (ABI-mode cffi handle): time, port latency.

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
    "typedef struct { uint32_t min; uint32_t max; } jack_latency_range_t;"
    "typedef void (*JackLatencyCallback)(int mode, void *arg);"
    "int jack_set_latency_callback(void *client, JackLatencyCallback cb, void *arg);"
    "void jack_port_set_latency_range(void *port, int mode, jack_latency_range_t *range);"
    "void jack_port_get_latency_range(void *port, int mode, jack_latency_range_t *range);"
    "int jack_recompute_total_latencies(void *client);"
)
lib = ffi.dlopen("libjack.so.0")


def handle(client: jack.Client):
    """The client's ``jack_client_t *`` as this handle's ``void *``."""
    return ffi.cast("void *", jack._ffi.cast("uintptr_t", client._ptr))  # noqa: SLF001


def time_to_frames(client: jack.Client, usecs: float) -> int:
    return int(lib.jack_time_to_frames(handle(client), int(usecs)))


CAPTURE_LATENCY = 0  # JackCaptureLatency


def report_output_latency(client: jack.Client, ports: list, frames: int):
    """Report ``frames`` of our own latency on ``ports`` (output ports with no inputs behind
    them: their capture latency is ours), so Ardour and other recorders align what they
    capture from them. Call before activation; keep the returned handle alive.

    The callback runs on libjack's notification thread when the graph changes (rare) and
    takes the GIL for a few µs."""
    rng = ffi.new("jack_latency_range_t *", {"min": frames, "max": frames})
    handles = [ffi.cast("void *", jack._ffi.cast("uintptr_t", p._ptr)) for p in ports]  # noqa: SLF001

    @ffi.callback("void(int, void *)")
    def on_latency(mode, _arg):
        if mode == CAPTURE_LATENCY:
            for h in handles:
                lib.jack_port_set_latency_range(h, CAPTURE_LATENCY, rng)

    if lib.jack_set_latency_callback(handle(client), on_latency, ffi.NULL) != 0:
        raise jack.JackError("could not set the latency callback")

    def change(new_frames: int) -> None:
        """A new latency (the master chain changed): not the process thread."""
        rng.min = rng.max = int(new_frames)
        lib.jack_recompute_total_latencies(handle(client))

    change.keep = (on_latency, rng, handles)  # alive as long as the client
    return change


def capture_latency(client: jack.Client, port_name: str) -> tuple[int, int]:
    """(min, max) capture latency JACK reports for any port (e.g. ``jackgen:master_L``)."""
    port = client.get_port_by_name(port_name)
    rng = ffi.new("jack_latency_range_t *")
    lib.jack_port_get_latency_range(ffi.cast("void *", jack._ffi.cast("uintptr_t", port._ptr)),  # noqa: SLF001
                                    CAPTURE_LATENCY, rng)
    return int(rng.min), int(rng.max)
