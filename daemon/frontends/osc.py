"""OSC server of the control process: UDP and TCP, default 127.0.0.1:57130.

Three steps, as python-osc and mido keep them apart: the transport hands over
raw packets; ``parse_packet`` turns one into (timetag, address, args) messages
without touching any state; ``OscControl`` validates and acts through
:class:`jackgen.daemon.control.Control`. Replies go to the sender: errors as
``/jackgen/error s address, s message`` (as scsynth's ``/fail``); commands that
take time (load, play) answer ``/jackgen/done s address [s id]``.

TCP carries both framings, told apart per connection by the first byte: 0xC0
starts OSC 1.1 SLIP (what TouchOSC and SLIP-speaking clients send); anything
else is OSC 1.0's 4-byte big-endian size prefix (liblo's ``osc.tcp://``,
scsynth). Replies use the framing the client used.

Every sender's commands run in the order sent (``/jackgen/sync`` means "all I
sent before is done") while a slow ``load`` from one client does not hold up
another. A TCP connection is served by its own coroutine, which acts on each
message before it reads the next: a slow command or a flood holds the sender back
through TCP's flow control, so nothing sent is lost. A UDP sender gets a bounded
queue and a worker; UDP has no flow control, so a flood beyond the queue is dropped
and counted. Error replies to a flooding sender are rate-limited; memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from pythonosc import osc_message
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import ntp

from jackgen.common.errors import JackgenError
from jackgen.daemon.control.control import Control
from jackgen.daemon.frontends.commands import Call, check_args, match_osc, osc_arguments

log = logging.getLogger("jackgen.osc")

MAX_PACKET_BYTES = 65536
MAX_MESSAGES_PER_PACKET = 256
MAX_BUNDLE_DEPTH = 8
SENDER_QUEUE = 2048
ERROR_REPLIES_PER_S = 50
MAX_TCP_CONNECTIONS = 64

SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
_IMMEDIATE = 1  # the NTP timetag value meaning "now"


class OscParseError(ValueError):
    pass


class Message(NamedTuple):  # a NamedTuple: made ~100 000 times a second in a TCP flood
    address: str
    args: tuple
    timetag: float | None  # wall-clock seconds for a bundle with a real timetag; None = now


def parse_packet(data: bytes) -> list[Message]:
    """Parse one OSC packet (message or nested bundles). Pure: raises OscParseError."""
    if len(data) > MAX_PACKET_BYTES:
        raise OscParseError(f"packet of {len(data)} bytes exceeds {MAX_PACKET_BYTES}")
    out: list[Message] = []
    try:
        _parse_into(bytes(data), None, 0, out)
    except OscParseError:
        raise
    except Exception as e:  # python-osc raises several kinds on malformed input
        raise OscParseError(f"malformed OSC packet: {e.__class__.__name__}: {e}") from None
    return out


def _parse_into(data: bytes, timetag: float | None, depth: int, out: list[Message]) -> None:
    if data.startswith(b"#bundle\0"):
        if depth >= MAX_BUNDLE_DEPTH:
            raise OscParseError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
        if len(data) < 16:
            raise OscParseError("truncated bundle header")
        raw_tt = struct.unpack(">Q", data[8:16])[0]
        tt = None if raw_tt == _IMMEDIATE else ntp.ntp_to_system_time(data[8:16])
        pos = 16
        while pos < len(data):
            if pos + 4 > len(data):
                raise OscParseError("truncated bundle element size")
            size = struct.unpack(">i", data[pos : pos + 4])[0]
            if size <= 0 or size % 4 or pos + 4 + size > len(data):
                raise OscParseError(f"bad bundle element size {size}")
            _parse_into(data[pos + 4 : pos + 4 + size], tt, depth + 1, out)
            pos += 4 + size
        return
    if not data.startswith(b"/"):
        raise OscParseError("not an OSC message or bundle (must start with '/' or '#bundle')")
    if len(out) >= MAX_MESSAGES_PER_PACKET:
        raise OscParseError(f"more than {MAX_MESSAGES_PER_PACKET} messages in one packet")
    address, args = decode_message(data)
    out.append(Message(address, args, timetag))


_FAST_TAGS = frozenset("ifsShdTFN")  # what control's commands use; others go through python-osc
_STRUCT = {"i": (struct.Struct(">i"), 4), "f": (struct.Struct(">f"), 4), "h": (struct.Struct(">q"), 8),
           "d": (struct.Struct(">d"), 8)}
_CONST = {"T": True, "F": False, "N": None}


def decode_message(data: bytes) -> tuple[str, tuple]:
    """One OSC 1.0 message: (address, arguments), checked strictly as it is read.

    Decoded here rather than by python-osc for the common type tags: python-osc reads a truncated
    float as 0.0 (so its result needs a second, strict walk of the packet anyway) and takes
    ~5 µs a message, most of control's cost in a TCP flood; one strict pass is ~1.5 µs. Messages
    with other tags (blobs, MIDI, colours, arrays…) are checked, then decoded by python-osc."""
    end = data.find(b"\0")
    if end < 0:
        raise OscParseError("truncated OSC message: the address has no terminating NUL")
    address = data[:end].decode("utf-8")
    pos = (end // 4 + 1) * 4
    n = len(data)
    if pos == n:
        return address, ()  # no type tag string: a message without arguments (old OSC 1.0 senders)
    if pos > n or data[pos:pos + 1] != b",":
        raise OscParseError("malformed OSC message: the type tag string must follow the address and start with ','")
    tags_end = data.find(b"\0", pos)
    if tags_end < 0:
        raise OscParseError("truncated OSC message: unterminated type tag string")
    tags = data[pos + 1:tags_end].decode("ascii", errors="replace")
    if not _FAST_TAGS.issuperset(tags):
        check_message_layout(data)
        msg = osc_message.OscMessage(data)
        return msg.address, tuple(msg.params)
    pos = (tags_end // 4 + 1) * 4
    args = []
    for i, tag in enumerate(tags, 1):
        if tag in _CONST:
            args.append(_CONST[tag])
            continue
        if tag in "sS":
            end = data.find(b"\0", pos)
            if end < 0:
                raise OscParseError(f"truncated OSC message: argument {i} (string) has no terminating NUL")
            args.append(data[pos:end].decode("utf-8"))
            pos = (end // 4 + 1) * 4
        else:
            st, size = _STRUCT[tag]
            if pos + size > n:
                raise OscParseError(f"truncated OSC message: argument {i} ({tag}) is incomplete")
            args.append(st.unpack_from(data, pos)[0])
            pos += size
        if pos > n:
            raise OscParseError(f"truncated OSC message: argument {i} ({tag}) is incomplete")
    if pos != n:
        raise OscParseError(f"malformed OSC message: {n - pos} bytes after the last argument")
    return address, tuple(args)


_FIXED = {"i": 4, "f": 4, "c": 4, "r": 4, "m": 4, "h": 8, "d": 8, "t": 8, "T": 0, "F": 0, "N": 0, "I": 0}


def _padded_string_end(data: bytes, pos: int, what: str) -> int:
    end = data.find(b"\0", pos)
    if end < 0:
        raise OscParseError(f"truncated OSC message: {what} has no terminating NUL")
    return (end // 4 + 1) * 4


def check_message_layout(data: bytes) -> None:
    """Strict OSC 1.0 message check: python-osc reads a truncated float as 0.0 and
    skips unknown type tags, which would turn a damaged packet into a valid command."""
    pos = _padded_string_end(data, 0, "the address")
    if pos == len(data):
        return  # no type tag string: a message without arguments (old OSC 1.0 senders)
    if pos > len(data) or data[pos : pos + 1] != b",":
        raise OscParseError("malformed OSC message: the type tag string must follow the address and start with ','")
    tags_end = data.find(b"\0", pos)
    if tags_end < 0:
        raise OscParseError("truncated OSC message: unterminated type tag string")
    tags = data[pos + 1 : tags_end].decode("ascii", errors="replace")
    pos = _padded_string_end(data, pos, "the type tags")
    for i, tag in enumerate(tags, 1):
        if tag in _FIXED:
            pos += _FIXED[tag]
        elif tag in "sS":
            pos = _padded_string_end(data, pos, f"argument {i} (string)")
        elif tag == "b":
            if pos + 4 > len(data):
                raise OscParseError(f"truncated OSC message: argument {i} (blob size)")
            size = struct.unpack(">i", data[pos : pos + 4])[0]
            if size < 0:
                raise OscParseError(f"malformed OSC message: argument {i} has a negative blob size")
            pos += 4 + (size + 3) // 4 * 4
        elif tag in "[]":
            continue
        else:
            raise OscParseError(f"unsupported OSC type tag {tag!r} in argument {i}")
        if pos > len(data):
            raise OscParseError(f"truncated OSC message: argument {i} ({tag}) is incomplete")
    if pos != len(data):
        raise OscParseError(f"malformed OSC message: {len(data) - pos} bytes after the last argument")


def build_message(address: str, *args: Any) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        if isinstance(a, bool):
            b.add_arg(int(a), "i")
        elif isinstance(a, int):
            b.add_arg(a, "i" if -(2**31) <= a < 2**31 else "h")
        elif isinstance(a, float):
            b.add_arg(a, "f")
        else:
            b.add_arg(str(a), "s")
    return b.build().dgram


def slip_encode(packet: bytes) -> bytes:
    body = packet.replace(bytes([SLIP_ESC]), bytes([SLIP_ESC, SLIP_ESC_ESC])).replace(
        bytes([SLIP_END]), bytes([SLIP_ESC, SLIP_ESC_END]))
    return bytes([SLIP_END]) + body + bytes([SLIP_END])


def slip_decode(frame: bytes) -> bytes:
    out = bytearray()
    it = iter(frame)
    for b in it:
        if b == SLIP_ESC:
            nxt = next(it, None)
            if nxt == SLIP_ESC_END:
                out.append(SLIP_END)
            elif nxt == SLIP_ESC_ESC:
                out.append(SLIP_ESC)
            else:
                raise OscParseError("bad SLIP escape")
        else:
            out.append(b)
    return bytes(out)


# ---------------------------------------------------------------- senders
@dataclass(eq=False)
class Sender:
    """One client: where replies go, and its ordered command queue."""

    name: str
    send: Callable[[bytes], None]
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(SENDER_QUEUE))
    worker: asyncio.Task | None = None
    dropped: int = 0
    _err_window: float = 0.0
    _err_count: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    subscribe: Callable[[bool], None] | None = None  # (un)subscribes it to notifications (set by OscControl)
    host: str = ""  # its address (what the token admits)

    def reply(self, address: str, *args: Any) -> None:
        try:
            self.send(build_message(address, *args))
        except Exception as e:  # a gone client must not take the server down
            log.debug("reply to %s failed: %s", self.name, e)

    def error(self, address: str, message: str) -> None:
        """Reply /jackgen/error and log it, at most ERROR_REPLIES_PER_S a second per sender
        (a flooding client gets a sample of its errors, and the log does not drown)."""
        now = time.monotonic()
        if now - self._err_window > 1.0:
            if self._err_count > ERROR_REPLIES_PER_S:
                log.warning("OSC from %s: %d more error(s) in the last second not logged or answered",
                            self.name, self._err_count - ERROR_REPLIES_PER_S)
            self._err_window, self._err_count = now, 0
        self._err_count += 1
        if self._err_count <= ERROR_REPLIES_PER_S:
            log.warning("OSC %s from %s: %s", address or "packet", self.name, message)
            self.reply("/jackgen/error", address, message)


class OscControl:
    """Validates and acts on OSC messages for one Control."""

    def __init__(self, control: Control) -> None:
        self.control = control
        self.senders: dict[Any, Sender] = {}
        self.subscribers: set[Sender] = set()
        self.packets = 0
        self.messages = 0
        self.errors = 0
        self.dropped = 0
        self.late = 0
        self._servers: list = []
        self._tcp_count = 0
        self._notify_task: asyncio.Task | None = None

    def counters(self) -> dict:
        """What ``jackgen status`` shows of the OSC server."""
        return {"packets": self.packets, "messages": self.messages, "errors": self.errors, "dropped": self.dropped,
                "late_bundles": self.late, "subscribers": len(self.subscribers)}

    # ---------------------------------------------------------- transport side
    def sender_for(self, key: Any, name: str, send: Callable[[bytes], None], queued: bool = True,
                   host: str = "") -> Sender:
        """The sender ``key`` names; a UDP one (``queued``) gets a queue and a worker task."""
        s = self.senders.get(key)
        if s is None:
            if len(self.senders) > 4096:  # forget idle UDP senders rather than grow without bound
                for k, old in list(self.senders.items())[:1024]:
                    if old.queue.empty():
                        self._drop_sender(k)
            s = Sender(name, send, host=host)
            s.subscribe = lambda on, s=s: (self.subscribers.add if on else self.subscribers.discard)(s)
            if queued:
                s.worker = asyncio.create_task(self._work(s), name=f"osc-{name}")
            self.senders[key] = s
        s.last_seen = time.monotonic()
        return s

    def _drop_sender(self, key: Any) -> None:
        s = self.senders.pop(key, None)
        if s is not None:
            self.subscribers.discard(s)
            if s.worker:
                s.worker.cancel()

    def _parse(self, sender: Sender, data: bytes) -> list[Message]:
        self.packets += 1
        try:
            return parse_packet(data)
        except OscParseError as e:
            self.errors += 1
            sender.error("", str(e))
            return []

    def packet(self, sender: Sender, data: bytes) -> None:
        """A UDP packet: parse now, act in the sender's worker. UDP has no flow control, so a flood
        beyond the sender's queue is dropped, counted and answered (rate-limited)."""
        for m in self._parse(sender, data):
            try:
                sender.queue.put_nowait(m)
            except asyncio.QueueFull:
                sender.dropped += 1
                self.dropped += 1
                if sender.dropped in (1, 10, 100) or sender.dropped % 1000 == 0:
                    log.warning("OSC from %s: queue full, %d message(s) dropped so far", sender.name, sender.dropped)
                sender.error(m.address, "jackgen is overloaded: message dropped (send less, or use /jackgen/sync)")

    async def packet_flow(self, sender: Sender, data: bytes) -> None:
        """A TCP packet, acted on before the connection is read any further: a slow command, or a
        flood, holds the sender back through TCP's own flow control, and every message is applied
        in order. (One coroutine per connection: a slow client never holds up another.)"""
        for m in self._parse(sender, data):
            self.messages += 1
            try:
                pending = self.dispatch(sender, m)
                if pending is not None:
                    await pending
            except Exception as e:
                self._failed(sender, m, e)

    async def _work(self, sender: Sender) -> None:
        """A UDP sender's worker: its queue, in order."""
        q = sender.queue
        while True:
            m = q.get_nowait() if not q.empty() else await q.get()
            self.messages += 1
            try:
                await self.handle(sender, m)
            except Exception as e:
                self._failed(sender, m, e)

    def _failed(self, sender: Sender, m: Message, e: Exception) -> None:
        self.errors += 1
        if isinstance(e, JackgenError):
            sender.error(m.address, str(e))
            return
        log.error("OSC %s from %s failed", m.address, sender.name, exc_info=e)  # a bug must not stop this client
        sender.error(m.address, f"internal error: {e.__class__.__name__}: {e}")

    # ---------------------------------------------------------- validate and act
    def _at_from_timetag(self, m: Message) -> int | None:
        """A future timetag -> its exact frame; a past one counts as late and acts now."""
        if m.timetag is None:
            return None
        frame = self.control.clock.frame_at_unix(m.timetag) if self.control.clock.valid else None
        if frame is None:
            return None
        if frame <= self.control.now_frame():
            self.late += 1
            return None
        return frame

    async def handle(self, sender: Sender, m: Message) -> None:
        """Parse → validate → act, through the command table (see ``dispatch``)."""
        pending = self.dispatch(sender, m)
        if pending is not None:
            await pending

    def dispatch(self, sender: Sender, m: Message):
        """The address names the command, the message's arguments become its fields, the command's
        model checks them, control acts. A command that takes time comes back as a coroutine to
        await (it replies when done); the others have acted, and replied, on return (None)."""
        acc = self.control.access
        if acc.token and not acc.osc_admitted(sender.host):
            if m.address == "/jackgen/auth":
                if m.args and acc.token_ok(m.args[0] if isinstance(m.args[0], str) else None):
                    acc.admit(sender.host)
                    sender.reply("/jackgen/auth", "ok")
                    return None
                acc.refuse("osc_token", f"OSC {sender.name}", "/jackgen/auth with a wrong token")
                raise JackgenError("wrong token", status=401)
            acc.refuse("osc_token", f"OSC {sender.name}", f"{m.address} before /jackgen/auth")
            raise JackgenError("this jackgen needs its API token: send /jackgen/auth TOKEN first", status=401)
        if m.address == "/jackgen/auth":
            sender.reply("/jackgen/auth", "ok")
            return None
        found = match_osc(m.address)
        if found is None:
            raise JackgenError(f"unknown address {m.address} (the README's OSC section lists them)")
        cmd, parts = found
        fields = {**parts, **osc_arguments(cmd, m.address, m.args)}
        args = check_args(cmd, fields, "osc", m.address)
        call = Call(self._at_from_timetag(m) if cmd.timed else None, sender, sender.subscribe)
        result = cmd.run(self.control, args, call)
        if asyncio.iscoroutine(result):  # cheaper than inspect.isawaitable, ~100 000 times a second
            return self._finish(sender, m, cmd, args, result)
        self._reply(sender, m, cmd, args, result)
        return None

    async def _finish(self, sender: Sender, m: Message, cmd, args, pending) -> None:
        self._reply(sender, m, cmd, args, await pending)

    @staticmethod
    def _reply(sender: Sender, m: Message, cmd, args, result) -> None:
        if cmd.osc_reply is not None:
            reply = cmd.osc_reply(m.address, args, result)
            if reply:
                sender.reply(*reply)

    # ---------------------------------------------------------- notifications
    def notify_job(self, job, e: dict) -> None:
        """Job progress to subscribers: /jackgen/job s id, s status, f progress."""
        if not self.subscribers:
            return
        pkt = build_message("/jackgen/job", job.id, e["status"], float(job.progress))
        for s in list(self.subscribers):
            _send_safe(s, pkt)

    async def notify_loop(self) -> None:
        """Meters (<= 30 Hz) and track-state changes to subscribed clients."""
        last_states: list[str] = []
        while True:
            await asyncio.sleep(1 / 30)
            if not self.subscribers:
                continue
            c = self.control
            if c.meters:
                peaks = [float(x) for x in c.meters["track_peak"]] + [float(x) for x in c.meters["master_peak"]]
                pkt = build_message("/jackgen/meters", *peaks)
                for s in list(self.subscribers):
                    _send_safe(s, pkt)
            states = [t.state for t in c.tracks]
            if states != last_states:
                for i, st in enumerate(states):
                    if not last_states or last_states[i] != st:
                        pkt = build_message("/jackgen/track/state", i + 1, st)
                        for s in list(self.subscribers):
                            _send_safe(s, pkt)
                last_states = states

    # ---------------------------------------------------------- servers
    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        osc = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport):  # noqa: ANN001
                self.transport = transport

            def datagram_received(self, data: bytes, addr) -> None:  # noqa: ANN001
                if not osc.control.access.osc_network_ok(addr[0]):
                    osc.control.access.refuse("osc_network", f"OSC udp:{addr[0]}", "not in control.osc_allow")
                    return
                transport = self.transport
                s = osc.sender_for(("udp", addr), f"udp:{addr[0]}:{addr[1]}",
                                   lambda pkt, a=addr: transport.sendto(pkt, a), host=addr[0])
                osc.packet(s, data)

        udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=(host, port))
        self._servers.append(udp)
        tcp = await asyncio.start_server(self._tcp_client, host, port, limit=MAX_PACKET_BYTES * 2)
        self._servers.append(tcp)
        self._notify_task = asyncio.create_task(self.notify_loop(), name="osc-notify")

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not self.control.access.osc_network_ok(peer[0]):
            self.control.access.refuse("osc_network", f"OSC tcp:{peer[0]}", "not in control.osc_allow")
            writer.close()
            return
        if self._tcp_count >= MAX_TCP_CONNECTIONS:
            log.warning("OSC TCP: refusing %s, %d connections open", peer, self._tcp_count)
            writer.close()
            return
        self._tcp_count += 1
        key = ("tcp", id(writer))
        slip = None
        try:
            first = await reader.readexactly(1)
            slip = first[0] == SLIP_END

            def send(pkt: bytes) -> None:
                if writer.is_closing():
                    return
                writer.write(slip_encode(pkt) if slip else struct.pack(">I", len(pkt)) + pkt)

            s = self.sender_for(key, f"tcp:{peer[0]}:{peer[1]}", send, queued=False, host=peer[0])
            if slip:
                buf = bytearray()
                while True:
                    chunk = await reader.read(4096)
                    if not chunk:
                        break
                    buf += chunk
                    while SLIP_END in buf:
                        i = buf.index(SLIP_END)
                        frame, buf = bytes(buf[:i]), buf[i + 1 :]
                        if frame:
                            try:
                                await self.packet_flow(s, slip_decode(frame))
                            except OscParseError as e:
                                s.error("", str(e))
                    if len(buf) > MAX_PACKET_BYTES * 2:
                        s.error("", "SLIP frame too large; closing")
                        break
            else:  # OSC 1.0: a 4-byte big-endian size before each packet; split whole reads, not per packet
                buf = bytearray(first)
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    buf += chunk
                    pos, n = 0, len(buf)
                    while n - pos >= 4:
                        size = int.from_bytes(buf[pos:pos + 4], "big")
                        if size == 0 or size > MAX_PACKET_BYTES:
                            s.error("", f"bad OSC 1.0 TCP packet size {size} (limit {MAX_PACKET_BYTES}); closing")
                            return
                        if n - pos - 4 < size:
                            break
                        await self.packet_flow(s, bytes(buf[pos + 4:pos + 4 + size]))
                        pos += 4 + size
                    del buf[:pos]
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tcp_count -= 1
            self._drop_sender(key)
            try:
                await writer.drain()
            except Exception:
                pass
            writer.close()

    async def stop(self) -> None:
        if self._notify_task:
            self._notify_task.cancel()
        for srv in self._servers:
            srv.close()
        for k in list(self.senders):
            self._drop_sender(k)


def _send_safe(s: Sender, pkt: bytes) -> None:
    try:
        s.send(pkt)
    except Exception as e:  # a vanished subscriber must not stop the others
        log.debug("notify to %s failed: %s", s.name, e)
