"""
Binary upgrade (USR2, -s upgrade): the new master takes over the
listening sockets and no connection is refused or reset; the old one
drains, taking what is queued on its reuseport sockets, and exits; a new
binary that cannot start leaves the old master serving.  The binary
under test is copied into the case's directory, as a package installs it.
"""
import collections
import os
import signal
import sys
import time

from lib.base import LOCAL4, case, check, Failure, tail, wait_until
from lib.proc import alive, children, read_pid
from lib.net import free_port, http_get
from lib.server import installed_copy, pipeline_server
from lib.events import has_msgs, read_events, wait_events, wait_lines
from lib.clients import ConnectLoop, token


@case
def upgrade_no_refused(ctx):
    """
    `ingestd -s upgrade` under a client that connects, sends a line and
    closes in a tight loop, on a TCP, a reuseport and a unix listener: no
    connection refused or reset; the new master writes the pid file, the
    old one exits and leaves the unix socket path; the stats endpoint and
    every listener keep working, and every line sent arrives.
    """
    path = ctx.path("events.jsonl")
    binary = installed_copy(ctx)
    sport, rport = free_port(), free_port()
    unix_path = ctx.path("in.sock")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"},
                              {"listen": f"{LOCAL4}:{rport}", "accept_mode": "reuseport"},
                              {"listen": unix_path}],
                        sinks=[{"name": "events", "path": path}], level="info",
                        extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
    s.start(binary=binary)
    old = s.master
    loops = [ConnectLoop(s.addr), ConnectLoop((LOCAL4, rport))]
    for t in loops:
        t.start()
    time.sleep(0.3)
    rc, out, err = ctx.run(["-c", s.conf, "-s", "upgrade"], timeout=30, binary=binary)
    check(rc == 0 and "upgraded" in err, f"-s upgrade exited {rc}: {tail(err)}")
    new = read_pid(s.pid_file)
    check(new and new != old and alive(new), f"the pid file names {new} after the upgrade "
          f"(old master {old})")
    s.master = new
    check(wait_until(lambda: not alive(old), 10), f"the old master {old} did not exit")
    time.sleep(0.3)
    for t in loops:
        t.halt.set()
        t.join(10)
    failures = sum((t.failures for t in loops), collections.Counter())
    ok = sum(t.ok for t in loops)
    print(f"# upgrade_no_refused: {ok} connections across the upgrade, failures "
          f"{dict(failures)}", file=sys.stderr, flush=True)
    check(ok > 100 and not failures, f"{ok} connections, failures {dict(failures)}")
    check(not os.path.exists(s.pid_file + ".oldbin"), "PIDFILE.oldbin left behind")
    check(os.path.exists(unix_path), "the old master removed the unix socket path")
    c = ctx.connect(unix_path)
    t = token()
    c.sendall(f"<13>after the upgrade {t}\n".encode())
    c.close()
    wait_events(path, has_msgs(f"after the upgrade {t}"), what="a record on the unix listener")
    check(http_get(sport, "/metrics")[0] == 200, "the stats endpoint is gone after the upgrade")
    wait_lines([path], ok + 1, 10)
    s.stop()
    check(len(read_events(path)) == ok + 1, "lines lost across the upgrade")


@case
def drain_takes_queued_connections(ctx):
    """
    A draining worker takes the connections queued on its reuseport socket
    and stays until each has ended: here one sent its line and closed, the
    next sends only later.  (Reading each at once, the worker once counted
    the first one's close as its last connection and left under the next.)
    Both workers are stopped while the connections queue up: the new
    master's, which shares the socket after a binary upgrade, and the old,
    which is told to drain first.
    """
    path = ctx.path("events.jsonl")
    binary = installed_copy(ctx)
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "accept_mode": "reuseport"}],
                        sinks=[{"name": "events", "path": path}], level="info", workers=1)
    s.start(binary=binary)
    old, (old_worker,) = s.master, s.workers()
    os.kill(old_worker, signal.SIGSTOP)
    os.kill(old, signal.SIGUSR2)
    new = wait_until(lambda: (lambda p: p if p and p != old and children(p) else None)(
        read_pid(s.pid_file)), 10)
    check(new, "no new master after SIGUSR2")
    s.master = new
    (new_worker,) = s.workers()
    os.kill(new_worker, signal.SIGSTOP)
    try:
        os.kill(old, signal.SIGQUIT)            # the old worker's drain order waits first
        time.sleep(0.2)
        with ctx.connect(s.addr) as a:
            a.sendall(b"<13>first, sent at once\n")
        b = ctx.connect(s.addr)
        time.sleep(0.1)
        os.kill(old_worker, signal.SIGCONT)     # drains, takes both connections
        time.sleep(0.3)
        try:
            b.sendall(b"<13>second, sent later\n")
            b.close()
        except OSError as e:
            raise Failure(f"the draining worker left under a connection it took: {e}")
    finally:
        os.kill(new_worker, signal.SIGCONT)
    wait_events(path, has_msgs("first, sent at once", "second, sent later"),
                what="both lines, through the draining worker")
    check(wait_until(lambda: not alive(old), 10), f"the old master {old} did not exit")


@case
def upgrade_broken_binary(ctx):
    """
    The binary replaced by one that cannot start: `ingestd -s upgrade` fails
    (exit 1), the old master renames its pid file back and keeps serving.
    """
    path = ctx.path("events.jsonl")
    binary = installed_copy(ctx)
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "events", "path": path}], level="info")
    s.start(binary=binary)
    old = s.master
    os.replace(binary, binary + ".good")
    with open(binary, "w") as f:
        f.write("#!/bin/sh\necho 'broken build' >&2\nexit 1\n")
    os.chmod(binary, 0o755)
    rc, out, err = ctx.run(["-c", s.conf, "-s", "upgrade"], timeout=30, binary=binary + ".good")
    check(rc == 1 and "upgrade failed" in err, f"-s upgrade with a broken binary exited {rc}: "
          f"{tail(err)}")
    s.wait_for_log(r"binary upgrade failed: the new master exited before its workers accepted")
    check(read_pid(s.pid_file) == old and not os.path.exists(s.pid_file + ".oldbin"),
          f"the pid file names {read_pid(s.pid_file)}, expected the old master {old}")
    c = ctx.connect(s.addr)
    t = token()
    c.sendall(f"<13>still serving {t}\n".encode())
    c.close()
    wait_events(path, has_msgs(f"still serving {t}"), what="a record after the failed upgrade")
    s.stop()
