"""
Forward sinks over RELP (protocol = "relp"): an event leaves the queue only
once the upstream answered it, so an upstream that dies loses nothing: what
it did not answer goes again on the next connection.  The upstreams are a
RELP server of the test's (lib/relp.py), another ingestd, and rsyslog's
imrelp.
"""
import collections
import re
import sys
import time

from lib.base import LOCAL4, case, check, tail, wait_until
from lib.clients import RecordSender
from lib.net import free_port
from lib.peers import rsyslog_listening, rsyslog_start
from lib.proc import kill_by_pid
from lib.relp import RelpClient, RelpUpstream, fault_run
from lib.server import pipeline_server


def seqs(payloads):
    """Counter of (c, s) in the payloads."""
    return collections.Counter((int(m[1]), int(m[2])) for p in payloads
                               for m in [re.search(rb"c=(\d+) s=(\d+)", p)] if m)


def relp_sink(name, ports, **more):
    sink = {"name": name, "type": "forward", "protocol": "relp", "flush_interval": 0.01,
            "upstreams": [f"{LOCAL4}:{p}" for p in ports]}
    sink.update(more)
    return sink


@case
def forward_relp_abrupt_upstream(ctx):
    """
    forward_abrupt_upstream over RELP: an upstream that closes without
    reading or answering what it was sent loses nothing; what it did not
    answer goes to the other upstream (the duplicates, records the dead
    one read but could not answer, are counted and printed), each record
    whole, and the sink counts what it sent again.
    """
    pa, pb = free_port(), free_port()
    a, b = RelpUpstream(pa), RelpUpstream(pb)
    a.start()
    b.start()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[relp_sink("up", [pa, pb])], workers=1, level="info")
    s.start()
    sender = RecordSender(s.addr, cid=2, max_records=20000, max_seconds=30)
    sender.start()
    wait_until(lambda: len(a.got()) > 2000, 10)
    a.stop(graceful=False)
    sender.join(30)
    sender.finish()
    check(sender.sent == 20000, f"the client sent {sender.sent} of 20000 records")
    got = lambda: len(seqs(a.got()) + seqs(b.got()))
    check(wait_until(lambda: got() >= 20000, 15), f"the upstreams got {got()} of 20000 records")
    s.stop()
    b.stop()
    seen = seqs(a.got()) + seqs(b.got())
    dups = sum(n - 1 for n in seen.values() if n > 1)
    lost = 20000 - len([k for k in seen if k[0] == 2])
    resent = re.findall(r"(\d+) events \S+ did not answer are sent again", s.log())
    print(f"# forward_relp_abrupt_upstream: {len(a.got())} records to the upstream that died, "
          f"{len(b.got())} to the other; {lost} of 20000 lost, {dups} duplicates, "
          f"{sum(map(int, resent))} sent again", file=sys.stderr, flush=True)
    check(lost == 0, f"{lost} records lost")
    check(len(b.got()) > 0 and len(a.got()) > 0, "the records did not move between upstreams")
    check(resent, "the sink did not say what it sent again")
    check(re.search(r"20000 events, \d+ bytes written.*, (\d+) sent again", s.log()) and
          int(re.search(r", (\d+) sent again", s.log())[1]) == sum(map(int, resent)),
          f"the worker's exit line does not count what was sent again: {tail(s.log())}")


def upstream_ingestd(ctx):
    """Another ingestd: a RELP listener into a file sink (B of the chain)."""
    port = free_port()
    path = ctx.path("b-events.jsonl")
    b = ctx.server(name="b", port=port, listeners=[{"listen": f"{LOCAL4}:{port}",
                                                    "protocol": "relp"}],
                   sinks=[{"name": "events", "path": path}], level="info")
    b.start()
    return b, path


@case
def forward_relp_chain_kill9(ctx):
    """
    RELP clients and plain TCP clients -> ingestd A -> (forward over RELP)
    -> ingestd B -> its file.  Under load, B's master and workers are
    killed with SIGKILL, and B started again 2 s later: every record that
    A answered is in B's file at least once (duplicates counted), the plain
    TCP records too (A kept them), and A's RELP clients were held, not
    refused, while B was gone.
    """
    b, bpath = upstream_ingestd(ctx)

    def kill_b(s, loads):
        time.sleep(1)
        kill_by_pid([b.master] + b.workers(), "b")
        before = sum(len(t.acked) for t in loads)
        time.sleep(2)
        held = sum(len(t.acked) for t in loads) - before
        check(held <= 4 * 64, f"{held} records were answered while B was gone")
        b.start()
        time.sleep(2)

    def delivered():
        with open(bpath, "rb") as f:
            return collections.Counter((int(m[1]), int(m[2])) for m in
                                       re.finditer(rb"c=(\d+) s=(\d+) through a fault", f.read()))

    s, r = fault_run(ctx, "forward_relp_chain_kill9", kill_b, delivered=delivered,
                     sinks=[relp_sink("up", [b.port], payload="record")])
    resent = sum(map(int, re.findall(r"(\d+) events \S+ did not answer are sent again", s.log())))
    print(f"# forward_relp_chain_kill9: A sent {resent} events again to the new B",
          file=sys.stderr, flush=True)
    check(r["tcp_lost"] == 0, f"{r['tcp_lost']} plain TCP records did not reach B")
    b.stop()


def rsyslog_imrelp(ctx):
    """rsyslogd with an imrelp input on a free port writing each message to a file."""
    port = free_port()
    out = ctx.path("rsyslog-events.log")
    rs = rsyslog_start(ctx, f"""module(load="imrelp")
template(name="raw" type="string" string="%rawmsg%\\n")
input(type="imrelp" address="127.0.0.1" port="{port}" ruleset="keep")
ruleset(name="keep") {{
    action(type="omfile" file="{out}" template="raw")
}}
""")
    up = rsyslog_listening(ctx, port)
    # a whole session, so that rsyslog has no connection cut short to complain of
    up.sendall(RelpClient.frame(1, "open", b"relp_version=0\ncommands=syslog") +
               RelpClient.frame(2, "close"))
    up.settimeout(5)
    while up.recv(4096):
        pass
    up.close()
    return rs, port, out


@case
def forward_relp_rsyslog_imrelp(ctx):
    """
    rsyslog's imrelp as the upstream of a forward sink over RELP (payload
    "record"): 20,000 records from two clients arrive, each once, as sent.
    """
    rs, port, out = rsyslog_imrelp(ctx)
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[relp_sink("up", [port], payload="record")], level="info")
    s.start()
    senders = [RecordSender(s.addr, cid=c, max_records=10000, max_seconds=30) for c in (1, 2)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(30)
        t.finish()

    def count():
        try:
            with open(out, "rb") as f:
                return seqs(f.read().split(b"\n"))
        except OSError:
            return collections.Counter()
    check(wait_until(lambda: len(count()) >= 20000, 20),
          f"rsyslog wrote {len(count())} of 20000 records")
    s.stop()
    seen = count()
    dups = sum(n - 1 for n in seen.values() if n > 1)
    want = {(c, q) for c in (1, 2) for q in range(10000)}
    check(set(seen) == want and dups == 0,
          f"{len(want - set(seen))} records missing, {dups} duplicated")
    rs.terminate()
    rs.wait(timeout=10)
    with open(ctx.path("rsyslog.out")) as f:
        said = f.read()
    check("error" not in said, f"rsyslog saw a session end badly: {tail(said)}")
