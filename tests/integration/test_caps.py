"""
How many connections: max_connections (one count for all the workers of
a listener, given back when a worker dies), max_connections_per_ip (IPv4
and IPv6), running out of descriptors (EMFILE: a pause, no busy loop, a
reload still works) and 50,000 idle connections in bounded memory.  A
refused connection is closed at once, never read, counted, and logged at
most once a second per reason, the next line counting the suppressed ones.
"""
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

from lib.base import LOCAL4, LOCAL6, case, check, tail, wait_until
from lib.proc import alive, cpu_seconds, fd_count, nofile_of, vm_rss_kb
from lib.net import LORIS_SOURCES, accepted_by, flood, free_port, held_by, split_states
from lib.server import pipeline_server
from lib.events import (REFUSED_EXIT_RE, check_defences, check_once, has_msgs, log_time,
                        no_respawn, read_events, refusal_lines, wait_events, wait_lines)
from lib.clients import bench_binary, RecordSender, token


@case
def max_connections_flood(ctx):
    """
    max_connections = 40 on a listener that 2 workers serve (reuseport, so
    both accept): 100 connections from 4 addresses leave exactly 40 open,
    shared by both workers, and the other 60 are closed at once, never read,
    counted as max_connections, and logged in one line, whose suppressed
    count the next line reports.  A closed connection makes room for exactly
    one more, and a client of another listener is not affected.
    """
    path = ctx.path("events.jsonl")
    other = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "accept_mode": "reuseport",
                               "max_connections": 40},
                              {"listen": f"{LOCAL4}:{other}"}],
                        sinks=[{"name": "events", "path": path}], level="info")
    s.start()
    pids = s.wait_workers(2)
    socks = flood(ctx, s.addr, LORIS_SOURCES, 100)
    for c in socks:
        try:
            c.sendall(b"<13>flood: never read when refused\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
    held, ended = split_states(socks, server=s)
    check(len(held) == 40 and sum(ended.values()) == 60,
          f"100 connections with max_connections = 40: {len(held)} open, {dict(ended)} closed")
    owners = collections.Counter(accepted_by(held, s.port, pids))
    check(None not in owners and set(owners) <= set(pids),
          f"the 40 open connections are held by {dict(owners)}, expected the workers {pids}")
    lines, _ = refusal_lines(s, "max_connections")
    check(1 <= lines <= 2, f"{lines} lines say \"refused ...: max_connections\" for 60 refusals "
          "in well under a second, expected one (two across a second boundary)")
    # Room for exactly one more after one closes; and the other listener is open.
    gone = held.pop()
    end = gone.getsockname()[:2]
    gone.close()
    check(wait_until(lambda: held_by([end], s.port, pids) == [None], 10),
          "the worker still holds a connection its client closed 10 s ago")
    late = flood(ctx, s.addr, ["127.0.0.6"], 2)
    now_held, late_ended = split_states(late, server=s)
    check(len(now_held) == 1 and sum(late_ended.values()) == 1,
          f"after one of 40 closed, 2 new connections: {len(now_held)} open, {dict(late_ended)}")
    good = ctx.connect((LOCAL4, other))
    t = token()
    good.sendall(f"<13>another listener {t}\n".encode())
    wait_events(path, has_msgs(f"another listener {t}"), what="the other listener's record")
    # After a quiet second, one more refusal logs a line that tells how many
    # were suppressed: every refusal is a line or counted in one.
    time.sleep(1.1)
    m = s.mark()
    flood(ctx, s.addr, ["127.0.0.6"], 1)
    s.wait_for_log(r"refused \S+: max_connections", since=m)
    lines, covered = refusal_lines(s, "max_connections")
    check(covered == 62 and lines <= 4, f"{lines} refusal lines stand for {covered} refusals "
          "(with the suppressed counts), expected 62 in at most 4 lines")
    s.stop()
    events = [e for e in read_events(path) if "never read" in e.get("msg", "")]
    check(len(events) == 40, f"{len(events)} flood records were written, expected the 40 "
          "admitted ones only")
    check_defences(s, 2, max=62)
    # Both workers took part, so the cap held for their sum, not for each.
    refused = {int(m[1]): int(m[3]) for m in REFUSED_EXIT_RE.finditer(s.log())}
    seen = {e["pid"]: e["conns"] + refused.get(e["pid"], 0) for e in s.exits()}
    check(len(seen) == 2 and all(n > 0 for n in seen.values()),
          f"connections accepted or refused per worker: {seen}, expected both to take part")


@case
def max_connections_per_ip_flood(ctx):
    """
    max_connections_per_ip = 10 (2 workers): 50 connections from 127.0.0.2
    leave 10 open and 40 refused at once and counted; 127.0.0.3 still gets
    its 10; a good client on 127.0.0.1 sends 2000 records meanwhile and
    every one arrives.  On [::1] with a cap of 3, the 4th is refused.
    """
    path = ctx.path("events.jsonl")
    port6 = free_port(LOCAL6)
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "max_connections_per_ip": 10},
                              {"listen": f"[{LOCAL6}]:{port6}", "max_connections_per_ip": 3}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    good = RecordSender(s.addr, cid=1, max_records=2000)
    good.start()
    held2, ended2 = split_states(flood(ctx, s.addr, ["127.0.0.2"], 50), server=s)
    held3, ended3 = split_states(flood(ctx, s.addr, ["127.0.0.3"], 12), server=s)
    check(len(held2) == 10 and sum(ended2.values()) == 40,
          f"50 connections from 127.0.0.2 with max_connections_per_ip = 10: {len(held2)} open, "
          f"{dict(ended2)} closed")
    check(len(held3) == 10 and sum(ended3.values()) == 2,
          f"12 connections from 127.0.0.3: {len(held3)} open, {dict(ended3)} closed")
    v6 = [ctx.connect((LOCAL6, port6)) for _ in range(4)]
    held6, ended6 = split_states(v6, server=s, port=port6)
    check(len(held6) == 3 and sum(ended6.values()) == 1,
          f"4 connections from ::1 with max_connections_per_ip = 3: {len(held6)} open, "
          f"{dict(ended6)} closed")
    good.join(15)
    good.finish()
    check(good.sent == 2000, f"the good client sent {good.sent} of 2000 records")
    wait_lines([path], 2000, 10)
    s.stop()
    check_once(read_events(path), {(1, q) for q in range(2000)}, "the good client's records")
    check_defences(s, 2, per_ip=43)


@case
def max_connections_killed_worker(ctx):
    """
    With max_connections = 20 full, SIGKILL the worker holding some of them:
    the master takes its connections off the shared count, so exactly that
    many new connections get in (and one more is refused).
    """
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "accept_mode": "reuseport",
                               "max_connections": 20}], sinks=[{"name": "events",
                                                                "path": ctx.path("e.jsonl")}])
    s.start()
    pids = s.wait_workers(2)
    held, _ = split_states(flood(ctx, s.addr, LORIS_SOURCES, 20), server=s)
    check(len(held) == 20, f"{len(held)} of 20 connections are open under max_connections = 20")
    owners = accepted_by(held, s.port, pids)
    victim = owners[0]
    lost = owners.count(victim)
    m = s.mark()
    os.kill(victim, signal.SIGKILL)
    s.wait_for_log(r"worker \d+ started", since=m, timeout=5)
    survivors, _ = split_states(held, server=s)
    check(len(survivors) == 20 - lost, f"{len(survivors)} connections survive the kill, "
          f"expected {20 - lost}")
    s.wait_workers(2)
    again, ended = split_states(flood(ctx, s.addr, ["127.0.0.6"], lost + 1), server=s)
    check(len(again) == lost and sum(ended.values()) == 1,
          f"after the worker holding {lost} connections died, {lost + 1} new ones: "
          f"{len(again)} open, {dict(ended)} closed; the dead worker's count was not given back")
    s.stop()


@case
def emfile_flood(ctx):
    """
    RLIMIT_NOFILE 64 for the server (worker_connections = 1000), 300 clients
    held open: each worker runs out of descriptors, logs the EMFILE pause,
    and does not spin (< 0.3 s CPU in 1.5 s); a HUP reload still completes;
    once the flood closes, a new client's record arrives.
    """
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "events", "path": path}],
                        extra="worker_connections = 1000;", level="info")
    s.start(rlimit=(64, 64))
    pids = s.wait_workers(2)
    for pid in [s.master] + pids:
        check(nofile_of(pid) == (64, 64), f"pid {pid} has RLIMIT_NOFILE {nofile_of(pid)}, "
              "expected (64, 64)")
    m = s.mark()
    flood = []
    t0 = time.monotonic()
    for _ in range(300):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ctx.socks.append(c)
        flood.append(c)
        c.setblocking(False)
        c.connect_ex(s.addr)
    for pid in pids:
        s.wait_for_log(rf"ingestd\[{pid}\]: .*listener l0: accept: Too many open files; "
                       r"pausing for 100 ms", since=m, timeout=5)
    time.sleep(0.2)
    fds = {p: fd_count(p) for p in pids}
    before = {p: cpu_seconds(p) for p in pids}
    time.sleep(1.5)
    used = {p: cpu_seconds(p) - before[p] for p in pids}
    note = "worker CPU in 1.5 s at EMFILE: " + ", ".join(
        f"{p}: {u:.2f} s ({fds[p]} fds)" for p, u in used.items())
    for p, u in used.items():
        check(u < 0.3, f"worker {p} used {u:.2f} s of CPU in 1.5 s while out of descriptors "
              f"(a busy loop?); {note}")
    print(f"# emfile_flood: {note}", file=sys.stderr, flush=True)
    took = time.monotonic() - t0
    for p in pids:
        rows = s.grep(rf"(\S+) ingestd\[{p}\]: .*accept: Too many open files; pausing for 100 ms"
                      r"(?: \((\d+) similar messages suppressed\))?", since=m)
        secs = [int(log_time(r[1])) for r in rows]
        check(len(set(secs)) == len(secs) and len(secs) <= took + 2,
              f"worker {p}: {len(secs)} EMFILE log lines in {took:.1f} s, expected at most one "
              "a second")
        tries = len(rows) + sum(int(r[2] or 0) for r in rows)
        check(tries <= 12 * (took + 1), f"worker {p} ran out of descriptors {tries} times in "
              f"{took:.1f} s, expected at most one every 100 ms")
    no_respawn(s, 2, "at EMFILE")
    # A reload while the flood is held.
    m2 = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 2 accepting", since=m2, timeout=10)
    check(alive(s.master), "the master is gone after the reload")
    held = time.monotonic() - t0
    if held < 2:
        time.sleep(2 - held)
    for c in flood:
        c.close()
    # The old generation drains (shutdown_timeout = 2); the new one takes new clients.
    wait_until(lambda: not [p for p in pids if alive(p)], 6)
    t = token()
    c = ctx.connect(s.addr, timeout=5)
    c.sendall(f"after the flood {t}\n".encode())
    wait_events(path, has_msgs(f"after the flood {t}"), timeout=10,
                what="the record of a client after the flood")
    c.close()
    s.stop()


@case
def idle_50k(ctx):
    """
    50,000 idle connections (ingestd-bench -m idle from 8 source addresses
    and several processes) into 4 workers: all established; the workers'
    RSS grows by under 2 KiB per connection (the figure is printed); and
    idle_timeout = 4 closes every one of them.
    """
    n = 50000
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "accept_mode": "reuseport",
                               "idle_timeout": 4}],
                        sinks=[{"name": "events", "path": ctx.path("e.jsonl")}], workers=4,
                        extra="worker_connections = 16000;")
    s.start()
    pids = s.wait_workers(4)
    before = sum(vm_rss_kb(p) for p in pids)
    err = ctx.path("bench.err")
    args = [bench_binary(), "-m", "idle", "-p", str(ctx.port), "-c", str(n), "--sources", "8",
            "-d", "9", "-j"]
    bench = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=open(err, "wb"))
    ctx.procs.append(bench)
    up = wait_until(lambda: re.search(r"idle: (\d+) established", open(err).read()), 20,
                    interval=0.05)
    check(up, f"ingestd-bench never said its connections were up: {tail(open(err).read())}")
    established = int(up[1])
    time.sleep(0.3)                     # the workers have accepted what the kernel queued
    held = [vm_rss_kb(p) for p in pids]
    per_conn = (sum(held) - before) * 1024 / established
    print(f"# idle_50k: {established} idle connections, worker RSS {before} kB -> {sum(held)} kB "
          f"({', '.join(f'{h} kB' for h in held)}): {per_conn:.0f} bytes per connection",
          file=sys.stderr, flush=True)
    check(established == n, f"{established} of {n} idle connections were established")
    check(per_conn < 2048, f"{per_conn:.0f} bytes of worker RSS per idle connection, expected "
          "under 2 KiB")
    out, _ = bench.communicate(timeout=30)
    report = json.loads(out)
    closed = report.get("closed_by_server")
    check(closed == n, f"idle_timeout = 4 closed {closed} of {n} idle connections "
          f"within 9 s: {report}")
    s.stop()
    check_defences(s, 4, idle=n)
