"""
Hand-over (handover = true, the default): on a reload and a binary upgrade
the draining workers pass their plain TCP connections to the new
generation's, which read on: 199 ingestd-bench clients and rsyslog's omfwd
send through 20 reloads and an upgrade without a reset, a reconnect or a
lost record; a record half sent at the hand-over arrives whole; a PROXY
client keeps its address and an idle client its idle clock; caps lowered
by the reload, or a listener dropped by it, close what cannot go on with
a FIN; a receiving worker killed in the middle leaks no descriptor and
stops nothing; handover = false keeps the old way.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from lib.base import case, check, LOCAL4, long_case, tail, wait_until
from lib.clients import SteadyClient, bench_binary, token
from lib.events import check_once, has_msgs, read_events, wait_events, wait_lines
from lib.net import accepted_by, free_port, peer_state, tcp_queue, wait_closed
from lib.peers import rsyslog_relay
from lib.proc import alive, read_pid
from lib.server import installed_copy, pipeline_server
from test_proxy import proxy_v2


def events_server(ctx, more=None, **kw):
    """A server with one listener on ctx.port (more: its settings) and a file sink."""
    path = ctx.path("events.jsonl")
    first = {"listen": f"{LOCAL4}:{ctx.port}"}
    first.update(more or {})
    s = pipeline_server(ctx, [first], sinks=[{"name": "events", "path": path}], **kw)
    return s, path


def reload(s, what="reload"):
    """HUP and wait until the new generation accepts and every older worker is gone."""
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation \d+ accepting", since=m, timeout=15)
    check(wait_until(lambda: len(s.workers()) == s.opts["workers"], 10),
          f"{what}: the old generation did not exit: workers {s.workers()}")


def upgrade(ctx, s, binary):
    """`ingestd -s upgrade`: the new master takes over, the old one quits."""
    old = s.master
    rc, out, err = ctx.run(["-c", s.conf, "-s", "upgrade"], timeout=30, binary=binary)
    check(rc == 0 and "upgraded" in err, f"-s upgrade exited {rc}: {tail(err)}")
    s.master = read_pid(s.pid_file)
    check(s.master and s.master != old, f"the pid file names {s.master} after the upgrade")
    check(wait_until(lambda: not alive(old), 15), f"the old master {old} did not exit")
    check(wait_until(lambda: len(s.workers()) == s.opts["workers"], 10),
          f"after the upgrade: workers {s.workers()}")


def check_order(events, what):
    """Each connection's records ("c=CONN s=SEQ") in the file in the order they were sent."""
    last = {}
    for e in events:
        m = re.search(r"c=(\d+) s=(\d+)", e.get("msg", ""))
        if m:
            c, q = int(m[1]), int(m[2])
            check(q > last.get(c, -1), f"{what}: connection {c}'s record {q} after its "
                  f"{last.get(c)}")
            last[c] = q


def accepted_total(s):
    """Connections accepted by every worker that exited, from their exit lines."""
    return sum(e["conns"] for e in s.exits())


class OmfwdFeed(threading.Thread):
    """Records "c=1000 s=N" fed to rsyslog's imtcp at a steady pace, for its omfwd to forward."""

    def __init__(self, feed, max_seconds=60):
        super().__init__(daemon=True)
        self.feed, self.max_seconds = feed, max_seconds
        self.halt = threading.Event()
        self.sent = 0

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self.halt.is_set() and time.monotonic() < deadline:
            self.feed.sendall("".join(f"<13>Dec  5 01:02:03 host app: c=1000 s={self.sent + i}\n"
                                      for i in range(20)).encode())
            self.sent += 20
            time.sleep(0.01)

    def finish(self):
        self.halt.set()
        self.join(10)


@long_case
def handover_soak(ctx):
    """
    199 ingestd-bench rate clients and rsyslog's omfwd send for the whole
    run through 10 reloads, a binary upgrade and 10 more reloads, with
    shutdown_timeout = 1: 0 resets, 0 connections closed, 0 reconnects,
    every record exactly once, each connection's in the order sent.
    """
    binary = installed_copy(ctx)
    s, path = events_server(ctx, shutdown_timeout=1, level="info")
    s.start(binary=binary)
    rs, feed = rsyslog_relay(ctx, None, f'action(type="omfwd" target="{LOCAL4}" '
                                        f'port="{ctx.port}" protocol="tcp")')
    omfwd = OmfwdFeed(feed)
    omfwd.start()
    bench = subprocess.Popen([bench_binary(), "-m", "rate", "-p", str(ctx.port), "-c", "199",
                              "-r", "4000", "-d", "25", "-f", path, "--follow-grace", "10",
                              "-j"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.monotonic()
    ctx.procs.append(bench)
    try:
        check(wait_until(lambda: len(read_events(path, whole_only=True)) > 2000, 15),
              "the clients do not send")
        for i in range(10):             # spread over the load: about 10 s
            time.sleep(0.4)
            reload(s, f"reload {i + 1}")
        upgrade(ctx, s, binary)
        for i in range(10):
            time.sleep(0.4)
            reload(s, f"reload {i + 11} (after the upgrade)")
        check(bench.poll() is None, "ingestd-bench's run ended before the last reload")
        print(f"# handover_soak: the 20 reloads and the upgrade ended "
              f"{time.monotonic() - started:.1f} s into the 25 s load", file=sys.stderr, flush=True)
    finally:
        omfwd.finish()
    out, err = bench.communicate(timeout=60)
    r = json.loads(out)
    print(f"# handover_soak: {r['records']} bench records, {omfwd.sent} through omfwd; "
          f"resets {r['resets']}, closed {r['closed_by_server']}, missing "
          f"{r['follow']['missing']}, duplicates {r['follow']['duplicates']}",
          file=sys.stderr, flush=True)
    check(r["established"] == 199 and r["connect_errors"] == 0,
          f"ingestd-bench: {r['established']} established, {r['connect_errors']} connect errors")
    check(r["resets"] == 0 and r["closed_by_server"] == 0 and r["unsent"] == 0,
          f"ingestd-bench: {r['resets']} resets, {r['closed_by_server']} closed by the server, "
          f"{r['unsent']} unsent")
    f = r["follow"]
    check(f["missing"] == 0 and f["duplicates"] == 0 and f["unexpected"] == 0 and
          f["received"] == r["records"], f"ingestd-bench follow: {f}, {r['records']} sent")
    wait_lines([path], r["records"] + omfwd.sent, 20)
    rs.terminate()
    rs.wait(timeout=10)
    s.stop()
    events = read_events(path)
    check_order(events, "across the hand-overs")
    events = [e for e in events if "c=1000 " in e.get("msg", "")]
    check_once(events, {(1000, q) for q in range(omfwd.sent)}, "rsyslog omfwd's records")
    check(accepted_total(s) == 200, f"{accepted_total(s)} connections accepted in all, expected "
          "199 + rsyslog's 1: clients reconnected")


@case
def handover_long_record(ctx):
    """A record 300 KB in at the reload, 300 KB after: it arrives whole, from the new generation."""
    s, path = events_server(ctx, more={"max_record": "1M", "framing": "lf"}, level="debug")
    s.start()
    t = token()
    c = ctx.connect(s.addr)
    c.sendall(f"<13>first {t}\n".encode())
    wait_events(path, has_msgs(f"first {t}"), what="the first record")
    head, rest = b"<13>long " + b"a" * 300000, b"b" * 300000 + f" {t}\n".encode()
    c.sendall(head)
    port = c.getsockname()[1]
    check(wait_until(lambda: (tcp_queue(ctx.port, port) or (1,))[0] == 0, 5),
          "the server did not read the first half")       # so the old worker holds it
    old = s.workers()
    reload(s)
    check(not set(old) & set(s.workers()), "the old generation still runs")
    check(s.grep(r"exiting: 1 connections, .*; 0 connections taken over, 1 handed over"),
          "the old worker did not hand the connection over")
    c.sendall(rest)
    c.sendall(f"<13>last {t}\n".encode())
    wait_events(path, has_msgs(f"last {t}"), what="the record after the long one")
    c.close()
    s.stop()
    msgs = [e["msg"] for e in read_events(path)]
    longs = [m for m in msgs if m.startswith("long ")]
    check(len(longs) == 1 and longs[0] == "long " + "a" * 300000 + "b" * 300000 + f" {t}",
          f"the long record arrived as {[len(m) for m in longs]} bytes")
    check(msgs[-1] == f"last {t}", f"records out of order: {msgs[-1][:40]}")


@case
def handover_proxy_and_idle(ctx):
    """
    A client behind a PROXY v2 header keeps its address across 6 reloads;
    an idle client's idle_timeout (2 s) runs on across them and closes it,
    though a reload comes every 0.5 s.
    """
    s, path = events_server(ctx, more={"proxy_protocol": True, "idle_timeout": 2})
    s.start()
    t = token()
    p = ctx.connect(s.addr)
    p.sendall(proxy_v2(("203.0.113.7", 40000), (LOCAL4, ctx.port)) + f"<13>p0 {t}\n".encode())
    idle = ctx.connect(s.addr)
    idle.sendall(proxy_v2(("203.0.113.8", 40001), (LOCAL4, ctx.port)) + f"<13>i0 {t}\n".encode())
    wait_events(path, has_msgs(f"p0 {t}", f"i0 {t}"), what="the first records")
    start = time.monotonic()
    for i in range(6):
        time.sleep(0.5)
        p.sendall(f"<13>p{i + 1} {t}\n".encode())
        reload(s, f"reload {i + 1}")
    check(time.monotonic() - start >= 3, "the reloads took less than 3 s")
    check(wait_closed(idle, 0.1) in ("eof", "reset"), "the idle client is still open after "
          f"{time.monotonic() - start:.1f} s and 6 reloads, with idle_timeout 2 s")
    check(s.grep(r"closing: idle_timeout"), "no idle_timeout in the log")
    p.sendall(f"<13>p7 {t}\n".encode())
    wait_events(path, has_msgs(f"p7 {t}"), what="the PROXY client's last record")
    p.close()
    s.stop()
    peers = {e["msg"].split()[0]: e["peer"] for e in read_events(path)}
    check(all(peers[f"p{i}"] == "203.0.113.7:40000" for i in range(8)),
          f"the PROXY client's peers: {peers}")
    check(peers["i0"] == "203.0.113.8:40001", f"the idle client's peer: {peers['i0']}")


@case
def handover_caps_lowered(ctx):
    """
    6 clients sending, then a reload lowering max_connections to 2: one or
    two go on in the new generation (those of the old one not yet handed
    over still count, as at accept), the others are closed with a FIN (no
    reset), and every record any of them sent arrives once.
    """
    s, path = events_server(ctx, more={"max_connections": 100}, shutdown_timeout=30)
    s.start()
    senders = [SteadyClient(s.addr, cid, reconnect=False) for cid in range(6)]
    for x in senders:
        x.start()
    try:
        check(wait_until(lambda: all(x.sent >= 100 for x in senders), 10), "the clients do not send")
        s.write_config(listeners=[{"listen": f"{LOCAL4}:{ctx.port}", "max_connections": 2}])
        reload(s)
        check(wait_until(lambda: sum(x.fin or bool(x.resets) for x in senders) >= 4, 10),
              f"clients closed: {[x.cid for x in senders if x.fin]}, expected 4 or 5")
        sent = {x.cid: x.sent for x in senders}
        check(wait_until(lambda: all(x.fin or x.resets or x.sent > sent[x.cid] + 100
                                     for x in senders), 10), "the clients kept do not go on")
    finally:
        for x in senders:
            x.finish()
    resets = {x.cid: x.resets for x in senders if x.resets}
    check(not resets, f"clients reset: {resets}")
    kept = [x.cid for x in senders if not x.fin]
    check(1 <= len(kept) <= 2, f"clients {kept} went on, expected 1 or 2")
    check(s.grep(r"refused .*: max_connections"), "the refusal is not logged")
    wait_lines([path], sum(x.sent for x in senders), 10)
    s.stop()
    check_once(read_events(path), {(x.cid, q) for x in senders for q in range(x.sent)},
               "records of the clients kept and closed")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


@case
def handover_receiver_killed(ctx):
    """
    kill -9 of a worker of the new generation with connections handed to
    it still in its inbox: the master's descriptors are as before, the old
    worker hands the rest to the other worker and exits, the killed slot
    is respawned, every client is either served or closed, none hangs.
    """
    s, path = events_server(ctx, shutdown_timeout=30, level="debug")
    s.start()
    gen1 = s.wait_workers(2)
    base = fd_count(gen1[0])
    clients = [ctx.connect(s.addr) for _ in range(40)]
    for i, c in enumerate(clients):
        c.sendall(f"c={i} s=0 x\n".encode())
    wait_lines([path], 40, 5)
    owners = accepted_by(clients, ctx.port, gen1)
    sender = max(gen1, key=owners.count)
    master_fds = fd_count(s.master)
    os.kill(sender, signal.SIGSTOP)         # it will drain only when we let it
    try:
        m = s.mark()
        s.signal(signal.SIGHUP)
        s.wait_for_log(r"reload: generation 2 accepting", since=m)
        gen2 = [pid for _, pid, g in s.started(since=m) if g == 2]
        victim = gen2[0]
        os.kill(victim, signal.SIGSTOP)     # its inbox fills and is never read
    finally:
        os.kill(sender, signal.SIGCONT)
    check(wait_until(lambda: s.grep(rf"\[{sender}\]: debug: .*handed to the next generation"), 5),
          "the old worker handed nothing over")
    os.kill(victim, signal.SIGKILL)
    check(wait_until(lambda: not alive(sender), 10), "the old worker did not exit")
    check(wait_until(lambda: len(s.workers()) == 2 and victim not in s.workers(), 10),
          f"the killed worker's slot was not respawned: workers {s.workers()}")
    check(wait_until(lambda: fd_count(s.master) == master_fds, 5),
          f"the master holds {fd_count(s.master)} descriptors, {master_fds} before")
    served = accepted_by(clients, ctx.port, s.workers())
    states = [peer_state(c) for c in clients]
    hanging = [i for i, (w, st) in enumerate(zip(served, states)) if w is None and st == "open"]
    check(not hanging, f"clients neither served nor closed: {hanging}")
    kept = [i for i, w in enumerate(served) if w is not None]
    print(f"# handover_receiver_killed: {len(kept)} of 40 connections went on, "
          f"{states.count('eof')} closed, {states.count('reset')} reset with the killed worker",
          file=sys.stderr, flush=True)
    check(kept, "no connection went on in the surviving worker")
    for i in kept:
        clients[i].sendall(f"c={i} s=1 x\n".encode())
    wait_events(path, lambda ev: sum(e["msg"].endswith("s=1 x") for e in ev) >= len(kept),
                what="a record on each connection kept")
    for pid in s.workers():
        held = sum(w == pid for w in accepted_by(clients, ctx.port, [pid]))
        check(fd_count(pid) <= base + held, f"worker {pid} holds {fd_count(pid)} descriptors "
              f"for {held} connections ({base} without any)")
    for c in clients:
        c.close()
    with ctx.connect(s.addr) as c:
        c.sendall(f"<13>after {token()}\n".encode())
    s.stop()


@case
def handover_unix_and_off(ctx):
    """
    A unix stream connection is handed over like a TCP one; with handover =
    false in the new configuration, the next reload leaves the connection to
    the old worker, as before hand-overs.
    """
    path = ctx.path("events.jsonl")
    sock = ctx.path("in.sock")
    s = pipeline_server(ctx, [{"listen": sock}], sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    c = ctx.connect(sock)
    c.sendall(f"<13>u0 {t}\n".encode())
    wait_events(path, has_msgs(f"u0 {t}"), what="the first record")
    reload(s)
    c.sendall(f"<13>u1 {t}\n".encode())
    wait_events(path, has_msgs(f"u1 {t}"), what="the record after the hand-over")
    check(s.grep(r"exiting: 1 connections, .*; 0 connections taken over, 1 handed over"),
          "the unix connection was not handed over")
    s.write_config(extra="handover = false;")
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 3 accepting", since=m)
    s.wait_for_log(r"\(generation 2\): draining", since=m, count=2)
    c.sendall(f"<13>u2 {t}\n".encode())
    wait_events(path, has_msgs(f"u2 {t}"), what="the record after the reload without hand-over")
    kept = r"\(generation 2\): exiting: 0 connections, .*; 1 connections taken over, 0 handed over"
    check(not s.grep(kept, since=m), "the worker holding the connection exited")
    c.close()
    s.wait_for_log(kept, since=m)
    s.stop()


@case
def handover_listener_gone(ctx):
    """
    A reload that drops a listener: its connection stays with the old
    worker, and at shutdown_timeout is closed with a FIN, every record
    read; the other listener's connection is handed over.
    """
    path = ctx.path("events.jsonl")
    other = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}, {"listen": f"{LOCAL4}:{other}"}],
                        sinks=[{"name": "events", "path": path}], shutdown_timeout=1)
    s.start()
    t = token()
    kept, gone = ctx.connect(s.addr), ctx.connect((LOCAL4, other))
    kept.sendall(f"<13>k0 {t}\n".encode())
    gone.sendall(f"<13>g0 {t}\n".encode())
    wait_events(path, has_msgs(f"k0 {t}", f"g0 {t}"), what="the first records")
    s.write_config(listeners=[{"listen": f"{LOCAL4}:{ctx.port}"}])
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 2 accepting", since=m)
    gone.sendall(f"<13>g1 {t}\n".encode())
    check(wait_closed(gone, 10) == "eof", "the dropped listener's connection was not closed "
          "with a FIN at shutdown_timeout")
    kept.sendall(f"<13>k1 {t}\n".encode())
    wait_events(path, has_msgs(f"k1 {t}", f"g1 {t}"), what="the records after the reload")
    s.wait_for_log(r"\(generation 1\): exiting: ", since=m, count=2)
    handed = [int(x) for x in re.findall(r"\(generation 1\): exiting: .* (\d+) handed over",
                                         s.log())]
    check(sum(handed) == 1, f"generation 1 handed {handed} connections over, expected 1 in all")
    kept.close()
    s.stop()
