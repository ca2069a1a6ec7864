"""
Third-party programs the cases drive: redis-server (and a binary-safe
RESP client), rsyslogd with its modules ($RSYSLOGD, else the copy `make
deps` unpacks under tests/peers), haproxy, promtool ($PROMTOOL, else
tests/peers).  Each is started as a helper process of the case, killed
by pid in its cleanup.
"""
import json
import os
import shutil
import socket
import subprocess

from .base import LOCAL4, ROOT, check, Failure, tail, wait_until
from .net import free_port, try_connect
from .clients import tool
from .events import check_once, read_events, wait_lines


RSYSLOGD = os.environ.get("RSYSLOGD") or os.path.join(ROOT, "tests", "peers", "rsyslog", "usr",
                                                      "sbin", "rsyslogd")


def rsyslog_modules(rsyslogd, module):
    """The directory of rsyslogd's modules that has module (omrelp.so, imptcp.so...), or None."""
    lib = os.path.join(os.path.dirname(os.path.dirname(rsyslogd)), "lib")
    try:
        dirs = [lib] + [os.path.join(lib, x) for x in sorted(os.listdir(lib))]
    except OSError:
        return None
    found = [os.path.join(d, "rsyslog") for d in dirs
             if os.path.isfile(os.path.join(d, "rsyslog", module))]
    return found[0] if found else None


def rsyslog_paths():
    """
    rsyslogd and its module directory: $RSYSLOGD, else the copy `make deps`
    unpacks under tests/peers/rsyslog (Debian's rsyslog conflicts with
    syslog-ng-core, which provides loggen).
    """
    check(os.access(RSYSLOGD, os.X_OK), f"no rsyslogd at {RSYSLOGD} (`make deps` unpacks it)")
    modules = rsyslog_modules(RSYSLOGD, "omrelp.so")
    check(modules, "no rsyslog modules (omrelp.so) under "
          f"{os.path.dirname(os.path.dirname(RSYSLOGD))}/lib")
    return RSYSLOGD, modules


def rsyslog_start(ctx, config):
    """
    rsyslogd -n with config (after a global() naming its work directory),
    its output in rsyslog.out, started as a helper process of the case.
    """
    rsyslogd, modules = rsyslog_paths()
    os.makedirs(ctx.path("rsyslog"), exist_ok=True)
    conf = ctx.path("rsyslog.conf")
    with open(conf, "w") as f:
        f.write(f'global(workDirectory="{ctx.path("rsyslog")}")\n' + config)
    rs = subprocess.Popen([rsyslogd, "-n", "-f", conf, "-i", ctx.path("rsyslog.pid"), "-M",
                           modules], stdin=subprocess.DEVNULL,
                          stdout=open(ctx.path("rsyslog.out"), "wb"), stderr=subprocess.STDOUT)
    ctx.procs.append(rs)
    return rs


def rsyslog_listening(ctx, port):
    """Wait for rsyslogd to listen on port; a socket connected to it."""
    sock = wait_until(lambda: try_connect((LOCAL4, port)), 10, interval=0.05)
    check(sock, f"rsyslogd did not listen on {port}: {tail(open(ctx.path('rsyslog.out')).read())}")
    return sock


def rsyslog_relay(ctx, module, action):
    """
    rsyslogd relaying what it takes over TCP (imtcp, a free port) through
    action (with module loaded, if any), started as a helper of the case:
    (its Popen, a socket connected to its imtcp input).
    """
    port = free_port()
    rs = rsyslog_start(ctx, f"""module(load="imtcp")
{f'module(load="{module}")' if module else ""}
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="fwd")
ruleset(name="fwd") {{
    {action}
}}
""")
    feed = rsyslog_listening(ctx, port)
    ctx.socks.append(feed)
    return rs, feed


def rsyslog_relay_end(rs, s, path, n, what):
    """
    After rsyslog_relay was fed records "c=1 s=0..n-1": wait for the n in
    s's sink file, stop rsyslog and s, and check each arrived once, from
    127.0.0.1 (rsyslog's address, not the feeder's).
    """
    wait_lines([path], n, 20)
    rs.terminate()
    rs.wait(timeout=10)
    s.stop()
    events = read_events(path)
    check_once(events, {(1, q) for q in range(n)}, what)
    peers = {e["peer"].rsplit(":", 1)[0] for e in events}
    check(peers == {"127.0.0.1"}, f"the events' peers are {peers}")


class RedisServer:
    """redis-server on a free loopback port, with an append-only file synced on every write."""

    def __init__(self, ctx):
        self.ctx, self.port = ctx, free_port()
        self.dir = ctx.path("redis")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None

    def start(self):
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        check(os.access(binary, os.X_OK), "no redis-server (`make deps` installs it)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", LOCAL4, "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir,
             "--daemonize", "no"], stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(self.dir, "redis.log"), "ab"), stderr=subprocess.STDOUT)
        self.ctx.procs.append(self.proc)
        up = wait_until(lambda: try_connect((LOCAL4, self.port)), 10, interval=0.05)
        check(up, f"redis-server did not listen on {self.port}")
        up.close()

    def stop(self):
        """Graceful (SIGTERM: the append-only file is complete), by pid."""
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def cli(self, *args):
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        rc, out = tool([cli, "-p", str(self.port), "--json"] + list(args), timeout=60)
        check(rc == 0, f"redis-cli {' '.join(args)}: exit {rc}: {tail(out)}")
        return json.loads(out)

    def events(self, stream):
        """The events (parsed JSON) of a stream, in order."""
        return [json.loads(fields[1]) for _, fields in self.cli("XRANGE", stream, "-", "+")]

    def call(self, *args):
        """One command, binary-safe (redis-cli cannot pass a NUL byte): its reply, in bytes."""
        with socket.create_connection((LOCAL4, self.port), timeout=10) as sock:
            sock.sendall(resp_command(args))
            with sock.makefile("rb") as f:
                return resp_read(f)


def resp_command(args):
    """A command (str or bytes arguments) as a RESP array of bulk strings."""
    args = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def resp_read(f):
    """One RESP2 reply from the file f: bytes, int, None or a list; an error is a Failure."""
    line = f.readline()
    check(line.endswith(b"\r\n"), f"redis: a truncated reply {line!r}")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise Failure(f"redis: {rest.decode(errors='replace')}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if int(rest) < 0 else f.read(int(rest) + 2)[:-2]
    check(kind == b"*", f"redis: an unexpected reply {line!r}")
    return None if int(rest) < 0 else [resp_read(f) for _ in range(int(rest))]


def promtool():
    path = os.environ.get("PROMTOOL") or os.path.join(ROOT, "tests", "peers", "prometheus",
                                                       "usr", "bin", "promtool")
    check(os.access(path, os.X_OK), f"no promtool at {path} (`make deps` unpacks it)")
    return path


def haproxy_binary():
    path = shutil.which("haproxy") or "/usr/sbin/haproxy"
    check(os.access(path, os.X_OK), f"no haproxy at {path} (`make deps` installs it)")
    return path


HAPROXY_TEST_CFG = """\
global
	maxconn 4000
	nbthread 1
defaults
	mode tcp
	timeout connect 1s
	timeout client 30s
	timeout server 30s
	retries 3
	option redispatch 1
frontend syslog
	bind {front}
	default_backend ingestd
backend ingestd
	balance roundrobin
	default-server send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 2
	server a {a}
	server b {b}
"""


def haproxy_two(ctx, front, a, b):
    """
    HAProxy on LOCAL4:front (TCP, send-proxy-v2, health checks every 200 ms)
    in front of the instances on LOCAL4:a and LOCAL4:b, taking connections;
    a helper process of the case.
    """
    cfg = ctx.path("haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(HAPROXY_TEST_CFG.format(front=f"{LOCAL4}:{front}", a=f"{LOCAL4}:{a}",
                                        b=f"{LOCAL4}:{b}"))
    with open(ctx.path("haproxy.out"), "wb") as out:
        hp = subprocess.Popen([haproxy_binary(), "-db", "-f", cfg], stdin=subprocess.DEVNULL,
                              stdout=out, stderr=subprocess.STDOUT)
    ctx.procs.append(hp)
    up = wait_until(lambda: hp.poll() is None and try_connect((LOCAL4, front)), 10)
    check(up, f"haproxy does not accept on {front}: {tail(open(ctx.path('haproxy.out')).read())}")
    up.close()
    return hp
