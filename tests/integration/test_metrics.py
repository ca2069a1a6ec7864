"""
The stats endpoint (stats.listen): /metrics (Prometheus text that
promtool accepts) and /stats (JSON) count what the clients did, across
worker deaths and reloads; the master's small HTTP server stays bounded
under abuse (endless heads, slow requests, 1,000 connections) while a
normal scraper is served.
"""
import collections
import json
import os
import signal
import socket
import sys
import threading
import time

from lib.base import LOCAL4, case, check, tail, wait_until
from lib.proc import fd_count, vm_rss_kb
from lib.net import (LORIS_SOURCES, connect_from, flood, free_port, http_get, http_get_unix,
                     peer_state, prom_values, refused_at_once, split_states)
from lib.server import pipeline_server
from lib.events import wait_lines
from lib.clients import tool
from lib.peers import promtool


@case
def metrics_endpoint(ctx):
    """
    stats.listen: /metrics (Prometheus text that promtool accepts) and
    /stats (JSON) count what clients sent: connections per worker, records
    and bytes per listener, events per sink, refusals by reason, worker
    restarts and reloads by result; counters survive kill -9 of both
    workers and a reload; connections open now per listener; other paths
    are 404.
    """
    path = ctx.path("events.jsonl")
    sport = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "name": "syslog",
                               "deny": ["127.0.0.2"]}],
                        sinks=[{"name": "archive", "path": path}], level="info",
                        extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
    s.start()
    pids = s.wait_workers(2)
    sent_bytes, sent = 0, 0

    def send(n, conns):
        nonlocal sent_bytes, sent
        for c in range(conns):
            data = "".join(f"<13>metrics c={c} s={sent + i}\n" for i in range(n)).encode()
            with socket.create_connection(s.addr, timeout=5) as k:
                k.sendall(data)
            sent_bytes += len(data)
            sent += n

    send(1000, 2)
    refused = connect_from(ctx, "127.0.0.2", s.addr)
    refused_at_once(refused, "a denied client")
    wait_lines([path], sent, 10)
    # Both workers die; what they counted stays.
    for pid in pids:
        m = s.mark()
        os.kill(pid, signal.SIGKILL)
        s.wait_for_log(r"worker \d+ started", since=m, timeout=5)
    s.wait_workers(2)
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 2 accepting", since=m, timeout=10)
    send(500, 2)
    wait_lines([path], sent, 10)
    status, ctype, text = http_get(sport, "/metrics")
    check(status == 200 and ctype.startswith("text/plain; version=0.0.4"),
          f"/metrics: {status} {ctype}")
    v = prom_values(text)
    accepted = sum(x for k, x in v.items() if k.startswith("ingestd_connections_accepted_total{"))
    want = {'ingestd_records_total{listener="syslog"}': sent,
            'ingestd_bytes_total{listener="syslog"}': sent_bytes,
            'ingestd_sink_events_total{sink="archive"}': sent,
            'ingestd_connections_refused_total{reason="allow_deny"}': 1,
            "ingestd_worker_restarts_total": 2,
            'ingestd_reloads_total{result="ok"}': 1,
            'ingestd_reloads_total{result="failed"}': 0,
            "ingestd_generation": 2, "ingestd_workers": 2}
    got = {k: v.get(k) for k in want}
    check(got == want, f"/metrics says {got}, expected {want}")
    check(accepted == 4, f"/metrics counts {accepted} accepted connections, expected 4")
    rc, out = tool([promtool(), "check", "metrics"], stdin=text.encode())
    check(rc == 0, f"promtool check metrics: exit {rc}: {tail(out, 8)}")
    status, ctype, body = http_get(sport, "/stats")
    check(status == 200 and ctype == "application/json", f"/stats: {status} {ctype}")
    st = json.loads(body)
    check(st["records"]["total"] == sent and st["listeners"]["syslog"]["records"] == sent and
          st["sinks"]["archive"]["events"] == sent and st["connections"]["accepted"] == 4 and
          st["connections"]["refused"]["allow_deny"] == 1 and st["worker_restarts"] == 2,
          f"/stats: {body}")
    check(http_get(sport, "/nothing")[0] == 404, "/nothing is not a 404")
    # Connections open now, from the table every worker counts in: two held, then none.
    gauge = 'ingestd_listener_connections{listener="syslog"}'
    held = [ctx.connect(s.addr) for _ in range(2)]
    now = lambda: prom_values(http_get(sport, "/metrics")[2])
    got = wait_until(lambda: (lambda x: x if x.get(gauge) == 2 else None)(now()), 5)
    check(got and got.get("ingestd_connection_table_entries", 0) >= 2,
          f"with 2 connections held: {gauge} = {now().get(gauge)}, "
          f"ingestd_connection_table_entries = {now().get('ingestd_connection_table_entries')}")
    for k in held:
        k.close()
    check(wait_until(lambda: now().get(gauge) == 0, 5),
          f"{gauge} is {now().get(gauge)} once they closed, expected 0")
    # A broken config: the reload fails and says so in the counters.
    s.write_config(text=s.config_text() + "\nbroken = ;\n")
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload failed", since=m)
    v = prom_values(http_get(sport, "/metrics")[2])
    check(v['ingestd_reloads_total{result="failed"}'] == 1, "a failed reload is not counted")
    s.write_config()
    s.stop()


STATS_MAX_CONNS = 32            # server/http.h: HTTP_MAX_CONNS
STATS_HEAD_MAX = 8192           # HTTP_HEAD_MAX; and HTTP_HEAD_MS is 5 s


class PeakRss(threading.Thread):
    """The highest VmRSS (kB) of pid, sampled every interval until finish() or max_seconds."""

    def __init__(self, pid, interval=0.02, max_seconds=120):
        super().__init__(daemon=True)
        self.pid, self.interval, self.max_seconds = pid, interval, max_seconds
        self.halt = threading.Event()
        self.peak = vm_rss_kb(pid) or 0

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self.halt.is_set() and time.monotonic() < deadline:
            self.peak = max(self.peak, vm_rss_kb(self.pid) or 0)
            self.halt.wait(self.interval)

    def finish(self):
        self.halt.set()
        self.join(5)
        return self.peak


class MetricsPoller(threading.Thread):
    """A normal client: GET /metrics every interval until finish() or max_seconds; what each got."""

    def __init__(self, port, interval=0.1, max_seconds=120):
        super().__init__(daemon=True)
        self.port, self.interval, self.max_seconds = port, interval, max_seconds
        self.halt = threading.Event()
        self.results = collections.Counter()

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self.halt.is_set() and time.monotonic() < deadline:
            try:
                status, _, body = http_get(self.port, "/metrics", timeout=5)
                ok = status == 200 and "ingestd_workers " in body
                self.results["200" if ok else str(status)] += 1
            except OSError as e:
                self.results[f"{type(e).__name__}: {e}"] += 1
            self.halt.wait(self.interval)

    def finish(self):
        self.halt.set()
        self.join(10)
        return self.results


def endless_head(addr, first, chunk, over, limit=50 << 20, seconds=30):
    """
    Send first, then chunk again and again until the server closes, limit
    bytes are sent, seconds pass or over() says to stop; (bytes sent, how
    it ended: "closed", "stalled" (the server stopped reading), "over" or
    "limit").
    """
    deadline = time.monotonic() + seconds
    sent = 0
    with socket.create_connection(addr, timeout=5) as c:
        try:
            c.sendall(first)
            while sent < limit:
                if time.monotonic() >= deadline:
                    return sent, "limit"
                if over():
                    return sent, "over"
                sent += c.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return sent, "closed"
        except socket.timeout:
            return sent, "stalled"
    return sent, "limit"


class EndlessHead(threading.Thread):
    def __init__(self, *args, **kw):
        super().__init__(daemon=True)
        self.args, self.kw = args, kw
        self.result = None

    def run(self):
        try:
            self.result = endless_head(*self.args, **self.kw)
        except OSError as e:
            self.result = (0, f"{type(e).__name__}: {e}")


def stats_closed(port):
    """ingestd_stats_connections_closed_total by reason, from /metrics."""
    v = prom_values(http_get(port, "/metrics")[2])
    pre = 'ingestd_stats_connections_closed_total{reason="'
    return {k[len(pre):-2]: int(x) for k, x in v.items() if k.startswith(pre)}


@case
def stats_endpoint_abuse(ctx):
    """
    The stats endpoint under abuse; meanwhile a normal client gets 200 from
    /metrics ten times a second, every time, and the master's VmRSS,
    sampled every 20 ms, stays under 64 MB throughout:
    (a) endless header lines and (b) one endless header line are closed
    before 50 MB are sent (the head buffer is 8 KB), and a 9 KB head sent
    at once is answered 431; (c) three requests trickled one byte a second
    are closed within 12 s of the connect (the deadline is 5 s from the
    accept, whatever trickles in: 12 s leaves a loaded machine 7 s, and a
    timeout that each byte restarts would never close them); (d) 1,000
    connections from 127.0.0.2-5 held open: the master keeps at most 32 of
    them and tells the others 503 as it closes them, and a client on
    127.0.0.1 that connected before the first 100 and sends its request
    after them is answered 200.  Each limit is counted in /metrics, and the
    master's descriptors are back to their number once the clients are
    gone.
    """
    sport = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], workers=1, level="info",
                        extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
    s.start()
    saddr = (LOCAL4, sport)
    check(http_get(sport, "/metrics")[0] == 200, "/metrics is not 200 before any abuse")
    fds0, rss0 = fd_count(s.master), vm_rss_kb(s.master)
    bound = 64 << 10            # it measured 2 MB (7 MB under ASan) throughout
    rss, poller = PeakRss(s.master), MetricsPoller(sport)
    rss.start()
    poller.start()
    over = lambda: rss.peak >= bound

    def check_rss(what):
        check(rss.peak < bound, f"{what}: the master's VmRSS reached {rss.peak >> 10} MB "
              f"(from {rss0 >> 10} MB), the bound is {bound >> 10} MB")

    # (c) Slow requests, while (a) and (b) run.
    slow = [connect_from(ctx, src, saddr, timeout=5) for src in LORIS_SOURCES[:3]]
    t_slow = time.monotonic()
    lines = b"".join(b"X-Header-%d: some value\r\n" % i for i in range(2000))
    a = EndlessHead(saddr, b"GET /metrics HTTP/1.1\r\n", lines, over)
    b = EndlessHead(saddr, b"GET /metrics HTTP/1.1\r\nX-Long: ", b"v" * 65536, over)
    a.start()
    b.start()
    request, closed = b"GET /metrics HTTP/1.1\r\nHost: x\r\n", {}
    for i in range(12):
        for k, c in enumerate(slow):
            if k in closed:
                continue
            st = peer_state(c)
            if st == "open":
                try:
                    c.sendall(request[i:i + 1])
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    st = "reset"
            closed[k] = (st, time.monotonic() - t_slow)
        if len(closed) == len(slow):
            break
        time.sleep(1)
    a.join(40)
    b.join(40)
    check_rss("endless headers")
    for what, t in (("endless header lines", a), ("one endless header line", b)):
        check(t.result and t.result[1] == "closed", f"{what}: {t.result and t.result[1]} after "
              f"{(t.result or (0,))[0] >> 20} MB sent, expected closed")
    check(len(closed) == len(slow), f"{len(slow) - len(closed)} of {len(slow)} requests sent a "
          f"byte a second are still open {time.monotonic() - t_slow:.0f} s after the connect")
    print(f"# stats_endpoint_abuse: endless header lines closed after {a.result[0] >> 10} KB "
          f"sent, an endless line after {b.result[0] >> 10} KB, slow requests closed: "
          f"{sorted((st, round(t, 1)) for st, t in closed.values())}", file=sys.stderr, flush=True)
    # A head too large for the buffer, sent whole: 431, then closed.
    with socket.create_connection(saddr, timeout=5) as c:
        c.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"p" * (STATS_HEAD_MAX + 800) +
                  b"\r\n\r\n")
        answer = c.recv(100)
    check(answer.startswith(b"HTTP/1.1 431 "), f"a 9 KB head was answered {answer[:40]!r}")
    # (d) 1,000 connections held open.  A scraper that connected before the
    # first 100 and sends its request only after them is still served: they
    # evict their own kind, from the addresses that hold the most.
    before = stats_closed(sport)
    early = ctx.connect(saddr)
    t_flood = time.monotonic()
    flood_socks = flood(ctx, saddr, LORIS_SOURCES, 100)
    took = time.monotonic() - t_flood
    early.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = early.recv(100)
    check(answer.startswith(b"HTTP/1.1 200 "), f"a request sent {took:.1f} s after its "
          f"connect, 100 connections from other addresses made meanwhile, was answered "
          f"{answer[:40]!r}")
    flood_socks += flood(ctx, saddr, LORIS_SOURCES, 900)
    took = time.monotonic() - t_flood
    held, _ = split_states(flood_socks)
    fds = fd_count(s.master)
    check(len(held) <= STATS_MAX_CONNS, f"the master holds {len(held)} of 1,000 connections "
          f"open, at most {STATS_MAX_CONNS} expected")
    check(fds <= fds0 + STATS_MAX_CONNS + 2, f"the master has {fds} descriptors with 1,000 "
          f"stats connections open, {fds0} before")
    sample = [c for c in flood_socks if c not in held][:5]
    told = [b"H" + c.recv(100) for c in sample]     # split_states read the first byte
    check(all(t.startswith(b"HTTP/1.1 503 ") for t in told), f"evicted clients were told {told}")
    time.sleep(1)
    check_rss("1,000 connections")
    after = stats_closed(sport)
    evicted = after["evicted"] - before["evicted"]
    timeouts = after["request_timeout"] - before["request_timeout"]
    check(evicted + timeouts >= 1000 - STATS_MAX_CONNS, f"/metrics counts {evicted} evicted and "
          f"{timeouts} timed out of 1,000 connections, {len(held)} of which the server held")
    for c in flood_socks:
        c.close()
    gone = set(map(id, flood_socks))
    ctx.socks = [c for c in ctx.socks if id(c) not in gone]
    check(wait_until(lambda: fd_count(s.master) <= fds0, 10), f"the master has "
          f"{fd_count(s.master)} descriptors after the clients left, {fds0} before")
    got = poller.finish()
    peak = rss.finish()
    check_rss("at the end")
    check(http_get(sport, "/metrics")[0] == 200, "/metrics is not 200 after the abuse")
    check(set(got) == {"200"} and got["200"] >= 20, f"the normal client's requests: {dict(got)}")
    counts = stats_closed(sport)
    check(counts["request_too_large"] == 3 and counts["request_timeout"] >= 3,
          f"/metrics counts the endpoint's closes as {counts}")
    check(s.grep(r"stats: \S+: evicted after"), "no eviction was logged")
    print(f"# stats_endpoint_abuse: master VmRSS {rss0 >> 10} MB before, {peak >> 10} MB at its "
          f"peak; {sum(got.values())} requests of the normal client, all 200; 1,000 connections "
          f"in {took:.1f} s, {evicted} evicted", file=sys.stderr, flush=True)
    s.stop()


@case
def stats_unix_socket(ctx):
    """
    stats.listen on a unix socket, for a local Prometheus agent: the file
    gets socket_user, socket_group and socket_mode; /metrics, /stats and
    /healthz answer on it; a reload that changes the mode applies it to
    the file in place (no new socket).
    """
    import pwd
    import grp
    import stat
    nobody = pwd.getpwnam("nobody").pw_uid
    nogroup = grp.getgrnam("nogroup").gr_gid
    sock = ctx.path("stats.sock")

    def stats(mode):
        return (f'stats = {{ listen = "{sock}"; socket_user = "nobody"; '
                f'socket_group = "nogroup"; socket_mode = "{mode}"; }};')

    s = ctx.server(workers=1, level="info", extra=stats("0660"))
    s.start()
    s.wait_workers(1)
    st = os.stat(sock)
    check(stat.S_ISSOCK(st.st_mode), f"{sock} is not a socket")
    check((st.st_uid, st.st_gid) == (nobody, nogroup),
          f"{sock} belongs to {st.st_uid}:{st.st_gid}, not nobody:nogroup")
    check(stat.S_IMODE(st.st_mode) == 0o660, f"{sock} has mode {stat.S_IMODE(st.st_mode):o}")
    status, body = http_get_unix(sock, "/healthz")
    check(status == 200 and body.startswith("ok: generation 1 accepting"),
          f"/healthz: {status} {body!r}")
    status, body = http_get_unix(sock, "/metrics")
    check(status == 200 and "ingestd_connections_accepted_total" in body, f"/metrics: {status}")
    status, body = http_get_unix(sock, "/stats")
    check(status == 200 and json.loads(body), f"/stats: {status}")
    inode = st.st_ino
    s.write_config(extra=stats("0600"))
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 2 accepting", since=m, timeout=10)
    st = os.stat(sock)
    check(st.st_ino == inode, "the reload made a new socket")
    check(stat.S_IMODE(st.st_mode) == 0o600, f"after the reload: mode {stat.S_IMODE(st.st_mode):o}")
    status, body = http_get_unix(sock, "/healthz")
    check(status == 200 and "generation 2" in body, f"/healthz after the reload: {status} {body!r}")
    s.stop()
