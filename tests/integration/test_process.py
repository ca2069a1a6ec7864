"""
Process model: the master and its workers.  workers = N gives N
processes that accept before `ingestd -c` returns; a killed worker is
respawned in its slot, with a back-off when it keeps dying; QUIT drains
and exits 0, TERM stops within 2 s, a hung worker is killed; the workers
of a killed master drain and exit by themselves; TTIN and TTOU change the
count; workers that cannot start (exit 2) are not respawned and the
master exits 1; the daemon lets go of its caller's stdout and stderr.
"""
import os
import re
import select
import signal
import subprocess
import time

from lib.base import BINARY, case, check, Failure, tail, wait_until
from lib.proc import alive, read_pid, reap
from lib.net import accepted_by, peer_state, wait_closed
from lib.server import failpriv_env, nobody_sinks, server_env
from lib.events import LOGPID_RE, STARTED_RE, log_time


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


@case
def fatal_worker(ctx):
    """Workers that cannot drop privileges exit 2, are not respawned, and the master exits 1."""
    env = failpriv_env(ctx)

    s = ctx.server(workers=2, extra='user = "nobody";', sinks=nobody_sinks(ctx))
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
    d = ctx.server(name="daemon", workers=2, extra='user = "nobody";', sinks=nobody_sinks(ctx))
    rc = d.start(env=env, expect_ok=False)
    check(rc == 1, f"`ingestd -c` exited {rc} although no worker can run")
    d.wait_for_log(r"no worker can run; exiting")
    pids = {int(x) for x in LOGPID_RE.findall(d.log())}
    check(wait_until(lambda: not [p for p in pids if alive(p)], 3),
          f"processes {[p for p in pids if alive(p)]} still running")
    check(len(STARTED_RE.findall(d.log())) == 2, "daemonized: a failing worker was respawned")
    check(not os.path.exists(d.pid_file), "daemonized: the pid file was not removed")


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
