"""
Forward sinks send to upstream collectors (failover and roundrobin, JSON
events or the records as sent, LF or octet-counted).  The upstream here
is a small server of the test's that keeps every byte it reads; stopping
it gracefully means what a collector restart should mean: stop
accepting, half-close each connection, read to the end, close.
"""
import collections
import json
import re
import selectors
import socket
import sys
import threading
import time

from lib.base import LOCAL4, case, check, steady, wait_until
from lib.net import free_port, listen_on
from lib.server import pipeline_server
from lib.clients import RecordSender


class Upstream(threading.Thread):
    """A TCP collector on port that keeps all it reads; stop() ends it gracefully or abruptly."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.data, self.conns = port, bytearray(), []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.listener = listen_on(port, 0.05)
        self.accepted = 0

    def run(self):
        sel = selectors.DefaultSelector()
        deadline = time.monotonic() + 60
        while not self.halt.is_set() and time.monotonic() < deadline:
            try:
                c, _ = self.listener.accept()
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
                self.conns.append(c)
                self.accepted += 1
            except (socket.timeout, OSError):
                pass
            for key, _ in sel.select(0.01) if self.conns else []:
                self.read(key.fileobj, sel)
        sel.close()

    def read(self, c, sel):
        try:
            chunk = c.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if chunk:
            with self.lock:
                self.data += chunk
        else:
            sel.unregister(c)
            c.close()
            self.conns.remove(c)

    def stop(self, graceful=True):
        """Graceful: half-close each connection and read it to its end; abrupt: just close."""
        self.halt.set()
        self.join(5)
        self.listener.close()
        for c in list(self.conns):
            if graceful:
                c.shutdown(socket.SHUT_WR)
                c.setblocking(True)
                c.settimeout(5)
                try:
                    while True:
                        chunk = c.recv(1 << 16)
                        if not chunk:
                            break
                        with self.lock:
                            self.data += chunk
                except OSError:
                    pass
            c.close()
        self.conns = []

    def records(self, octet=False):
        """(c, s) of every record it received, and the payloads (octet: LEN SP MSG frames)."""
        with self.lock:
            data = bytes(self.data)
        if not octet:
            lines = data.split(b"\n")
            check(lines[-1] == b"", f"the upstream's data ends inside a line: {lines[-1][:80]!r}")
            return lines[:-1]
        frames, i = [], 0
        while i < len(data):
            sp = data.index(b" ", i)
            n = int(data[i:sp])
            frames.append(data[sp + 1:sp + 1 + n])
            i = sp + 1 + n
        return frames


def seqs(payloads):
    """Counter of (c, s) in the payloads."""
    return collections.Counter((int(m[1]), int(m[2])) for p in payloads
                               for m in [re.search(rb"c=(\d+) s=(\d+)", p)] if m)


@case
def forward_failover(ctx):
    """
    A forward sink with two upstreams (failover), fed 20,000 records: the
    first upstream restarts gracefully mid-stream, then stops for good;
    events move to the second and back, and across both every record
    arrives exactly once, each a whole JSON line.  Before any upstream
    listens, events wait in the queue and are sent once one does.
    """
    pa, pb = free_port(), free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "up", "type": "forward",
                                "upstreams": [f"{LOCAL4}:{pa}", f"{LOCAL4}:{pb}"],
                                "flush_interval": 0.01}], level="info")
    s.start()
    sender = RecordSender(s.addr, cid=1, max_records=20000, max_seconds=30)
    sender.start()
    time.sleep(0.5)                     # nobody listens yet: the queue holds them
    a = Upstream(pa)
    a.start()
    b = Upstream(pb)
    b.start()
    wait_until(lambda: len(a.data) > 100000, 10)
    a.stop(graceful=True)               # a restart: everything sent to it is read
    a2 = Upstream(pa)
    a2.start()
    wait_until(lambda: len(b.data) > 100000, 10)
    b.stop(graceful=True)
    sender.join(30)
    sender.finish()
    check(sender.sent == 20000, f"the client sent {sender.sent} of 20000 records")
    got = lambda: sum(sum(seqs(u.records()).values()) for u in (a, b, a2))
    check(wait_until(lambda: got() >= 20000, 15), f"the upstreams got {got()} of 20000 records")
    s.stop()
    a2.stop()
    seen = seqs(a.records()) + seqs(b.records()) + seqs(a2.records())
    for u in (a, b, a2):
        for line in u.records():
            json.loads(line)            # whole JSON lines only
    dups = sum(n - 1 for n in seen.values() if n > 1)
    missing = 20000 - len([k for k in seen if k[0] == 1])
    print(f"# forward_failover: a {len(a.records())}, b {len(b.records())}, a again "
          f"{len(a2.records())} events; {missing} missing, {dups} duplicates",
          file=sys.stderr, flush=True)
    check(missing == 0 and dups == 0, f"{missing} records missing, {dups} duplicated")
    check(len(a.records()) and len(b.records()) and len(a2.records()),
          "the events did not move between the upstreams")


@case
def forward_abrupt_upstream(ctx):
    """
    What plain TCP cannot promise: an upstream that closes without reading
    what it was sent loses what was in its buffers (the count is printed);
    nothing is duplicated, no line is split, and the rest goes to the other
    upstream.
    """
    pa, pb = free_port(), free_port()
    a, b = Upstream(pa), Upstream(pb)
    a.start()
    b.start()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "up", "type": "forward", "flush_interval": 0.01,
                                "upstreams": [f"{LOCAL4}:{pa}", f"{LOCAL4}:{pb}"]}],
                        workers=1)
    s.start()
    sender = RecordSender(s.addr, cid=2, max_records=20000, max_seconds=30)
    sender.start()
    wait_until(lambda: len(a.data) > 200000, 10)
    a.halt.set()                        # stop reading, then close with data unread
    time.sleep(0.2)
    a.stop(graceful=False)
    sender.join(30)
    sender.finish()
    steady(lambda: len(b.data), quiet=0.5, timeout=10)
    s.stop()
    b.stop()
    seen = seqs(a.records()) + seqs(b.records())
    dups = sum(n - 1 for n in seen.values() if n > 1)
    lost = 20000 - len(seen)
    print(f"# forward_abrupt_upstream: an upstream closed without reading: {lost} of 20000 "
          f"records lost, {dups} duplicated", file=sys.stderr, flush=True)
    check(dups == 0, f"{dups} records were sent twice")
    check(len(b.records()) > 0, "nothing went to the second upstream")


@case
def forward_roundrobin_records(ctx):
    """
    mode = "roundrobin", payload = "record", framing = "octet-counted": the
    batches alternate between two upstreams, each frame is LEN SP and the
    record exactly as the client sent it, every record once.
    """
    pa, pb = free_port(), free_port()
    a, b = Upstream(pa), Upstream(pb)
    a.start()
    b.start()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "relay", "type": "forward", "mode": "roundrobin",
                                "payload": "record", "framing": "octet-counted",
                                "upstreams": [f"{LOCAL4}:{pa}", f"{LOCAL4}:{pb}"],
                                "flush_interval": 0.01}], workers=1)
    s.start()
    sender = RecordSender(s.addr, cid=3, max_records=5000, pause=0.01)
    sender.start()
    sender.join(30)
    sender.finish()
    got = lambda: len(a.records(octet=True)) + len(b.records(octet=True))
    check(wait_until(lambda: got() >= 5000, 10), f"the upstreams got {got()} of 5000 records")
    s.stop()
    frames = a.records(octet=True) + b.records(octet=True)
    want = {RecordSender.text(3, q).encode() for q in range(5000)}
    check(set(frames) == want and len(frames) == 5000,
          f"{len(frames)} frames; {len(want - set(frames))} records missing or altered")
    check(a.accepted == 1 and b.accepted == 1 and len(a.records(octet=True)) > 100 and
          len(b.records(octet=True)) > 100, f"roundrobin sent {len(a.records(octet=True))} "
          f"and {len(b.records(octet=True))} records over {a.accepted} and {b.accepted} "
          "connections")
    a.stop()
    b.stop()
