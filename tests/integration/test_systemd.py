"""
systemd: sd_notify (READY with MAINPID, RELOADING, WATCHDOG, STOPPING,
and the new MAINPID after a binary upgrade) on a datagram socket of the
test's; socket activation ($LISTEN_FDS); and etc/ingestd.service and
etc/ingestd.socket pass systemd-analyze verify.
"""
import os
import re
import shutil
import signal
import socket
import sys
import time

from lib.base import BINARY, LOCAL4, ROOT, case, check, Failure, tail, wait_until
from lib.proc import alive, read_pid
from lib.net import free_port
from lib.server import pipeline_server, start_activated
from lib.events import has_msgs, wait_events
from lib.clients import token, tool


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET: the messages as dicts."""

    def __init__(self, ctx):
        self.path = ctx.path("notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ctx.socks.append(self.sock)
        self.sock.bind(self.path)
        self.got = []

    def wait_for(self, key, value=None, timeout=5):
        """The first message not yet returned with key (= value); earlier ones are passed over."""
        deadline = time.monotonic() + timeout
        while True:
            while self.got:
                msg = self.got.pop(0)
                if key in msg and (value is None or msg[key] == value):
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f"no {key}={value or '*'} on the notify socket within {timeout} s")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            self.got.append(dict(line.split("=", 1) for line in data.splitlines() if "=" in line))


@case
def systemd_notify(ctx):
    """
    With $NOTIFY_SOCKET (a datagram socket of the test's): READY=1 with
    MAINPID once the workers accept; RELOADING=1 with MONOTONIC_USEC and
    READY=1 around a reload, also a failed one; WATCHDOG=1 every half
    $WATCHDOG_USEC; after a binary upgrade READY=1 with the new master's
    MAINPID; STOPPING=1 on shutdown.
    """
    ns = NotifySocket(ctx)
    s = ctx.server(workers=2)
    s.start(env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"})
    msg = ns.wait_for("READY", "1")
    check(msg.get("MAINPID") == str(s.master), f"READY=1 came with {msg}, expected MAINPID="
          f"{s.master}")
    # Half the interval, as the master says it set its timer; and the pings come, again
    # and again (how fast a loaded machine delivers them is not the server's to answer for).
    s.wait_for_log(r"systemd: watchdog every 0\.200 s")
    for _ in range(3):
        ns.wait_for("WATCHDOG", "1", timeout=5)
    before = time.monotonic()
    s.signal(signal.SIGHUP)
    msg = ns.wait_for("RELOADING", "1")
    usec = int(msg.get("MONOTONIC_USEC", 0))
    check(before * 1e6 <= usec <= time.monotonic() * 1e6, f"RELOADING=1 has MONOTONIC_USEC "
          f"{usec}, outside the reload's time {before * 1e6:.0f}..")
    ns.wait_for("READY", "1")
    s.wait_for_log(r"reload: generation 2 accepting")
    s.write_config(text=s.config_text() + "\nbroken = ;\n")
    s.signal(signal.SIGHUP)
    ns.wait_for("RELOADING", "1")
    ns.wait_for("READY", "1")
    s.write_config()
    # A binary upgrade: the new master names itself the main process.
    old = s.master
    rc, _, err = ctx.run(["-c", s.conf, "-s", "upgrade"], timeout=30)
    check(rc == 0, f"-s upgrade exited {rc}: {tail(err)}")
    s.master = read_pid(s.pid_file)
    msg = ns.wait_for("READY", "1")     # the new master inherits $NOTIFY_SOCKET
    check(msg.get("MAINPID") == str(s.master) and s.master != old, f"after the upgrade READY=1 "
          f"came with {msg}, expected MAINPID={s.master} (the old master was {old})")
    ns.wait_for("STOPPING", "1")        # the old master, told to quit
    check(wait_until(lambda: not alive(old), 10), f"the old master {old} did not exit")
    s.signal(signal.SIGQUIT)
    ns.wait_for("STOPPING", "1")
    exited, code = s.wait_exit(5)
    check(exited and code in (0, None), f"the master exited {exited} {code} after QUIT")


@case
def systemd_socket_activation(ctx):
    """
    $LISTEN_FDS/$LISTEN_PID: a TCP and a unix listening socket handed over
    as descriptors 3 and 4 serve the listeners with their addresses (the
    TCP port is held by the handed-over socket, so binding it again would
    fail); a third listener is bound as usual; a handed-over socket no
    listener names is closed with a warning; ingestd does not unlink the
    unix socket it did not create.
    """
    path = ctx.path("events.jsonl")
    tcp = socket.socket()
    ctx.socks.append(tcp)
    tcp.bind((LOCAL4, 0))
    tcp.listen(16)
    unix_path = ctx.path("in.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctx.socks.append(unix)
    unix.bind(unix_path)
    unix.listen(16)
    stray = socket.socket()
    ctx.socks.append(stray)
    stray.bind((LOCAL4, 0))
    stray.listen(1)
    bound_port = free_port()
    tcp_port = tcp.getsockname()[1]
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{tcp_port}"},
                              {"listen": unix_path},
                              {"listen": f"{LOCAL4}:{bound_port}"}],
                        sinks=[{"name": "events", "path": path}], level="info")
    p, log = start_activated(ctx, s.conf, [tcp, unix, stray])
    up = wait_until(lambda: "workers accepting" in log(), 10)
    check(up, f"the activated ingestd did not start: {tail(log())}")
    t = token()
    for i, addr in enumerate([(LOCAL4, tcp_port), unix_path, (LOCAL4, bound_port)]):
        c = ctx.connect(addr)
        c.sendall(f"<13>activated {i} {t}\n".encode())
        c.close()
    wait_events(path, has_msgs(*(f"activated {i} {t}" for i in range(3))),
                what="a record through each listener")
    text = log()
    for want in (r"using the inherited socket \(descriptor 3\)",
                 r"using the inherited socket \(descriptor 4\)",
                 r"inherited socket 127\.0\.0\.1:\d+ \(descriptor 5\) matches no listener; closed"):
        check(re.search(want, text), f"the log does not say /{want}/: {tail(text)}")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
    check(p.returncode == 0, f"the activated ingestd exited {p.returncode}")
    check(os.path.exists(unix_path), "ingestd removed the unix socket systemd created")


@case
def systemd_units(ctx):
    """
    etc/ingestd.service (Type=notify, the binary under test in ExecStart) and
    etc/ingestd.socket pass `systemd-analyze verify` with nothing to say,
    and `systemd-analyze security --offline=true` rates the service's
    exposure 2.0 or less, where systemd-analyze is installed.
    """
    tool_path = shutil.which("systemd-analyze")
    if tool_path is None:
        print("# systemd_units: no systemd-analyze on this machine; not verified",
              file=sys.stderr, flush=True)
        return
    for name in ("ingestd.service", "ingestd.socket"):
        with open(os.path.join(ROOT, "etc", name)) as f:
            text = f.read().replace("/usr/sbin/ingestd", BINARY)
        with open(ctx.path(name), "w") as f:
            f.write(text)
    check("Type=notify" in open(ctx.path("ingestd.service")).read(), "the unit is not Type=notify")
    rc, out = tool([tool_path, "verify", "--man=no", ctx.path("ingestd.service"),
                    ctx.path("ingestd.socket")])
    check(rc == 0 and not out.strip(), f"systemd-analyze verify: exit {rc}: {tail(out, 6)}")
    rc, out = tool([tool_path, "security", "--offline=true", "--no-pager",
                    ctx.path("ingestd.service")])
    m = re.search(r"Overall exposure level for ingestd.service: (\d+\.\d+)", out)
    check(m, f"systemd-analyze security: exit {rc}: {tail(out, 4)}")
    check(float(m.group(1)) <= 2.0, f"exposure {m.group(1)} > 2.0: {tail(out, 30)}")
    print(f"# systemd_units: exposure {m.group(1)}", file=sys.stderr, flush=True)
