"""Who may talk to control: the API token and the OSC source networks.

With no token (the default, everything on 127.0.0.1) anyone on this machine may. With one
(``control.token`` or ``JACKGEN_TOKEN``; required before any server binds beyond this machine),
every HTTP request carries ``Authorization: Bearer TOKEN``, and
an OSC client sends ``/jackgen/auth TOKEN`` first, which admits its address for 12 hours. OSC
from outside ``control.osc_allow`` is dropped before it is parsed. Every refusal is counted
(``status`` → ``access``) and logged, at most once a second per source.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections import OrderedDict

log = logging.getLogger("jackgen.access")

ADMIT_S = 12 * 3600.0
MAX_ADMITTED = 4096


class Access:
    def __init__(self, token: str, osc_allow: tuple[str, ...]) -> None:
        self.token = token
        self.networks = [ipaddress.ip_network(n, strict=False) for n in osc_allow]
        self.admitted: OrderedDict[str, float] = OrderedDict()  # OSC source address -> admitted until
        self.refused = {"http_token": 0, "osc_token": 0, "osc_network": 0}
        self._logged: dict[str, float] = {}

    def counters(self) -> dict:
        return {"token_required": bool(self.token), **self.refused, "osc_admitted": len(self.admitted)}

    def token_ok(self, given: str | None) -> bool:
        return bool(self.token) and isinstance(given, str) and hmac.compare_digest(given.encode(), self.token.encode())

    def bearer_ok(self, header: str | None) -> bool:
        if not self.token:
            return True
        scheme, _, value = (header or "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(value.strip())

    def osc_network_ok(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in n for n in self.networks)

    def osc_admitted(self, host: str) -> bool:
        if not self.token:
            return True
        until = self.admitted.get(host)
        return until is not None and until > time.monotonic()

    def admit(self, host: str) -> None:
        self.admitted.pop(host, None)
        self.admitted[host] = time.monotonic() + ADMIT_S
        while len(self.admitted) > MAX_ADMITTED:
            self.admitted.popitem(last=False)

    def refuse(self, kind: str, source: str, why: str) -> None:
        self.refused[kind] += 1
        now = time.monotonic()
        if now - self._logged.get(source, 0.0) >= 1.0:
            if len(self._logged) > 4096:
                self._logged.clear()
            self._logged[source] = now
            log.warning("refused %s: %s (%d refused so far)", source, why, self.refused[kind])
