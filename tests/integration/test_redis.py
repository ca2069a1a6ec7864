"""
Redis sinks (XADD to a stream whose name may take an event's field): a
real redis-server (append-only, fsync always) restarted under RELP load,
out of memory, a key of the wrong type, a backlog that drains by itself;
a scripted stand-in for the answers a real one gives only by chance
(LOADING, WRONGTYPE); ${field} stream names, binary-safe.
"""
import collections
import json
import re
import socket
import sys
import threading
import time

from lib.base import LOCAL4, case, check, Failure, tail, wait_until
from lib.net import free_port, http_get, prom_values
from lib.server import pipeline_server
from lib.events import CS_RE, record_text, sink_exits
from lib.clients import octet_frame
from lib.relp import fault_run, RelpClient
from lib.peers import RedisServer


@case
def redis_sink_restart(ctx):
    """
    A redis sink (stream "ingestd:${app}") under RELP and plain TCP load;
    redis-server (append-only, fsync always) restarted mid-load: every
    record answered over RELP is in its stream, duplicates are counted, and
    the stream key takes the event's app field.
    """
    r = RedisServer(ctx)
    r.start()

    def restart(s, loads):
        before = sum(len(t.acked) for t in loads)
        r.stop()
        time.sleep(0.5)
        paused = sum(len(t.acked) for t in loads)
        r.start()
        s.wait_for_log(r"sink redis: write|sink redis: redis", timeout=5)
        check(wait_until(lambda: sum(len(t.acked) for t in loads) > paused + 1000, 15),
              "no answers after redis came back")
        print(f"# redis_sink_restart: {paused - before} answers while redis was down",
              file=sys.stderr, flush=True)

    def delivered():
        check(sorted(r.cli("KEYS", "*")) == ["ingestd:relp", "ingestd:tcp"],
              f"the streams are {r.cli('KEYS', '*')}, expected ingestd:relp and ingestd:tcp")
        return collections.Counter((int(m[1]), int(m[2])) for stream in ("ingestd:relp", "ingestd:tcp")
                                   for e in r.events(stream)
                                   for m in [re.search(r"c=(\d+) s=(\d+)", e.get("msg", ""))] if m)

    fault_run(ctx, "redis_sink_restart", restart, relp=2, tcp=1, delivered=delivered,
              sinks=[{"name": "redis", "type": "redis", "stream": "ingestd:${app}",
                      "upstreams": [f"{LOCAL4}:{r.port}"]}])
    r.stop()


def redis_sink(port, stream, **kw):
    return dict({"name": "redis", "type": "redis", "stream": stream,
                 "upstreams": [f"{LOCAL4}:{port}"]}, **kw)


@case
def redis_stream_field(ctx):
    r"""
    ${field} in stream is the event's own top-level field, decoded: not the
    "host" of a JSON record's body, nor an SD parameter host="..." (such
    events have no host: the field expands to nothing); \" \\ \t \n are
    undone, \u0000 is a NUL byte and a byte that is not UTF-8 is U+FFFD, in
    a binary-safe key.
    """
    r = RedisServer(ctx)
    r.start()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "framing": "octet-counted"}],
                        sinks=[redis_sink(r.port, "h:${host}", name="h"),
                               redis_sink(r.port, "m:${msg}", name="m")], workers=1)
    s.start()
    head = b"<13>1 2024-05-06T07:08:09Z "
    records = [b'{"host":"evil","msg":"in-body","n":"c=1 s=0"}',
               head + b'- app - - [x@1 host="sd-host" n="c=1 s=1"] sd',
               head + b'q"u\\o app - - - quote',
               head + b'ctl app - - - a\x00b\tc\nd\xffe',
               head + b'good app - - - {"host":"evil"}']
    c = ctx.connect(s.addr)
    c.sendall(b"".join(octet_frame(x) for x in records))
    want = {b"h:": 2, b'h:q"u\\o': 1, b"h:ctl": 1, b"h:good": 1,
            b"m:": 1, b"m:sd": 1, b"m:quote": 1, b"m:a\x00b\tc\nd\xef\xbf\xbde": 1,
            b'm:{"host":"evil"}': 1}
    keys = lambda: set(r.call("KEYS", "*"))
    wait_until(lambda: keys() >= set(want) or len(keys()) >= len(want), 10)
    c.close()
    s.stop()
    check(keys() == set(want), f"the keys are {sorted(keys())}, expected {sorted(want)}")
    counts = {k: r.call("XLEN", k) for k in want}
    check(counts == want, f"events per key: {counts}, expected {want}")
    body = [json.loads(f[1]) for _, f in r.call("XRANGE", "h:", "-", "+")]
    check([e.get("body", {}).get("host") for e in body] == ["evil", None] and
          "host" not in body[1] and '"sd-host"' in json.dumps(body[1]),
          f"the events in h: are {body}")


def redis_stream_counts(events, what):
    """The (c, s) of each event of a stream (a Counter), checking each is a whole record."""
    seen = collections.Counter()
    for e in events:
        m = CS_RE.search(record_text(e))
        check(m, f"{what}: an event without c= s=: {json.dumps(e)[:200]}")
        seen[(int(m[1]), int(m[2]))] += 1
    return seen


def relp_answers(ctx, addr, records, what):
    """
    A RELP session, opened, and the answers to records: (the client, the
    answers), or a Failure when they stop (even open waits for the sinks).
    """
    try:
        relp = RelpClient(ctx, addr)
        relp.open()
        return relp, relp.syslog(records)
    except socket.timeout:
        raise Failure(f"{what}: no RELP answer for 5 s: the sink is stuck")


def check_each_once(seen, want, what):
    dups = sorted(k for k, n in seen.items() if n > 1)
    missing, extra = sorted(set(want) - set(seen)), sorted(set(seen) - set(want))
    check(not dups and not missing and not extra,
          f"{what}: {sum(seen.values())} events for {len(want)} records; duplicated {dups[:5]}, "
          f"missing {missing[:5]}, never sent there {extra[:5]} as (connection, seq)")


@case
def redis_poisoned_key(ctx):
    """
    stream = "logs:${host}", and logs:bad is a plain string: Redis refuses
    the XADD of every "bad" event for good (WRONGTYPE).  Each is dropped,
    counted ("N dropped" in the worker's exit line) and logged, rate-limited
    and with its key; over RELP it is answered 200 OK like the others.  Every
    "good" event before and after one, over plain TCP and RELP, is in
    logs:good exactly once, logs:bad is untouched, and the sink (overflow =
    "block") keeps flowing: more records after the refusals land too.
    """
    r = RedisServer(ctx)
    r.start()
    r.cli("SET", "logs:bad", "x")
    tcp_port = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "protocol": "relp"},
                              {"listen": f"{LOCAL4}:{tcp_port}"}],
                        sinks=[redis_sink(r.port, "logs:${host}", overflow="block")], workers=1)
    s.start()

    def rec(cid, q):
        host = "bad" if q % 4 == 2 else "good"
        return f"<13>1 2024-05-06T07:08:09Z {host} app - - - c={cid} s={q}"

    def good(cid, first, n):
        return {(cid, q) for q in range(first, first + n) if q % 4 != 2}

    def landed(n):
        ok = wait_until(lambda: r.cli("XLEN", "logs:good") >= n, 10)
        check(ok, f"{r.cli('XLEN', 'logs:good')} events in logs:good within 10 s, expected {n}")

    c = ctx.connect((LOCAL4, tcp_port))
    c.sendall("".join(rec(1, q) + "\n" for q in range(40)).encode())      # in one write
    landed(30)
    relp, answers = relp_answers(ctx, s.addr, [rec(2, q).encode() for q in range(40)],
                                 "logs:${host}")
    check(set(answers.values()) == {b"200 OK"},
          f"RELP answers: {collections.Counter(answers.values())}")
    c.sendall("".join(rec(1, q) + "\n" for q in range(40, 80)).encode())
    landed(90)
    relp.close()
    c.close()
    s.stop()
    want = good(1, 0, 80) | good(2, 0, 40)
    check_each_once(redis_stream_counts(r.events("logs:good"), "logs:good"), want, "logs:good")
    check(sorted(r.cli("KEYS", "*")) == ["logs:bad", "logs:good"],
          f"the keys are {r.cli('KEYS', '*')}, expected logs:bad and logs:good")
    check(r.cli("GET", "logs:bad") == "x", "logs:bad was changed")
    exits = sink_exits(s, "redis")
    check(exits and sum(e[2] for e in exits) == 30,
          f"exit lines (events, bytes, dropped, failed writes): {exits}; expected 30 dropped")
    said = s.grep(r'sink redis: redis \S+: XADD to "logs:bad" refused: WRONGTYPE [^;]*; '
                  r'event dropped')
    check(1 <= len(said) < 30, f"{len(said)} log lines about the 30 refused events, expected "
          "at least one and fewer (rate-limited)")
    check(not s.grep(r"could not be written|reconnecting"), "the sink was stuck or reconnected: "
          f"{tail(s.log())}")


@case
def redis_backlog_drains(ctx):
    """
    A backlog several times what the sink has in flight (4 MiB), queued
    while redis-server was down, drains once it is back, with no new event
    to set the sink going: every event is in the stream exactly once.
    """
    r = RedisServer(ctx)
    r.start()
    sport = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[redis_sink(r.port, "logs")], workers=1, level="info",
                        extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
    s.start()
    r.stop()
    n, pad = 40000, "x" * 150          # about 14 MB of events
    c = ctx.connect(s.addr)
    c.sendall("".join(f"<13>1 2024-05-06T07:08:09Z h app - - - c=1 s={q} {pad}\n"
                      for q in range(n)).encode())
    c.close()
    queued = lambda: prom_values(http_get(sport, "/metrics")[2]).get(
        'ingestd_sink_events_total{sink="redis"}', 0)
    check(wait_until(lambda: queued() >= n, 10), f"{queued()} of {n} events queued")
    r.start()
    ok = wait_until(lambda: r.cli("XLEN", "logs") >= n, 30)
    check(ok, f"{r.cli('XLEN', 'logs')} of {n} events in the stream within 30 s of Redis "
          "coming back")
    s.stop()
    check_each_once(redis_stream_counts(r.events("logs"), "logs"), {(1, q) for q in range(n)},
                    "logs")


class ScriptedRedis(threading.Thread):
    """
    A stand-in for redis-server, for answers a real one gives only by chance:
    XADD of an event whose text has "flaky" is refused for now (LOADING) the
    first time and added the next; of one with "poison" refused for good
    (WRONGTYPE); any other is added.  sent and added count, by the event's
    "c=N s=N", what it was sent and what it added.
    """

    def __init__(self, ctx):
        super().__init__(daemon=True)
        self.lsn = socket.socket()
        ctx.socks.append(self.lsn)
        self.lsn.bind((LOCAL4, 0))
        self.lsn.listen(8)
        self.port = self.lsn.getsockname()[1]
        self.sent, self.added = collections.Counter(), collections.Counter()
        self.connections = 0
        self.lock = threading.Lock()

    def counts(self):
        """Copies of (sent, added), for the case's thread."""
        with self.lock:
            return collections.Counter(self.sent), collections.Counter(self.added)

    def answer(self, cmd):
        if cmd[0].upper() != b"XADD":
            return b"+OK\r\n"
        m = CS_RE.search(cmd[-1].decode(errors="replace"))
        key = (int(m[1]), int(m[2])) if m else None
        with self.lock:
            self.sent[key] += 1
            if b"poison" in cmd[-1]:
                return b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
            if b"flaky" in cmd[-1] and self.sent[key] == 1:
                return b"-LOADING Redis is loading the dataset in memory\r\n"
            self.added[key] += 1
        return b"$3\r\n0-1\r\n"

    @staticmethod
    def command(buf):
        """(the first whole RESP command in buf as a list of bytes, the rest), or (None, buf)."""
        m = re.match(rb"\*(\d+)\r\n", buf)
        if not m:
            return None, buf
        args, at = [], m.end()
        for _ in range(int(m[1])):
            a = re.match(rb"\$(\d+)\r\n", buf[at:])
            if not a or len(buf) < at + a.end() + int(a[1]) + 2:
                return None, buf
            at += a.end()
            args.append(buf[at:at + int(a[1])])
            at += int(a[1]) + 2
        return args, buf[at:]

    def run(self):
        while True:
            try:
                conn, _ = self.lsn.accept()
            except OSError:
                return
            self.connections += 1
            buf = b""
            with conn:
                while True:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        break
                    if not data:
                        break
                    buf += data
                    out = []
                    while True:
                        cmd, buf = self.command(buf)
                        if cmd is None:
                            break
                        out.append(self.answer(cmd))
                    try:
                        conn.sendall(b"".join(out))
                    except OSError:
                        break


@case
def redis_transient_refusals(ctx):
    """
    Answers refused for now (LOADING) among answers that were added and
    answers refused for good (WRONGTYPE), from a scripted server: every
    event is added exactly once, none already answered is sent again (a
    "poison" one once, a "flaky" one twice: refused, then added), RELP
    answers 200 OK to all, the refused-for-good ones are counted dropped,
    the retry came after a back-off (a failed write), and the connection was
    never dropped.
    """
    red = ScriptedRedis(ctx)
    red.start()
    tcp_port = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "protocol": "relp"},
                              {"listen": f"{LOCAL4}:{tcp_port}"}],
                        sinks=[redis_sink(red.port, "s")], workers=1)
    s.start()
    kinds = ["good", "flaky", "good", "poison", "good", "flaky", "flaky", "good"]
    rec = lambda cid, q: f"<13>1 2024-05-06T07:08:09Z h app - - - c={cid} s={q} {kinds[q % 8]}"
    c = ctx.connect((LOCAL4, tcp_port))
    c.sendall("".join(rec(1, q) + "\n" for q in range(40)).encode())
    relp, answers = relp_answers(ctx, s.addr, [rec(2, q).encode() for q in range(40)], "scripted")
    check(set(answers.values()) == {b"200 OK"},
          f"RELP answers: {collections.Counter(answers.values())}")
    every = {(cid, q) for cid in (1, 2) for q in range(40)}
    kind = lambda k: kinds[k[1] % 8]
    ok = wait_until(lambda: len(red.counts()[1]) >= 70, 10)
    check(ok, f"{len(red.counts()[1])} of 70 events added within 10 s")
    relp.close()
    c.close()
    s.stop()
    sent, added_n = red.counts()
    added = {k for k in every if kind(k) != "poison"}
    check(set(added_n) == added and set(added_n.values()) == {1},
          f"added: {sorted(k for k, n in added_n.items() if n > 1)[:5]} more than once, "
          f"{sorted(added - set(added_n))[:5]} never, {sorted(set(added_n) - added)[:5]} "
          "though refused")
    times = {k: {"good": 1, "poison": 1, "flaky": 2}[kind(k)] for k in every}
    wrong = sorted((k, sent[k], times[k]) for k in every if sent[k] != times[k])
    check(not wrong, f"(event, times sent, expected): {wrong[:5]}")
    exits = sink_exits(s, "redis")
    check(exits and sum(e[2] for e in exits) == 10 and sum(e[3] for e in exits) >= 1,
          f"exit lines (events, bytes, dropped, failed writes): {exits}; expected 10 dropped "
          "and a failed write")
    check(red.connections == 1, f"{red.connections} connections to the server, expected one")
    check(s.grep(r"redis \S+: LOADING [^;]*; the event is kept"),
          f"no log line about LOADING: {tail(s.log())}")


@case
def redis_oom_kept(ctx):
    """
    A real Redis out of memory (maxmemory 1, noeviction) refuses every XADD
    for now (OOM): the events are kept through retries (failed writes in
    /metrics), nothing is added, the log says why; once memory is back every
    event is in its stream exactly once.
    """
    r = RedisServer(ctx)
    r.start()
    r.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
    r.cli("CONFIG", "SET", "maxmemory", "1")
    sport = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[redis_sink(r.port, "logs")], workers=1,
                        extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
    s.start()
    c = ctx.connect(s.addr)
    c.sendall("".join(f"<13>1 2024-05-06T07:08:09Z h app - - - c=1 s={q}\n"
                      for q in range(50)).encode())
    s.wait_for_log(r"sink redis: redis \S+: OOM [^;]*; the event is kept", timeout=10)
    failed = lambda: prom_values(http_get(sport, "/metrics")[2]).get(
        'ingestd_sink_write_errors_total{sink="redis"}', 0)
    check(wait_until(lambda: failed() >= 3, 10), f"{failed()} failed writes, expected retries")
    check(r.cli("EXISTS", "logs") == 0, "events were added while Redis was out of memory")
    r.cli("CONFIG", "SET", "maxmemory", "0")
    ok = wait_until(lambda: r.cli("XLEN", "logs") >= 50, 10)
    check(ok, f"{r.cli('XLEN', 'logs')} of 50 events in logs within 10 s of memory coming back")
    c.close()
    s.stop()
    check_each_once(redis_stream_counts(r.events("logs"), "logs"), {(1, q) for q in range(50)},
                    "logs")
    check(not s.grep(r"could not be written"), f"events were lost: {tail(s.log())}")
