"""
Routes (ROUTING in ingestd.conf(5)): an operator's everyday tasks on real
records (errors and auth messages to their own sink, noise dropped and
counted, a JSON field and the client's address, a route for one listener,
fall-through); a bad condition refused by -t and by a reload with
file:line; a reload that swaps the routes under load routes every record
by one rule set or the other, never half of each.
"""
import collections
import json
import re
import signal
import socket
import sys
import threading
import time

from lib.base import LOCAL4, case, check, tail
from lib.clients import tool
from lib.events import read_events, wait_lines
from lib.net import LORIS_SOURCES, connect_from, free_port, http_get, prom_values
from lib.server import pipeline_server

ROUTES = r'''routes = (
	{ name = "noise"; match = "msg contains \"GET /health\""; drop = true; },
	{ name = "errors"; match = "severity <= err"; sinks = [ "alerts" ]; final = false; },
	{ name = "security"; match = "facility in [auth, authpriv] or app ~ \"^(sshd|sudo)$\"";
	  sinks = [ "security" ]; },
	{ name = "gold"; match = "body.user.tier == gold and peer in [\"127.0.0.2/32\"]";
	  sinks = [ "alerts", "archive" ]; },
	{ name = "second"; listeners = [ "l1" ]; sinks = [ "json" ]; }
);'''


def send(ctx, addr, data, source=LOCAL4):
    with connect_from(ctx, source, addr) as c:
        c.sendall(data)


def texts(path):
    """Each event of the file as its msg, or its JSON body's "text"."""
    return sorted(e.get("msg") or e.get("body", {}).get("text") for e in read_events(path))


@case
def routes_everyday(ctx):
    """
    Errors to an alerts sink as well as where they go (fall-through), auth
    messages and sshd's to a security sink, health checks dropped and
    counted, a JSON field from one client address, and everything of a
    second listener to its own sink; the rest to the listener's archive.
    Sent with util-linux logger and plain sockets from 127.0.0.2 and .3.
    """
    sport, second = free_port(), free_port()
    paths = {n: ctx.path(f"{n}.jsonl") for n in ("archive", "alerts", "security", "json")}
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "sinks": ["archive"]},
                              {"listen": f"{LOCAL4}:{second}", "sinks": ["archive"]}],
                        sinks=[{"name": n, "path": p} for n, p in paths.items()],
                        extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};\n' + ROUTES)
    s.start()
    logged = [("user.err", "app", "disk failed"), ("auth.info", "login", "session opened"),
              ("daemon.info", "sshd", "accepted key"), ("user.crit", "sudo", "not in sudoers"),
              ("user.info", "web", "GET /health 200"), ("user.notice", "web", "GET / 200")]
    for prio, app, msg in logged:
        rc, out = tool(["logger", "--tcp", "-n", LOCAL4, "-P", str(s.port), "-p", prio, "-t", app,
                        msg])
        check(rc == 0, f"logger exited {rc}: {tail(out)}")
    gold = b'{"user":{"tier":"gold"},"text":"%s"}\n'
    send(ctx, s.addr, gold % b"gold from .2", LORIS_SOURCES[0])
    send(ctx, s.addr, gold % b"gold from .3", LORIS_SOURCES[1])
    send(ctx, (LOCAL4, second),
         b"<11>Oct 11 22:14:15 h app: error on the second\nplain on the second\n")
    want = {"archive": ["GET / 200", "gold from .2", "gold from .3"],
            "alerts": ["disk failed", "error on the second", "gold from .2", "not in sudoers"],
            "security": ["accepted key", "not in sudoers", "session opened"],
            "json": ["error on the second", "plain on the second"]}
    for n, msgs in want.items():
        wait_lines([paths[n]], len(msgs), timeout=10)
    time.sleep(0.3)                 # anything more would come now
    for n, msgs in want.items():
        check(texts(paths[n]) == sorted(msgs), f"sink {n} holds {texts(paths[n])}, "
              f"expected {sorted(msgs)}")
    # "error on the second" matched errors (fall through), then second: both.
    v = prom_values(http_get(sport, "/metrics")[2])
    got = {r: v.get(f'ingestd_route_matched_total{{route="{r}"}}') for r in
           ("noise", "errors", "security", "gold", "second")}
    check(got == {"noise": 1, "errors": 3, "security": 3, "gold": 1, "second": 2},
          f"ingestd_route_matched_total: {got}")
    stats = json.loads(http_get(sport, "/stats")[2])
    check(stats["routes"]["noise"]["matched"] == 1, f"/stats routes: {stats.get('routes')}")
    rc, out, _ = ctx.run(["-T", "-c", s.conf])
    check(rc == 0 and 'match = "body.user.tier == gold and peer in [\\"127.0.0.2/32\\"]";' in out,
          f"-T does not show the routes: {tail(out)}")
    s.stop()


@case
def routes_bad_condition(ctx):
    """
    A condition that does not parse is refused by -t with file:line, the
    column and why (a regular expression: PCRE2's own words); by a reload,
    which keeps the running rule set.
    """
    path = ctx.path("events.jsonl")
    good = 'routes = ( { name = "r"; match = "app == keep"; sinks = [ "events" ]; } );'
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "sinks": ["other"]}],
                        sinks=[{"name": "events", "path": path},
                               {"name": "other", "path": ctx.path("other.jsonl")}], extra=good)
    s.start()
    s.write_config(extra='routes = ( { name = "r";\n match = "msg ~ \\"fail(ed\\"";\n'
                   ' sinks = [ "events" ]; } );')
    rc, _, err = ctx.run(["-t", "-c", s.conf])
    want = (rf'{re.escape(s.conf)}:\d+: routes\[0\]\.match: at column 7: regular expression '
            r'"fail\(ed": missing closing parenthesis at offset 7')
    check(rc == 1 and re.search(want, err), f"-t exited {rc}: {tail(err)}")
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload failed: .*routes\[0\]\.match: at column 7: regular expression",
                   since=m)
    send(ctx, s.addr,
         b"<13>Oct 11 22:14:15 h keep: still routed\n<13>Oct 11 22:14:15 h x: to other\n")
    wait_lines([path], 1, timeout=5)
    wait_lines([ctx.path("other.jsonl")], 1, timeout=5)
    check(texts(path) == ["still routed"], f"events: {texts(path)}")
    s.stop()


class Mixed(threading.Thread):
    """A plain TCP client: records k=0, 1, ..., even ones severity err, odd ones info."""

    def __init__(self, addr, seconds=30):
        super().__init__(daemon=True)
        self.addr, self.seconds, self.sent = addr, seconds, 0
        self.halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.seconds
        with socket.create_connection(self.addr, timeout=5) as c:
            while not self.halt.is_set() and time.monotonic() < deadline:
                c.sendall(b"".join(b"<%d>Oct 11 22:14:15 h app: k=%d\n" % (11 + 3 * (k % 2), k)
                                   for k in range(self.sent, self.sent + 50)))
                self.sent += 50
                self.halt.wait(0.002)


@case
def routes_reload_under_load(ctx):
    """
    Two rule sets swapped by 10 reloads under load: A sends errors to "a"
    falling through to a last route into "b", B the other way round.  By
    either set an error lands in both sinks and an info record in one; a
    record routed half by each would be in one sink, or twice in one.
    Every record sent is where one rule set puts it, and both were used.
    """
    a, b = ctx.path("a.jsonl"), ctx.path("b.jsonl")
    rules = {x: f'routes = ( {{ name = "errors"; match = "severity <= err"; sinks = [ "{x}" ]; '
                f'final = false; }}, {{ name = "rest"; sinks = [ "{y}" ]; }} );'
             for x, y in (("a", "b"), ("b", "a"))}
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], extra=rules["a"],
                        sinks=[{"name": "a", "path": a}, {"name": "b", "path": b}])
    s.start()
    load = Mixed(s.addr)
    load.start()
    for g in range(2, 12):
        time.sleep(0.2)
        s.write_config(extra=rules["b" if g % 2 == 0 else "a"])
        m = s.mark()
        s.signal(signal.SIGHUP)
        s.wait_for_log(rf"reload: generation {g} accepting", since=m, timeout=10)
    time.sleep(0.2)
    load.halt.set()
    load.join(10)
    n = load.sent
    errors = (n + 1) // 2
    wait_lines([a, b], 2 * errors + (n - errors), timeout=30)
    s.stop()
    where = collections.defaultdict(list)
    for name, path in (("a", a), ("b", b)):
        for e in read_events(path):
            where[int(re.search(r"k=(\d+)", e["msg"])[1])].append(name)
    ok = lambda k, v: sorted(v) == ["a", "b"] if k % 2 == 0 else len(v) == 1
    bad = {k: v for k, v in where.items() if not ok(k, v)}
    missing = [k for k in range(n) if k not in where]
    check(not missing, f"{len(missing)} of {n} records are in no sink, e.g. {missing[:5]}")
    check(not bad, f"records routed by no one rule set: {list(bad.items())[:5]}")
    info = collections.Counter(v[0] for k, v in where.items() if k % 2)
    check(info["a"] > 0 and info["b"] > 0, f"one rule set was never used: {dict(info)}")
    print(f"# routes_reload_under_load: {n} records through 10 reloads, each routed by one rule "
          f"set (info records: {info['a']} by B to a, {info['b']} by A to b)",
          file=sys.stderr, flush=True)
