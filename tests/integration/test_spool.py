"""
Spools (a sink's queue on disk, worker/sinks/spool.c): an upstream outage
fills the disk, not memory; RELP clients are answered once their records
are spooled and synced; what is spooled survives kill -9 of a worker or of
every process, a reload and a binary upgrade, and is delivered once the
upstream is back; a full spool blocks or drops; corrupt segments are
skipped and counted.  The upstream is a second ingestd (RELP listener into
a file), the forward sink speaks RELP to it.
"""
import collections
import os
import re
import signal
import sys
import time

from lib.base import case, check, Failure, LOCAL4, long_case, steady, wait_until
from lib.clients import RecordSender
from lib.disk import mount_tmpfs
from lib.net import free_port, http_get, prom_values
from lib.peers import RedisServer
from lib.proc import kill_by_pid
from lib.relp import RelpLoad, fault_run
from lib.server import pipeline_server
from test_faults import upgrade


def upstream(ctx, port=None):
    """The upstream ingestd (not started): a RELP listener into b-events.jsonl."""
    port = port or free_port()
    path = ctx.path("b-events.jsonl")
    b = ctx.server(name="b", port=port, listeners=[{"listen": f"{LOCAL4}:{port}",
                                                    "protocol": "relp"}],
                   sinks=[{"name": "events", "path": path}], level="info")
    return b, path


def spool_sink(ctx, port, **spool):
    d = ctx.path("spool")
    os.makedirs(d, exist_ok=True)
    sp = {"path": d}
    sp.update(spool)
    return {"name": "up", "type": "forward", "protocol": "relp", "payload": "record",
            "upstreams": [f"{LOCAL4}:{port}"], "spool": sp}


def delivered_from(path, rx=rb"c=(\d+) s=(\d+) through a fault"):
    """A function counting the (c, s) of the records in the upstream's file."""
    def count():
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return collections.Counter()
        return collections.Counter((int(m[1]), int(m[2])) for m in re.finditer(rx, data))
    return count


def wait_delivered(count, seconds, tcp=True):
    """
    after() for fault_run: wait until every answered RELP record arrived,
    and every plain TCP one (tcp: a fault that kills a worker loses those
    it had not read).
    """
    def after(s, rl, tl):
        want = {(t.cid, q) for t in rl for q in t.acked} | \
            {(t.cid, q) for t in tl for q in range(t.sent) if tcp}
        t0 = time.monotonic()
        check(wait_until(lambda: not want - set(count()), seconds, interval=0.5),
              f"{len(want - set(count()))} of {len(want)} records did not arrive within "
              f"{seconds} s")
        print(f"# delivered {len(want)} records {time.monotonic() - t0:.1f} s after the clients "
              "were done", file=sys.stderr, flush=True)
    return after


def check_order(path):
    """Each client's records arrived in the order sent (each counted at its first arrival)."""
    last, seen = {}, set()
    with open(path, "rb") as f:
        for m in re.finditer(rb"c=(\d+) s=(\d+) through a fault", f.read()):
            c, q = int(m[1]), int(m[2])
            if (c, q) in seen:
                continue
            seen.add((c, q))
            check(q > last.get(c, -1), f"client {c}: s={q} arrived after s={last.get(c)}")
            last[c] = q


@long_case
def spool_outage(ctx):
    """
    The upstream is down for 20 s while RELP and plain TCP clients send
    about a million records into a spooling forward sink (sync always):
    the RELP clients are answered at their pace through the outage (the
    rate is printed); once the upstream is up, every answered record and
    every plain TCP record arrives, each client's in order, none lost.
    """
    b, bpath = upstream(ctx)

    def outage(s, loads):
        t0 = time.monotonic()
        wait_until(lambda: sum(len(t.acked) for t in loads) >= 800000, 20, interval=0.2)
        n, took = sum(len(t.acked) for t in loads), time.monotonic() - t0
        for t in loads:
            t.halt.set()                # the rest of the outage: no new RELP records
        print(f"# spool_outage: {n} RELP records answered in {took:.1f} s with the upstream "
              f"down ({n / took:.0f}/s)", file=sys.stderr, flush=True)
        check(n >= 800000, f"only {n} records were answered in 20 s of outage")
        time.sleep(max(0, 20 - (time.monotonic() - t0)))
        check(not os.path.exists(bpath), "the upstream got records while it was down")
        b.start()

    fault_run(ctx, "spool_outage", outage, delivered=delivered_from(bpath),
              sinks=[spool_sink(ctx, b.port)], after=wait_delivered(delivered_from(bpath), 60))
    check_order(bpath)
    b.stop()


def spool_fault(ctx, name, fault, tcp=True):
    """
    fault_run with the upstream down until fault(s, loads) is done: the
    fault strikes while the spool holds what the clients sent; then every
    answered record must reach the upstream.
    """
    b, bpath = upstream(ctx)

    def run(s, loads):
        time.sleep(1)
        fault(s, loads)
        time.sleep(0.5)
        check(not os.path.exists(bpath), "the upstream got records while it was down")
        b.start()

    s, r = fault_run(ctx, name, run, delivered=delivered_from(bpath),
                     sinks=[spool_sink(ctx, b.port)],
                     after=wait_delivered(delivered_from(bpath), 60, tcp))
    b.stop()
    return s, r


def kill_workers(s, _):
    """kill -9 of each worker in turn, a second apart."""
    for pid in s.workers():
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
    s.wait_workers(2, timeout=10)


def kill_everything(s, _):
    """kill -9 of the master and its workers together, and a start 1 s later."""
    kill_by_pid([s.master] + s.workers(), "ingestd")
    time.sleep(1)
    s.start()


def reload_twice(s, _):
    for g in (2, 3):
        m = s.mark()
        s.signal(signal.SIGHUP)
        s.wait_for_log(rf"reload: generation {g} accepting", since=m, timeout=10)
        time.sleep(1)


@case
def spool_kill9_workers(ctx):
    """
    kill -9 of each worker while its spool holds records and the upstream
    is down: the respawned workers take the spools over; every answered
    record reaches the upstream once it is back.
    """
    s, _ = spool_fault(ctx, "spool_kill9_workers", kill_workers, tcp=False)
    check(s.grep(r"taking over w[0-9a-f]+-[0-9a-f]+ \(\d+ segments"),
          "no worker said it took a spool over")


@case
def spool_kill9_everything(ctx):
    """
    kill -9 of the master and every worker with spooled records, then a
    start: the new workers take the spools over; every answered record
    reaches the upstream once it is back.
    """
    spool_fault(ctx, "spool_kill9_everything", kill_everything, tcp=False)


@case
def spool_reload_and_upgrade(ctx):
    """
    Two reloads, then a binary upgrade, while the spool holds records and
    the upstream is down: each new generation takes over the spools of the
    old one's workers as they exit; every answered record arrives.
    """
    def fault(s, loads):
        reload_twice(s, loads)
        upgrade(s, loads)

    s, _ = spool_fault(ctx, "spool_reload_and_upgrade", fault)
    check(len(s.grep(r"taking over w[0-9a-f]+-")) >= 2, "the spools were not taken over")


def held_back(s, loads, said):
    """Once the log says said: no RELP record is answered for a second.  How many were."""
    s.wait_for_log(said, timeout=20)
    time.sleep(0.5)
    held = sum(len(t.acked) for t in loads)
    time.sleep(1)
    check(sum(len(t.acked) for t in loads) == held,
          f"records were answered after the log said {said!r}")
    return held


def release(b, bpath, loads):
    """Start the upstream, let the RELP loads finish; every answered record must arrive."""
    b.start()
    time.sleep(1)
    for t in loads:
        t.finish(timeout=60)
    acked = {(t.cid, q) for t in loads for q in t.acked}
    count = delivered_from(bpath)
    check(wait_until(lambda: not acked - set(count()), 30),
          f"{len(acked - set(count()))} answered records did not arrive")
    return acked


def stats_extra():
    sport = free_port()
    return sport, f'stats = {{ listen = "{LOCAL4}:{sport}"; }};'


def spool_metrics(sport):
    v = prom_values(http_get(sport, "/metrics")[2])
    return {k.split("{")[0][len("ingestd_sink_"):]: int(n) for k, n in v.items()
            if k.startswith("ingestd_sink_") and 'sink="up"' in k}


@case
def spool_full_block(ctx):
    """
    A full spool (max_size 1 MiB) with overflow = "block" and the upstream
    down: the RELP clients' answers stop (they are held, not refused), the
    log says why, and the metrics show the spool's bytes and segments;
    once the upstream is up everything answered arrives and the clients
    go on.
    """
    b, bpath = upstream(ctx)
    sport, extra = stats_extra()
    sink = dict(spool_sink(ctx, b.port, max_size="1M"), queue="64K")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "protocol": "relp"}],
                        sinks=[sink], extra=extra, level="info")
    s.start()
    loads = [RelpLoad(s.addr, c) for c in range(2)]
    for t in loads:
        t.start()
    held = held_back(s, loads, r"sink up: spool \S+: full \(max_size\)")
    m = spool_metrics(sport)
    print(f"# spool_full_block: {held} records answered before the spool was full; metrics "
          f"{ {k: v for k, v in m.items() if k.startswith('spool')} }", file=sys.stderr, flush=True)
    check(900 * 1024 <= m["spool_bytes"] <= 1024 * 1024 and m["spool_segments"] >= 7,
          f"the spool's metrics: {m}")
    check(not [e for t in loads for e in t.errors if "500" in e], "a client was refused")
    acked = release(b, bpath, loads)
    check(len(acked) > held, "the clients did not go on once the upstream was up")
    s.stop()
    b.stop()


@case
def spool_disk_full(ctx):
    """
    The spool's disk fills (a 2 MiB tmpfs, max_size 1 GiB) with the
    upstream down: a full disk is a full spool, not a crash: the log says
    "No space left on device", RELP answers stop (the clients are held);
    once the upstream is up the spool drains, frees its disk, and the
    clients go on: every answered record arrives.
    """
    b, bpath = upstream(ctx)
    disk = ctx.path("disk")
    mount_tmpfs(ctx, disk, "2m")
    sink = dict(spool_sink(ctx, b.port, max_size="1G"), queue="64K")
    sink["spool"]["path"] = disk
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "protocol": "relp"}],
                        sinks=[sink], level="info")
    s.start()
    loads = [RelpLoad(s.addr, c) for c in range(2)]
    for t in loads:
        t.start()
    held = held_back(s, loads, r"sink up: spool \S+: No space left on device")
    acked = release(b, bpath, loads)
    print(f"# spool_disk_full: {held} records answered before the disk was full, "
          f"{len(acked)} in all, every one delivered", file=sys.stderr, flush=True)
    check(len(acked) > held, "the clients did not go on once the upstream was up")
    s.stop()
    b.stop()
    check(not s.grep(r"killed by signal|exited with status [1-9]"), "a worker crashed")


@case
def spool_full_drop(ctx):
    """
    A full spool (max_size 1 MiB) with overflow = "drop" and the upstream
    down, fed 60,000 plain TCP records: what did not fit is dropped and
    counted; once the upstream is up, every record arrived or was counted
    as dropped, none both.
    """
    b, bpath = upstream(ctx)
    sink = dict(spool_sink(ctx, b.port, max_size="1M"), queue="64K", overflow="drop")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], sinks=[sink], level="info")
    s.start()
    sender = RecordSender(s.addr, cid=1, max_records=60000, max_seconds=30, pause=0.001)
    sender.start()
    sender.join(40)
    sender.finish()
    s.wait_for_log(r"sink up: queue full; dropping events", timeout=10)
    b.start()
    count = delivered_from(bpath, rb"c=(\d+) s=(\d+) a record")
    check(wait_until(lambda: count(), 15), "nothing reached the upstream")   # after a back-off
    got = steady(count, quiet=2)[0]
    s.stop()
    b.stop()
    dropped = sum(int(n) for n in re.findall(r"sink up: \d+ events, \d+ bytes written, (\d+) "
                                            r"dropped", s.log()))
    print(f"# spool_full_drop: {len(got)} of 60000 delivered, {dropped} dropped",
          file=sys.stderr, flush=True)
    check(dropped > 0 and len(got) + dropped == 60000 and max(got.values()) == 1,
          f"{len(got)} delivered + {dropped} dropped != 60000 (or some twice)")


def segment_records(spool, name):
    """(offset, size) of each record of a segment (as segment.h lays them out), before damage."""
    import struct
    with open(os.path.join(spool, name), "rb") as f:
        data = f.read()
    out, off = [], 24
    while off + 16 <= len(data):
        n = struct.unpack_from("<I", data, off)[0]
        out.append((off, 16 + n))
        off += 16 + n
    return out


@case
def spool_corrupt_segments(ctx):
    """
    A spool left by a stopped server is damaged before the next start: 64
    bytes flipped in the middle of one segment, another cut at a random
    point (a power cut), a ledger overwritten in both slots.  The new
    workers take it over without a crash: each damage is one log line and
    counted (ingestd_sink_spool_corrupt_total), the records around it are
    delivered, the ledgerless owner's from its start.
    """
    import random
    rnd = random.Random(16)
    b, bpath = upstream(ctx)
    sport, extra = stats_extra()
    sink = spool_sink(ctx, b.port, max_size="8M")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], sinks=[sink], extra=extra,
                        level="info")
    s.start()
    sender = RecordSender(s.addr, cid=1, max_records=60000, max_seconds=30, pause=0.001)
    sender.start()
    sender.join(40)
    sender.finish()
    check(wait_until(lambda: spool_metrics(sport).get("spool_records") == 60000, 10),
          f"the spool holds {spool_metrics(sport)} records, not 60000")
    s.stop()
    spool = sink["spool"]["path"]
    segs = sorted(f for f in os.listdir(spool) if f.endswith(".seg"))
    ledgers = sorted(f for f in os.listdir(spool) if f.endswith(".ledger"))
    check(len(segs) >= 4 and ledgers, f"the spool holds {os.listdir(spool)}")
    flipped, cut = segs[0], segs[-1]
    before = {name: segment_records(spool, name) for name in (flipped, cut)}
    with open(os.path.join(spool, flipped), "r+b") as f:
        mid = f.seek(0, 2) // 2
        f.seek(mid)
        f.write(bytes(rnd.randrange(256) for _ in range(64)))
    at = rnd.randrange(100, os.path.getsize(os.path.join(spool, cut)))
    os.truncate(os.path.join(spool, cut), at)
    damaged = (sum(1 for o, n in before[flipped] if o < mid + 64 and o + n > mid) +
               sum(1 for o, n in before[cut] if o + n > at))
    with open(os.path.join(spool, ledgers[0]), "r+b") as f:
        f.write(b"\xff" * 128)
    b.start()
    s.start()
    count = delivered_from(bpath, rb"c=(\d+) s=(\d+) a record")
    check(wait_until(lambda: count(), 15), "nothing reached the upstream")
    got = steady(count, quiet=3)[0]
    check(wait_until(lambda: not [f for f in os.listdir(spool) if f.endswith(".seg")], 10),
          f"segments left in the spool: {os.listdir(spool)}")
    corrupt = spool_metrics(sport)["spool_corrupt_total"]
    said = s.grep(r"spool: segment \S+: .*; skipped|ledger \S+ unreadable")
    s.stop()
    b.stop()
    print(f"# spool_corrupt_segments: {len(got)} of 60000 delivered after the damage to "
          f"{damaged} "
          f"({sum(got.values()) - len(got)} twice), {corrupt} skipped or unreadable; "
          f"{len(said)} log lines", file=sys.stderr, flush=True)
    check(corrupt >= 3 and 1 <= len(said) <= corrupt, f"{corrupt} counted, the log said "
          f"{[m[0] for m in said]}")    # log lines are rate-limited: at least one
    check(len(got) == 60000 - damaged, f"{len(got)} of 60000 records were delivered; "
          f"{damaged} were in the damaged bytes")
    check(not s.grep(r"killed by signal|exited with status [1-9]"), "a worker crashed")


@case
def spool_redis(ctx):
    """
    A redis sink with a spool: redis-server stops under RELP load, a worker
    is killed with SIGKILL meanwhile, redis-server comes back: every
    answered record is in the stream (an event leaves the spool only when
    its XADD is answered).
    """
    r = RedisServer(ctx)
    r.start()
    d = ctx.path("spool")
    os.makedirs(d, exist_ok=True)
    sink = {"name": "up", "type": "redis", "upstreams": [f"{LOCAL4}:{r.port}"],
            "stream": "logs", "spool": {"path": d}}

    def fault(s, loads):
        r.stop()
        time.sleep(0.5)
        os.kill(s.workers()[0], signal.SIGKILL)
        time.sleep(0.2)
        for t in loads:
            t.halt.set()
        s.wait_workers(2, timeout=10)
        r.start()

    def delivered():
        return collections.Counter((int(m[1]), int(m[2])) for e in r.events("logs")
                                   for m in [re.search(r"c=(\d+) s=(\d+) through", e["msg"])] if m)

    def xlen():
        try:
            return r.call("XLEN", "logs")
        except Failure:         # LOADING: redis-server reads its append-only file first
            return -1

    def after(s, rl, tl):
        # XLEN counts the duplicates too: it only says when to start comparing
        want = {(t.cid, q) for t in rl for q in t.acked}
        check(wait_until(lambda: xlen() >= len(want), 60, interval=0.5),
              f"{xlen()} events in the stream, {len(want)} records answered")
        check(wait_until(lambda: not want - set(delivered()), 60, interval=2),
              f"{len(want - set(delivered()))} answered records are not in the stream")

    fault_run(ctx, "spool_redis", fault, relp=2, tcp=1, sinks=[sink], delivered=delivered,
              after=after)
    r.stop()
