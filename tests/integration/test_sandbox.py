"""
What a worker can still do (SECURITY in ingestd(8)): after its set-up it
has no capabilities, PR_SET_NO_NEW_PRIVS, is not dumpable, holds none of
the master's descriptors, and runs under a seccomp allow-list; a call off
the list kills it, the master names the call and respawns it, and /healthz
answers 503 while no worker runs.  `sandbox = false` lifts the filter.
Every other case runs with the filter on, and fails on a worker killed by
it (lib/server.py's sanitizer_reports).
"""
import os
import pwd
import random
import shutil
import signal
import socket

from lib.base import LOCAL4, case, check, tail, wait_until
from lib.net import free_port, http_get
from lib.proc import alive, fd_targets, read_pid
from lib.server import installed_copy, nobody_sinks, preload_env, server_env
from lib.events import wait_lines

CAP_NET_BIND_SERVICE = 1 << 10

KILLED = r"worker 0 \(pid \d+, generation 1\) killed by its sandbox \(a call to {}, " \
         r"system call \d+, off its seccomp allow-list\) unexpectedly after \d+ ms; respawning"


def status_fields(pid):
    """/proc/PID/status as {field: value}."""
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def privileged_ports(n):
    """n free TCP ports below 1024 on the loopback address."""
    ports = []
    for port in random.sample(range(600, 1024), 424):
        with socket.socket() as t:
            try:
                t.bind((LOCAL4, port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    check(False, "no free ports below 1024")


def forbid_env(ctx, call):
    env = preload_env(ctx, "forbid.c")
    env["INGESTD_FORBID"] = call
    return server_env(ctx.dir, env)


def healthz(port):
    return http_get(port, "/healthz")[0]


def send(s, n, tag):
    with socket.create_connection(s.addr, timeout=5) as c:
        c.sendall("".join(f"<13>{tag} {i}\n" for i in range(n)).encode())


@case
def sandbox_forbidden_call(ctx):
    """
    A worker that calls execve once its loop starts is killed by its filter
    before /bin/true replaces it; the master's log names the call and the
    worker is respawned (and killed again); /healthz answers 503 while no
    worker of the generation runs, and no worker dumps core.
    """
    ctx.sandbox_kills = True
    sport = free_port()
    s = ctx.server(workers=1, level="info", extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
    s.start(env=forbid_env(ctx, "execve"))
    s.wait_for_log(KILLED.format("execve"), timeout=10, count=2)
    check(wait_until(lambda: healthz(sport) == 503, 10),
          f"/healthz did not answer 503 while the worker was being killed: {tail(s.log())}")
    check("core dumped" not in s.log(), f"a worker dumped core: {tail(s.log())}")
    s.stop()


@case
def sandbox_socket_family(ctx):
    """
    socket(AF_PACKET) kills a worker under the filter; with sandbox = false
    the same worker goes on: records arrive and /healthz answers 200.
    """
    ctx.sandbox_kills = True
    sport = free_port()
    stats = f'stats = {{ listen = "{LOCAL4}:{sport}"; }};'
    s = ctx.server(workers=1, level="info", extra=stats)
    s.start(env=forbid_env(ctx, "socket"))
    s.wait_for_log(KILLED.format("socket"), timeout=10)
    s.stop()

    path = ctx.path("off.jsonl")
    off = ctx.server(name="off", workers=1, level="info", extra=stats + " sandbox = false;",
                     sinks=[{"name": "events", "path": path}])
    off.start(env=forbid_env(ctx, "socket"))
    send(off, 100, "off")
    wait_lines([path], 100, 10)
    check(healthz(sport) == 200, "/healthz is not 200 with the worker running")
    check("killed by" not in off.log(), f"a worker was killed: {tail(off.log())}")
    off.stop()


@case
def worker_confinement(ctx):
    """
    A worker (started as root, user nobody) once set up: Seccomp 2 with one
    filter, NoNewPrivs, every capability set empty, not dumpable (its /proc
    files stay root's although it runs as nobody), and none of the master's
    descriptors: one epoll (its own), no timerfd, no pipe of the master's.
    With core_dumps = true it is dumpable again; the rest holds.
    """
    if os.getuid() != 0:
        check(False, "needs root (the workers switch to nobody)")
    nobody = pwd.getpwnam("nobody").pw_uid
    sport = free_port()
    for dumps in (False, True):
        name = "dumps" if dumps else "plain"
        s = ctx.server(name=name, workers=2, level="info", sinks=nobody_sinks(ctx),
                       extra=f'user = "nobody"; core_dumps = {"true" if dumps else "false"}; '
                             f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
        s.start()
        workers = s.wait_workers(2)
        check(healthz(sport) == 200, f"/healthz is not 200 with {workers} running")
        master = s.master
        master_pipes = {t for t in fd_targets(master) if t.startswith("pipe:")}
        for w in workers:
            st = status_fields(w)
            check(st["Seccomp"] == "2" and st.get("Seccomp_filters", "1") == "1",
                  f"worker {w}: Seccomp {st['Seccomp']}")
            check(st["NoNewPrivs"] == "1", f"worker {w}: NoNewPrivs {st['NoNewPrivs']}")
            for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                check(int(st[cap], 16) == 0, f"worker {w}: {cap} {st[cap]}")
            check(int(st["Uid"].split()[0]) == nobody, f"worker {w}: Uid {st['Uid']}")
            owner = os.stat(f"/proc/{w}/status").st_uid
            check(owner == (nobody if dumps else 0),
                  f"worker {w} (core_dumps {dumps}): /proc/{w} is uid {owner}'s")
            fds = fd_targets(w)
            kinds = [t for t in fds if t.startswith("anon_inode:")]
            check(kinds.count("anon_inode:[eventpoll]") == 1 and
                  "anon_inode:[timerfd]" not in kinds, f"worker {w}: {sorted(kinds)}")
            shared = master_pipes & set(fds)
            check(not shared, f"worker {w} holds the master's pipes {shared}")
        s.stop()


@case
def unprivileged_master(ctx):
    """
    The packaged unit's model: the master runs as nobody with one ambient
    capability, CAP_NET_BIND_SERVICE (setpriv here, User= and
    AmbientCapabilities= under systemd), and binds a port below 1024; its
    workers end with no capability at all.  A reload binds a second such
    port; `ingestd -s upgrade` executes the new binary, which keeps the
    capability and binds a third on its own reload.  Records arrive on each.
    """
    setpriv = shutil.which("setpriv")
    check(os.getuid() == 0 and setpriv, "needs root and setpriv (util-linux)")
    nobody = pwd.getpwnam("nobody")
    os.chown(ctx.dir, nobody.pw_uid, nobody.pw_gid)     # its log, pid file and sink
    os.chmod(ctx.dir, 0o755)
    binary = installed_copy(ctx)
    wrapper = ctx.path("sbin", "ingestd-as-nobody")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec {setpriv} --reuid={nobody.pw_uid} --regid={nobody.pw_gid} "
                f"--clear-groups --inh-caps=+net_bind_service "
                f"--ambient-caps=+net_bind_service {binary} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    ports = privileged_ports(3)
    path = ctx.path("events.jsonl")
    s = ctx.server(workers=2, level="info", port=ports[0],
                   listeners=[{"listen": f"{LOCAL4}:{ports[0]}"}],
                   sinks=[{"name": "events", "path": path}])
    s.start(binary=wrapper)
    sent = 0

    def serves(port, tag):
        nonlocal sent
        with socket.create_connection((LOCAL4, port), timeout=5) as c:
            c.sendall("".join(f"<13>{tag} {i}\n" for i in range(10)).encode())
        sent += 10
        wait_lines([path], sent, 10)

    def confined(master):
        st = status_fields(master)
        check(int(st["Uid"].split()[0]) == nobody.pw_uid, f"master {master}: Uid {st['Uid']}")
        for cap in ("CapEff", "CapAmb"):
            check(int(st[cap], 16) == CAP_NET_BIND_SERVICE, f"master {master}: {cap} {st[cap]}")
        for w in s.wait_workers(2):
            st = status_fields(w)
            for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                check(int(st[cap], 16) == 0, f"worker {w}: {cap} {st[cap]}")
            check(st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", f"worker {w}: {st}")

    confined(s.master)
    serves(ports[0], "first")
    for n in (2, 3):                    # each master's first reload: generation 2
        port, gen = ports[n - 1], 2
        s.write_config(listeners=[{"listen": f"{LOCAL4}:{p}"} for p in ports[:n]])
        m = s.mark()
        s.signal(signal.SIGHUP)
        s.wait_for_log(rf"reload: generation {gen} accepting", since=m, timeout=10)
        serves(port, f"generation {gen}")
        if n == 3:
            break
        old = s.master
        rc, _, err = ctx.run(["-c", s.conf, "-s", "upgrade"], timeout=30, binary=binary)
        check(rc == 0 and "upgraded" in err, f"-s upgrade exited {rc}: {tail(err)}")
        s.master = read_pid(s.pid_file)
        check(s.master != old and wait_until(lambda: not alive(old), 10),
              f"the upgrade left masters {old} and {s.master}")
        confined(s.master)
        serves(ports[0], "after the upgrade")
    s.stop()
