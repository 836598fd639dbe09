"""The job queue on Redis Streams: keys, the atomic steps (Lua), and what workers and control share.

Written on redis-py's streams API with a handful of Lua scripts rather than a task framework:
the steps jackgen needs are few and must be atomic with a fence check (below), the queue must run
on Debian's Redis 7.0, and messages are plain JSON a forged entry cannot turn into code.

Keys, all under ``jackgen:<instance>:``:

- ``q:<backend>:<priority>`` — a stream per backend and priority (high, normal, low), each with the
  consumer group ``<backend>``; an entry is ``{job: ID, v: 1}``, the job itself is in its hash.
- ``job:<ID>`` — the job: status, spec, takes, progress, timings, outputs, attempts, worker, fence.
- ``jobs`` (zset, by submission time) — every job kept; ``queued`` (zset) — those waiting.
- ``ev:<ID>`` — the job's events (server-sent events resume from an entry id); ``events`` — every
  job's and stream's events, for control and OSC notify. Both trimmed with ``MAXLEN ~``.
- ``dead`` — dead letters: jobs that failed ``max_attempts`` times, and entries that do not parse.
- ``worker:<ID>`` (hash) + ``alive:<ID>`` (expiring key) — a worker's registration and heartbeat;
  ``workers`` (set) — the ids. ``in:<ID>`` — a worker's inbox (stream grants, cancel, chain changes).
- ``audio:<ID>:<epoch>`` — a remote worker's audio for the relay (position, rate, channels, frames);
  ``take:<ID>:<take>`` and ``landing`` — its takes, uploaded for the relay to write.
- ``unavailable:<backend>`` — why that backend's workers cannot load (control answers 503 with it).

The fence: every claim of a job increments ``fence`` in its hash and the claimer keeps the value.
Whatever a worker publishes about a job (progress, done, failed) and its ack go through one script
that first checks the fence; a worker whose job was reclaimed by another holds a stale fence and can
publish nothing, so a job has one ``done`` and one set of takes.

Priorities: a worker takes high before normal before low. A job that has waited ``starve_s``
(default 60 s) goes first whatever its priority, oldest first, so low never starves.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass

PRIORITY_NAMES = ("high", "normal", "low")
FINAL = ("done", "failed", "cancelled")
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
EVENTS_MAXLEN = 20_000  # every job's events (~10 a second per running job)
JOB_EVENTS_MAXLEN = 500
DEAD_MAXLEN = 10_000
QUEUE_MAXLEN = 100_000  # far above any queue length jackgen accepts (max_queued), so trimming never drops a waiting job


class QueueError(RuntimeError):
    """Redis answered, but not as a jackgen queue would (a forged or broken entry)."""


def host_id() -> str:
    """This machine: its hostname and systemd machine id (two containers may share a hostname)."""
    mid = ""
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(p) as f:
                mid = f.read().strip()[:12]
            break
        except OSError:
            continue
    return f"{socket.gethostname()}/{mid}"


def new_worker_id(backends: list[str] | tuple[str, ...]) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"


@dataclass(frozen=True)
class Keys:
    instance: str

    @property
    def prefix(self) -> str:
        return f"jackgen:{self.instance}:"

    def queue(self, backend: str, priority: str) -> str:
        return f"{self.prefix}q:{backend}:{priority}"

    def job(self, jid: str) -> str:
        return f"{self.prefix}job:{jid}"

    def job_events(self, jid: str) -> str:
        return f"{self.prefix}ev:{jid}"

    def worker(self, wid: str) -> str:
        return f"{self.prefix}worker:{wid}"

    def alive(self, wid: str) -> str:
        return f"{self.prefix}alive:{wid}"

    def inbox(self, wid: str) -> str:
        return f"{self.prefix}in:{wid}"

    def audio(self, jid: str, epoch: str) -> str:
        return f"{self.prefix}audio:{jid}:{epoch}"

    def take_upload(self, jid: str, take: str) -> str:
        return f"{self.prefix}take:{jid}:{take}"

    def unavailable(self, backend: str) -> str:
        return f"{self.prefix}unavailable:{backend}"

    @property
    def landing(self) -> str:
        return self.prefix + "landing"

    @property
    def jobs(self) -> str:
        return self.prefix + "jobs"

    @property
    def queued(self) -> str:
        return self.prefix + "queued"

    @property
    def events(self) -> str:
        return self.prefix + "events"

    @property
    def dead(self) -> str:
        return self.prefix + "dead"

    @property
    def workers(self) -> str:
        return self.prefix + "workers"


def retry_backoff_s(attempt: int, base_s: float, cap_s: float = 60.0) -> float:
    """How long a job whose attempt ``attempt`` (1-based) ended badly waits before the next: base, 2×, 4×, …"""
    return min(cap_s, base_s * (2 ** max(0, attempt - 1)))


def event_json(event: str, jid: str, status: str, **fields) -> str:
    return json.dumps({"event": event, "job_id": jid, "status": status, "t": round(time.time(), 3), **fields},
                      default=str)


def parse_event(fields: dict) -> dict | None:
    """An entry of ``events`` / ``ev:<ID>`` as a dict, or None when it is not one of ours."""
    raw = fields.get("e")
    if not isinstance(raw, str):
        return None
    try:
        e = json.loads(raw)
    except ValueError:
        return None
    return e if isinstance(e, dict) and isinstance(e.get("event"), str) else None


# ---------------------------------------------------------------------------- Lua
# Each script is one atomic step. KEYS: the job hash, events, the job's events (and more per script);
# ARGV starts with the job id. Field pairs come last (count, k1, v1, ...).

_HELPERS = """
local function is_final(st) return st == 'done' or st == 'failed' or st == 'cancelled' end
local function publish(jid, ev, evkey, jobev, maxev, maxjob)
  if ev ~= '' then
    redis.call('XADD', evkey, 'MAXLEN', '~', maxev, '*', 'job', jid, 'e', ev)
    redis.call('XADD', jobev, 'MAXLEN', '~', maxjob, '*', 'e', ev)
  end
end
local function set_pairs(key, argv, at)
  local n = tonumber(argv[at])
  for i = 1, n do redis.call('HSET', key, argv[at + 2 * i - 1], argv[at + 2 * i]) end
end
"""

# claim: KEYS job, events, jobev, queued. ARGV jid, worker, now, attempt, event, maxev, maxjob, cancelled event
CLAIM = _HELPERS + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 'missing'} end
local st = redis.call('HGET', KEYS[1], 'status')
if is_final(st) then return {0, st} end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then  -- cancelled while its worker was dying
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[3])
  redis.call('ZREM', KEYS[4], ARGV[1])
  publish(ARGV[1], ARGV[8], KEYS[2], KEYS[3], ARGV[6], ARGV[7])
  return {0, 'cancelled'}
end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[2], 'started_at', ARGV[3], 'attempts', ARGV[4],
           'progress', '0', 'audio_s', '0')
redis.call('ZREM', KEYS[4], ARGV[1])
publish(ARGV[1], ARGV[5], KEYS[2], KEYS[3], ARGV[6], ARGV[7])
return {fence, 'running'}
"""

# fenced: KEYS job, events, jobev, queued, queue stream.
# ARGV jid, fence, event, new status ('' keeps it), group, msgid ('' no ack), maxev, maxjob, npairs, k, v, ...
FENCED = _HELPERS + """
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[2] then return 0 end
if is_final(redis.call('HGET', KEYS[1], 'status')) then return 0 end
set_pairs(KEYS[1], ARGV, 9)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[4])
  if ARGV[4] ~= 'running' then redis.call('ZREM', KEYS[4], ARGV[1]) end
end
publish(ARGV[1], ARGV[3], KEYS[2], KEYS[3], ARGV[7], ARGV[8])
if ARGV[6] ~= '' then redis.call('XACK', KEYS[5], ARGV[5], ARGV[6]) end
return 1
"""

# renew a running job's claim: KEYS job, queue stream. ARGV fence, group, consumer, msgid
# -> 1 still ours (idle time reset), 2 ours but cancel asked, 0 lost (reclaimed, or gone)
RENEW = """
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 0 end
local p = redis.call('XPENDING', KEYS[2], ARGV[2], ARGV[4], ARGV[4], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
redis.call('XCLAIM', KEYS[2], ARGV[2], ARGV[3], 0, ARGV[4], 'JUSTID')
if redis.call('HGET', KEYS[1], 'cancel') == '1' then return 2 end
return 1
"""

# dead letter: KEYS job, events, jobev, queued, queue stream, dead.
# ARGV jid, group, msgid, error, attempts, backend, event, maxev, maxjob, maxdead, stream name
DEAD = _HELPERS + """
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[10], '*', 'job', ARGV[1], 'backend', ARGV[6], 'error', ARGV[4],
           'attempts', ARGV[5], 'stream', ARGV[11], 'msg', ARGV[3], 't', redis.call('TIME')[1])
redis.call('XACK', KEYS[5], ARGV[2], ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if is_final(redis.call('HGET', KEYS[1], 'status')) then return 0 end
redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('HSET', KEYS[1], 'status', 'failed', 'dead', '1', 'error', ARGV[4], 'attempts', ARGV[5])
redis.call('ZREM', KEYS[4], ARGV[1])
publish(ARGV[1], ARGV[7], KEYS[2], KEYS[3], ARGV[8], ARGV[9])
return 1
"""

# cancel: KEYS job, events, jobev, queued. ARGV jid, event (for a queued job), maxev, maxjob
# -> the status before: 'queued' (now cancelled), 'running' (cancel asked), or a final one (nothing done)
CANCEL = _HELPERS + """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'missing' end
if st == 'queued' or st == 'retrying' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancel', '1', 'finished_at', redis.call('TIME')[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  publish(ARGV[1], ARGV[2], KEYS[2], KEYS[3], ARGV[3], ARGV[4])
  return st
end
if st == 'running' then redis.call('HSET', KEYS[1], 'cancel', '1') end
return st
"""

# retry a failed or cancelled job: KEYS job, events, jobev, queued, queue stream, dead.
# ARGV jid, event, maxev, maxjob, maxqueue, now -> 1 queued again, 0 not final, -1 missing
RETRY = _HELPERS + """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if st ~= 'failed' and st ~= 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'cancel', '0', 'dead', '0', 'error', '', 'attempts', '0',
           'progress', '0', 'retried_at', ARGV[6])
redis.call('HINCRBY', KEYS[1], 'retries', 1)
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 'job', ARGV[1], 'v', '1')
local dead = redis.call('XRANGE', KEYS[6], '-', '+')
for _, e in ipairs(dead) do
  local f = e[2]
  for i = 1, #f, 2 do if f[i] == 'job' and f[i + 1] == ARGV[1] then redis.call('XDEL', KEYS[6], e[1]) end end
end
publish(ARGV[1], ARGV[2], KEYS[2], KEYS[3], ARGV[3], ARGV[4])
return 1
"""

# take the next job: KEYS the queue streams in priority order. ARGV consumer, (unused), starve (ms), then one
# group name per stream. -> {stream, id, {fields}} or {'', last ids...} (the newest entry id of each
# stream, for the blocking wait that follows). A stream's oldest undelivered entry that has waited
# starve ms goes first, whatever its priority (oldest first).
TAKE = """
local n = #KEYS
local function next_undelivered(i)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[i])
  if not ok then return nil end
  for _, g in ipairs(groups) do
    local name, last
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then last = g[j + 1] end
    end
    if name == ARGV[3 + i] then
      local e = redis.call('XRANGE', KEYS[i], '(' .. last, '+', 'COUNT', 1)
      if #e > 0 then return e[1][1] end
      return nil
    end
  end
  return nil
end
local order = {}
local aged = {}
local t = redis.call('TIME')  -- the server's clock, which stamped the entry ids (workers' clocks may differ)
local now, starve = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(ARGV[3])
for i = 1, n do
  local id = next_undelivered(i)
  if id then
    local ms = tonumber(string.match(id, '^(%d+)'))
    if now - ms >= starve then table.insert(aged, {ms, i}) end
  end
end
table.sort(aged, function(a, b) return a[1] < b[1] end)
for _, a in ipairs(aged) do table.insert(order, a[2]) end
for i = 1, n do table.insert(order, i) end
for _, i in ipairs(order) do
  local ok, r = pcall(redis.call, 'XREADGROUP', 'GROUP', ARGV[3 + i], ARGV[1], 'COUNT', 1, 'STREAMS', KEYS[i], '>')
  if ok and r and #r > 0 and #r[1][2] > 0 then
    local e = r[1][2][1]
    return {KEYS[i], e[1], e[2]}
  end
end
local last = {''}
for i = 1, n do
  local e = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)
  if #e > 0 then table.insert(last, e[1][1]) else table.insert(last, '0-0') end
end
return last
"""

# submit: KEYS job, events, jobev, queued, jobs, queue stream, unavailable flag.
# ARGV jid, now, event, max queued, maxev, maxjob, maxqueue, npairs, k, v, ... -> 'ok', 'full', or why the
# backend cannot run (one round trip: the checks and the writes together)
SUBMIT = _HELPERS + """
local why = redis.call('GET', KEYS[7])
if why then return 'unavailable:' .. why end
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[4]) then return 'full' end
set_pairs(KEYS[1], ARGV, 8)
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
publish(ARGV[1], ARGV[3], KEYS[2], KEYS[3], ARGV[5], ARGV[6])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[7], '*', 'job', ARGV[1], 'v', '1')
return 'ok'
"""

SCRIPTS = {"submit": SUBMIT, "take": TAKE, "claim": CLAIM, "fenced": FENCED, "renew": RENEW, "dead": DEAD, "cancel": CANCEL, "retry": RETRY}


def pairs(fields: dict) -> list:
    """Hash fields as the scripts' trailing ``n, k1, v1, …`` (values as text; dicts/lists as JSON)."""
    out: list = [len(fields)]
    for k, v in fields.items():
        out += [k, v if isinstance(v, str) else json.dumps(v, default=str)]
    return out


JSON_FIELDS = ("spec", "takes", "outputs", "timings", "info", "stream")
NUM_FIELDS = {"progress": float, "audio_s": float, "submitted_at": float, "started_at": float,
              "finished_at": float, "attempts": int, "fence": int, "rate": int, "retries": int}


def decode_job(h: dict) -> dict:
    """A job hash (text values) as plain data; a field that does not parse is dropped, not fatal."""
    out: dict = {}
    for k, v in h.items():
        if k in JSON_FIELDS:
            try:
                out[k] = json.loads(v)
            except (TypeError, ValueError):
                continue
        elif k in NUM_FIELDS:
            try:
                out[k] = NUM_FIELDS[k](float(v))
            except (TypeError, ValueError):
                continue
        else:
            out[k] = v
    return out


def stream_names(keys: Keys, backends) -> list[str]:
    """The queue streams a worker of ``backends`` reads, in the order it takes them."""
    return [keys.queue(b, p) for p in PRIORITY_NAMES for b in backends]


def backend_of(stream: str) -> str:
    return stream.rsplit(":", 2)[-2]


def entry_ms(entry_id: str) -> int:
    try:
        return int(entry_id.split("-", 1)[0])
    except ValueError:
        return 0
