"""
The server fixture and a case's context.  Server is one ingestd: its
generated config, its log, its master (daemonized or in the foreground)
and every worker pid it saw, killed by pid in its cleanup.  Ctx is one
case: its temporary directory and port, its servers, client sockets,
helper processes and mounts, all released by cleanup(); and the sanitizer
reports found in its directory.  Also the servers' environment: the
sanitizer options, and the LD_PRELOAD shims of tests/integration
(failpriv.c: every privilege drop fails; slowwrite.c: a slow disk).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from .base import BINARY, HERE, LOCAL4, SANDBOX_MARK, SANITIZER_MARKS, check, Failure, tail, wait_until
from .proc import alive, children, kill_by_pid, nofile_preexec, read_pid, reap
from .net import free_port, socket_owner
from .events import EXIT_RE, LOGPID_RE, STARTED_RE
from .disk import unmount


def server_env(directory, extra=None):
    env = dict(os.environ)
    if "ASAN_OPTIONS" not in os.environ:
        logs = os.path.join(directory, "sanitizer")
        env["ASAN_OPTIONS"] = ("abort_on_error=0:detect_leaks=0:verify_asan_link_order=0:"
                               "log_path=" + logs)
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:log_path=" + logs
    env.update(extra or {})
    return env


class Server:
    """One ingestd: its config, its log, its master and the workers seen."""

    def __init__(self, ctx, name="ingestd", workers=2, shutdown_timeout=2, port=None,
                 listeners=None, accept_mode=None, extra=None, level="debug", sinks=None):
        self.ctx = ctx
        self.port = port or ctx.port
        self.conf = ctx.path(f"{name}.conf")
        self.pid_file = ctx.path(f"{name}.pid")
        self.log_path = ctx.path(f"{name}.log")
        self.err_path = ctx.path(f"{name}.err")
        self.opts = dict(workers=workers, shutdown_timeout=shutdown_timeout,
                         listeners=listeners or [f"{LOCAL4}:{self.port}"],
                         accept_mode=accept_mode, extra=extra, level=level, sinks=sinks)
        self.master = None
        self.proc = None            # the Popen of a foreground master
        self.foreground = False
        self.seen = set()
        self.errfile = None
        self.outfile = None         # a foreground master's stdout, when kept apart
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
        items = []
        for i, a in enumerate(o["listeners"]):
            if isinstance(a, dict):         # {"listen": ..., any other listener setting}
                d = {"name": f"l{i}"}
                if o["accept_mode"]:
                    d["accept_mode"] = o["accept_mode"]
                d.update(a)
                items.append("\t" + conf_group(d))
            else:
                items.append(f'\t{{ name = "l{i}"; listen = "{a}";{mode} }}')
        lines += ["listeners = (", ",\n".join(items), ");"]
        if o["sinks"] is not None:
            lines += ["sinks = (", ",\n".join("\t" + conf_group(d) for d in o["sinks"]), ");"]
        return "\n".join(lines) + "\n"

    def write_config(self, text=None, **changes):
        self.opts.update(changes)
        with open(self.conf, "w") as f:
            f.write(text if text is not None else self.config_text())

    # start and stop

    def start(self, foreground=False, env=None, expect_ok=True, timeout=20, pid_path=None,
              stdout=None, rlimit=None, binary=BINARY):
        """
        Start a master (with -p pid_path if given).  Daemonizing: return the
        command's exit status (it must be 0 when expect_ok).  Foreground:
        return the Popen; its stdout goes to the file named stdout if given
        (or to a pipe, proc.stdout, for subprocess.PIPE, or to an open socket
        or file), else with its stderr to err_path.  rlimit: (soft, hard)
        RLIMIT_NOFILE for the master (see nofile_preexec); None: unchanged.
        binary: the ingestd to run (a copy, for the binary upgrade).
        """
        self.foreground = foreground
        penv = server_env(self.ctx.dir, env)
        args = ["-c", self.conf]
        if pid_path:
            args += ["-p", pid_path]
            self.pid_file = pid_path
        if foreground:
            self.errfile = open(self.err_path, "ab")
            out = self.errfile
            if stdout == subprocess.PIPE or hasattr(stdout, "fileno"):
                out = stdout            # a pipe (proc.stdout), or a socket or file of ours
            elif stdout:
                out = self.outfile = open(stdout, "ab")
            self.proc = subprocess.Popen([binary, "-f"] + args, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=self.errfile,
                                         cwd=self.ctx.dir, env=penv,
                                         preexec_fn=nofile_preexec(rlimit))
            self.master = self.proc.pid
            if expect_ok:
                self.wait_for_log(r"started: \d+ workers accepting", timeout=timeout)
                self.workers()
            return self.proc
        rc, _, err = self.ctx.run(args, env=penv, timeout=timeout, rlimit=rlimit, binary=binary)
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

    def cleanup(self):
        """
        Kill what is left of this server by pid, each only while its
        /proc/PID/cmdline names this server's config; return the pids that
        would not die.
        """
        pids = set(self.seen)
        pids.update(p for _, p, _ in self.started())
        pids.update(int(m[1]) for m in LOGPID_RE.finditer(self.log()))
        if self.master:
            pids.update(children(self.master))
        order = ([self.master] if self.master else []) + sorted(pids - {self.master})
        left = kill_by_pid(order, self.conf)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for pid in order:
            if pid and (self.proc is None or pid != self.proc.pid):
                reap(pid)
        for f in (self.errfile, self.outfile, self.proc and self.proc.stdout):
            if f:
                f.close()
        self.errfile = self.outfile = None
        return left


class Ctx:
    """A case's temporary directory, port, servers, clients and helper processes."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"ingestd-{name[:20]}-")
        self.port = free_port()
        self.servers, self.procs, self.socks = [], [], []
        self.mounts = []            # unmounted by the cleanup, after the servers are gone
        self.sandbox_kills = False  # a case that makes workers break their sandbox says so
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

    def run(self, args, env=None, cwd=None, timeout=15, rlimit=None, binary=BINARY):
        """
        Run ingestd ARGS to completion; (exit status, stdout, stderr), kept in
        files.  rlimit: (soft, hard) RLIMIT_NOFILE for it (see nofile_preexec).
        """
        self.nrun += 1
        out, err = self.path(f"cmd{self.nrun}.out"), self.path(f"cmd{self.nrun}.err")
        with open(out, "wb") as fo, open(err, "wb") as fe:
            try:
                p = subprocess.run([binary] + args, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                   cwd=cwd or self.dir, env=env or server_env(self.dir),
                                   timeout=timeout, preexec_fn=nofile_preexec(rlimit))
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
        for m in reversed(self.mounts):
            problems += unmount(m)
        self.mounts = []
        return problems

    def sanitizer_reports(self):
        """A sanitizer's report, or a worker killed by its sandbox, in the case's files."""
        marks = SANITIZER_MARKS + (() if self.sandbox_kills else (SANDBOX_MARK,))
        for name in sorted(os.listdir(self.dir)):
            path = self.path(name)
            if not os.path.isfile(path) or name.endswith((".conf", ".so", ".jsonl")):
                continue
            with open(path, errors="replace") as f:
                text = f.read()
            for mark in marks:
                i = text.find(mark)
                if i != -1:
                    line = text[text.rfind("\n", 0, i) + 1:].split("\n", 1)[0]
                    what = "sandbox kill" if mark == SANDBOX_MARK else "sanitizer report"
                    return f"{what} in {name}: {line.strip()[:300]}"
        return None


def preload_env(ctx, src, needs_root=None):
    """Build the LD_PRELOAD shim src (a file of tests/integration) for ctx; the env to use it."""
    if needs_root and os.getuid() != 0:
        raise Failure(f"needs root ({needs_root})")
    src = os.path.join(HERE, src)
    so = ctx.path(os.path.basename(src)[:-2] + ".so")
    try:
        cc = subprocess.run(["cc", "-shared", "-fPIC", "-o", so, src, "-ldl"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Failure(f"cannot build {src}: {e}")
    check(cc.returncode == 0, f"cannot build {src}: {tail(cc.stdout.decode())}")
    return {"LD_PRELOAD": so}


def failpriv_env(ctx):
    """The env whose LD_PRELOAD shim makes every privilege drop fail."""
    return preload_env(ctx, "failpriv.c",
                       needs_root="the workers drop privileges only when started as root")


def conf_value(v):
    """A Python value as a libconfig value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[ " + ", ".join(conf_value(x) for x in v) + " ]"
    if isinstance(v, dict):             # a group, such as a listener's tls
        return conf_group(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def conf_group(d):
    return "{ " + " ".join(f"{k} = {conf_value(v)};" for k, v in d.items()) + " }"


def start_activated(ctx, conf, socks):
    """
    ingestd -f -c conf started as systemd does it with socket activation:
    the sockets socks as descriptors 3, 4, ... with $LISTEN_FDS and
    $LISTEN_PID, then closed here (only ingestd holds them).  (its Popen, a
    function that reads its stderr so far).
    """
    fds = [s.fileno() for s in socks]
    n = len(fds)
    # Through descriptors 200 and up, in case the sockets' own numbers are among 3, 4, ...
    park = " ".join(f"{200 + i}<&{fd}" for i, fd in enumerate(fds))
    unpark = " ".join(f"{fd}<&-" for fd in fds)
    place = " ".join(f"{3 + i}<&{200 + i}" for i in range(n))
    unplace = " ".join(f"{200 + i}<&-" for i in range(n))
    script = (f"exec {park} {unpark}; exec {place} {unplace}; "
              f'LISTEN_PID=$$ LISTEN_FDS={n} exec "$0" -f -c "$1"')
    err = open(ctx.path("activated.err"), "wb")
    p = subprocess.Popen(["bash", "-c", script, BINARY, conf], pass_fds=fds,
                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                         env=server_env(ctx.dir))
    ctx.procs.append(p)
    for s in socks:
        s.close()
    return p, lambda: open(ctx.path("activated.err"), errors="replace").read()


def installed_copy(ctx):
    """A copy of the binary under test in the case's directory, as a package would install it."""
    path = ctx.path("sbin", "ingestd")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copy2(BINARY, path)
    return path


def pipeline_server(ctx, listeners, sinks=None, workers=2, **kw):
    """A server whose listeners are dicts of settings (name defaults to lN)."""
    return ctx.server(workers=workers, listeners=listeners, sinks=sinks, **kw)


def nobody_sinks(ctx):
    """
    A file sink in a directory the user nobody may write (the case's own is
    root's, 0700): for servers whose workers run as nobody, since a sink
    directory they cannot write is a configuration error.
    """
    import pwd
    nobody = pwd.getpwnam("nobody")
    os.chmod(ctx.dir, 0o755)
    d = ctx.path("nobody")
    os.makedirs(d, exist_ok=True)
    os.chown(d, nobody.pw_uid, nobody.pw_gid)
    return [{"name": "events", "path": os.path.join(d, "events.jsonl")}]
