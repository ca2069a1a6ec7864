"""
A listener's defences against slow, silent, hostile and greedy clients:
idle_timeout (a connection that sends nothing is closed), record_timeout
(a record that has begun must end in time: the slowloris defence, also
with records split across reads, and never while back-pressure stops the
reading), allow/deny (a refused peer is closed right after accept, before
any read), fairness between a hog and a paced client in one worker, and
garbage (random bytes, an endless record, absurd octet counts).  Each
worker says at exit how many connections each defence closed and
refused; the cases count these and what the clients saw.
"""
import collections
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time

from lib.base import LOCAL4, LOCAL6, case, check, Failure, sanitized_build, tail, wait_until
from lib.proc import alive, vm_rss_kb
from lib.net import (connect_from, free_port, peer_of, peer_state, refused_at_once, tcp_queue,
                     wait_closed)
from lib.server import pipeline_server
from lib.events import (check_defences, check_once, exit_counts, has_msgs, no_respawn, read_events,
                        record_text, SinkLines, wait_events, wait_lines)
from lib.clients import bench_binary, blast, blast_args, play, token
from lib.disk import mount_tmpfs, remount_tmpfs


BLAST3164_EVENT_RE = re.compile(
    rb'\{"received_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z","peer":"127\.0\.0\.1:\d+",'
    rb'"listener":"l0","facility":"user","severity":"notice","timestamp":"[^"]+","host":"host",'
    rb'"app":"app","procid":"(\d+)","msg":"c=(\d+) s=(\d+) the quick brown fox jumps over the '
    rb'lazy dog, again and again"\}\n')


@case
def idle_timeout(ctx):
    """
    idle_timeout = 1: a client that sends nothing sees EOF in 1-2 s; one that
    sends a record every 0.3 s for 3 s stays open and every record arrives;
    idle_timeout = 0 keeps a silent connection open.
    """
    path = ctx.path("events.jsonl")
    never_port = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "idle_timeout": 1},
                              {"listen": f"{LOCAL4}:{never_port}", "idle_timeout": 0}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    text = lambda c, q: f"c={c} s={q} idle test {t}\n".encode()
    t0 = time.monotonic()                       # before the connects: what took counts from
    socks = dict(silent=ctx.connect(s.addr), never=ctx.connect((LOCAL4, never_port)),
                 active=ctx.connect(s.addr))
    silent_peer = peer_of(socks["silent"])
    closed = play([(0.3 * q, "active", text(0, q)) for q in range(11)], socks, 3.1, t0=t0)
    check("silent" in closed and closed["silent"][0] == "eof",
          f"the silent client on idle_timeout = 1 is still open after 3 s (closed: {closed})")
    took = closed["silent"][1]
    check(0.9 <= took <= 2.0, f"the silent client was closed ({closed['silent'][0]}) {took:.2f} s "
          "after it connected, expected 1-2 s with idle_timeout = 1")
    check("active" not in closed, f"the client sending a record every 0.3 s was closed "
          f"({closed.get('active')}) with idle_timeout = 1")
    check("never" not in closed, f"the silent client on idle_timeout = 0 was closed "
          f"({closed.get('never')}) within 3 s")
    socks["never"].sendall(text(1, 0))          # and it still works
    socks["active"].close()
    socks["never"].close()
    wait_lines([path], 12, 5)
    s.wait_for_log(rf"l0 {re.escape(silent_peer)}: closing: idle_timeout")
    s.stop()
    check_once(read_events(path), {(0, q) for q in range(11)} | {(1, 0)}, "idle_timeout")
    check_defences(s, 2, idle=1)


def check_blast_lines(path, runs):
    """
    The sink file holds, in order, the events of each blast run of runs (its
    record count) and nothing else: each line a whole event of a blast
    "3164" record on l0, each record of a run once.  A regex a line rather
    than read_events: it would take ~15 us a line, and these are ~10^6 lines.
    """
    bounds, at = [], 0
    for n in runs:
        bounds.append((at, at + n))
        at += n
    seen = [set() for _ in runs]
    per_conn = [collections.Counter() for _ in runs]
    run, i = 0, 0
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            while run < len(runs) and i >= bounds[run][1]:
                run += 1
            m = BLAST3164_EVENT_RE.fullmatch(line)
            if run == len(runs) or not m or m[1] != m[2]:
                raise Failure(f"{os.path.basename(path)}:{i + 1} is not the event of a blast "
                              f"record (run {run + 1} of {len(runs)}): {line[:300]!r}")
            key = (int(m[2]), int(m[3]))
            check(key not in seen[run], f"{os.path.basename(path)}:{i + 1}: blast run {run + 1}: "
                  f"record (c, s) {key} a second time")
            seen[run].add(key)
            per_conn[run][key[0]] += 1
    for k, (n, got) in enumerate(zip(runs, seen)):
        gaps = [c for c, cnt in per_conn[k].items() if max(s for cc, s in got if cc == c) != cnt - 1]
        check(len(got) == n and not gaps, f"blast run {k + 1}: {len(got)} distinct records of {n} "
              f"sent; connections with a gap in their sequence: {gaps}")


@case
def record_timeout_slowloris(ctx):
    """
    record_timeout = 3: 2000 connections that trickle one byte of a record
    every 0.7 s (ingestd-bench -m slowloris) are all closed 3-4 s after
    their first byte, while blast on the same listener gets every record
    through once, within 20% of its rate without them: best of three runs
    each way, both rates printed.  This shared 2-core machine's speed alone
    varies by 2x between runs, so the comparison is made up to three times
    and passes when one attempt is within the bound.
    """
    path = ctx.path("events.jsonl")
    # flush_interval = 0.01: the time to the last line is the work, not the wait for a batch.
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "record_timeout": 3,
                               "idle_timeout": 30}],
                        sinks=[{"name": "events", "path": path, "flush_interval": 0.01}],
                        level="info")
    s.start()
    s.wait_workers(2)
    conns, warm, per_run, nloris = 4, 20000, 300000, 2000
    lines = SinkLines(path)
    runs = []

    def timed_blast(n):
        """Seconds from blast's start until all its n records are lines in the sink."""
        before = sum(runs)
        t0 = time.monotonic()
        sent, _ = blast(s.port, conns, n, shape="3164")
        check(sent == n, f"blast sent {sent} records, expected {n}")
        got = wait_until(lambda: lines() >= before + n, 30, interval=0.005)
        took = time.monotonic() - t0
        check(got and lines() == before + n, f"{lines()} lines in events.jsonl after blast "
              f"run {len(runs) + 1}, expected {before + n}")
        runs.append(n)
        return took

    # Under ASan the server's work costs several times more while the
    # clients' does not: the 20% bound is for the real build.
    bound = 0.5 if sanitized_build() else 0.8
    timed_blast(warm)
    attempts = []
    while len(attempts) < 3 and (not attempts or attempts[-1][2] < bound):
        unloaded = min(timed_blast(per_run) for _ in range(3))
        loris = subprocess.Popen([bench_binary(), "-m", "slowloris", "-p", str(s.port),
                                  "-c", str(nloris), "--interval", "0.7", "-d", "10", "-j"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
        ctx.procs.append(loris)
        t_loris = time.monotonic()
        time.sleep(0.5)                 # connected, each with a record begun
        loaded = min(timed_blast(per_run) for _ in range(3))
        window = time.monotonic() - t_loris
        out = loris.communicate(timeout=30)[0].decode(errors="replace")
        try:
            report = json.loads(out)
        except ValueError:
            raise Failure(f"ingestd-bench -m slowloris: {tail(out)}")
        closed, when = report["closed_by_server"], report["close_s"]
        check(closed == nloris and report["connect_errors"] == 0,
              f"of {nloris} slowloris connections {closed} were closed by the server: {report}")
        check(when["min"] >= 2.9 and when["max"] <= 4.5, f"the slowloris connections were "
              f"closed {when['min']:.2f} to {when['max']:.2f} s after their first byte, "
              "expected 3-4 s")
        check(window < 2.9, f"the loaded runs took until {window:.1f} s after the slowloris "
              "connections began, after record_timeout closed them")
        attempts.append((per_run / unloaded, per_run / loaded, unloaded / loaded, when))
    for rate0, rate1, ratio, when in attempts:
        print(f"# record_timeout_slowloris: blast, {per_run} records on {conns} connections, "
              f"best of 3: {rate0:,.0f} records/s alone, {rate1:,.0f} records/s with {nloris} "
              f"slowloris connections open: loaded/unloaded = {ratio:.2f}; they were closed "
              f"{when['min']:.2f} / {when['p50']:.2f} / {when['max']:.2f} s (min / median / max) "
              "after their first byte", file=sys.stderr, flush=True)
    logged = s.grep(r"l0 127\.0\.0\.1:\d+: closing: record_timeout")
    check(0 < len(logged) <= 20 * len(attempts), f"{len(logged)} \"closing: record_timeout\" "
          "lines, expected a few (at most one a second per worker)")
    s.stop()
    check_blast_lines(path, runs)
    _, (_, nrec, _, perr, _) = exit_counts(s)
    check(nrec == sum(runs) and perr == 0, f"the workers counted {nrec} records, {perr} parse "
          f"errors; blast sent {sum(runs)} records")
    check_defences(s, 2, record=nloris * len(attempts))
    best = max(a[2] for a in attempts)
    check(best >= bound, f"blast under slowloris load kept at best {best:.0%} of its rate "
          f"without, in {len(attempts)} attempts; expected {bound:.0%}")


@case
def record_timeout_complete_records(ctx):
    """
    record_timeout = 1: a client sending one whole line every 0.5 s for 3 s,
    and one whose record takes 0.8 s in three pieces then goes quiet, stay
    open; one that starts a record and stalls is closed after 1 s.
    """
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "record_timeout": 1}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    socks = dict(steady=ctx.connect(s.addr), stalled=ctx.connect(s.addr),
                 pieces=ctx.connect(s.addr))
    stalled_peer = peer_of(socks["stalled"])
    plan = [(0.5 * q, "steady", f"c=0 s={q} steady {t}\n".encode()) for q in range(7)]
    plan += [(0, "stalled", f"stalled {t}: a record that does not end".encode()),
             (0, "pieces", b"c=2 s=0 in"), (0.4, "pieces", b" three"),
             (0.8, "pieces", f" pieces {t}\n".encode())]
    closed = play(plan, socks, 3.1)
    check("stalled" in closed, "the client that started a record and stalled is still open "
          "after 3 s with record_timeout = 1")
    took = closed["stalled"][1]
    check(0.9 <= took <= 1.5, f"the stalled record's connection was closed ({closed['stalled'][0]})"
          f" {took:.2f} s after its first byte, expected 1-1.5 s")
    for name in ("steady", "pieces"):
        check(name not in closed, f"the {name} client, which sends only complete records, was "
              f"closed ({closed.get(name)}) with record_timeout = 1")
    socks["steady"].close()
    socks["pieces"].close()
    wait_lines([path], 8, 5)
    s.wait_for_log(rf"l0 {re.escape(stalled_peer)}: closing: record_timeout")
    s.stop()
    events = [e for e in read_events(path) if "stalled" not in record_text(e)]
    check_once(events, {(0, q) for q in range(7)} | {(2, 0)}, "record_timeout = 1")
    check_defences(s, 2, record=1)


@case
def allow_deny_ipv4(ctx):
    """
    deny 127.0.0.2 and allow 127.0.0.0/8: 127.0.0.1 gets in, 127.0.0.2 is
    closed at once and what it sent never read; allow 127.0.0.3/32 alone
    refuses 127.0.0.1; a unix listener is not checked; host bits after the
    prefix length are a config error.
    """
    path = ctx.path("events.jsonl")
    only3 = free_port()
    sock_path = ctx.path("in.sock")
    s = pipeline_server(ctx, [
        {"listen": f"{LOCAL4}:{ctx.port}", "allow": ["127.0.0.0/8"], "deny": ["127.0.0.2"]},
        {"listen": f"{LOCAL4}:{only3}", "allow": ["127.0.0.3/32"]},
        {"listen": sock_path, "allow": ["192.0.2.1"], "deny": ["0.0.0.0/0", "::/0"]}],
        sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    msg = lambda who: f"{who} {t}"
    sent_bytes = 0
    ok, peers = {}, {}
    for who, src, addr in (("l0 from .1", "127.0.0.1", s.addr),
                           ("l1 from .3", "127.0.0.3", (LOCAL4, only3))):
        c = ok[who] = connect_from(ctx, src, addr)
        peers[msg(who)] = peer_of(c)
    ok["unix"] = ctx.connect(sock_path)
    peers[msg("unix")] = "unix"
    # Refused peers send at once: nothing of it may be read.
    refused = {}
    for who, src, addr in (("l0 from .2", "127.0.0.2", s.addr),
                           ("l1 from .1", "127.0.0.1", (LOCAL4, only3))):
        c = refused[who] = connect_from(ctx, src, addr)
        try:
            c.sendall(f"<13>{msg(who)}\n".encode() * 3)
        except (BrokenPipeError, ConnectionResetError):
            pass                        # refused already: what matters is that nothing was read
    denied_peer = peer_of(refused["l0 from .2"])
    for who, c in refused.items():
        refused_at_once(c, f"{who} (refused)")
    for who, c in ok.items():
        data = f"<13>{msg(who)}\n".encode()
        c.sendall(data)
        sent_bytes += len(data)
    wait_events(path, has_msgs(*peers), what="the events of the allowed clients")
    for who, c in ok.items():
        check(peer_state(c) == "open", f"the allowed client {who} is {peer_state(c)}")
        c.close()
    # One notice a second for the whole server: the second refusal within the
    # second is suppressed, so wait for either; check_defences counts both.
    s.wait_for_log(rf"listener l[01]: refused ({re.escape(denied_peer)}|127\.0\.0\.1:\d+): "
                   r"allow/deny")
    s.stop()
    got = {e.get("msg"): e["peer"] for e in read_events(path)}
    check(got == peers, f"the sink holds (msg: peer) {got}, expected {peers}")
    rows, (nbytes, nrec, _, _, _) = exit_counts(s)
    check(nbytes == sent_bytes and nrec == len(ok), f"the workers read {nbytes} bytes, {nrec} "
          f"records; the allowed clients sent {sent_bytes} bytes, {len(ok)} records")
    accepted = sum(e["conns"] for e in s.exits())
    check(accepted == len(ok), f"the workers counted {accepted} connections, expected {len(ok)} "
          "(refused ones are not connections)")
    check_defences(s, 2, acl=len(refused))
    # Configuration errors, FILE:LINE: setting: "value": why.
    for i, key, value, why in ((0, "allow", "10.1.2.3/8", "host bits are set after the prefix length"),
                               (1, "deny", "127.0.0.1/33", "prefix length must be from 0 to 32"),
                               (1, "allow", "localhost", "not an IPv4 or IPv6 address")):
        bad = ctx.server(name=f"bad{i}{key}", listeners=[
            {"listen": f"{LOCAL4}:{ctx.port}"}, {"listen": f"{LOCAL4}:{only3}"}])
        ls = bad.opts["listeners"]
        ls[i] = dict(ls[i], **{key: ["127.0.0.0/8", value]})
        bad.write_config()
        text = bad.config_text()
        line = text[:text.index(value)].count("\n") + 1
        rc, _, err = ctx.run(["-t", "-c", bad.conf])
        want = f'{bad.conf}:{line}: listeners[{i}].{key}: "{value}": {why}'
        check(rc == 1 and want in err, f"-t with {key} = [ \"{value}\" ] exited {rc} and said "
              f"{tail(err)}; expected 1 and {want}")


@case
def allow_deny_ipv6(ctx):
    """
    On [::1]: allow ::2 refuses ::1, allow ::1/128 takes it, deny ::/0
    refuses everything, an IPv4-only allow refuses it; a /129 is an error.
    """
    path = ctx.path("events.jsonl")
    specs = [("allow ::2", {"allow": ["::2"]}, False),
             ("allow ::1/128", {"allow": ["::1/128"]}, True),
             ("deny ::/0", {"allow": ["::1"], "deny": ["::/0"]}, False),
             ("allow 127.0.0.0/8", {"allow": ["127.0.0.0/8"]}, False)]
    ports = [free_port(LOCAL6) for _ in specs]
    s = pipeline_server(ctx, [dict({"listen": f"[{LOCAL6}]:{p}"}, **acl)
                              for (_, acl, _), p in zip(specs, ports)],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    want, refused = {}, []
    for i, ((what, _, allowed), port) in enumerate(zip(specs, ports)):
        c = ctx.connect((LOCAL6, port))
        try:
            c.sendall(f"<13>{what} {t}\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            check(not allowed, f"{what}: the connection from ::1 was reset")
        if allowed:
            want[f"{what} {t}"] = (f"[{LOCAL6}]:{c.getsockname()[1]}", f"l{i}")
            check(peer_state(c) == "open", f"{what}: the connection from ::1 is {peer_state(c)}")
        else:
            refused_at_once(c, f"{what} (::1 refused)")
            refused.append((i, c.getsockname()[1]))
        c.close()
    wait_events(path, has_msgs(*want), what="the event from ::1")
    # One notice a second for the whole server: one of the three refusals is
    # logged, not necessarily the first (the workers race to log theirs), and
    # the others are suppressed; check_defences counts all three.
    s.wait_for_log("|".join(rf"listener l{i}: refused \[::1\]:{port}: allow/deny"
                            for i, port in refused))
    s.stop()
    got = {e.get("msg"): (e["peer"], e["listener"]) for e in read_events(path)}
    check(got == want, f"the sink holds (msg: peer, listener) {got}, expected {want}")
    check_defences(s, 2, acl=3)
    bad = ctx.server(name="bad", listeners=[{"listen": f"[{LOCAL6}]:{ports[0]}",
                                             "deny": ["::1/129"]}])
    rc, _, err = ctx.run(["-t", "-c", bad.conf])
    line = bad.config_text()[:bad.config_text().index("::1/129")].count("\n") + 1
    expect = f'{bad.conf}:{line}: listeners[0].deny: "::1/129": prefix length must be from 0 to 128'
    check(rc == 1 and expect in err, f"-t with deny = [ \"::1/129\" ] exited {rc} and said "
          f"{tail(err)}; expected 1 and {expect}")


@case
def timeouts_wait_for_backpressure(ctx):
    """
    A "block" sink on a full disk: the worker stops reading, and for 2.5 s
    neither a client whose data it does not read (idle_timeout = 1), nor one
    mid-record (record_timeout = 2), nor one that connects meanwhile and is
    silent is closed; with space again every record arrives, and the two
    that are really idle or stalled are closed once reading resumed.
    """
    disk = ctx.path("disk")
    mount_tmpfs(ctx, disk, "512k")
    out = os.path.join(disk, "events.jsonl")
    stall_port = free_port()
    # record_timeout = 0 on the flooding listener: its reads end mid-record
    # (see record_timeout_split_records); this case is about back-pressure.
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "idle_timeout": 1,
                               "record_timeout": 0},
                              {"listen": f"{LOCAL4}:{stall_port}", "idle_timeout": 0,
                               "record_timeout": 2}], workers=1,
                        sinks=[{"name": "disk", "path": out, "queue": "1M", "overflow": "block",
                                "flush_interval": 0.05}])
    s.start()
    # A record begun just before the worker stops reading: its timer runs out while blocked.
    stalled = ctx.connect((LOCAL4, stall_port))
    stalled.sendall(b"c=9 s=0 the first half of a record")
    check(wait_until(lambda: (tcp_queue(stall_port, stalled.getsockname()[1]) or (1,))[0] == 0, 1),
          "the worker did not read the stalled client's first bytes")
    t_stalled = time.monotonic()
    c = ctx.connect(s.addr, timeout=5)
    pad = "x" * 900
    rec = lambda q: f"c=0 s={q} {pad}\n".encode()
    c.setblocking(False)
    seq, pending, pushed = 0, b"", 0
    t0 = last = time.monotonic()
    stalled_at = None
    # Bounded: 60,000 records or 20 s; blocked after 1.5 s without progress.
    try:
        while seq < 60000 and time.monotonic() - t0 < 20:
            if not pending:
                pending = b"".join(rec(seq + i) for i in range(64))
                seq += 64
            try:
                n = c.send(pending)
            except BlockingIOError:
                n = 0
            now = time.monotonic()
            if n:
                pending, pushed, last = pending[n:], pushed + n, now
            elif now - last >= 1.5:
                stalled_at = now
                break
            else:
                select.select([], [c], [], 0.1)
    except (BrokenPipeError, ConnectionResetError) as e:
        raise Failure(f"the flooding client was closed ({e}) after {pushed} bytes, "
                      f"{time.monotonic() - t0:.1f} s; log: {tail(s.log())}")
    check(stalled_at, f"the client pushed {pushed} bytes in {time.monotonic() - t0:.1f} s and was "
          "never blocked")
    full = s.wait_for_log(r"sink disk: queue full \(1048576 bytes\); not reading from clients")
    check(peer_state(stalled) == "open", f"the client with a record begun is {peer_state(stalled)} "
          f"{time.monotonic() - t_stalled:.1f} s after its first bytes, before the disk was full "
          "for long")
    m = s.mark()
    silent = ctx.connect(s.addr)           # accepted, never read from
    socks = dict(flooding=c, stalled=stalled, silent=silent)
    closed = play([], socks, 2.5, step=0.05)
    check(not closed, f"closed while the disk was full and the worker not reading: {closed}; "
          f"log: {tail(s.log(m))}")
    check(not s.grep(r"sink disk: writing again", since=m), "the disk had space again too soon")
    check(not s.grep(r"closing: (idle|record)_timeout"),
          f"a timeout fired while the worker was not reading: {tail(s.log(m))}")
    queued = tcp_queue(s.port, c.getsockname()[1])
    check(queued and queued[0] > 0, f"the flooding client's server socket has (Recv-Q, rb) {queued}"
          " with the disk full: its worker still reads")
    blocked_for = time.monotonic() - t_stalled
    remount_tmpfs(disk, "64m")
    s.wait_for_log(r"sink disk: writing again", since=m, timeout=10)
    c.setblocking(True)
    c.settimeout(10)
    c.sendall(pending)                     # the rest of the last batch: every record whole
    c.close()
    wait_lines([out], seq, 20)
    for name in ("silent", "stalled"):
        st = wait_closed(socks[name], 4)
        check(st in ("eof", "reset"), f"the {name} client is still {st} 4 s after reading resumed")
    s.stop()
    check_once(read_events(out), {(0, q) for q in range(seq)},
               f"after the disk had space again (blocked {blocked_for:.1f} s; {full[0]})")
    check_defences(s, 1, idle=1, record=1)


@case
def record_timeout_split_records(ctx):
    """
    record_timeout = 1, a client whose every send ends one record and begins
    the next (each record takes 0.3 s, as when reads split a stream): every
    record is complete well within 1 s, so it is not closed.  A stream
    at full speed (blast for more than record_timeout seconds) is the same.
    """
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "record_timeout": 1}],
                        sinks=[{"name": "events", "path": path}], workers=1)
    s.start()
    t = token()
    c = ctx.connect(s.addr)
    plan = [(0, "split", b"c=0 s=0 begins")]
    plan += [(0.3 * q, "split", f" and ends {t}\nc=0 s={q} begins".encode()) for q in range(1, 11)]
    plan += [(3.3, "split", f" and ends {t}\n".encode())]
    closed = play(plan, {"split": c}, 3.4)
    how, after = closed.get("split", ("", 0))
    check(not closed, f"the client was closed ({how}) {after:.2f} s after its first byte, though "
          "each of its records was complete within 0.3 s: the record_timeout timer is armed when "
          "a record begins but not re-armed when a read ends one record and begins the next "
          "(worker/conn.c arm_timers)")
    c.close()
    wait_lines([path], 11, 5)
    s.stop()
    check_once(read_events(path), {(0, q) for q in range(11)}, "split records")
    check_defences(s, 1)


@case
def fairness(ctx):
    """
    One worker.  A hog connection sends as fast as it can (blast, one
    connection, to a sink on /dev/null) while a paced client on another
    listener of the same worker sends 50 batches of 20 records, one every
    40 ms: each batch is in its sink within 0.5 s of being sent (the worst
    and the median delay are printed), and every record arrives once.  A
    worker reads at most 4 x 64 KiB from one connection per wake-up, so
    the hog cannot hold the loop.
    """
    path = ctx.path("paced.jsonl")
    hog_port = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{hog_port}", "sinks": ["null"]},
                              {"listen": f"{LOCAL4}:{ctx.port}", "sinks": ["paced"]}],
                        sinks=[{"name": "null", "path": "/dev/null"},
                               {"name": "paced", "path": path, "flush_interval": 0.01}],
                        workers=1)
    s.start()
    args = blast_args(hog_port, 1, 50_000_000, shape="3164", seconds=8)
    hog = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    try:
        time.sleep(0.5)                 # the hog is at full speed
        check(hog.poll() is None, "blast (the hog) ended early")
        lines = SinkLines(path)
        batches, size = 50, 20
        sent_at, seen_at = [], {}
        c = ctx.connect(s.addr)
        t0 = time.monotonic()

        def watch(until):
            while True:
                n = lines()
                now = time.monotonic()
                for k in range(len(sent_at)):
                    if k not in seen_at and n >= (k + 1) * size:
                        seen_at[k] = now
                if now >= until or len(seen_at) == batches:
                    return
                time.sleep(0.002)

        for k in range(batches):
            watch(t0 + 0.04 * k)
            c.sendall("".join(f"c=1 s={k * size + i} paced\n" for i in range(size)).encode())
            sent_at.append(time.monotonic())
        watch(time.monotonic() + 5)
        c.close()
        hog_running = hog.poll() is None
    finally:
        if hog.poll() is None:
            hog.terminate()
        out = hog.communicate(timeout=10)[0].decode(errors="replace")
    check(hog_running, f"the hog stopped before the paced client was done: {tail(out)}")
    late = sent_at[-1] - t0 - 0.04 * (batches - 1)
    delays = sorted(seen_at[k] - sent_at[k] for k in seen_at)
    check(len(delays) == batches, f"{len(delays)} of {batches} paced batches reached the sink "
          "while the hog was sending")
    print(f"# fairness: paced batches in the sink {delays[len(delays) // 2] * 1000:.0f} ms "
          f"(median) / {delays[-1] * 1000:.0f} ms (worst) after they were sent, beside a hog; "
          f"the last batch went out {late * 1000:.0f} ms late", file=sys.stderr, flush=True)
    check(delays[-1] < 0.5 and late < 0.5,
          f"with a hog in the same worker, a paced batch took up to {delays[-1]:.3f} s to reach "
          f"the sink and the client fell {late:.3f} s behind; expected under 0.5 s")
    s.stop()
    check_once(read_events(path), {(1, q) for q in range(batches * size)}, "the paced records")


class Abuser(threading.Thread):
    """
    Runs fn(self) in a thread, bounded by its own counts and max_seconds;
    keeps the first exception (or Failure) for finish().
    """

    def __init__(self, fn, max_seconds=10):
        super().__init__(daemon=True)
        self.fn, self.max_seconds = fn, max_seconds
        self.deadline = time.monotonic() + max_seconds
        self.error, self.peers, self.info = None, [], {}

    def run(self):
        self.deadline = time.monotonic() + self.max_seconds
        try:
            self.fn(self)
        except Exception as e:      # noqa: BLE001 - reported by finish()
            self.error = e

    def finish(self, what):
        self.join(self.max_seconds + 5)
        check(not self.is_alive(), f"{what}: the client thread did not stop")
        if isinstance(self.error, Failure):
            raise self.error
        check(self.error is None, f"{what}: {type(self.error).__name__}: {self.error}")


@case
def garbage_clients(ctx):
    """
    For ~3 s: random bytes and a 20 MB record without LF on a listener with
    max_record = 1024, absurd octet counts on an octet-counted listener (each
    connection closed), and a well-behaved client's 1000 records meanwhile:
    no worker dies, each stays under 40 MB RSS, the endless record is one
    truncated 1024-byte event, and every good record arrives once.
    """
    path = ctx.path("events.jsonl")
    p_oc = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "framing": "auto",
                               "max_record": 1024},
                              {"listen": f"{LOCAL4}:{p_oc}", "framing": "octet-counted"}],
                        sinks=[{"name": "events", "path": path}], level="info")
    s.start()
    pids = sorted(s.wait_workers(2))
    master = s.master
    t = token()

    def random_bytes(a):
        sock, sent = None, 0
        for _ in range(48):                             # 48 x 64 KiB, reconnecting when closed
            if time.monotonic() > a.deadline or a.info.get("reconnects", 0) > 50:
                break
            try:
                if sock is None:
                    sock = socket.create_connection(s.addr, timeout=5)
                    a.peers.append(peer_of(sock))
                sock.sendall(os.urandom(65536))
                sent += 65536
            except OSError:
                if sock:
                    sock.close()
                sock = None
                a.info["reconnects"] = a.info.get("reconnects", 0) + 1
            time.sleep(0.05)
        if sock:
            sock.close()
        a.info["sent"] = sent

    def endless(a):
        with socket.create_connection(s.addr, timeout=5) as sock:
            a.peers.append(peer_of(sock))
            chunk, sent = b"A" * 65536, 0
            for _ in range(320):                        # 20 MiB, no LF
                if time.monotonic() > a.deadline:
                    break
                sock.sendall(chunk)
                sent += len(chunk)
                time.sleep(0.008)
            a.info["sent"] = sent
            sock.shutdown(socket.SHUT_WR)
            a.info["state"] = peer_state(sock)

    def bad_counts(a):
        states = collections.Counter()
        for _ in range(5):
            for data in (b"99999999999 <13>x", b"0 x", b"-1 x", b"12x <13>"):
                if time.monotonic() > a.deadline:
                    break
                with socket.create_connection((LOCAL4, p_oc), timeout=5) as sock:
                    a.peers.append(peer_of(sock))
                    try:
                        sock.sendall(data)
                    except OSError:
                        pass
                    st = wait_closed(sock, 3)
                    states[st] += 1
                    check(st in ("eof", "reset"), f"after {data!r} on the octet-counted "
                          f"listener the client sees {st}, expected EOF or a reset")
            time.sleep(0.3)
        a.info["states"] = dict(states)

    def good(a):
        with socket.create_connection(s.addr, timeout=5) as sock:
            a.peers.append(peer_of(sock))
            for b in range(50):                         # 50 x 20 records
                sock.sendall("".join(f"c=0 s={b * 20 + i} a good client among garbage {t}\n"
                                     for i in range(20)).encode())
                time.sleep(0.05)
            sock.shutdown(socket.SHUT_WR)
            a.info["state"] = wait_closed(sock, 5)

    abusers = {name: Abuser(fn) for name, fn in
               (("random", random_bytes), ("endless", endless), ("bad counts", bad_counts),
                ("good", good))}
    for a in abusers.values():
        a.start()
    peak = {p: 0 for p in pids}
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4 and any(a.is_alive() for a in abusers.values()):
        for p in pids:
            peak[p] = max(peak[p], vm_rss_kb(p) or 0)
        time.sleep(0.2)
    for name, a in abusers.items():
        a.finish(name)
    for p in pids:
        peak[p] = max(peak[p], vm_rss_kb(p) or 0)
    note = ("worker VmRSS peaks: " + ", ".join(f"{p}: {k / 1024:.1f} MB" for p, k in peak.items())
                + f"; random sent {abusers['random'].info.get('sent')} bytes on "
                f"{len(abusers['random'].peers)} connections, endless "
                f"{abusers['endless'].info.get('sent')} bytes, bad counts "
                f"{abusers['bad counts'].info.get('states')}")
    print(f"# garbage_clients: {note}", file=sys.stderr, flush=True)
    for p, k in peak.items():
        check(k < 40 * 1024, f"worker {p} reached {k / 1024:.1f} MB VmRSS; {note}")
    check(s.master == master and alive(master), "the master is gone")
    check(sorted(s.workers()) == pids, f"workers {s.workers()} after the abuse, expected {pids}")
    no_respawn(s, 2, "after the garbage")
    s.wait_for_log(r"closing: octet count", timeout=2)

    good_peer = abusers["good"].peers[0]
    events = wait_events(path, lambda evs: sum(e["peer"] == good_peer for e in evs) >= 1000,
                         timeout=15, what="the good client's 1000 records")
    check_once([e for e in events if e["peer"] == good_peer], {(0, q) for q in range(1000)},
               "the good client")
    endless_peer = abusers["endless"].peers[0]
    cut = [e for e in events if e["peer"] == endless_peer]
    check(len(cut) == 1 and all(e.get("truncated") is True and e.get("msg") == "A" * 1024
                                for e in cut),
          f"the 20 MB record without LF gave {len(cut)} events "
          f"{[(e.get('truncated'), len(e.get('msg', ''))) for e in cut[:3]]}, expected one "
          "truncated event of 1024 bytes")
    bad = set(abusers["bad counts"].peers)
    check(not [e for e in events if e["peer"] in bad],
          "a connection with an absurd octet count produced an event")
    s.stop()
    read_events(path)           # the whole file: valid UTF-8, JSON lines
