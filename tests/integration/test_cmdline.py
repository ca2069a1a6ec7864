"""
The command line and what the master owns on disk: -t, -T, -V, -h and
usage errors (64); -s through the pid file, never signalling a process
that is not ingestd; the pid file (its directories created, -p, stale, a
second master, links planted in its place); listen addresses (IPv4, IPv6,
unix sockets in use or stale, bind failures); the embedded default; the
log in a directory the workers' user may write, never followed through
a link.
"""
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys

from lib.base import LOCAL4, LOCAL6, case, check, Failure, tail, wait_until
from lib.proc import alive, as_user, read_pid, unused_pid
from lib.net import free_port


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
def no_takeover_by_links(ctx):
    """
    The workers' user may not make root write or chown another file through
    a link in a directory it can write.  The log: user = "nobody" and the
    log in a directory nobody owns; nobody moves the log away and puts a
    symbolic link to a root-owned file in its place; USR1 (what logrotate
    sends): the root file keeps its owner, mode and content, and the master
    says why it refused, in the log it keeps writing.  The pid file: a
    symbolic link, or a hard link, planted where it goes: the start fails
    and says why, and the file behind it is untouched.
    """
    if os.geteuid() != 0:
        raise Failure("needs root (the master hands files to the workers' user only as root)")
    nobody = pwd.getpwnam("nobody")
    os.chmod(ctx.dir, 0o755)                    # nobody may reach its directories below
    logdir, rundir = ctx.path("log"), ctx.path("run")
    for d in (logdir, rundir):
        os.mkdir(d)
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
    victim = ctx.path("victim")
    with open(victim, "w") as f:
        f.write("root's own file\n")
    os.chmod(victim, 0o600)

    def untouched(what):
        st = os.lstat(victim)
        with open(victim) as f:
            text = f.read()
        check(st.st_uid == 0 and st.st_gid == 0 and stat.S_IMODE(st.st_mode) == 0o600 and
              text == "root's own file\n",
              f"{what}: the root file is now uid {st.st_uid} gid {st.st_gid} mode "
              f"{stat.S_IMODE(st.st_mode):o}, content {text[:60]!r}")

    s = ctx.server(workers=2, extra='user = "nobody";',
                   sinks=[{"name": "events", "path": os.path.join(logdir, "events.jsonl")}])
    log = os.path.join(logdir, "ingestd.log")
    s.log_path = log
    s.write_config()
    s.start()
    check(os.stat(log).st_uid == nobody.pw_uid, "the log file was not handed to the workers' user")
    rc = as_user("nobody", ["sh", "-c", f"mv {log} {log}.old && ln -s {victim} {log}"])
    check(rc == 0, f"nobody could not replace the log with a link (exit {rc})")
    s.log_path = log + ".old"                   # where the master goes on writing
    m = s.mark()
    s.signal(signal.SIGUSR1)
    refused = r"log .*ingestd\.log: refused: it is a symbolic link"
    s.wait_for_log(r"reopening log files", since=m)
    wait_until(lambda: os.lstat(victim).st_uid != 0 or s.grep(refused, since=m), 5)
    untouched("after USR1")
    s.wait_for_log(refused, since=m)
    s.wait_for_log(r"log .*ingestd\.log: its directory .* belongs to uid %d" % nobody.pw_uid)
    s.stop()
    untouched("after the stop")

    for how in ("symlink", "hard link"):
        pid_file = os.path.join(rundir, f"{how[0]}.pid")
        if how == "symlink":
            rc = as_user("nobody", ["ln", "-s", victim, pid_file])
            check(rc == 0, f"nobody could not plant a link (exit {rc})")
        else:
            os.link(victim, pid_file)           # root's doing: nobody may not link root's files
        d = ctx.server(name=f"pid{how[0]}", port=free_port())
        d.pid_file = pid_file
        d.write_config()
        rc = d.start(expect_ok=False)
        why = "a symbolic link" if how == "symlink" else "other hard links"
        check(rc == 1, f"ingestd started (exit {rc}) with its pid file a {how} to a root file")
        check(re.search(rf"pid file .*: refused: it (is|has) {why}", d.last_start_err),
              f"the start did not say why it refused the pid file ({how}): "
              f"{tail(d.last_start_err)}")
        untouched(f"a pid file that is a {how}")
        os.unlink(pid_file)


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
def sink_directory_checked(ctx):
    """
    -t, the start and a reload refuse a file sink that could never write:
    its directory missing, not a directory, not writable by the workers'
    user (nobody, as root), or a strftime pattern in it; each error names
    the file, the line and the setting.  A reload with such a sink changes
    nothing: the running generation goes on.
    """
    os.chmod(ctx.dir, 0o755)                    # nobody may reach what is below
    rootonly = ctx.path("rootonly")
    os.mkdir(rootonly, 0o755)
    afile = ctx.path("afile")
    open(afile, "w").close()
    cases = [(ctx.path("missing", "e.jsonl"), "", r"directory \S+/missing: No such file"),
             (os.path.join(afile, "e.jsonl"), "", r"\S+/afile is not a directory"),
             (ctx.path("%Y", "e.jsonl"), "", r"a strftime pattern in the directory")]
    if os.geteuid() == 0:
        cases.append((os.path.join(rootonly, "e.jsonl"), 'user = "nobody";',
                      r"directory \S+/rootonly: the workers \(nobody\) may not create files"))
    for path, extra, why in cases:
        s = ctx.server(name=f"s{len(ctx.servers)}", extra=extra,
                       sinks=[{"name": "events", "path": path}])
        line = s.config_text()[:s.config_text().index(path)].count("\n") + 1
        rc, _, err = ctx.run(["-t", "-c", s.conf])
        check(rc == 1 and re.search(rf"{re.escape(s.conf)}:{line}: sinks\[0\]\.path: .*{why}", err),
              f"-t with sink path {path}: exit {rc}, said {tail(err)}; expected 1 and /{why}/")
        rc = s.start(expect_ok=False)
        check(rc == 1 and re.search(why, s.last_start_err),
              f"the start with sink path {path}: exit {rc}, said {tail(s.last_start_err)}")
    # A good one starts; a reload to a bad one fails and changes nothing.
    good = ctx.path("events.jsonl")
    s = ctx.server(name="good", sinks=[{"name": "events", "path": good}])
    s.start()
    m = s.mark()
    s.write_config(sinks=[{"name": "events", "path": ctx.path("missing", "e.jsonl")}])
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload failed: .*sinks\[0\]\.path: directory \S+/missing", since=m)
    check(not s.grep(r"starting generation 2", since=m), "a reload to a missing directory started")
    with socket.create_connection(s.addr, timeout=5) as c:
        c.sendall(b"<13>still the first generation\n")
    check(wait_until(lambda: os.path.exists(good) and b"still the first generation" in
                     open(good, "rb").read(), 5), "generation 1 stopped serving")
    s.stop()
