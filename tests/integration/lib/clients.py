"""
Clients: threads that connect and send (ConnectLoop, RecordSender,
SteadyClient, TcpLoad), timed plans over several sockets (play), and client programs:
tests/bench/blast (built once per run when the tree's is missing or
older than blast.c), ingestd-bench, logger, loggen (tool).
"""
import collections
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid

from .base import ROOT, check, Failure, tail
from .net import peer_state


BLAST_SRC = os.path.join(ROOT, "tests", "bench", "blast.c")
BENCH_BINARY = os.environ.get("INGESTD_BENCH") or os.path.join(ROOT, "ingestd-bench")
_tools = {}                     # what blast_binary() found or built, for the run


def token():
    return uuid.uuid4().hex[:12]


def octet_frame(msg):
    """msg (str or bytes) as an RFC 6587 octet-counted frame."""
    if isinstance(msg, str):
        msg = msg.encode()
    return b"%d %s" % (len(msg), msg)


class ConnectLoop(threading.Thread):
    """A client that connects, sends one line and closes, again and again, counting failures."""

    def __init__(self, addr, max_conns=500000, max_seconds=60):
        super().__init__(daemon=True)
        self.addr, self.max_conns, self.max_seconds = addr, max_conns, max_seconds
        self.halt = threading.Event()
        self.ok = 0
        self.failures = collections.Counter()

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        while (not self.halt.is_set() and time.monotonic() < deadline and
               self.ok + sum(self.failures.values()) < self.max_conns):
            try:
                with socket.create_connection(self.addr, timeout=2) as c:
                    c.sendall(b"<13>loop record\n")
                self.ok += 1
            except ConnectionRefusedError:
                self.failures["ECONNREFUSED"] += 1
            except ConnectionResetError:
                self.failures["ECONNRESET"] += 1
            except BrokenPipeError:
                self.failures["EPIPE"] += 1
            except socket.timeout:
                self.failures["timeout"] += 1
            except OSError as e:
                self.failures[f"errno {e.errno}: {e.strerror}"] += 1

    def finish(self):
        self.halt.set()
        self.join(10)


class RecordSender(threading.Thread):
    """
    One connection that sends raw records "c=CID s=SEQ ..." in small batches
    at a bounded pace until finish() (or max_records, or max_seconds); sent
    counts the records whose sendall() completed.
    """

    def __init__(self, addr, cid, batch=20, pause=0.004, max_records=100000, max_seconds=20):
        super().__init__(daemon=True)
        self.addr, self.cid, self.batch, self.pause = addr, cid, batch, pause
        self.max_records, self.max_seconds = max_records, max_seconds
        self.halt = threading.Event()
        self.sent = 0
        self.error = None
        self.sock = None

    @staticmethod
    def text(cid, seq):
        return f"c={cid} s={seq} a record sent through a reopen"

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        try:
            with socket.create_connection(self.addr, timeout=10) as s:
                self.sock = s
                while (not self.halt.is_set() and self.sent < self.max_records and
                       time.monotonic() < deadline):
                    n = min(self.batch, self.max_records - self.sent)
                    s.sendall("".join(self.text(self.cid, self.sent + i) + "\n"
                                      for i in range(n)).encode())
                    self.sent += n
                    self.halt.wait(self.pause)
                s.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.error = e

    def finish(self):
        self.halt.set()
        self.join(15)
        check(not self.is_alive(), f"sender {self.cid} did not stop")
        check(self.error is None, f"sender {self.cid} failed after {self.sent} records: {self.error}")


class TcpLoad(threading.Thread):
    """
    A plain TCP client sending "c=CID s=SEQ" records in batches of 20,
    reconnecting after an error, until finish(): sent counts the records
    whose sendall() completed, which is all a plain TCP client knows.
    """

    def __init__(self, addr, cid, max_seconds=60):
        super().__init__(daemon=True)
        self.addr, self.cid, self.max_seconds = addr, cid, max_seconds
        self.halt = threading.Event()
        self.sent = 0

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self.halt.is_set() and time.monotonic() < deadline:
            try:
                with socket.create_connection(self.addr, timeout=2) as sock:
                    while not self.halt.is_set() and time.monotonic() < deadline:
                        sock.sendall("".join(f"<13>Nov 24 01:02:03 host tcp[1]: c={self.cid} "
                                             f"s={self.sent + i} through a fault\n"
                                             for i in range(20)).encode())
                        self.sent += 20
                        self.halt.wait(0.002)
            except OSError:
                time.sleep(0.05)

    def finish(self):
        self.halt.set()
        self.join(10)


def play(plan, socks, seconds, step=0.02, t0=None):
    """
    Send each (at, name, data) of plan at its time (seconds from t0) on
    socks[name], watching every socket for the server's close, until
    seconds from t0.  {name: (state, seconds from t0)} for each socket the
    server closed.  t0: a time.monotonic(), now by default; one taken
    before the sockets connected when a close is timed from the connect,
    so that a delay of ours between the connects and the call does not
    shorten the times measured.
    """
    t0 = time.monotonic() if t0 is None else t0
    plan = sorted(plan, key=lambda p: p[0])
    closed, i = {}, 0
    while True:
        now = time.monotonic() - t0
        while i < len(plan) and plan[i][0] <= now:
            _, name, data = plan[i]
            i += 1
            if name not in closed:
                try:
                    socks[name].sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    closed[name] = ("reset", time.monotonic() - t0)
        for name, sk in socks.items():
            if name not in closed:
                st = peer_state(sk)
                if st != "open":
                    closed[name] = (st, time.monotonic() - t0)
        if now >= seconds:
            return closed
        time.sleep(step)


def blast_binary():
    """tests/bench/blast: $BLAST, else the tree's when newer than blast.c, else built once per run."""
    if "blast" not in _tools:
        path = os.environ.get("BLAST")
        built = os.path.join(ROOT, "tests", "bench", "blast")
        if not path and os.access(built, os.X_OK) and \
                os.path.getmtime(built) >= os.path.getmtime(BLAST_SRC):
            path = built
        if not path:
            _tools["dir"] = tempfile.mkdtemp(prefix="ingestd-tools-")
            path = os.path.join(_tools["dir"], "blast")
            try:
                cc = subprocess.run(["cc", "-O2", "-o", path, BLAST_SRC], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise Failure(f"cannot build {BLAST_SRC}: {e}")
            check(cc.returncode == 0, f"cannot build {BLAST_SRC}: {tail(cc.stdout.decode())}")
        check(os.access(path, os.X_OK), f"no executable blast at {path}")
        _tools["blast"] = path
    return _tools["blast"]


def blast_args(port, conns, records, shape="mix", octet=False, seconds=30):
    return [blast_binary(), "-p", str(port), "-c", str(conns), "-n", str(records),
            "-d", str(seconds), "-s", shape] + (["-o"] if octet else [])


def blast_result(p, args, out):
    """(records sent, bytes sent) from blast's summary line, once it exited."""
    m = re.search(r"blast: sent (\d+) records, (\d+) bytes", out)
    check(p.returncode == 0 and m, f"`blast {' '.join(args[1:])}` exited {p.returncode}: {tail(out)}")
    return int(m[1]), int(m[2])


def blast(port, conns, records, shape="mix", octet=False, seconds=30):
    """Run blast to its end (-n records or -d seconds); (records sent, bytes sent)."""
    args = blast_args(port, conns, records, shape, octet, seconds)
    try:
        p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise Failure(f"`blast {' '.join(args[1:])}` did not finish within {seconds + 30} s")
    return blast_result(p, args, (p.stdout + p.stderr).decode(errors="replace"))


def tool(args, timeout=30, stdin=None, env=None):
    """Run a client program to completion (env: more variables); (exit status, output)."""
    check(shutil.which(args[0]), f"no {args[0]} on PATH (`make deps` installs it)")
    try:
        p = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, env=dict(os.environ, **env) if env else None)
    except subprocess.TimeoutExpired:
        raise Failure(f"`{' '.join(args)}` did not finish within {timeout} s")
    return p.returncode, p.stdout.decode(errors="replace")


class SteadyClient(threading.Thread):
    """
    A client that sends raw records "c=CID s=SEQ" in batches of 20 without
    pause and, when it sees the end of the stream (the server's FIN), either
    connects again, as rsyslog's omfwd does (reconnect=True: counted in
    reconnects), or stops (fin is set).  A reset (RST) is what must not
    come: it is recorded in resets.
    """

    def __init__(self, addr, cid, reconnect=True, max_records=300000, max_seconds=30):
        super().__init__(daemon=True)
        self.addr, self.cid, self.reconnect = addr, cid, reconnect
        self.max_records, self.max_seconds = max_records, max_seconds
        self.halt = threading.Event()
        self.sent = self.reconnects = 0
        self.fin = False
        self.resets = []

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        sock = socket.create_connection(self.addr, timeout=5)
        try:
            while (not self.halt.is_set() and self.sent < self.max_records and
                   time.monotonic() < deadline):
                batch = "".join(f"c={self.cid} s={self.sent + i} graceful\n" for i in range(20))
                try:
                    if select.select([sock], [], [], 0)[0] and sock.recv(1) == b"":
                        sock.close()    # the server's FIN
                        if not self.reconnect:
                            self.fin = True
                            return
                        sock = socket.create_connection(self.addr, timeout=5)
                        self.reconnects += 1
                        continue
                    sock.sendall(batch.encode())
                except OSError as e:
                    self.resets.append(f"{type(e).__name__} after {self.sent} records")
                    return
                self.sent += 20
                time.sleep(0.002)
        finally:
            sock.close()

    def finish(self):
        self.halt.set()
        self.join(10)


def bench_binary():
    """./ingestd-bench, which `make` builds: $INGESTD_BENCH, else the tree's."""
    check(os.access(BENCH_BINARY, os.X_OK), f"no executable ingestd-bench at {BENCH_BINARY} "
          "(run make)")
    return BENCH_BINARY


def remove_built_tools():
    """At the end of a run: remove what blast_binary() built."""
    if "dir" in _tools:
        shutil.rmtree(_tools.pop("dir"), ignore_errors=True)
    _tools.clear()
