#!/usr/bin/env python3
"""
Integration tests for ingestd: the real binary, driven as an operator drives
it, on loopback only (127.0.0.1, ::1 and unix sockets).

    python3 tests/integration/run.py [NAME...]      (what `make integration` runs)

INGESTD names the binary (default: ingestd at the top of the tree).  Each
case runs in its own temporary directory with its own free port and prints
`ok   NAME (1.2s)` or `FAIL NAME: reason`; the run ends with
`integration: N passed, M failed` and exits 1 if any case failed.  A failed
case keeps its directory (configs, logs) and names it.

Every process a case starts is killed in its cleanup: the master and every
worker pid it saw, by pid, and only after /proc/PID/cmdline shows that it is
still the ingestd of that case (so that a reused pid is never touched).

For an ASan/UBSan build: unless ASAN_OPTIONS is already set, the servers run
with ASAN_OPTIONS=abort_on_error=0:detect_leaks=0:verify_asan_link_order=0
and UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1, both with a log_path in
the case's directory (a daemon's stderr is /dev/null); a case fails when a
log, a captured stderr or such a report contains "runtime error:" or
"AddressSanitizer".

Python 3 standard library only.
"""
import calendar
import collections
import ctypes
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.path.abspath(os.environ.get("INGESTD", os.path.join(ROOT, "ingestd")))
FAILPRIV_SRC = os.path.join(HERE, "failpriv.c")
SANITIZER_MARKS = ("runtime error:", "AddressSanitizer")
LOCAL4 = "127.0.0.1"
LOCAL6 = "::1"


class Failure(Exception):
    """What a user would notice: the reason a case fails."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# ---------------------------------------------------------------- processes

def proc_state(pid):
    """The state letter of pid ('R', 'S', 'Z', ...), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()[0]


def alive(pid):
    """A process that exists and has not exited (a zombie has exited)."""
    st = proc_state(pid)
    return st is not None and st not in ("Z", "X")


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children(pid):
    """Live child processes of pid, sorted."""
    kids = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return sorted(p for p in kids if alive(p))


def reap(pid):
    """The wait status of pid if it is an exited child of ours, else None."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return status if got == pid else None


def wait_until(pred, timeout, interval=0.02):
    """Poll pred until it returns something true or timeout seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def become_subreaper():
    """
    Orphans of our processes (a daemonized master, the workers of a killed
    master) are re-parented to us rather than to an init that may never reap
    them, so that their exit status can be read.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0    # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def unused_pid():
    """A pid that no process has (below pid_max, so it could be a real one)."""
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            top = int(f.read())
    except OSError:
        top = 32768
    for pid in range(top - 1, max(top - 5000, 300), -1):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    raise Failure("no unused pid found below pid_max")


def server_env(directory, extra=None):
    env = dict(os.environ)
    if "ASAN_OPTIONS" not in os.environ:
        logs = os.path.join(directory, "sanitizer")
        env["ASAN_OPTIONS"] = ("abort_on_error=0:detect_leaks=0:verify_asan_link_order=0:"
                               "log_path=" + logs)
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:log_path=" + logs
    env.update(extra or {})
    return env


# ------------------------------------------------------------------ sockets

def free_port(host=LOCAL4):
    """A TCP port nothing listens on right now: bind port 0, read it, close."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def peer_state(sock):
    """'open', 'eof', 'reset' or 'data', without blocking."""
    saved = sock.gettimeout()
    sock.settimeout(0)
    try:
        data = sock.recv(1)
    except BlockingIOError:
        return "open"
    except ConnectionResetError:
        return "reset"
    except OSError as e:
        return f"error ({e})"
    finally:
        sock.settimeout(saved)
    return "eof" if data == b"" else "data"


def wait_closed(sock, timeout):
    """Wait for the server to close sock: 'eof', 'reset', or 'open' when it did not."""
    sock.settimeout(timeout)
    try:
        return "eof" if sock.recv(1) == b"" else "data"
    except socket.timeout:
        return "open"
    except ConnectionResetError:
        return "reset"


def accepted_by(socks, server_port, pids):
    """
    For each client socket of socks, the pid among pids that accepted it
    (holds the server's end of the connection), or None if nobody has yet.
    One pass over /proc/net/tcp* and the pids' descriptors.
    """
    inodes = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        suffix = ":%04X" % server_port
        for row in rows:
            f = row.split(None, 10)
            if f[1].endswith(suffix) and f[9] != "0":
                inodes[int(f[2].rsplit(":", 1)[1], 16)] = f"socket:[{f[9]}]"
    holder = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                holder[os.readlink(f"/proc/{pid}/fd/{fd}")] = pid
            except OSError:
                pass
    result = []
    for s in socks:
        try:
            port = s.getsockname()[1]
        except OSError:
            port = None
        result.append(holder.get(inodes.get(port)))
    return result


def socket_owner(sock, server_port, pids):
    """Which of pids accepted the client socket sock, or None."""
    return accepted_by([sock], server_port, pids)[0]


class ConnectLoop(threading.Thread):
    """A client that connects, sends one line and closes, again and again, counting failures."""

    def __init__(self, addr, max_conns=30000, max_seconds=60):
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


# ------------------------------------------------------------------- server

STARTED_RE = re.compile(r"worker (\d+) started: pid (\d+), generation (\d+)")
EXIT_RE = re.compile(r"ingestd\[(\d+)\]: \w+: worker (\d+) \(generation (\d+)\): exiting: (.*)")
LOGPID_RE = re.compile(r"ingestd\[(\d+)\]:")


class Server:
    """One ingestd: its config, its log, its master and the workers seen."""

    def __init__(self, ctx, name="ingestd", workers=2, shutdown_timeout=2, port=None,
                 listeners=None, accept_mode=None, extra=None, level="debug"):
        self.ctx = ctx
        self.port = port or ctx.port
        self.conf = ctx.path(f"{name}.conf")
        self.pid_file = ctx.path(f"{name}.pid")
        self.log_path = ctx.path(f"{name}.log")
        self.err_path = ctx.path(f"{name}.err")
        self.opts = dict(workers=workers, shutdown_timeout=shutdown_timeout,
                         listeners=listeners or [f"{LOCAL4}:{self.port}"],
                         accept_mode=accept_mode, extra=extra, level=level)
        self.master = None
        self.proc = None            # the Popen of a foreground master
        self.foreground = False
        self.seen = set()
        self.errfile = None
        self.write_config()

    @property
    def addr(self):
        return (LOCAL4, self.port)

    # configuration

    def config_text(self):
        o = self.opts
        lines = [
            f"workers = {o['workers']};",
            f'pid_file = "{self.pid_file}";',
            f"shutdown_timeout = {o['shutdown_timeout']};",
            f'log = {{ level = "{o["level"]}"; target = "{self.log_path}"; }};',
        ]
        if o["extra"]:
            lines.append(o["extra"])
        mode = f' accept_mode = "{o["accept_mode"]}";' if o["accept_mode"] else ""
        items = [f'\t{{ name = "l{i}"; listen = "{a}";{mode} }}'
                 for i, a in enumerate(o["listeners"])]
        lines += ["listeners = (", ",\n".join(items), ");"]
        return "\n".join(lines) + "\n"

    def write_config(self, text=None, **changes):
        self.opts.update(changes)
        with open(self.conf, "w") as f:
            f.write(text if text is not None else self.config_text())

    # start and stop

    def start(self, foreground=False, env=None, expect_ok=True, timeout=20, pid_path=None):
        """
        Start a master (with -p pid_path if given).  Daemonizing: return the
        command's exit status (it must be 0 when expect_ok).  Foreground:
        return the Popen.
        """
        self.foreground = foreground
        penv = server_env(self.ctx.dir, env)
        args = ["-c", self.conf]
        if pid_path:
            args += ["-p", pid_path]
            self.pid_file = pid_path
        if foreground:
            self.errfile = open(self.err_path, "ab")
            self.proc = subprocess.Popen([BINARY, "-f"] + args, stdin=subprocess.DEVNULL,
                                         stdout=self.errfile, stderr=self.errfile,
                                         cwd=self.ctx.dir, env=penv)
            self.master = self.proc.pid
            if expect_ok:
                self.wait_for_log(r"started: \d+ workers accepting", timeout=timeout)
                self.workers()
            return self.proc
        rc, _, err = self.ctx.run(args, env=penv, timeout=timeout)
        self.last_start_err = err
        if not expect_ok:
            return rc
        check(rc == 0, f"`ingestd -c {os.path.basename(self.conf)}` exited {rc}: {tail(err)}")
        pid = read_pid(self.pid_file)
        check(pid, f"no pid in {self.pid_file} after a successful start")
        check(alive(pid), f"the pid file names pid {pid}, which is not running")
        self.master = pid
        self.workers()
        return rc

    def wait_exit(self, timeout):
        """(exited, exit code or None when it cannot be known)."""
        if self.proc is not None:
            try:
                return True, self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False, None
        if not wait_until(lambda: not alive(self.master), timeout):
            return False, None
        status = reap(self.master)
        return True, (os.waitstatus_to_exitcode(status) if status is not None else None)

    def stop(self, sig=signal.SIGQUIT, timeout=None):
        """Stop the master with sig; check it exits 0 with its workers and removes its pid file."""
        timeout = timeout or self.opts["shutdown_timeout"] + 3
        check(self.master and alive(self.master), "the master is not running")
        workers = self.workers()
        self.signal(sig)
        exited, code = self.wait_exit(timeout)
        check(exited, f"the master is still running {timeout} s after {sig.name}")
        check(code in (0, None), f"the master exited with status {code} after {sig.name}")
        wait_until(lambda: not [p for p in workers if alive(p)], 2)
        left = [p for p in workers if alive(p)]
        check(not left, f"workers {left} still running after the master exited")
        check(not os.path.exists(self.pid_file), f"{self.pid_file} left behind after {sig.name}")

    def signal(self, sig):
        os.kill(self.master, sig)

    # observing

    def log(self, since=0):
        """The log (the master's stderr for a foreground master) from byte offset since."""
        path = self.err_path if self.foreground else self.log_path
        try:
            with open(path, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def mark(self):
        """An offset for wait_for_log(since=...): only what is logged from now on."""
        try:
            return os.path.getsize(self.err_path if self.foreground else self.log_path)
        except OSError:
            return 0

    def wait_for_log(self, pattern, timeout=5, since=0, count=1):
        """The count-th match of pattern in the log after since, waiting up to timeout seconds."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = list(rx.finditer(self.log(since)))
            if len(found) >= count:
                return found[count - 1]
            if self.proc is not None and self.proc.poll() is not None:
                found = list(rx.finditer(self.log(since)))
                if len(found) >= count:
                    return found[count - 1]
                raise Failure(f"the master exited with status {self.proc.returncode} before "
                              f"logging /{pattern}/ (x{count}); log ends: {tail(self.log(since))}")
            if time.monotonic() >= deadline:
                raise Failure(f"no log line /{pattern}/ (x{count}) within {timeout} s; "
                              f"log ends: {tail(self.log(since))}")
            time.sleep(0.02)

    def grep(self, pattern, since=0):
        return list(re.finditer(pattern, self.log(since)))

    def workers(self):
        """The master's live children, remembered for the cleanup."""
        pids = children(self.master) if self.master else []
        self.seen.update(pids)
        return pids

    def wait_workers(self, n, timeout=5):
        pids = wait_until(lambda: (lambda w: w if len(w) == n else None)(self.workers()), timeout)
        check(pids, f"expected {n} workers within {timeout} s, found {self.workers()}")
        return pids

    def started(self, since=0):
        """(slot, pid, generation) of every "worker N started" line."""
        return [(int(m[1]), int(m[2]), int(m[3])) for m in STARTED_RE.finditer(self.log(since))]

    def slot_pid(self, slot, gen, since=0):
        pids = [p for s, p, g in self.started(since) if s == slot and g == gen]
        return pids[-1] if pids else None

    def exits(self):
        """Each worker's "exiting: N connections, N records, N bytes" line, as a dict."""
        def count(what, text):
            m = re.search(rf"(\d+) {what}\b", text)
            return int(m[1]) if m else None
        return [dict(pid=int(m[1]), slot=int(m[2]), gen=int(m[3]), conns=count("connections", m[4]),
                     records=count("records", m[4]), bytes=count("bytes", m[4]))
                for m in EXIT_RE.finditer(self.log())]

    def exit_of(self, pid, timeout=3):
        line = wait_until(lambda: [e for e in self.exits() if e["pid"] == pid], timeout)
        check(line, f"worker pid {pid} logged no \"exiting: ...\" line")
        return line[0]

    def owner(self, sock, among=None, timeout=2):
        """The worker pid that accepted sock, waiting up to timeout seconds."""
        return wait_until(lambda: socket_owner(sock, self.port, among or self.workers()), timeout)

    # cleanup

    def ours(self, pid):
        return self.conf in cmdline(pid)

    def cleanup(self):
        """Kill what is left of this server by pid; return the pids that would not die."""
        pids = set(self.seen)
        pids.update(p for _, p, _ in self.started())
        pids.update(int(m[1]) for m in LOGPID_RE.finditer(self.log()))
        if self.master:
            pids.update(children(self.master))
        order = ([self.master] if self.master else []) + sorted(pids - {self.master})
        for pid in order:
            if pid and alive(pid) and self.ours(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        left = wait_until(lambda: not [p for p in order if p and alive(p) and self.ours(p)], 5)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for pid in order:
            if pid and (self.proc is None or pid != self.proc.pid):
                reap(pid)
        if self.errfile:
            self.errfile.close()
            self.errfile = None
        return [] if left else [p for p in order if p and alive(p) and self.ours(p)]


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def log_time(stamp):
    """Seconds (since the epoch, UTC) of a log line's 2026-01-02T03:04:05.678Z stamp."""
    day, clock = stamp.rstrip("Z").split("T")
    hms, ms = clock.split(".")
    t = time.strptime(f"{day} {hms}", "%Y-%m-%d %H:%M:%S")
    return calendar.timegm(t) + int(ms) / 1000


def tail(text, n=4):
    lines = [ln for ln in text.strip().splitlines() if ln.strip()][-n:]
    return " | ".join(ln[-300:] for ln in lines) or "(empty)"


# --------------------------------------------------------------------- case

class Ctx:
    """A case's temporary directory, port, servers, clients and helper processes."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"ingestd-{name[:20]}-")
        self.port = free_port()
        self.servers, self.procs, self.socks = [], [], []
        self.nrun = 0

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def server(self, **kw):
        s = Server(self, **kw)
        self.servers.append(s)
        return s

    def connect(self, addr, timeout=2):
        """A client socket (TCP for (host, port), unix for a path), closed by the cleanup."""
        if isinstance(addr, str):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.socks.append(s)
            s.settimeout(timeout)
            s.connect(addr)
        else:
            s = socket.create_connection(addr, timeout=timeout)
            self.socks.append(s)
        return s

    def run(self, args, env=None, cwd=None, timeout=15):
        """Run ingestd ARGS to completion; (exit status, stdout, stderr), kept in files."""
        self.nrun += 1
        out, err = self.path(f"cmd{self.nrun}.out"), self.path(f"cmd{self.nrun}.err")
        with open(out, "wb") as fo, open(err, "wb") as fe:
            try:
                p = subprocess.run([BINARY] + args, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                   cwd=cwd or self.dir, env=env or server_env(self.dir),
                                   timeout=timeout)
            except subprocess.TimeoutExpired:
                raise Failure(f"`ingestd {' '.join(args)}` did not finish within {timeout} s")
        with open(out, errors="replace") as fo, open(err, errors="replace") as fe:
            return p.returncode, fo.read(), fe.read()

    def cleanup(self):
        problems = []
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        for s in self.servers:
            left = s.cleanup()
            if left:
                problems.append(f"processes left behind: {left}")
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                problems.append(f"helper process {p.pid} left behind")
        return problems

    def sanitizer_reports(self):
        for name in sorted(os.listdir(self.dir)):
            path = self.path(name)
            if not os.path.isfile(path) or name.endswith((".conf", ".so", ".jsonl")):
                continue
            with open(path, errors="replace") as f:
                text = f.read()
            for mark in SANITIZER_MARKS:
                i = text.find(mark)
                if i != -1:
                    line = text[text.rfind("\n", 0, i) + 1:].split("\n", 1)[0]
                    return f"sanitizer report in {name}: {line.strip()[:300]}"
        return None


CASES = collections.OrderedDict()


def case(fn):
    CASES[fn.__name__] = fn
    return fn


# ==================================================================== cases

@case
def workers(ctx):
    """workers = 3 gives 3 worker processes; `ingestd -c` returns 0 only once they accept."""
    s = ctx.server(workers=3)
    s.start()
    # Right after the command returned: connect before anything else.
    c = ctx.connect(s.addr)
    c.sendall(b"<13>first record\n")
    log_at_return = s.log()
    check(re.search(r"started: 3 workers accepting", log_at_return),
          f"the command returned before the workers accepted; log: {tail(log_at_return)}")
    ready = re.findall(r"worker (\d+) \(pid \d+, generation 1\) accepting", log_at_return)
    check(sorted(ready) == ["0", "1", "2"], f"workers accepting when the command returned: {ready}")
    pids = s.workers()
    check(len(pids) == 3, f"expected 3 workers, the master has {len(pids)} children: {pids}")
    check(sorted(p for _, p, _ in s.started()) == pids,
          f"the workers {pids} are not the ones logged as started: {s.started()}")
    check(peer_state(c) == "open", f"the first connection is {peer_state(c)}")
    c.close()
    s.stop()


@case
def worker_respawn(ctx):
    """kill -9 of a worker: a new worker in the same slot within 1 s, still accepting."""
    s = ctx.server(workers=2)
    s.start()
    before = s.wait_workers(2)
    victim = s.slot_pid(1, 1)
    check(victim in before, f"worker 1 (pid {victim}) is not a child of the master: {before}")
    survivor = (set(before) - {victim}).pop()
    m = s.mark()
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    new = wait_until(lambda: (lambda p: p if p and p in s.workers() else None)(
        s.slot_pid(1, 1, since=m)), 1.0, interval=0.01)
    took = time.monotonic() - t0
    check(new, f"no new worker in slot 1 within 1 s of kill -9; workers {s.workers()}; "
          f"log: {tail(s.log(m))}")
    check(new != victim, "the respawned worker has the killed worker's pid")
    s.wait_for_log(rf"worker 1 \((?:pid {victim}, )?generation 1\) killed by signal 9 \(Killed\) "
                   r"unexpectedly after \d+ ms; respawning in \d+ ms", since=m, timeout=1)
    check(not alive(victim), f"the killed worker {victim} is still alive")
    check(set(s.wait_workers(2)) == {survivor, new},
          f"workers after the respawn: {s.workers()}, expected {survivor} and {new}")
    s.wait_for_log(rf"worker 1 \(pid {new}, generation 1\) accepting", since=m, timeout=2)
    for _ in range(4):
        with ctx.connect(s.addr) as c:
            c.sendall(b"<13>after respawn\n")
    check(took <= 1.0, f"the new worker appeared {took:.2f} s after the kill")
    s.stop()


@case
def reload_resize(ctx):
    """HUP with workers 2 -> 3: a new generation of 3; an open connection survives the drain."""
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
    now = wait_until(lambda: set(s.workers()) == gen2 | {owner}, 3) and set(s.workers())
    check(now, f"after the reload: workers {s.workers()}, expected generation 2 {sorted(gen2)} "
          f"and the draining {owner}")
    check(peer_state(c) == "open", f"the connection open across the reload is {peer_state(c)}")
    c.sendall(b"<13>after the reload, same connection\n")
    c.close()
    gone = wait_until(lambda: not [p for p in old if alive(p)], 3)
    check(gone, f"generation 1 workers {[p for p in old if alive(p)]} still running after the "
          "connection closed")
    ex = s.exit_of(owner)
    check(ex["gen"] == 1 and ex["conns"] == 1 and ex["records"] == 2,
          f"the drained worker counted {ex}, expected 1 connection and 2 records")
    check(set(s.workers()) == gen2, f"workers {s.workers()}, expected {sorted(gen2)}")
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
def graceful_quit(ctx):
    """QUIT: refuses new connections, waits for the open one, then exits 0 and removes the pid file."""
    s = ctx.server(workers=2, shutdown_timeout=4)
    s.start(foreground=True)
    w = s.wait_workers(2)
    c = ctx.connect(s.addr)
    c.sendall(b"<13>before quit\n")
    owner = s.owner(c)
    check(owner, "the connection was not accepted")
    m = s.mark()
    s.signal(signal.SIGQUIT)
    s.wait_for_log(r"graceful shutdown", since=m, timeout=2)
    # The master closes its listening socket at once; each worker closes its
    # copy when it handles the drain, so "refused" holds once both said so.
    s.wait_for_log(r"draining \(told by the master\)", since=m, count=2, timeout=2)
    try:
        late = ctx.connect(s.addr, timeout=1)
    except ConnectionRefusedError:
        late = None
    check(late is None, "a new connection was accepted after QUIT")
    idle = set(w) - {owner}
    check(wait_until(lambda: not [p for p in idle if alive(p)], 2),
          f"the idle worker {idle} did not exit")
    # The master waits for the open connection (bounded: 1 s of the 4 s timeout).
    check(not wait_until(lambda: s.proc.poll() is not None, 1.0),
          f"the master exited ({s.proc.returncode}) with a connection still open")
    check(alive(owner), "the worker with the open connection exited before it closed")
    c.sendall(b"<13>during the drain\n")
    check(peer_state(c) == "open", f"the connection is {peer_state(c)} during the drain")
    t0 = time.monotonic()
    c.close()
    exited, code = s.wait_exit(3)
    check(exited, "the master did not exit within 3 s of the last connection closing")
    took = time.monotonic() - t0
    check(took < 2, f"the master exited {took:.1f} s after the last connection closed")
    check(code == 0, f"the master exited with status {code}")
    check(not os.path.exists(s.pid_file), "the pid file was not removed")
    check(not [p for p in w if alive(p)], "workers outlived the master")
    ex = s.exit_of(owner)
    check(ex["records"] == 2, f"the draining worker counted {ex['records']} records, expected 2")


@case
def fast_stop(ctx):
    """TERM with open connections: master and workers exit within 2 s, status 0."""
    s = ctx.server(workers=2, shutdown_timeout=30)
    s.start(foreground=True)
    w = s.wait_workers(2)
    conns = [ctx.connect(s.addr) for _ in range(4)]
    for c in conns:
        c.sendall(b"<13>open\n")
    check(wait_until(lambda: all(accepted_by(conns, s.port, s.workers())), 2),
          "a connection was not accepted")
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    exited, code = s.wait_exit(2)
    check(exited, "the master is still running 2 s after TERM")
    check(code == 0, f"the master exited with status {code} after TERM")
    left = wait_until(lambda: not [p for p in w if alive(p)], max(0.05, 2 - (time.monotonic() - t0)))
    check(left, f"workers {[p for p in w if alive(p)]} still running 2 s after TERM")
    for c in conns:
        st = wait_closed(c, 1)
        check(st in ("eof", "reset"), f"a client connection is still {st} after the stop")
    check(not os.path.exists(s.pid_file), "the pid file was not removed")


@case
def cli(ctx):
    """-t, -T, usage errors (64), -V, -h."""
    s = ctx.server(workers=3)
    rc, out, err = ctx.run(["-t", "-c", s.conf])
    check(rc == 0, f"-t on a good config exited {rc}: {tail(err)}")
    check("is valid" in err, f"-t said: {tail(err)}")

    bad = ctx.path("bad.conf")
    with open(bad, "w") as f:
        f.write(s.config_text().replace("workers = 3;", "workers = 0;", 1))
    rc, out, err = ctx.run(["-t", "-c", bad])
    check(rc == 1, f"-t on an out-of-range value exited {rc}")
    check(f"{bad}:1: workers: must be from" in err, f"-t on workers = 0 said: {tail(err)}")

    unknown = ctx.path("unknown.conf")
    text = s.config_text().splitlines()
    text.insert(2, "no_such_setting = 1;")
    with open(unknown, "w") as f:
        f.write("\n".join(text) + "\n")
    rc, out, err = ctx.run(["-t", "-c", unknown])
    check(rc == 1, f"-t on an unknown setting exited {rc}")
    check(f"{unknown}:3: no_such_setting: unknown setting" in err,
          f"-t on an unknown setting said: {tail(err)}")

    syntax = ctx.path("syntax.conf")
    with open(syntax, "w") as f:
        f.write("workers = 2;\nworkers = = 3;\n")
    rc, out, err = ctx.run(["-t", "-c", syntax])
    check(rc == 1 and f"{syntax}:2: syntax:" in err, f"-t on a syntax error: {rc}, {tail(err)}")

    rc, dump, err = ctx.run(["-T", "-c", s.conf])
    check(rc == 0, f"-T exited {rc}: {tail(err)}")
    for want in ("workers = 3;", "shutdown_timeout = 2;", f'listen = "{LOCAL4}:{s.port}";',
                 'accept_mode = "shared";', "backlog = "):
        check(want in dump, f"-T output lacks {want!r}")
    again = ctx.path("dump.conf")
    with open(again, "w") as f:
        f.write(dump)
    rc, out, err = ctx.run(["-t", "-c", again])
    check(rc == 0, f"-t on the -T output exited {rc}: {tail(err)}")
    rc, dump2, err = ctx.run(["-T", "-c", again])
    check(rc == 0, f"-T on the -T output exited {rc}: {tail(err)}")
    strip = lambda t: [ln for ln in t.splitlines() if not ln.startswith("# effective")]
    check(strip(dump) == strip(dump2), "-T of the -T output differs from the first -T output")

    for args, what in ((["-x"], "an unknown option"),
                       (["-c", s.conf, "extra"], "an extra argument"),
                       (["-c", s.conf, "-s", "bogus"], "-s bogus")):
        rc, out, err = ctx.run(args)
        check(rc == 64, f"{what} ({' '.join(args)}) exited {rc}, expected 64 (EX_USAGE)")
        check("usage:" in err, f"{what}: no usage on stderr: {tail(err)}")

    rc, out, err = ctx.run(["-V"])
    check(rc == 0 and re.match(r"ingestd \S+", out), f"-V: {rc}, {out!r}")
    rc, out, err = ctx.run(["-h"])
    check(rc == 0 and "usage:" in out, f"-h: {rc}, {out!r}")


@case
def second_master(ctx):
    """A second master on the same pid file exits 1 naming the running pid; the first runs on."""
    s = ctx.server(workers=2)
    s.start()
    w = s.wait_workers(2)
    rc = s.start(expect_ok=False)
    err = s.last_start_err
    s.master = read_pid(s.pid_file) or s.master
    check(rc == 1, f"the second master exited {rc}, expected 1")
    check(f"ingestd is already running as pid {s.master}" in err,
          f"the second master said: {tail(err)}")
    check(read_pid(s.pid_file) == s.master, "the pid file changed")
    check(alive(s.master), "the first master died")
    check(s.workers() == w, f"workers changed from {w} to {s.workers()}")
    with ctx.connect(s.addr) as c:
        c.sendall(b"<13>first master still serving\n")
    s.stop()


@case
def stale_pidfile(ctx):
    """A pid file naming a dead pid, or a live process that is not ingestd, is replaced."""
    s = ctx.server(workers=2)
    for what, pid in (("a pid no process has", unused_pid()),
                      ("a live process that is not ingestd (this test)", os.getpid())):
        with open(s.pid_file, "w") as f:
            f.write(f"{pid}\n")
        rc = s.start(expect_ok=False)
        check(rc == 0, f"with {what} in the pid file, start exited {rc}: {tail(s.last_start_err)}")
        master = read_pid(s.pid_file)
        check(master and master != pid and alive(master),
              f"with {what} in the pid file, it now names {master}")
        s.master = master
        s.wait_workers(2)
        with ctx.connect(s.addr) as c:
            c.sendall(b"<13>started over a stale pid file\n")
        s.stop()


@case
def pidfile_paths(ctx):
    """pid_file in a directory that does not exist yet is created; -p overrides pid_file."""
    nested = ctx.path("run", "a", "b", "ingestd.pid")
    s = ctx.server(workers=1)
    s.write_config(text=s.config_text().replace(s.pid_file, nested))
    s.pid_file = nested
    s.start()
    check(read_pid(nested) == s.master, f"{nested} does not hold the master's pid")
    s.stop()
    override = ctx.path("override.pid")
    s.start(pid_path=override)
    check(read_pid(override) == s.master, f"-p {override} does not hold the master's pid")
    check(not os.path.exists(nested), "the config's pid_file was written despite -p")
    m = s.mark()
    rc, out, err = ctx.run(["-p", override, "-s", "reload"])
    check(rc == 0, f"-p {override} -s reload exited {rc}: {tail(err)}")
    s.wait_for_log(r"reload: generation 2 accepting", since=m)
    s.stop()


@case
def ttin_ttou(ctx):
    """TTIN: one worker more; TTOU: one fewer, and that worker's pid is gone."""
    s = ctx.server(workers=2)
    s.start()
    base = set(s.wait_workers(2))
    m = s.mark()
    s.signal(signal.SIGTTIN)
    s.wait_for_log(r"workers: now 3 in generation 1", since=m)
    added = s.slot_pid(2, 1, since=m)
    check(added, f"no worker 2 started after TTIN: {tail(s.log(m))}")
    check(set(s.wait_workers(3)) == base | {added}, f"workers after TTIN: {s.workers()}")
    s.wait_for_log(rf"worker 2 \(pid {added}, generation 1\) accepting", since=m)
    m = s.mark()
    s.signal(signal.SIGTTOU)
    s.wait_for_log(r"workers: now 2 in generation 1", since=m)
    check(wait_until(lambda: not alive(added), 3), f"worker 2 (pid {added}) still runs after TTOU")
    check(set(s.wait_workers(2)) == base, f"workers after TTOU: {s.workers()}, expected {base}")
    s.wait_for_log(rf"worker 2 \((?:pid {added}, )?generation 1\) exited with status 0", since=m)
    with ctx.connect(s.addr) as c:
        c.sendall(b"<13>after TTOU\n")
    s.stop()


def failpriv_env(ctx):
    """Build the LD_PRELOAD shim that makes every privilege drop fail; the env to use it."""
    if os.getuid() != 0:
        raise Failure("needs root (the workers drop privileges only when started as root)")
    so = ctx.path("failpriv.so")
    try:
        cc = subprocess.run(["cc", "-shared", "-fPIC", "-o", so, FAILPRIV_SRC],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Failure(f"cannot build {FAILPRIV_SRC}: {e}")
    check(cc.returncode == 0, f"cannot build {FAILPRIV_SRC}: {tail(cc.stdout.decode())}")
    return {"LD_PRELOAD": so}


@case
def fatal_worker(ctx):
    """Workers that cannot drop privileges exit 2, are not respawned, and the master exits 1."""
    env = failpriv_env(ctx)

    s = ctx.server(workers=2, extra='user = "nobody";')
    s.start(foreground=True, env=env, expect_ok=False)
    exited, code = s.wait_exit(5)
    check(exited, f"the master still runs 5 s after every worker failed: {tail(s.log())}")
    log = s.log()
    check(code == 1, f"the master exited with status {code}, expected 1; log: {tail(log)}")
    check(re.search(r"cannot switch to user \"nobody\"", log), f"no privilege error: {tail(log)}")
    check(len(re.findall(r"a fatal error, not respawned", log)) == 2,
          f"expected 2 \"not respawned\" lines: {tail(log)}")
    check("no worker can run; exiting" in log, f"no \"no worker can run\": {tail(log)}")
    n = len(STARTED_RE.findall(log))
    check(n == 2, f"{n} \"worker ... started\" lines, expected exactly 2 (a respawn loop?)")
    check(not os.path.exists(s.pid_file), "the pid file was not removed")

    # Daemonizing, the command itself reports the failure.
    d = ctx.server(name="daemon", workers=2, extra='user = "nobody";')
    rc = d.start(env=env, expect_ok=False)
    check(rc == 1, f"`ingestd -c` exited {rc} although no worker can run")
    d.wait_for_log(r"no worker can run; exiting")
    pids = {int(x) for x in LOGPID_RE.findall(d.log())}
    check(wait_until(lambda: not [p for p in pids if alive(p)], 3),
          f"processes {[p for p in pids if alive(p)]} still running")
    check(len(STARTED_RE.findall(d.log())) == 2, "daemonized: a failing worker was respawned")
    check(not os.path.exists(d.pid_file), "daemonized: the pid file was not removed")


@case
def embedded_default(ctx):
    """No -c and no /etc/ingestd/ingestd.conf: -T shows the embedded default."""
    check(not os.path.exists("/etc/ingestd/ingestd.conf"),
          "/etc/ingestd/ingestd.conf exists, so ingestd reads it instead of the embedded default; "
          "move it away to run this case")
    rc, out, err = ctx.run(["-T"], cwd=ctx.dir)
    check(rc == 0, f"-T exited {rc}: {tail(err)}")
    check(f'listen = "{LOCAL4}:5514"' in out, f"-T output lacks the 5514 listener: {tail(out, 20)}")
    check('pid_file = "ingestd.pid"' in out, f"-T output lacks pid_file: {tail(out, 20)}")
    check("(embedded default)" in out + err, "-T does not say the embedded default is used")


@case
def listen_forms(ctx):
    """Listeners on IPv4, IPv6 and a unix path; bind failure makes start exit 1 naming the address."""
    p6 = free_port(LOCAL6)
    path = ctx.path("ingestd.sock")
    s = ctx.server(workers=2, listeners=[f"{LOCAL4}:{ctx.port}", f"[{LOCAL6}]:{p6}", path])
    s.start()
    check(os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode),
          f"{path} is not a socket while the server runs")
    for i, addr in enumerate([(LOCAL4, ctx.port), (LOCAL6, p6), path]):
        with ctx.connect(addr) as c:
            c.sendall(f"<13>record on l{i}\n".encode())
        s.wait_for_log(rf"l{i} \S+ closed \(closed by peer\): \d+ bytes, 1 records", timeout=3)
    s.stop()
    counted = sum(e["records"] for e in s.exits())
    check(counted == 3, f"the workers counted {counted} records, expected 3")
    check(not os.path.exists(path), f"the unix socket {path} was not removed at exit")

    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ctx.socks.append(busy)
    busy.bind((LOCAL4, 0))
    busy.listen(1)
    bport = busy.getsockname()[1]
    b = ctx.server(name="busy", port=bport)
    rc = b.start(expect_ok=False)
    err = b.last_start_err
    check(rc == 1, f"start on a port already bound exited {rc}")
    check(f"{LOCAL4}:{bport}" in err and "cannot bind" in err,
          f"the bind error does not name the address: {tail(err)}")
    check(not os.path.exists(b.pid_file), "the failed start left its pid file")


@case
def master_death(ctx):
    """kill -9 of the master: workers drain and exit by themselves within shutdown_timeout + 1 s."""
    timeout = 2
    s = ctx.server(workers=2, shutdown_timeout=timeout)
    s.start()
    w = s.wait_workers(2)
    c = ctx.connect(s.addr)
    c.sendall(b"<13>before the master dies\n")
    owner = s.owner(c, among=w)
    check(owner, "the connection was not accepted")
    m = s.mark()
    t0 = time.monotonic()
    os.kill(s.master, signal.SIGKILL)
    check(wait_until(lambda: not alive(s.master), 2), "the master survived kill -9")
    reap(s.master)
    s.wait_for_log(r"draining \(the master is gone\)", since=m, count=2, timeout=2)
    c.sendall(b"<13>after the master died\n")
    check(peer_state(c) == "open", f"the open connection is {peer_state(c)} after the master died")
    budget = timeout + 1 - (time.monotonic() - t0)
    gone = wait_until(lambda: not [p for p in w if alive(p)], max(budget, 0.05))
    took = time.monotonic() - t0
    check(gone, f"workers {[p for p in w if alive(p)]} still running {took:.1f} s after the "
          f"master died (shutdown_timeout {timeout})")
    check(wait_closed(c, 1) in ("eof", "reset"), "the connection is still open after the drain")
    ex = s.exit_of(owner)
    check(ex["records"] == 2, f"the orphaned worker counted {ex['records']} records, expected 2")
    # Nothing is left holding the pid file lock or the port: a new master starts.
    s.start()
    s.stop()


@case
def signal_cli(ctx):
    """-s reload / -s quit with -c and -p; -s with no running master exits 1."""
    s = ctx.server(workers=2)
    rc, out, err = ctx.run(["-c", s.conf, "-p", s.pid_file, "-s", "reload"])
    check(rc == 1, f"-s reload with no master exited {rc}")
    check("no running ingestd" in err, f"-s reload with no master said: {tail(err)}")
    s.start()
    for gen, args in ((2, ["-c", s.conf, "-s", "reload"]),
                      (3, ["-c", s.conf, "-p", s.pid_file, "-s", "reload"])):
        m = s.mark()
        rc, out, err = ctx.run(args)
        check(rc == 0, f"`ingestd {' '.join(args)}` exited {rc}: {tail(err)}")
        s.wait_for_log(rf"reload: generation {gen} accepting", since=m)
    check(wait_until(lambda: {g for _, p, g in s.started() if p in s.workers()} == {3}, 3),
          "old generations still running")
    w = s.wait_workers(2)
    m = s.mark()
    rc, out, err = ctx.run(["-c", s.conf, "-p", s.pid_file, "-s", "quit"])
    check(rc == 0, f"-s quit exited {rc}: {tail(err)}")
    s.wait_for_log(r"graceful shutdown", since=m)
    exited, code = s.wait_exit(5)
    check(exited and code in (0, None), f"after -s quit: exited {exited}, status {code}")
    check(not [p for p in w if alive(p)], "workers outlived -s quit")
    check(not os.path.exists(s.pid_file), "the pid file was not removed")
    rc, out, err = ctx.run(["-c", s.conf, "-p", s.pid_file, "-s", "reload"])
    check(rc == 1, f"-s reload after the master exited returned {rc}")
    with open(s.pid_file, "w") as f:
        f.write(f"{unused_pid()}\n")
    rc, out, err = ctx.run(["-c", s.conf, "-p", s.pid_file, "-s", "reload"])
    check(rc == 1, f"-s reload with a pid file naming a dead pid returned {rc}")


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
def hung_worker_killed(ctx):
    """
    A worker that does not drain (SIGSTOPped) is killed shutdown_timeout + 2 s
    after a reload; on TERM a hung worker is killed and the master still exits
    within 2 s.
    """
    timeout = 1
    s = ctx.server(workers=1, shutdown_timeout=timeout)
    s.start()
    hung = s.wait_workers(1)[0]
    os.kill(hung, signal.SIGSTOP)
    m = s.mark()
    t0 = time.monotonic()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 2 accepting", since=m)
    with ctx.connect(s.addr) as c:
        c.sendall(b"<13>generation 2 accepts while generation 1 hangs\n")
    s.wait_for_log(rf"worker 0 \(pid {hung}\) did not exit in time; killing it", since=m,
                   timeout=timeout + 4)
    took = time.monotonic() - t0
    check(wait_until(lambda: not alive(hung), 2), f"the hung worker {hung} is still alive")
    check(took >= timeout + 2 - 0.3, f"the hung worker was killed after {took:.1f} s, before "
          f"shutdown_timeout + 2 s")
    hung = s.wait_workers(1)[0]
    os.kill(hung, signal.SIGSTOP)
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    exited, code = s.wait_exit(2)
    check(exited, "the master is still running 2 s after TERM with a hung worker")
    check(code in (0, None), f"the master exited with status {code}")
    check(wait_until(lambda: not alive(hung), 1), f"the hung worker {hung} outlived the master")


@case
def respawn_backoff(ctx):
    """A worker that keeps dying is respawned after 100, 200, then 400 ms, not in a tight loop."""
    s = ctx.server(workers=2)
    s.start()
    s.wait_workers(2)
    pid = s.slot_pid(1, 1)
    delays = []
    for _ in range(3):
        m = s.mark()
        os.kill(pid, signal.SIGKILL)
        died = s.wait_for_log(rf"(\S+) ingestd\[\d+\]: \w+: worker 1 \((?:pid {pid}, )?generation 1\) "
                              r"killed by signal 9 \(Killed\) unexpectedly after \d+ ms; "
                              r"respawning in (\d+) ms", since=m, timeout=2)
        born = s.wait_for_log(r"(\S+) ingestd\[\d+\]: \w+: worker 1 started: pid (\d+), generation 1",
                              since=m, timeout=3)
        waited = log_time(born[1]) - log_time(died[1])
        check(waited >= int(died[2]) / 1000 - 0.005,
              f"announced a {died[2]} ms back-off but respawned after {waited * 1000:.0f} ms")
        delays.append(int(died[2]))
        pid = int(born[2])
        s.wait_for_log(rf"worker 1 \(pid {pid}, generation 1\) accepting", since=m, timeout=3)
    check(delays == [100, 200, 400], f"respawn back-off {delays} ms, expected [100, 200, 400]")
    check(len(s.workers()) == 2, f"workers: {s.workers()}")
    s.stop()


@case
def reload_fatal_generation(ctx):
    """A reload whose workers cannot start is given up; generation 1 keeps serving."""
    env = failpriv_env(ctx)
    s = ctx.server(workers=2)
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
def reopen_logs(ctx):
    """USR1 after the log file was moved away: the master and every worker write to a new file."""
    s = ctx.server(workers=2)
    s.start()
    w = s.wait_workers(2)
    rotated = s.log_path + ".1"
    os.rename(s.log_path, rotated)
    s.signal(signal.SIGUSR1)
    check(wait_until(lambda: os.path.exists(s.log_path), 2), "USR1 did not create a new log file")
    with open(rotated) as f:
        check("reopening log files" in f.read(), "the master did not log the reopen")
    size = os.path.getsize(rotated)
    s.stop()
    log = s.log()
    check("graceful shutdown" in log, f"the master's shutdown is not in the new log: {tail(log)}")
    exited = {e["pid"] for e in s.exits()}
    check(exited == set(w), f"exit lines of workers {sorted(exited)} in the new log, expected {w}")
    check(os.path.getsize(rotated) == size, "lines went to the rotated log after the reopen")


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


# ------------------------ found while writing these tests (bugs, regressions)

@case
def signal_stale_pidfile(ctx):
    """-s quit with a stale pid file that names an unrelated live process must not signal it."""
    s = ctx.server(workers=2)
    hit = ctx.path("bystander.signalled")
    # A bystander that records a SIGQUIT instead of dying of it (whatever it inherited).
    bystander = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, sys, time\n"
         "def got(sig, frame):\n"
         "    open(sys.argv[1], 'w').write('SIGQUIT')\n"
         "signal.signal(signal.SIGQUIT, got)\n"
         "print('ready', flush=True)\n"
         "time.sleep(30)\n", hit],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    ctx.procs.append(bystander)
    check(bystander.stdout.readline() == b"ready\n", "the bystander process did not start")
    with open(s.pid_file, "w") as f:
        f.write(f"{bystander.pid}\n")
    rc, out, err = ctx.run(["-c", s.conf, "-s", "quit"])
    signalled = wait_until(lambda: os.path.exists(hit), 0.5)
    check(not signalled, f"`ingestd -s quit` with no ingestd running sent SIGQUIT to pid "
          f"{bystander.pid} (not ingestd) named by a stale pid file (exit {rc}); no master holds "
          "the pid file's lock")
    check(rc == 1, f"-s quit with no ingestd running exited {rc}")


@case
def unix_socket_in_use(ctx):
    """
    A second ingestd (its own pid file) configured on a unix socket that a
    running one serves fails to start, and leaves that socket alone; a stale
    socket file left by a dead process is replaced.
    """
    path = ctx.path("shared.sock")
    a = ctx.server(name="a", workers=1, listeners=[path])
    a.start()
    b = ctx.server(name="b", workers=1, listeners=[path])
    rc = b.start(expect_ok=False)
    check(rc == 1, f"a second server on the unix socket of a running one exited {rc}")
    check("another process is listening on this socket" in b.last_start_err,
          f"the second server said: {tail(b.last_start_err)}")
    check(os.path.exists(path), f"the failed start removed {path}, which the running server "
          "listens on: its clients now get ENOENT")
    with ctx.connect(path) as c:
        c.sendall(b"<13>still reachable\n")
    a.wait_for_log(r"l0 unix closed \(closed by peer\)")
    a.stop()
    check(not os.path.exists(path), f"{path} was not removed at exit")

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()                       # the file stays; nobody listens on it
    a.start()
    with ctx.connect(path) as c:
        c.sendall(b"<13>over a stale socket file\n")
    a.stop()


@case
def daemon_releases_stdio(ctx):
    """`ingestd -c FILE 2>&1 | cat` ends: once the command returns, no daemon process holds its stdio."""
    s = ctx.server(workers=2)
    r, w = os.pipe()
    try:
        p = subprocess.Popen([BINARY, "-c", s.conf], stdin=subprocess.DEVNULL, stdout=w, stderr=w,
                             cwd=ctx.dir, env=server_env(ctx.dir))
        os.close(w)
        w = None
        try:
            rc = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure("`ingestd -c` did not return")
        check(rc == 0, f"`ingestd -c` exited {rc}")
        s.master = read_pid(s.pid_file)
        check(s.master, "no pid file")
        s.wait_workers(2)
        eof = False
        deadline = time.monotonic() + 2
        while not eof and time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                eof = os.read(r, 4096) == b""
        if not eof:
            target = f"pipe:[{os.fstat(r).st_ino}]"
            holders = []
            for pid in [s.master] + s.workers():
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    try:
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                            role = "master" if pid == s.master else "worker"
                            holders.append(f"{role} {pid} fd {fd}")
                    except OSError:
                        pass
            raise Failure("2 s after `ingestd -c` returned, the daemon still holds the caller's "
                          f"stdout/stderr pipe open ({', '.join(holders) or 'unknown holder'}): "
                          "`ingestd -c FILE 2>&1 | cat` never ends")
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
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


# ------------------------------------------------------------------- runner

def run_case(name, fn):
    ctx = Ctx(name)
    t0 = time.monotonic()
    reason = None
    try:
        fn(ctx)
    except Failure as e:
        reason = str(e)
    except Exception as e:      # a bug in the test or an unexpected OS error: still a failure
        where = traceback.extract_tb(e.__traceback__)[-1]
        reason = f"{type(e).__name__}: {e} (run.py:{where.lineno})"
    finally:
        problems = ctx.cleanup()
    if problems:
        reason = "; ".join(([reason] if reason else []) + problems)
    san = ctx.sanitizer_reports()
    if san:
        reason = f"{reason}; {san}" if reason else san
    took = time.monotonic() - t0
    if reason:
        print(f"FAIL {name}: {reason} [{took:.1f}s, kept {ctx.dir}]", flush=True)
        return False
    print(f"ok   {name} ({took:.1f}s)", flush=True)
    shutil.rmtree(ctx.dir, ignore_errors=True)
    return True


def sweep_children():
    """At the end: reap our exited children (orphans we adopted); list the live ones."""
    me = os.getpid()
    kids = set()
    for task in os.listdir(f"/proc/{me}/task"):
        try:
            with open(f"/proc/{me}/task/{task}/children") as f:
                kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    for pid in kids:
        if proc_state(pid) == "Z":
            reap(pid)
    return sorted(p for p in kids if alive(p))


def main(argv):
    names = argv[1:]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown case(s): {' '.join(unknown)}; cases: {' '.join(CASES)}", file=sys.stderr)
        return 2
    selected = names or list(CASES)
    if not os.access(BINARY, os.X_OK):
        for n in selected:
            print(f"FAIL {n}: no executable ingestd at {BINARY} (build it, or set INGESTD)")
        print(f"integration: 0 passed, {len(selected)} failed")
        return 1
    become_subreaper()
    passed = failed = 0
    t0 = time.monotonic()
    for n in selected:
        if run_case(n, CASES[n]):
            passed += 1
        else:
            failed += 1
    leftovers = sweep_children()
    if leftovers:
        print(f"# processes still running after the run: {leftovers}", file=sys.stderr)
    print(f"# {time.monotonic() - t0:.1f}s with {BINARY}", file=sys.stderr)
    print(f"integration: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
