"""
RELP listeners (protocol = "relp") answer each record once every sink has
written it.  A small RELP client (lib/relp.py) speaks the protocol byte by
byte: the session, serverclose on a reload, send_timeout for a client
that does not read its answers; rsyslog's omrelp is the real client.
"""
import collections
import signal
import sys
import time

from lib.base import LOCAL4, case, check, sanitized_build
from lib.proc import vm_rss_kb
from lib.server import pipeline_server
from lib.events import check_defences, check_once, read_events
from lib.clients import token
from lib.relp import RelpClient
from lib.peers import rsyslog_relay, rsyslog_relay_end


def relp_server(ctx):
    """A started server with one RELP listener into one file sink: (server, sink path)."""
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "protocol": "relp"}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    return s, path


def relp_records(cid, n, first=0):
    return [f"<13>Nov 24 01:02:03 host relp[7]: c={cid} s={q} acknowledged".encode()
            for q in range(first, first + n)]


@case
def relp_session(ctx):
    """
    protocol = "relp": open is answered with our offers; 2000 records in a
    window of 128 are each answered "200 OK" in order, and every one is in
    the sink before its answer arrives; close is answered and the server
    closes.  syslog before open is refused and the session ended
    (serverclose, then EOF); a broken frame ends it too, after the answer
    already due to the open before it; a repeated transaction number is
    answered 500 and ends it; an unknown command gets a 500 and the session
    goes on.
    """
    s, path = relp_server(ctx)
    c = RelpClient(ctx, s.addr)
    c.open()
    answers = c.syslog(relp_records(1, 1000))
    check(set(answers.values()) == {b"200 OK"}, f"answers: {collections.Counter(answers.values())}")
    # Acknowledged means written: the events are in the file now, no waiting.
    check_once(read_events(path), {(1, q) for q in range(1000)}, "the acknowledged records")
    answers = c.syslog(relp_records(1, 1000, first=1000), window=1)
    check(len(answers) == 1000 and set(answers.values()) == {b"200 OK"},
          f"window 1: {collections.Counter(answers.values())}")
    t = c.send("bogus")
    r = c.response()
    check(r and r[0] == t and r[2].startswith(b"500"), f"an unknown command was answered {r}")
    c.close()
    check_once(read_events(path), {(1, q) for q in range(2000)}, "the acknowledged records")
    # syslog before open: refused, then closed.
    c = RelpClient(ctx, s.addr)
    t = c.send("syslog", b"<13>too early")
    r = c.response()
    check(r and r[0] == t and r[2].startswith(b"500"), f"syslog before open was answered {r}")
    ended(c, "syslog before open")
    # A broken frame: the answer already due (open's) goes out, then serverclose, then EOF.
    c = RelpClient(ctx, s.addr)
    t = c.send("open", b"relp_version=0\nrelp_software=t\ncommands=syslog")
    c.sock.sendall(b"2 syslog x\n")
    r = c.response()
    check(r and r[0] == t and r[2].startswith(b"200 OK"), f"open, then a broken frame in the "
          f"same read: open was answered {r}")
    ended(c, "a frame with a bad length")
    # Transaction numbers go up: a repeat is answered 500, then the session ends.
    c = RelpClient(ctx, s.addr)
    c.open()
    t = c.send("syslog", relp_records(3, 1)[0])
    check(c.response() == (t, "rsp", b"200 OK"), "a record after open was not answered 200")
    c.txnr -= 1
    c.send("syslog", relp_records(3, 1, first=1)[0])
    r = c.response()
    check(r and r[0] == t and r[2] == b"500 transaction number out of sequence",
          f"a repeated transaction number was answered {r}")
    ended(c, "a repeated transaction number")
    s.stop()
    check_defences(s, 2, framing=3)


def ended(c, what):
    """The server ended the RELP session as its spec says: serverclose, then EOF."""
    r = c.response()
    check(r == (0, "serverclose", b""), f"after {what}: {r} where serverclose was due")
    check(c.response() is None, f"the connection stayed open after {what}")


@case
def relp_serverclose_on_reload(ctx):
    """
    A reload (HUP): the old worker answers every record it read, sends
    "serverclose" and closes; the client reconnects to the new generation
    and its records arrive there, each once.
    """
    s, path = relp_server(ctx)
    c = RelpClient(ctx, s.addr)
    c.open()
    answers = c.syslog(relp_records(1, 500))
    check(len(answers) == 500, f"{len(answers)} answers for 500 records")
    m = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 2 accepting", since=m, timeout=10)
    r = c.response()
    check(r == (0, "serverclose", b""), f"after the reload the old worker sent {r}, expected "
          "serverclose")
    check(c.response() is None, "the old worker did not close after serverclose")
    c = RelpClient(ctx, s.addr)
    c.open()
    answers = c.syslog(relp_records(1, 500, first=500))
    c.close()
    check(set(answers.values()) == {b"200 OK"}, "the new generation did not answer 200 OK")
    s.stop()
    check_once(read_events(path), {(1, q) for q in range(1000)}, "the records")


@case
def relp_send_timeout(ctx):
    """
    send_timeout = 1: a RELP client that sends but never reads its answers
    (a 4 KiB receive buffer, 400,000 frames: more answers than the kernel buffers) is closed about a second after
    it stopped taking them, while the worker stays well under a few MB.
    """
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "protocol": "relp",
                               "send_timeout": 1}],
                        sinks=[{"name": "events", "path": ctx.path("e.jsonl")}], workers=1)
    s.start()
    c = RelpClient(ctx, s.addr, rcvbuf=4096)
    c.open()
    data = b"".join(RelpClient.frame(t, "syslog", rec)
                    for t, rec in enumerate(relp_records(1, 400000), start=2))
    c.sock.setblocking(False)
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 10:
        try:
            sent += c.sock.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            break
        if sent == len(data):
            break
    s.wait_for_log(r"closing: send_timeout", timeout=10)
    took = time.monotonic() - t0
    rss = [vm_rss_kb(p) for p in s.workers()]
    print(f"# relp_send_timeout: {sent} of {len(data)} bytes taken, closed after {took:.1f} s; "
          f"worker RSS {rss} kB", file=sys.stderr, flush=True)
    check(took < 8, f"the client that never reads was closed only after {took:.1f} s")
    # AddressSanitizer keeps freed memory in quarantine (up to 256 MB) to catch uses after
    # free, so its RSS counts every answer buffer the session freed: a looser bound there.
    limit = 48 << 10 if sanitized_build() else 16 << 10
    check(all(r < limit for r in rss), f"worker RSS {rss} kB while a client ignores its answers")
    s.stop()
    check_defences(s, 1, send=1)


@case
def relp_rsyslog_omrelp(ctx):
    """
    rsyslog (imtcp in, omrelp out) forwarding to an ingestd RELP listener:
    2000 messages sent to rsyslog arrive, each once, from 127.0.0.1.
    """
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "protocol": "relp"}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    rs, feed = rsyslog_relay(ctx, "omrelp",
                             f'action(type="omrelp" target="127.0.0.1" port="{ctx.port}")')
    t = token()
    n = 2000
    feed.sendall("".join(f"<13>Nov 24 01:02:03 host omrelp: c=1 s={q} {t}\n"
                         for q in range(n)).encode())
    feed.close()
    rsyslog_relay_end(rs, s, path, n, "rsyslog's forwarded messages")
