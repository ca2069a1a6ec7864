"""
Reload (HUP) by generations: the new generation accepts before the old
one drains, a connection open across it lives on and every record sent
through it arrives once (handed to the new generation); a config that does not parse or validate, a
listener that cannot bind or workers that cannot start leave generation 1
running; settings a reload cannot change are kept; 20 reloads under a
connect loop refuse nothing (shared and reuseport); fewer reuseport
workers (HUP or TTOU) lose no connection queued meanwhile; without
hand-over, the drain's end closes what is left with a FIN, never a reset
(the hand-over itself: test_handover.py).
"""
import collections
import os
import re
import signal
import socket
import time

from lib.base import LOCAL4, case, check, wait_until
from lib.proc import alive, read_pid
from lib.net import accepted_by, free_port, peer_state, wait_closed
from lib.server import failpriv_env, nobody_sinks, pipeline_server
from lib.events import check_once, read_events, wait_lines
from lib.clients import ConnectLoop, RecordSender, SteadyClient


@case
def reload_resize(ctx):
    """HUP with workers 2 -> 3: a new generation of 3; an open connection goes on in it."""
    s = ctx.server(workers=2, shutdown_timeout=5)
    s.start()
    old = s.wait_workers(2)
    c = ctx.connect(s.addr)
    c.sendall(b"<13>before the reload\n")
    owner = s.owner(c, among=old)
    check(owner, "the connection was not accepted by a generation 1 worker")
    s.write_config(workers=3)
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 2 accepting \d+ ms after the reload began; "
                   r"generation 1 drains", since=m)
    gen2 = [(slot, pid) for slot, pid, g in s.started(since=m) if g == 2]
    check(sorted(slot for slot, _ in gen2) == [0, 1, 2], f"generation 2 workers: {gen2}")
    gen2 = {pid for _, pid in gen2}
    # The connection was handed over: generation 1 has nothing left and exits.
    gone = wait_until(lambda: not [p for p in old if alive(p)], 3)
    check(gone, f"generation 1 workers {[p for p in old if alive(p)]} still running")
    check(set(s.workers()) == gen2, f"workers {s.workers()}, expected {sorted(gen2)}")
    check(peer_state(c) == "open", f"the connection open across the reload is {peer_state(c)}")
    c.sendall(b"<13>after the reload, same connection\n")
    check(s.owner(c, among=gen2), "no generation 2 worker holds the connection")
    ex = s.exit_of(owner)
    check(ex["gen"] == 1 and ex["conns"] == 1 and ex["records"] == 1,
          f"the drained worker counted {ex}, expected 1 connection and 1 record")
    check(s.grep(rf"\[{owner}\]: info: worker \d+ \(generation 1\): exiting: 1 connections, "
                 r".*; 0 connections taken over, 1 handed over"),
          "the drained worker did not hand it over")
    c.close()
    with ctx.connect(s.addr) as c2:
        c2.sendall(b"<13>new generation\n")
    s.stop()


def _reload_rejected(ctx, bad_text, expect):
    s = ctx.server(workers=2)
    s.start()
    before = s.wait_workers(2)
    s.write_config(text=bad_text(s))
    m = s.mark()
    s.signal(signal.SIGHUP)
    line = s.wait_for_log(r"reload failed: (.*); generation 1 keeps running", since=m)
    why = expect(s)
    check(re.fullmatch(why, line[1]), f"the reload error is \"{line[1]}\", expected /{why}/")
    check(not s.grep(r"starting generation 2", since=m), "a generation 2 was started anyway")
    check(s.workers() == before, f"workers changed from {before} to {s.workers()}")
    check(s.master and alive(s.master), "the master died")
    with ctx.connect(s.addr) as c:
        c.sendall(b"<13>still accepting\n")
    # Fixed again, the next reload works.
    s.write_config()
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 2 accepting", since=m)
    s.stop()


@case
def reload_syntax_error(ctx):
    """HUP with a syntax error: same workers, still accepting, FILE:LINE in the log."""
    _reload_rejected(
        ctx, lambda s: s.config_text() + "this is not libconfig;\n",
        lambda s: re.escape(s.conf) + rf":{s.config_text().count(chr(10)) + 1}: syntax: .+")


@case
def reload_out_of_range(ctx):
    """HUP with workers = 0: same workers, still accepting, FILE:LINE: setting in the log."""
    _reload_rejected(
        ctx, lambda s: s.config_text().replace("workers = 2;", "workers = 0;", 1),
        lambda s: re.escape(s.conf) + r":1: workers: must be from 1 to \d+")


def _reload_loop(ctx, mode, reloads=20):
    s = ctx.server(workers=2, accept_mode=mode, level="info")
    s.start()
    loop = ConnectLoop(s.addr)
    loop.start()
    try:
        check(wait_until(lambda: loop.ok > 0, 3), f"the client could not connect: {loop.failures}")
        for i in range(reloads):
            gen = i + 2
            m = s.mark()
            s.signal(signal.SIGHUP)
            s.wait_for_log(rf"reload: generation {gen} accepting", since=m, timeout=10)
        check(loop.is_alive(), f"the client loop ended (at its bound of {loop.max_conns} "
              f"connections or {loop.max_seconds} s) before the last reload")
        # Let the client run a little past the last reload.
        n = loop.ok
        wait_until(lambda: loop.ok >= n + 50 or not loop.is_alive(), 2)
    finally:
        loop.finish()
    check(not loop.failures, f"{dict(loop.failures)} among {loop.ok + sum(loop.failures.values())} "
          f"connections through {reloads} reloads ({mode})")
    check(loop.ok > 0, "no successful connection")
    check(s.wait_workers(2), "old generations are still running")
    gens = {g for _, p, g in s.started() if p in s.workers()}
    check(gens == {reloads + 1}, f"running workers belong to generations {gens}")
    s.stop()


@case
def reload_loop_shared(ctx):
    """20 HUPs under a connect/send/close loop, accept_mode shared: no refused or reset connection."""
    _reload_loop(ctx, "shared")


@case
def reload_loop_reuseport(ctx):
    """20 HUPs under a connect/send/close loop, accept_mode reuseport: no refused or reset connection."""
    _reload_loop(ctx, "reuseport")


@case
def reload_bind_failure(ctx):
    """HUP with a listener whose port is taken: the reload is given up, naming the address."""
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ctx.socks.append(busy)
    busy.bind((LOCAL4, 0))
    busy.listen(1)
    bport = busy.getsockname()[1]
    s = ctx.server(workers=2)
    s.start()
    before = s.wait_workers(2)
    s.write_config(listeners=[f"{LOCAL4}:{ctx.port}", f"{LOCAL4}:{bport}"])
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload failed: cannot bind the listeners; generation 1 keeps running", since=m)
    s.wait_for_log(rf"listen {re.escape(LOCAL4)}:{bport}: cannot bind", since=m)
    check(not s.grep(r"starting generation 2", since=m), "a generation 2 was started anyway")
    check(s.workers() == before, f"workers changed from {before} to {s.workers()}")
    with ctx.connect(s.addr) as c:
        c.sendall(b"<13>still accepting\n")
    s.stop()


@case
def reload_fatal_generation(ctx):
    """A reload whose workers cannot start is given up; generation 1 keeps serving."""
    env = failpriv_env(ctx)
    s = ctx.server(workers=2, sinks=nobody_sinks(ctx))
    s.start(env=env)           # no user: the workers do not drop privileges, the shim is idle
    before = s.wait_workers(2)
    s.write_config(extra='user = "nobody";')
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload failed: no worker of generation 2 can run; generation 1 keeps running",
                   since=m)
    n = len([g for _, _, g in s.started(since=m) if g == 2])
    check(n == 2, f"{n} generation 2 workers started, expected 2 and no respawn")
    check(s.workers() == before, f"workers changed from {before} to {s.workers()}")
    with ctx.connect(s.addr) as c:
        c.sendall(b"<13>generation 1 still serving\n")
    s.write_config(extra=None)
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation \d+ accepting \d+ ms after the reload began; "
                   r"generation 1 drains", since=m)
    check(wait_until(lambda: not [p for p in before if alive(p)], 3), "generation 1 did not drain")
    s.stop()


@case
def reload_new_port(ctx):
    """A reload to another port: the new one accepts, the old one is closed, its connection lives on."""
    p2 = free_port()
    s = ctx.server(workers=2, shutdown_timeout=4)
    s.start()
    old = s.wait_workers(2)
    c = ctx.connect(s.addr)
    c.sendall(b"<13>on the old port\n")
    owner = s.owner(c, among=old)
    check(owner, "the connection was not accepted")
    s.write_config(listeners=[f"{LOCAL4}:{p2}"])
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 2 accepting", since=m)
    s.wait_for_log(rf"listen {re.escape(LOCAL4)}:{ctx.port}: closed, no longer configured", since=m)
    s.wait_for_log(r"worker \d+ \(generation 1\): draining", since=m, count=2)
    with ctx.connect((LOCAL4, p2)) as c2:
        c2.sendall(b"<13>on the new port\n")
    try:
        ctx.connect(s.addr, timeout=1)
        refused = False
    except ConnectionRefusedError:
        refused = True
    check(refused, f"the old port {ctx.port} still accepts after the reload")
    c.sendall(b"<13>old port, after the reload\n")
    check(peer_state(c) == "open", f"the old port's connection is {peer_state(c)}")
    c.close()
    ex = s.exit_of(owner)
    check(ex["records"] == 2, f"the drained worker counted {ex['records']} records, expected 2")
    s.stop()


@case
def reload_fixed_settings(ctx):
    """A reload cannot change pid_file or accept_mode: it says so, keeps them, and goes on."""
    s = ctx.server(workers=2)
    s.start()
    old_pid_file = s.pid_file
    s.write_config(text=s.config_text().replace(s.pid_file, ctx.path("other.pid"))
                   .replace('listen = "', 'accept_mode = "reuseport"; listen = "'))
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: pid_file cannot change without a restart; keeping " +
                   re.escape(f'"{old_pid_file}"'), since=m)
    s.wait_for_log(r"reload: listeners\[0\]\.accept_mode cannot change without a restart; "
                   r'keeping "shared"', since=m)
    s.wait_for_log(r"reload: generation 2 accepting", since=m)
    check(read_pid(old_pid_file) == s.master, "the pid file moved")
    check(not os.path.exists(ctx.path("other.pid")), "the new pid_file was written anyway")
    with ctx.connect(s.addr) as c:
        c.sendall(b"<13>after the reload\n")
    s.stop()


def _shrink_reuseport(ctx, how):
    """
    accept_mode reuseport, 3 workers, worker 2 holds a long-lived connection;
    the worker count goes down to 2 (by HUP or TTOU).  New clients connect
    while worker 2 drains: every one of them must be accepted.
    """
    s = ctx.server(workers=3, accept_mode="reuseport", shutdown_timeout=3)
    s.start()
    s.wait_workers(3)
    leaving = s.slot_pid(2, 1)
    held = None
    for _ in range(64):
        c = ctx.connect(s.addr)
        c.sendall(b"<13>long-lived\n")
        owner = s.owner(c)
        if owner == leaving:
            held = c
            break
        c.close()
    check(held, "could not get a connection accepted by worker 2 in 64 tries")
    m = s.mark()
    if how == "reload":
        s.write_config(workers=2)
        s.signal(signal.SIGHUP)
        s.wait_for_log(r"reload: generation 2 accepting", since=m)
    else:
        s.signal(signal.SIGTTOU)
        s.wait_for_log(r"workers: now 2 in generation 1", since=m)
    s.wait_for_log(r"worker 2 \(generation 1\): draining", since=m)
    probes = []
    for i in range(24):
        c = ctx.connect(s.addr)
        c.sendall(b"<13>probe\n")
        probes.append(c)
    wait_until(lambda: all(accepted_by(probes, s.port, s.workers())), 1.5)
    stuck = [c for c, pid in zip(probes, accepted_by(probes, s.port, s.workers())) if not pid]
    # Let worker 2 finish its drain, then look at the connections nobody accepted.
    held.close()
    check(wait_until(lambda: not alive(leaving), 5), "worker 2 did not exit")
    time_limit = time.monotonic() + 1
    states = collections.Counter()
    for c in stuck:
        st = wait_closed(c, max(0.01, time_limit - time.monotonic()))
        states[st] += 1
    check(not stuck, f"{len(stuck)} of {len(probes)} connections made while worker 2 drained were "
          f"never accepted (queued on worker 2's SO_REUSEPORT socket, which nobody accepts from "
          f"any more); when worker 2 exited they became: {dict(states)}")
    for c in probes:
        check(peer_state(c) == "open", f"an accepted probe connection is {peer_state(c)}")
        c.close()
    s.stop()


@case
def reload_shrink_reuseport(ctx):
    """reuseport, HUP 3 -> 2 workers: clients connecting during the drain are all accepted."""
    _shrink_reuseport(ctx, "reload")


@case
def ttou_reuseport(ctx):
    """reuseport, TTOU 3 -> 2 workers: clients connecting during the drain are all accepted."""
    _shrink_reuseport(ctx, "ttou")


@case
def reload_keeps_events(ctx):
    """Clients sending through a reload: every record once, from both generations, lines whole."""
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], shutdown_timeout=5,
                        sinks=[{"name": "events", "path": path}])
    s.start()
    old = s.wait_workers(2)
    senders = [RecordSender(s.addr, cid) for cid in range(2)]
    for x in senders:
        x.start()
    try:
        n = wait_lines([path], 500, 5)
        m = s.mark()
        s.signal(signal.SIGHUP)
        s.wait_for_log(r"reload: generation 2 accepting", since=m)
        s.wait_for_log(r"worker \d+ \(generation 1\): draining", since=m, count=2)
        late = RecordSender(s.addr, 2)          # a connection to generation 2
        senders.append(late)
        late.start()
        wait_until(lambda: late.sent >= 500 or not late.is_alive(), 5)
        check(late.sent >= 500, f"the sender to generation 2 sent {late.sent} records")
        wait_lines([path], n + 1000, 5)
    finally:
        for x in senders:
            x.finish()
    check(wait_until(lambda: not [p for p in old if alive(p)], 5),
          "generation 1 did not exit after its clients closed")
    sent = {x.cid: x.sent for x in senders}
    wait_lines([path], sum(sent.values()), 10)
    s.stop()
    check_once(read_events(path), {(c, q) for c, k in sent.items() for q in range(k)},
               "through a reload")
    gens = {int(g) for g in re.findall(r"worker \d+ \(generation (\d+)\): sink events: [1-9]",
                                       s.log())}
    check(gens == {1, 2}, f"generations whose workers wrote events: {gens}, expected 1 and 2")


@case
def drain_deadline_graceful_close(ctx):
    """
    A reload with handover = false and shutdown_timeout = 1 under clients
    that send without pause: when the old workers' drain ends, each connection still open gets
    a FIN, not a reset; what the clients sent until they saw it is still
    read; they connect again (to the new generation) and go on: every
    record arrives once.
    """
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], shutdown_timeout=1,
                        sinks=[{"name": "events", "path": path}], level="info",
                        extra="handover = false;")
    s.start()
    clients = [SteadyClient(s.addr, cid) for cid in range(4)]
    for c in clients:
        c.start()
    try:
        check(wait_until(lambda: all(c.sent >= 200 for c in clients), 10), "the clients do not send")
        m = s.mark()
        s.signal(signal.SIGHUP)
        s.wait_for_log(r"reload: generation 2 accepting", since=m, timeout=10)
        s.wait_for_log(r"shutdown_timeout passed with \d+ connections open; closing them",
                       since=m, timeout=10)
        check(wait_until(lambda: all(c.reconnects or c.resets or not c.is_alive()
                                     for c in clients), 10),
              f"clients that never saw the end of their first connection: "
              f"{[c.cid for c in clients if not c.reconnects]}")
        sent = [c.sent for c in clients]
        check(wait_until(lambda: all(c.sent > n + 200 for c, n in zip(clients, sent)), 10) or
              any(c.resets for c in clients), "the clients did not go on after reconnecting")
    finally:
        for c in clients:
            c.finish()
    resets = {c.cid: c.resets for c in clients if c.resets}
    check(not resets, f"connections reset at the drain's end, not closed with a FIN: {resets}")
    total = sum(c.sent for c in clients)
    wait_lines([path], total, 20)
    s.stop()
    check_once(read_events(path), {(c.cid, q) for c in clients for q in range(c.sent)},
               "records across the drain's end")
