"""
RELP from the client's side: RelpClient speaks the protocol byte by byte
on one connection; RelpLoad keeps every record until it is answered and
re-sends what was not after a reconnect, as omrelp does; fault_run runs
RELP and plain TCP load through a fault and checks that no answered
record is lost.
"""
import collections
import re
import select
import socket
import sys
import threading
import time

from .base import LOCAL4, check
from .proc import alive
from .net import free_port, listen_on
from .server import pipeline_server
from .clients import TcpLoad


class RelpClient:
    """A RELP client on one connection: open, syslog frames in a window, close."""

    def __init__(self, ctx, addr, timeout=5, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET)
        ctx.socks.append(self.sock)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.txnr, self.buf = 0, b""

    @staticmethod
    def frame(txnr, cmd, data=b""):
        return f"{txnr} {cmd} {len(data)}".encode() + (b" " + data if data else b"") + b"\n"

    def send(self, cmd, data=b""):
        self.txnr += 1
        self.sock.sendall(self.frame(self.txnr, cmd, data))
        return self.txnr

    def response(self):
        """(txnr, command, data) of the next frame from the server; None at EOF."""
        while True:
            m = re.match(rb"(\d+) (\w+) (\d+)[ \n]", self.buf)
            if m:
                n = int(m[3])
                end = m.end() + (n + 1 if n else 0)
                if len(self.buf) >= end:
                    data = self.buf[m.end():m.end() + n] if n else b""
                    self.buf = self.buf[end:]
                    return int(m[1]), m[2].decode(), data
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def open(self):
        t = self.send("open", b"relp_version=0\nrelp_software=ingestd-tests\ncommands=syslog")
        r = self.response()
        check(r and r[0] == t and r[1] == "rsp" and r[2].startswith(b"200 OK\n") and
              b"commands=syslog" in r[2], f"the answer to open was {r}")

    def syslog(self, records, window=128):
        """Send records with at most window unanswered; {txnr: response data} in order."""
        answers, pending = {}, collections.deque()
        for rec in records:
            while len(pending) >= window:
                r = self.response()
                check(r and r[0] == pending[0], f"expected the answer to {pending[0]}, got {r}")
                answers[pending.popleft()] = r[2]
            pending.append(self.send("syslog", rec))
        while pending:
            r = self.response()
            check(r and r[0] == pending[0], f"expected the answer to {pending[0]}, got {r}")
            answers[pending.popleft()] = r[2]
        return answers

    def close(self):
        t = self.send("close")
        r = self.response()
        check(r == (t, "rsp", b""), f"the answer to close was {r}")
        check(self.response() is None, "the server did not close the connection after close")


def relp_split(buf):
    """The complete frames at the start of buf as (txnr, command, data), and the rest."""
    frames = []
    while True:
        m = re.match(rb"(\d+) (\w+) (\d+)[ \n]", buf)
        if not m:
            return frames, buf
        n = int(m[3])
        end = m.end() + (n + 1 if n else 0)
        if len(buf) < end:
            return frames, buf
        frames.append((int(m[1]), m[2].decode(), buf[m.end():m.end() + n] if n else b""))
        buf = buf[end:]


class RelpLoad(threading.Thread):
    """
    One RELP client sending "c=CID s=SEQ" records with a window of window,
    as omrelp does: a server close, reset, refusal or serverclose makes it
    reconnect (after 50 ms) and re-send every unanswered record.  finish()
    stops new records, waits for every answer and closes the session.
    acked: the sequence numbers answered 200 OK.  tls: an ssl.SSLContext
    to speak RELP over TLS with (server name "ingestd.test").
    """

    def __init__(self, addr, cid, window=64, max_seconds=60, tls=None):
        super().__init__(daemon=True)
        self.addr, self.cid, self.window, self.max_seconds = addr, cid, window, max_seconds
        self.tls = tls
        self.halt = threading.Event()
        self.acked, self.unacked = set(), collections.OrderedDict()
        self.next_seq = self.reconnects = self.resent = 0
        self.errors = collections.Counter()
        self.done = False
        self.crash = None

    def record(self, seq):
        return f"<13>Nov 24 01:02:03 host relp[1]: c={self.cid} s={seq} through a fault".encode()

    def session(self, sock, deadline):
        """One connection, until the server ends it (return) or every record is answered."""
        txnr, inflight, buf = 1, {}, b""
        sock.sendall(RelpClient.frame(1, "open", b"relp_version=0\ncommands=syslog"))
        out = []
        for seq in self.unacked:                # re-send what was not answered
            txnr += 1
            inflight[txnr] = seq
            out.append(RelpClient.frame(txnr, "syslog", self.record(seq)))
            self.resent += 1
        closing = None
        while time.monotonic() < deadline:
            while not self.halt.is_set() and len(inflight) < self.window:
                seq = self.next_seq
                self.next_seq += 1
                self.unacked[seq] = True
                txnr += 1
                inflight[txnr] = seq
                out.append(RelpClient.frame(txnr, "syslog", self.record(seq)))
            if self.halt.is_set() and not inflight and closing is None:
                txnr += 1
                closing = txnr
                out.append(RelpClient.frame(txnr, "close"))
            if out:
                sock.sendall(b"".join(out))
                out = []
            # bytes a TLS session holds already are not seen by select
            if not (self.tls and sock.pending()) and not select.select([sock], [], [], 0.2)[0]:
                continue
            chunk = sock.recv(65536)
            if not chunk:
                return
            frames, buf = relp_split(buf + chunk)
            for t, cmd, data in frames:
                if cmd == "serverclose":
                    return
                if t == closing:
                    self.done = True
                    return
                seq = inflight.pop(t, None)
                if t == 1 or seq is None:
                    continue                    # the answer to open
                if data.startswith(b"200"):
                    self.acked.add(seq)
                    self.unacked.pop(seq, None)
                else:
                    self.errors[data[:40].decode(errors="replace")] += 1

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self.done and time.monotonic() < deadline:
                try:
                    sock = socket.create_connection(self.addr, timeout=2)
                    if self.tls:
                        sock = self.tls.wrap_socket(sock, server_hostname="ingestd.test")
                except OSError as e:
                    self.errors[f"connect: {e.strerror or e}"] += 1
                    time.sleep(0.05)
                    continue
                try:
                    sock.settimeout(5)
                    self.session(sock, deadline)
                except OSError as e:
                    self.errors[f"{type(e).__name__}"] += 1
                finally:
                    sock.close()
                if not self.done:
                    self.reconnects += 1
                    time.sleep(0.05)
        except Exception as e:          # reported by finish()
            self.crash = f"{type(e).__name__}: {e}"

    def finish(self, timeout=30):
        self.halt.set()
        self.join(timeout)
        check(not self.is_alive(), f"RELP client {self.cid} did not finish within {timeout} s")
        check(self.crash is None, f"RELP client {self.cid} failed: {self.crash}")
        check(self.done and not self.unacked, f"RELP client {self.cid}: {len(self.unacked)} "
              f"records never answered; errors {dict(self.errors)}")


def fault_run(ctx, name, fault, relp=4, tcp=2, sinks=None, sink_path=None, delivered=None,
              relp_tls=None, after=None, extra=None, seconds=60, **listener):
    """
    Start a server with a RELP and a plain TCP listener into one file sink
    (or sinks), run relp RELP clients and tcp plain TCP clients through
    fault(s), stop them, and check every answered record arrived: in the
    file, or as delivered() counts them (a Counter of (c, s)).  Returns
    (RELP: records, duplicates, resent, reconnects; TCP: sent, lost).
    listener: more settings of the RELP listener (a tls group), relp_tls
    the clients' ssl.SSLContext for it.  after(s, relp loads, tcp loads)
    runs once the clients are done, before the server stops.  extra: more
    top-level configuration (a stats group).  seconds: the RELP clients'
    own time bound (they stop sending then), which fault must stay within.
    """
    path = sink_path or ctx.path("events.jsonl")
    tcp_port = free_port()
    s = pipeline_server(ctx, [dict({"listen": f"{LOCAL4}:{ctx.port}", "protocol": "relp"},
                                   **listener),
                              {"listen": f"{LOCAL4}:{tcp_port}"}],
                        sinks=sinks or [{"name": "events", "path": path}], level="info",
                        extra=extra)
    s.start()
    rl = [RelpLoad(s.addr, c, tls=relp_tls, max_seconds=seconds) for c in range(relp)]
    tl = [TcpLoad((LOCAL4, tcp_port), 100 + c) for c in range(tcp)]
    for t in rl + tl:
        t.start()
    time.sleep(0.3)
    fault(s, rl)
    for t in tl:
        t.finish()
    for t in rl:
        t.finish()
    if after:
        after(s, rl, tl)
    if s.master and alive(s.master):
        s.stop()
    if delivered:
        seen = delivered()
    else:
        with open(path, "rb") as f:     # a million lines: a regex, not JSON parsing
            seen = collections.Counter((int(m[1]), int(m[2])) for m in
                                       re.finditer(rb"c=(\d+) s=(\d+) through a fault", f.read()))
    acked = sum(len(t.acked) for t in rl)
    lost = [(t.cid, q) for t in rl for q in t.acked if seen[(t.cid, q)] == 0]
    check(not lost, f"{name}: {len(lost)} of {acked} acknowledged records are not in the sink, "
          f"e.g. {lost[:5]}")
    dups = sum(seen[(t.cid, q)] - 1 for t in rl for q in t.acked)
    tcp_sent = sum(t.sent for t in tl)
    tcp_lost = sum(1 for t in tl for q in range(t.sent) if seen[(t.cid, q)] == 0)
    resent = sum(t.resent for t in rl)
    reconnects = sum(t.reconnects for t in rl)
    print(f"# {name}: RELP {acked} records acknowledged, 0 lost, {dups} duplicates, {resent} "
          f"re-sent over {reconnects} reconnects; plain TCP {tcp_sent} sent, {tcp_lost} lost",
          file=sys.stderr, flush=True)
    check(acked > 1000, f"{name}: only {acked} RELP records were answered")
    return s, dict(acked=acked, dups=dups, resent=resent, reconnects=reconnects,
                   tcp_sent=tcp_sent, tcp_lost=tcp_lost)


class RelpUpstream(threading.Thread):
    """
    A RELP server on port, as an upstream of a forward sink: it answers
    "open", keeps the data of every "syslog" frame and answers it 200 OK
    as soon as it read it.  stop(graceful=False) stops reading and
    answering and closes with what was sent unread: what a crash does.
    """

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.records, self.conns = port, [], {}
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.listener = listen_on(port, 0.02)
        self.accepted = 0

    def run(self):
        deadline = time.monotonic() + 90
        while not self.halt.is_set() and time.monotonic() < deadline:
            try:
                c, _ = self.listener.accept()
                self.conns[c] = b""
                self.accepted += 1
            except OSError:
                pass
            ready = select.select(list(self.conns), [], [], 0.01)[0] if self.conns else []
            for c in ready:
                if not self.halt.is_set():
                    self.serve(c)

    def serve(self, c):
        try:
            chunk = c.recv(1 << 16)
        except OSError:
            chunk = b""
        frames, self.conns[c] = relp_split(self.conns[c] + chunk)
        out = []
        for t, cmd, data in frames:
            if cmd == "open":
                out.append(RelpClient.frame(t, "rsp", b"200 OK\nrelp_version=0\ncommands=syslog"))
            elif cmd == "syslog":
                with self.lock:
                    self.records.append(data)
                out.append(RelpClient.frame(t, "rsp", b"200 OK"))
            elif cmd == "close":
                out.append(RelpClient.frame(t, "rsp"))
        try:
            c.sendall(b"".join(out))
        except OSError:
            chunk = b""
        if not chunk:
            del self.conns[c]
            c.close()

    def stop(self, graceful=True):
        """Graceful: serverclose after the answers, then close; abrupt: just close."""
        self.halt.set()
        self.join(5)
        self.listener.close()
        for c in list(self.conns):
            if graceful:
                try:
                    c.sendall(RelpClient.frame(0, "serverclose"))
                except OSError:
                    pass
            c.close()
        self.conns = {}

    def got(self):
        with self.lock:
            return list(self.records)
