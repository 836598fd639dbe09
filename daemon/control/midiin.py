"""Hardware MIDI controllers through python-rtmidi (ALSA sequencer or JACK), in the control process.

Ports whose names match ``control.midi_inputs`` (shell-style patterns) and not
``control.midi_exclude`` are opened, and re-scanned every 2 s so a controller
plugged in later is picked up. Messages go to ``Control.on_midi`` on the event
loop. Timing is "as received" (a few ms); sample-accurate triggers come through
the engine's JACK MIDI port.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from typing import Callable

log = logging.getLogger("jackgen.midi")


class MidiInputs:
    def __init__(self, api: str, include: tuple[str, ...], exclude: tuple[str, ...],
                 on_message: Callable[[int, int, int, str], None]) -> None:
        self.api_name = api
        self.include = include
        self.exclude = exclude
        self.on_message = on_message
        self.open: dict[str, object] = {}
        self._probe = None
        self._task: asyncio.Task | None = None
        self.available = False

    def _api(self) -> int:
        import rtmidi

        return {"alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK}[self.api_name]

    def start(self) -> None:
        if self.api_name == "none" or not self.include:
            return
        try:
            import rtmidi

            self._probe = rtmidi.MidiIn(self._api(), name="jackgen-control-scan")
            self.available = True
        except Exception as e:  # e.g. no /dev/snd/seq in a container, or no JACK server
            log.info("hardware MIDI via %s is not available (%s); MIDI comes only through JACK", self.api_name, e)
            return
        self._task = asyncio.create_task(self._scan_loop(), name="midi-scan")

    async def _scan_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._scan(loop)
            except Exception:
                log.exception("scanning MIDI ports failed")
            await asyncio.sleep(2.0)

    def _wanted(self, name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) for p in self.include) and not any(
            fnmatch.fnmatch(name, p) for p in self.exclude)

    def _scan(self, loop: asyncio.AbstractEventLoop) -> None:
        import rtmidi

        names = self._probe.get_ports()
        for i, name in enumerate(names):
            if name in self.open or not self._wanted(name):
                continue
            port = rtmidi.MidiIn(self._api(), name="jackgen-control")
            port.ignore_types(sysex=True, timing=True, active_sense=True)
            port.open_port(i, name="in")

            def callback(event, _data, src=name) -> None:  # rtmidi's thread
                msg, _delta = event
                if 1 <= len(msg) <= 3:
                    m = list(msg) + [0, 0]
                    loop.call_soon_threadsafe(self.on_message, m[0], m[1] & 0x7F, m[2] & 0x7F, src)

            port.set_callback(callback)
            self.open[name] = port
            log.info("MIDI controller connected: %s (%s)", name, self.api_name)
        for name in [n for n in self.open if n not in names]:
            port = self.open.pop(name)
            port.close_port()
            log.info("MIDI controller gone: %s", name)

    def stop(self) -> None:
        if self._task:
            self._task.cancel()
        for port in self.open.values():
            try:
                port.close_port()
            except Exception:
                pass
        self.open.clear()
        if self._probe is not None:
            self._probe.delete()
            self._probe = None
