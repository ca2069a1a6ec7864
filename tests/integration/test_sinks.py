"""
Local sinks (file and stdout).  Several workers append to one file, or
one stdout pipe or socket, in whole lines, each record once, even while
one of them is stopped mid-write; fan-out to several sinks; batches
(flush_interval, 256 KiB); the default sink; a directory that appears
later; a full disk (tmpfs) under overflow = "block" (the workers stop
reading, memory stays bounded, nothing is lost) and "drop" (counted, the
client never blocks).
"""
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

from lib.base import case, check, Failure, LOCAL4, LOCAL6, long_case, tail, wait_until
from lib.proc import proc_state, vm_rss_kb
from lib.net import free_port, peer_of, socket_owner, tcp_queue
from lib.server import pipeline_server, preload_env
from lib.events import (CS_RE, check_once, exit_counts, has_msgs, read_events, sink_exits,
                        wait_events, wait_lines, worker_lines)
from lib.clients import blast, RecordSender, token
from lib.disk import mount_tmpfs, remount_tmpfs


class PipeDrain(threading.Thread):
    """Copies what a pipe carries into a file until EOF (or max_seconds), flushing as it goes."""

    def __init__(self, pipe, path, max_seconds=120):
        super().__init__(daemon=True)
        self.fd, self.path, self.max_seconds = pipe.fileno(), path, max_seconds

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        with open(self.path, "ab") as out:
            while time.monotonic() < deadline:
                try:
                    if not select.select([self.fd], [], [], 0.2)[0]:
                        continue
                    data = os.read(self.fd, 1 << 20)
                except (OSError, ValueError):
                    break
                if not data:
                    break
                out.write(data)
                out.flush()

    def finish(self, timeout=10):
        self.join(timeout)
        check(not self.is_alive(), "standard output was not closed after the master exited")


def _no_interleave(ctx, octet, attempts=3):
    """
    reuseport spreads blast's 8 connections by a hash: when all of them land
    on one worker (about 1 run in 128), the file had one writer, so the run
    is made again with a fresh server (at most attempts times).
    """
    for attempt in range(1, attempts + 1):
        if _no_interleave_once(ctx, octet, attempt):
            return
    raise Failure(f"in {attempts} runs every connection went to one worker")


def _no_interleave_once(ctx, octet, attempt):
    path = ctx.path(f"events{attempt}.jsonl")
    # Auto framing takes "90 {..." for a line (no PRI after the count): octet-counted
    # JSON needs framing = "octet-counted".
    framing = "octet-counted" if octet else "auto"
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "framing": framing}],
                        sinks=[{"name": "all", "path": path}], accept_mode="reuseport",
                        name=f"ingestd{attempt}")
    s.start()
    s.wait_workers(2)
    conns, per = 8, 20000
    sent, nbytes = blast(s.port, conns, conns * per, shape="mix", octet=octet)
    check(sent == conns * per, f"blast sent {sent} records, expected {conns * per}")
    wait_lines([path], sent, 30)
    s.stop()
    rows, (rbytes, nrec, trunc, perr, pdrop) = exit_counts(s)
    check(nrec == sent and rbytes == nbytes and perr == 0 and trunc == 0,
          f"the workers read {rbytes} bytes, {nrec} records ({trunc} truncated, {perr} parse "
          f"errors); blast sent {nbytes} bytes, {sent} records")
    events = read_events(path)
    check(len(events) == sent, f"{len(events)} lines for {sent} records")
    seen = check_once(events, None, "octet-counted" if octet else "LF")
    conns_seen = sorted({c for c, _ in seen})
    check(conns_seen == list(range(conns)), f"records from connections {conns_seen}")
    return len([r for r in rows if r[1] > 0]) == 2


@case
def no_interleave(ctx):
    """2 workers, 8 blast connections, 160,000 LF records: every line whole JSON, each record once."""
    _no_interleave(ctx, octet=False)


@case
def no_interleave_octet(ctx):
    """The same with octet-counted frames (blast -o) on a framing = "octet-counted" listener."""
    _no_interleave(ctx, octet=True)


@case
def fanout(ctx):
    """
    sinks ["a", "b"] to both files, ["b"] to b only, none to every sink; the
    same line in each (a syncs always, b at intervals).
    """
    a, b = ctx.path("a.jsonl"), ctx.path("b.jsonl")
    ports = [ctx.port, free_port(), free_port()]
    s = pipeline_server(ctx, [{"name": "both", "listen": f"{LOCAL4}:{ports[0]}", "sinks": ["a", "b"]},
                              {"name": "bonly", "listen": f"{LOCAL4}:{ports[1]}", "sinks": ["b"]},
                              {"name": "every", "listen": f"{LOCAL4}:{ports[2]}"}],
                        sinks=[{"name": "a", "path": a, "sync": "always"},
                               {"name": "b", "path": b, "sync": "interval"}])
    s.start()
    t = token()
    msgs = {}
    for name, port in zip(("both", "bonly", "every"), ports):
        msgs[name] = [f"<13>{name}-{i}-{t}" for i in range(3)]
        with ctx.connect((LOCAL4, port)) as c:
            c.sendall("".join(m + "\n" for m in msgs[name]).encode())
    body = lambda name: [m[4:] for m in msgs[name]]
    wait_events(b, has_msgs(*body("both"), *body("bonly"), *body("every")), what="every event in b")
    wait_events(a, has_msgs(*body("both"), *body("every")), what="the events for a")
    s.stop()
    for path, names in ((a, ("both", "every")), (b, ("both", "bonly", "every"))):
        events = read_events(path)
        got = sorted((e["listener"], e.get("msg")) for e in events)
        want = sorted((n, m) for n in names for m in body(n))
        check(got == want, f"{os.path.basename(path)} holds {got}, expected {want}")
    with open(a, "rb") as fa, open(b, "rb") as fb:
        la, lb = set(fa.read().splitlines()), set(fb.read().splitlines())
    check(la <= lb, "a line of a.jsonl is not the same line in b.jsonl: "
          f"{sorted(la - lb)[:1]}")


@case
def backpressure_enospc(ctx):
    """
    A full disk under a "block" sink, one client on each of 2 workers: the
    error and retries are logged, the workers stop reading (bounded memory,
    the clients block); with space again every record arrives once, and no
    line is ever partial.
    """
    disk = ctx.path("disk")
    mount_tmpfs(ctx, disk, "512k")
    out = os.path.join(disk, "events.jsonl")
    queue = 1 << 20
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "disk", "path": out, "queue": "1M", "overflow": "block",
                                "flush_interval": 0.05}])
    s.start()
    w = s.wait_workers(2)
    idle_rss = {p: vm_rss_kb(p) for p in w}
    byworker = {}
    for _ in range(32):
        c = ctx.connect(s.addr, timeout=5)
        owner = s.owner(c)
        if owner in w and owner not in byworker:
            byworker[owner] = c
            if len(byworker) == 2:
                break
        else:
            c.close()
    check(len(byworker) == 2, f"could not get a connection on each worker in 32 tries: {byworker}")
    pad = "x" * 900
    rec = lambda cid, q: f"c={cid} s={q} {pad}\n".encode()
    clients = [dict(sock=c, cid=i, seq=0, pending=b"", pushed=0)
               for i, c in enumerate(byworker.values())]
    for cl in clients:
        cl["sock"].setblocking(False)
    t0 = last = time.monotonic()
    stalled = False
    # Bounded: 60,000 records or 20 s; blocked after 1.5 s without progress on any client.
    while sum(cl["seq"] for cl in clients) < 60000 and time.monotonic() - t0 < 20:
        progress = False
        for cl in clients:
            if not cl["pending"]:
                cl["pending"] = b"".join(rec(cl["cid"], cl["seq"] + i) for i in range(64))
                cl["seq"] += 64
            try:
                n = cl["sock"].send(cl["pending"])
            except BlockingIOError:
                n = 0
            if n:
                cl["pending"] = cl["pending"][n:]
                cl["pushed"] += n
                progress = True
        now = time.monotonic()
        if progress:
            last = now
        elif now - last >= 1.5:
            stalled = True
            break
        else:
            select.select([], [cl["sock"] for cl in clients], [], 0.1)
    pushed = sum(cl["pushed"] for cl in clients)
    sent = sum(cl["seq"] for cl in clients)
    check(stalled, f"the clients pushed {pushed} bytes ({sent} records) in "
          f"{time.monotonic() - t0:.1f} s and were never blocked")
    s.wait_for_log(r"sink disk: write \S+: No space left on device; \d+ bytes queued, "
                   r"retrying in \d+ ms")
    blocked = wait_until(lambda: worker_lines(s, r"sink disk: queue full \(1048576 bytes\); "
                                              r"not reading from clients") == {0, 1}, 3)
    check(blocked, f"workers that logged a full queue: {worker_lines(s, 'sink disk: queue full')}"
          ", expected 0 and 1")
    rss = {p: vm_rss_kb(p) for p in w}
    check(all(v is not None and v < 64 * 1024 for v in rss.values()),
          f"worker VmRSS with the disk full: {rss} kB (idle: {idle_rss}), expected < 64 MB")
    # What the clients can push: the disk, and per worker the queue, one wake's reads
    # (4 x 64 KiB) past it, a record split across reads (max_record), the server's
    # receive buffer and the client's send buffer.
    bound = 512 * 1024
    for cl in clients:
        queued = tcp_queue(s.port, cl["sock"].getsockname()[1])
        check(queued and queued[0] > 0, f"the server's socket of client {cl['cid']} has "
              f"(Recv-Q, rb) {queued} while the disk is full: its worker still reads")
        bound += queue + 5 * 65536 + queued[1] + cl["sock"].getsockopt(socket.SOL_SOCKET,
                                                                         socket.SO_SNDBUF)
    check(pushed <= bound, f"the clients pushed {pushed} bytes, more than the disk, the queues, "
          f"one wake's reads and the socket buffers ({bound})")
    # No partial line while the disk is full (read_events checks every line).
    on_disk = len(read_events(out))
    check(0 < on_disk < sent, f"{on_disk} events on the full disk for {sent} records")
    m = s.mark()
    remount_tmpfs(disk, "64m")
    again = wait_until(lambda: worker_lines(s, r"sink disk: writing again", since=m) == {0, 1}, 10)
    check(again, f"workers writing again 10 s after the disk had space: "
          f"{worker_lines(s, 'sink disk: writing again', since=m)}")
    for cl in clients:
        cl["sock"].setblocking(True)
        cl["sock"].settimeout(10)
        cl["sock"].sendall(cl["pending"])      # the rest of the last batch: every record whole
        cl["sock"].close()
    wait_lines([out], sent, 20)
    s.stop()
    events = read_events(out)
    check(len(events) == sent, f"{len(events)} lines for the {sent} records sent")
    check_once(events, {(cl["cid"], q) for cl in clients for q in range(cl["seq"])},
               "after the disk had space again")
    bad = [e for e in events if (lambda m: e.get("msg") != rec(int(m[1]), int(m[2]))[:-1].decode())(
        CS_RE.search(e["msg"]))]
    check(not bad, f"{len(bad)} events changed, first: {json.dumps(bad[0])[:300] if bad else ''}")


@case
def overflow_drop(ctx):
    """
    A full disk under a "drop" sink: the client never blocks, the exit line
    counts the drops, what reached the disk is intact, and the listener's
    other sink gets every event.
    """
    disk = ctx.path("disk")
    mount_tmpfs(ctx, disk, "256k")
    out = os.path.join(disk, "events.jsonl")
    full = ctx.path("all.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "sinks": ["lossy", "all"]}],
                        workers=1, shutdown_timeout=1,
                        sinks=[{"name": "lossy", "path": out, "queue": "64K", "overflow": "drop",
                                "flush_interval": 0.05},
                               {"name": "all", "path": full}])
    s.start()
    pad = "y" * 150
    text = lambda q: f"c=0 s={q} {pad}"
    total, nbytes = 20000, 0
    c = ctx.connect(s.addr, timeout=10)
    t0 = time.monotonic()
    try:
        for start in range(0, total, 500):
            data = "".join(text(q) + "\n" for q in range(start, start + 500)).encode()
            c.sendall(data)
            nbytes += len(data)
    except socket.timeout:
        raise Failure(f"the client was blocked for 10 s after {nbytes} bytes")
    took = time.monotonic() - t0
    c.close()
    closed = s.wait_for_log(r"l0 \S+ closed \(closed by peer\): (\d+) bytes, (\d+) records",
                            timeout=10)
    check((int(closed[1]), int(closed[2])) == (nbytes, total),
          f"the worker read {closed[1]} bytes, {closed[2]} records of {nbytes}, {total} sent")
    s.wait_for_log(r"sink lossy: queue full; dropping events")
    s.stop()
    rows = sink_exits(s, "lossy")
    check(len(rows) == 1, f"sink lossy exit lines: {rows}")
    events_q, written, dropped, failed = rows[0]
    check(dropped > 0 and events_q + dropped == total and failed > 0,
          f"sink lossy: {events_q} events, {dropped} dropped, {failed} failed writes for {total} "
          f"records on a full disk (the client took {took:.1f} s)")
    check(s.grep(r"sink lossy: \d+ bytes of events could not be written and are lost"),
          "the exit did not say what was lost")
    events = read_events(out)           # whole lines, JSON, UTF-8
    seqs = [int(CS_RE.search(e.get("msg", ""))[2]) for e in events]
    check(events and seqs == sorted(set(seqs)), f"{len(events)} events on disk, seqs not "
          f"increasing: {seqs[:10]}")
    bad = [e for e, q in zip(events, seqs) if e.get("msg") != text(q)]
    check(not bad, f"{len(bad)} events on disk are not the record sent: "
          f"{json.dumps(bad[0])[:300] if bad else ''}")
    check(sink_exits(s, "all") == [(total, os.path.getsize(full), 0, 0)],
          f"sink all: {sink_exits(s, 'all')}, expected {total} events, none dropped")
    check_once(read_events(full), {(0, q) for q in range(total)}, "the other sink (all.jsonl)")


@case
def stdout_sink(ctx):
    """ingestd -f with a stdout sink, its stdout a pipe: the events come out there, only events."""
    out = ctx.path("stdout.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "out", "type": "stdout"}])
    s.start(foreground=True, stdout=subprocess.PIPE)
    drain = PipeDrain(s.proc.stdout, out)
    drain.start()
    t = token()
    msgs = [f"stdout-{i}-{t}" for i in range(4)]
    for i in range(2):
        with ctx.connect(s.addr) as c:
            c.sendall(f"{msgs[2 * i]}\n<13>{msgs[2 * i + 1]}\n".encode())
    wait_events(out, has_msgs(*msgs), what="the events on stdout")
    s.stop()
    drain.finish()
    events = read_events(out)
    check(sorted(e.get("msg") for e in events) == sorted(msgs),
          f"stdout holds {[e.get('msg') for e in events]}, expected {msgs}")
    check(t not in s.log(), "an event went to the log (stderr)")


@case
def default_sink(ctx):
    """
    No sinks list: events go to ingestd-events.jsonl in the directory ingestd
    started in; peer is 127.0.0.1:PORT, [::1]:PORT or unix.
    """
    p6 = free_port(LOCAL6)
    sock = ctx.path("ingestd.sock")
    s = ctx.server(workers=2, listeners=[f"{LOCAL4}:{ctx.port}", f"[{LOCAL6}]:{p6}", sock])
    s.start()
    t = token()
    peers = {}
    for i, addr in enumerate([(LOCAL4, ctx.port), (LOCAL6, p6), sock]):
        with ctx.connect(addr) as c:
            c.sendall(f"<13>default sink {i} {t}\n".encode())
            host, port = (c.getsockname()[:2] if not isinstance(addr, str) else (None, None))
            peers[f"default sink {i} {t}"] = ("unix" if host is None else
                                             f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    path = ctx.path("ingestd-events.jsonl")
    wait_events(path, has_msgs(*peers), what="the events")
    s.stop()
    got = {e.get("msg"): e["peer"] for e in read_events(path)}
    check(got == peers, f"ingestd-events.jsonl holds (msg: peer) {got}, expected {peers}")


@case
def sink_waits_for_path(ctx):
    """
    A sink file whose directory goes away while it runs (moved, unmounted)
    and the file reopened (SIGUSR1): events wait, and arrive once the
    directory is back.
    """
    later = ctx.path("later")
    os.mkdir(later)
    path = os.path.join(later, "events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "late", "path": path}])
    s.start()
    os.rename(later, later + ".gone")
    m = s.mark()
    s.signal(signal.SIGUSR1)
    s.wait_for_log(r"reopening log files", since=m)
    t = token()
    msgs = [f"waiting-{i}-{t}" for i in range(3)]
    with ctx.connect(s.addr) as c:
        peer = peer_of(c)
        c.sendall("".join(x + "\n" for x in msgs).encode())
    s.wait_for_log(rf"l0 {re.escape(peer)} closed \(closed by peer\): \d+ bytes, 3 records",
                   since=m)
    # A write of the queued events has failed (logged at most once a second).
    s.wait_for_log(r"sink late: cannot open " + re.escape(path) + r": No such file or directory",
                   since=m, timeout=3)
    check(not os.path.exists(later), f"{later} appeared")
    os.mkdir(later)
    wait_events(path, has_msgs(*msgs), timeout=8, what="the queued events")
    s.wait_for_log(r"sink late: writing again", since=m)
    s.stop()
    check(sorted(e.get("msg") for e in read_events(path)) == sorted(msgs),
          f"{path} does not hold each event once")


@case
def batch_flush(ctx):
    """flush_interval = 60: a batch is written at 256 KiB without waiting, the rest at exit."""
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], workers=1,
                        sinks=[{"name": "slow", "path": path, "flush_interval": 60}])
    s.start()
    total = 2000
    text = lambda q: f"c=0 s={q} " + "z" * 150
    with ctx.connect(s.addr) as c:
        peer = peer_of(c)
        c.sendall("".join(text(q) + "\n" for q in range(total)).encode())
    s.wait_for_log(rf"l0 {re.escape(peer)} closed \(closed by peer\): \d+ bytes, {total} records")
    n = wait_lines([path], 1, 2)
    size = os.path.getsize(path)
    check(256 * 1024 <= size < 2 * 256 * 1024 and n < total,
          f"{n} lines ({size} bytes) in the file before flush_interval (60 s) passed; expected "
          "one 256 KiB batch")
    s.stop()
    check_once(read_events(path), {(0, q) for q in range(total)}, "after the exit")


@case
def stdout_no_interleave(ctx):
    """
    ingestd -f | consumer: a stdout sink fed by 2 workers (8 blast
    connections, 160,000 records) gives whole lines, each record once.
    """
    out = ctx.path("stdout.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], accept_mode="reuseport",
                        sinks=[{"name": "out", "type": "stdout"}])
    s.start(foreground=True, stdout=subprocess.PIPE)
    drain = PipeDrain(s.proc.stdout, out)
    drain.start()
    conns = 8
    sent, _ = blast(s.port, conns, conns * 20000, shape="3164")
    wait_lines([out], sent, 30)
    s.stop()
    drain.finish()
    rows, _ = exit_counts(s)
    with open(out, "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    broken = []
    for ln in lines:
        try:
            json.loads(ln)
        except ValueError:
            broken.append(ln)
    check(not broken, f"{len(broken)} of {len(lines)} lines on stdout are not JSON (records per "
          f"worker: {[r[1] for r in rows]}); the first: {broken[:1] and broken[0][:160]!r}: the "
          "workers' writes to the shared stdout pipe interleave")
    check_once(read_events(out), None, "stdout")
    check(len(lines) == sent, f"{len(lines)} lines on stdout for {sent} records")


def socket_owner_of_sender(s, sender):
    """The worker pid that holds a RecordSender's connection, or None."""
    sock = getattr(sender, "sock", None)
    return socket_owner(sock, s.port, s.workers()) if sock else None


@long_case
def stopped_worker_stalls_nobody(ctx):
    """
    Two workers in shared mode append to one file sink under load from
    several clients, on a disk that makes each write(2) wait a few ms (the
    slowwrite.c shim), so that a stop is likely to find a worker writing;
    one worker is stopped (SIGSTOP) twenty times for a second: the file
    grows during every stop, since no worker waits for another to write,
    and in the end every line is whole and every record there once.
    """
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "events", "path": path}], level="info")
    slow = dict(preload_env(ctx, "slowwrite.c"), SLOWWRITE_PATH=path)
    s.start(env=slow)                   # a disk that makes the sink's writers wait
    w = s.wait_workers(2)
    senders = []
    # Clients until both workers serve some (the kernel picks who accepts): at most 40.
    while len(senders) < 40 and (len(senders) < 4 or
                                 {x.owner for x in senders} != set(w)):
        x = RecordSender(s.addr, cid=len(senders), pause=0.01, max_records=400000,
                         max_seconds=60)
        x.start()
        check(wait_until(lambda: x.sent > 0, 5), f"sender {x.cid} could not send")
        x.owner = wait_until(lambda: socket_owner_of_sender(s, x), 3)
        senders.append(x)
    check({x.owner for x in senders} == set(w),
          f"40 clients and not both workers serve one: {[x.owner for x in senders]}")
    stopped = w[0]
    try:
        for i in range(20):
            os.kill(stopped, signal.SIGSTOP)
            check(wait_until(lambda: proc_state(stopped) == "T", 2),
                  f"worker {stopped} did not stop")
            time.sleep(0.1)             # a write it had begun is over
            before = os.path.getsize(path)
            time.sleep(0.9)             # a second stopped in all
            grew = os.path.getsize(path) - before
            os.kill(stopped, signal.SIGCONT)
            check(grew > 0, f"stop {i + 1} of 20: {path} did not grow in the second worker "
                  f"{stopped} was stopped: the other worker waits for it")
            time.sleep(0.2)
    finally:
        os.kill(stopped, signal.SIGCONT)
        for x in senders:
            x.finish()
    sent = {x.cid: x.sent for x in senders}
    wait_lines([path], sum(sent.values()), 20)
    s.stop()
    check_once(read_events(path), {(c, q) for c, n in sent.items() for q in range(n)},
               "records across 20 stops of a worker")


@case
def stdout_socket(ctx):
    """
    ingestd -f whose standard output is a socket (as systemd gives a service
    for the journal): a stdout sink writes its events there.
    """
    out = ctx.path("stdout.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "out", "type": "stdout"}])
    ours, theirs = socket.socketpair()
    ctx.socks += [ours, theirs]
    s.start(foreground=True, stdout=theirs)
    theirs.close()
    drain = PipeDrain(ours, out)
    drain.start()
    t = token()
    with ctx.connect(s.addr) as c:
        c.sendall(f"to a socket {t}\n".encode())
    try:
        wait_events(out, has_msgs(f"to a socket {t}"), what="the event on the stdout socket")
    except Failure as e:
        why = s.grep(r"sink out: (cannot open .*)")
        raise Failure(f"{e}; the log says: {why[0][1] if why else tail(s.log())}")
    s.stop()
    drain.finish()


@case
def drop_sink_large_record(ctx):
    """
    A "drop" sink with queue = "64K" (the least allowed) on a healthy disk,
    its queue empty, takes a 10,000-byte record: nothing is dropped.
    """
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], workers=1,
                        sinks=[{"name": "lossy", "path": path, "queue": "64K", "overflow": "drop"}])
    s.start()
    t = token()
    big = f"big-{t} " + "B" * 10000
    msgs = [f"before-{t}", big, f"after-{t}"]
    with ctx.connect(s.addr) as c:
        c.sendall("".join(x + "\n" for x in msgs).encode())
    wait_events(path, has_msgs(f"after-{t}"), what="the last record")
    s.stop()
    got = [e.get("msg") for e in read_events(path)]
    dropped = sink_exits(s, "lossy")
    check(got == msgs, f"the file holds {[g[:20] for g in got]} for "
          f"{[x[:20] for x in msgs]}; sink lossy (events, bytes, dropped, failed): {dropped}: "
          "the 10,000-byte record was dropped with its queue empty")


@case
def sink_templates(ctx):
    """
    One listener's records into four sinks: the event as is, a shaped one
    (fields, rename, static_fields), the records as received (payload =
    "record") and RFC 5424 lines rebuilt (payload = "rfc5424"); read back:
    the shaped lines are JSON with just those members and the event's
    values, the records are byte for byte what was sent, and the RFC 5424
    lines, sent again to a second listener, parse into the same fields.
    """
    p = {n: ctx.path(f"{n}.out") for n in ("full", "slim", "orig", "legacy", "back")}
    again = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}",
                               "sinks": ["full", "slim", "orig", "legacy"]},
                              {"listen": f"{LOCAL4}:{again}", "sinks": ["back"]}],
                        sinks=[{"name": "full", "path": p["full"]},
                               {"name": "slim", "path": p["slim"],
                                "fields": ["received_at", "host", "msg"],
                                "rename": ["msg=message", "host=hostname"],
                                "static_fields": ["env=prod"]},
                               {"name": "orig", "path": p["orig"], "payload": "record"},
                               {"name": "legacy", "path": p["legacy"], "payload": "rfc5424"},
                               {"name": "back", "path": p["back"]}])
    s.start()
    records = [b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
               b'<165>1 2003-10-11T22:14:15.003Z host1 evntslog 42 ID47 [ex@32473 iut="3" '
               b'eventSource="Application"] An application event',
               b"<13>1 2025-12-01T00:00:00Z h app - - - no structured data",
               b'{"user":"ann","n":[1,2]}',
               b"a raw line"]
    with socket.create_connection(s.addr) as c:
        c.sendall(b"".join(r + b"\n" for r in records))
    wait_lines([p["legacy"]], len(records), timeout=10)
    with open(p["legacy"], "rb") as f:
        legacy = f.read()
    with socket.create_connection((LOCAL4, again)) as c:
        c.sendall(legacy)
    wait_lines([p["back"]], len(records), timeout=10)
    wait_lines([p["full"], p["slim"], p["orig"]], len(records), timeout=10)
    s.stop()
    full, back = read_events(p["full"]), read_events(p["back"])
    with open(p["orig"], "rb") as f:
        check(f.read() == b"".join(r + b"\n" for r in records), "payload = \"record\" changed "
              "the records")
    with open(p["slim"]) as f:
        slim = [json.loads(line) for line in f]
    for e, sl in zip(full, slim):
        want = {"received_at": e["received_at"], "env": "prod"}
        want.update({k: e[v] for k, v in (("hostname", "host"), ("message", "msg")) if v in e})
        check(sl == want, f"shaped {sl}, expected {want}")
    keys = ("facility", "severity", "timestamp", "host", "app", "procid", "msgid", "sd", "msg")
    for r, e, b in zip(records, full, back):
        if r.startswith(b"<"):
            got = {k: b.get(k) for k in keys}
            want = {k: e.get(k) for k in keys}
        else:       # JSON or raw: the record is the message, user.notice, received_at
            got = {k: b.get(k) for k in ("facility", "severity", "timestamp", "msg")}
            want = {"facility": "user", "severity": "notice", "timestamp": e["received_at"],
                    "msg": r.decode()}
        check(got == want, f"{r!r} through RFC 5424 and back: {got}, expected {want}")
