"""
What a server writes, read back: its sinks' files and its log.

A sink file must be valid UTF-8 with whole lines, each one JSON object
starting with received_at, peer and listener (read_events).  A case waits
for lines by polling a file with a timeout, never by a fixed sleep, and
counts for "exactly once" (check_once: records "c=CID s=SEQ ...") only
after the server has stopped: its workers write what they hold when they
exit, so a late duplicate would be counted too.  From the log: the
workers started, their exit lines (records, sinks, what the defences
closed and refused), refusal lines and their suppressed counts.
"""
import calendar
import collections
import json
import os
import re

from .base import check, Failure, tail, wait_until


STARTED_RE = re.compile(r"worker (\d+) started: pid (\d+), generation (\d+)")
EXIT_RE = re.compile(r"ingestd\[(\d+)\]: \w+: worker (\d+) \(generation (\d+)\): exiting: (.*)")
LOGPID_RE = re.compile(r"ingestd\[(\d+)\]:")
RECORDS_EXIT_RE = re.compile(r"ingestd\[(\d+)\]: \w+: worker \d+ \(generation \d+\): exiting: "
                             r"\d+ connections, (\d+) bytes, (\d+) records \((\d+) truncated, "
                             r"(\d+) parse errors, (\d+) dropped by on_parse_error\)")
SINK_EXIT_RE = re.compile(r"ingestd\[(\d+)\]: \w+: worker \d+ \(generation \d+\): sink (\S+): "
                          r"(\d+) events, (\d+) bytes written, (\d+) dropped, (\d+) failed writes")
DEFENCE_EXIT_RE = re.compile(r"ingestd\[(\d+)\]: \w+: worker \d+ \(generation \d+\): closed (\d+) "
                             r"connections for idle_timeout, (\d+) for record_timeout, (\d+) for "
                             r"send_timeout, (\d+) for framing errors$", re.M)
REFUSED_EXIT_RE = re.compile(r"ingestd\[(\d+)\]: \w+: worker \d+ \(generation \d+\): refused (\d+) "
                             r"connections by allow/deny, (\d+) by max_connections, (\d+) by "
                             r"max_connections_per_ip, (\d+) with the connection table full$", re.M)
DEFENCE_NAMES = ("idle", "record", "send", "framing", "acl", "max", "per_ip", "full")
RECEIVED_AT_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
RFC3339_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
CS_RE = re.compile(r"c=(\d+) s=(\d+)")


STAMP_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|([+-])(\d\d):(\d\d))")


def log_time(stamp):
    """
    Seconds since the epoch of an RFC 3339 stamp: a log line's
    2026-01-02T03:04:05.678Z, an event's received_at (microseconds) or
    timestamp (with an offset such as +01:00).
    """
    m = STAMP_RE.fullmatch(stamp)
    check(m, f"not an RFC 3339 timestamp: {stamp}")
    t = calendar.timegm(tuple(int(m[i]) for i in range(1, 7))) + float(m[7] or 0)
    if m[8] != "Z":
        t -= (1 if m[9] == "+" else -1) * (int(m[10]) * 3600 + int(m[11]) * 60)
    return t


class LineCount:
    """Whole lines in a file so far, read incrementally; 0 while the file does not exist."""

    def __init__(self, path):
        self.path, self.offset, self.lines = path, 0, 0

    def __call__(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.lines
        self.offset += len(data)
        self.lines += data.count(b"\n")
        return self.lines


def wait_lines(paths, n, timeout):
    """Wait until the files hold at least n lines in all; return how many they hold."""
    counts = [LineCount(p) for p in paths]
    total = lambda: sum(c() for c in counts)
    wait_until(lambda: total() >= n, timeout, interval=0.05)
    got = total()
    names = " + ".join(os.path.basename(p) for p in paths)
    check(got >= n, f"{got} lines in {names} within {timeout} s, expected {n}")
    return got


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


JSON = json.JSONDecoder(parse_constant=_no_constant)     # strict: no NaN or Infinity
EVENT_HEAD = ("received_at", "peer", "listener")


def read_events(path, whole_only=False):
    """
    The events of a sink file: it must be valid UTF-8 (decoded strictly), end
    with a whole line, and each line must be one JSON object that starts with
    received_at, peer and listener.  whole_only: ignore a last line still
    being written (for polling while the server runs).
    """
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if whole_only:
            return []
        raise Failure(f"{name} was never created")
    if whole_only:
        data = data[:data.rfind(b"\n") + 1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Failure(f"{name} is not valid UTF-8 at byte {e.start}: "
                      f"{data[max(0, e.start - 60):e.start + 20]!r}")
    check(not text or text.endswith("\n"), f"{name} ends with a partial line: {text[-300:]!r}")
    events = []
    for i, line in enumerate(text.split("\n")[:-1], 1):
        try:
            ev = JSON.decode(line)
        except ValueError as e:
            raise Failure(f"{name}:{i} is not a JSON line ({e}): {line[:300]!r}")
        keys = iter(ev) if type(ev) is dict else iter(())
        if (next(keys, None), next(keys, None), next(keys, None)) != EVENT_HEAD:
            raise Failure(f"{name}:{i} does not start with received_at, peer, listener: "
                          f"{line[:300]!r}")
        if not RECEIVED_AT_RE.fullmatch(ev["received_at"]):
            raise Failure(f"{name}:{i}: received_at {ev['received_at']!r} is not RFC 3339 UTC "
                          "with microseconds")
        events.append(ev)
    return events


def wait_events(path, pred, timeout=5, what="the expected events"):
    """Poll the file until pred(events) is true; return the events."""
    last = []

    def poll():
        nonlocal last
        last = read_events(path, whole_only=True)
        return pred(last)
    if not wait_until(poll, timeout, interval=0.05):
        shown = [json.dumps(e)[:200] for e in last[-3:]]
        raise Failure(f"{what} not in {os.path.basename(path)} within {timeout} s; it has "
                      f"{len(last)} events, the last: {shown}")
    return last


def has_msgs(*msgs):
    """A predicate for wait_events: every msg in msgs is some event's msg."""
    return lambda evs: set(msgs) <= {e.get("msg") for e in evs}


def record_text(ev):
    """The text a blast or RecordSender record carries, from its event."""
    body = ev.get("body")
    return body.get("msg", "") if isinstance(body, dict) else ev.get("msg", "")


def check_once(events, expected, what):
    """
    The (c, s) pairs of the events are exactly the set expected, each once;
    expected None: each connection c seen gives 0 .. n-1, n its count.
    """
    seen = collections.Counter()
    for ev in events:
        m = CS_RE.search(record_text(ev))
        if not m or "parse_error" in ev:
            raise Failure(f"{what}: an event that is not a whole record: {json.dumps(ev)[:300]}")
        seen[(int(m[1]), int(m[2]))] += 1
    if expected is None:
        per = collections.Counter(c for c, _ in seen.elements())
        expected = {(c, q) for c, n in per.items() for q in range(n)}
    dups = sorted(k for k, n in seen.items() if n > 1)
    missing = sorted(set(expected) - set(seen))
    extra = sorted(set(seen) - set(expected))
    check(not dups and not missing and not extra,
          f"{what}: {len(events)} events for {len(expected)} records sent; {len(dups)} duplicated "
          f"(first {dups[:3]}), {len(missing)} missing (first {missing[:3]}), {len(extra)} never "
          f"sent (first {extra[:3]}) as (connection, seq)")
    return seen


def exit_counts(s):
    """The workers' exit lines summed: bytes, records, truncated, parse errors, parse drops."""
    rows = [tuple(int(x) for x in m.groups()[1:]) for m in RECORDS_EXIT_RE.finditer(s.log())]
    return rows, [sum(col) for col in zip(*rows)] if rows else [0] * 5


def sink_exits(s, name):
    """Each worker's exit line for sink name: (events, bytes written, dropped, failed writes)."""
    return [tuple(int(x) for x in m.groups()[2:]) for m in SINK_EXIT_RE.finditer(s.log())
            if m[2] == name]


def worker_lines(s, pattern, since=0):
    """The worker slots that logged pattern (after "worker N (generation G): ")."""
    return {int(m[1]) for m in re.finditer(r"worker (\d+) \(generation \d+\): " + pattern,
                                           s.log(since))}


class SinkLines:
    """
    Whole lines in a growing file so far, counted in a reused buffer: cheap
    enough to poll while timing a client (LineCount holds what it reads, and
    its page faults cost as much CPU as the server's work on 2 cores).
    """

    def __init__(self, path):
        self.path, self.offset, self.lines = path, 0, 0
        self.buf = bytearray(1 << 20)

    def __call__(self):
        try:
            f = open(self.path, "rb", buffering=0)
        except FileNotFoundError:
            return self.lines
        with f:
            f.seek(self.offset)
            for _ in range(1024):           # bounded: 1 GiB a call
                n = f.readinto(self.buf)
                if not n:
                    break
                self.offset += n
                self.lines += self.buf.count(b"\n", 0, n)
        return self.lines


def defence_counts(s, workers=None):
    """
    The workers' exit lines "closed N connections for idle_timeout, ..." and
    "refused N connections by allow/deny, ...", summed, as a dict.
    """
    log = s.log()
    closed = {m[1]: [int(x) for x in m.groups()[1:]] for m in DEFENCE_EXIT_RE.finditer(log)}
    refused = {m[1]: [int(x) for x in m.groups()[1:]] for m in REFUSED_EXIT_RE.finditer(log)}
    if workers is not None:
        check(len(closed) == workers and set(refused) == set(closed),
              f"{len(closed)} workers logged what their defences closed and {len(refused)} what "
              f"they refused, expected {workers}; log ends: {tail(log)}")
    rows = [closed[pid] + refused.get(pid, [0] * 4) for pid in closed]
    sums = [sum(col) for col in zip(*rows)] if rows else [0] * len(DEFENCE_NAMES)
    return dict(zip(DEFENCE_NAMES, sums))


def check_defences(s, workers, **expect):
    got = defence_counts(s, workers)
    want = dict({name: 0 for name in DEFENCE_NAMES}, **expect)
    check(got == want, f"the workers' exit lines count {got}, expected {want}")


def no_respawn(s, nstarted, what):
    log = s.log()
    check(not re.search(r"exited unexpectedly|respawning|killed by signal", log),
          f"{what}: a worker died: {tail(log)}")
    n = len(STARTED_RE.findall(log))
    check(n == nstarted, f"{what}: {n} \"worker N started\" lines, expected {nstarted}")


def refusal_lines(s, reason, since=0):
    """(lines logged, refusals they stand for) for one reason: suppressed ones count too."""
    rows = s.grep(rf"(?m)refused \S+: {re.escape(reason)}(?: \((\d+) similar messages "
                  r"suppressed\))?$", since)
    return len(rows), len(rows) + sum(int(r[1] or 0) for r in rows)
