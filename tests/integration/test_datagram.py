"""
Datagram listeners: UDP (udp://, RFC 5426) and local datagram sockets
(unixgram:, such as /dev/log).  Real senders (logger over UDP and to a
unix socket, Python's SysLogHandler, rsyslog's omfwd over UDP) and raw
datagrams: one record per datagram or per line in it, the sender as the
peer (and its pid, uid and gid on a unix socket), allow/deny for every
datagram, IPv6, truncation, random bytes; exactly once at a pace the
server takes; what the kernel drops when it cannot is counted to the
datagram and logged; nothing is lost across reloads; the socket file's
owner and mode; sockets handed over by systemd.
"""
import logging
import logging.handlers
import os
import pwd
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from lib.base import LOCAL4, LOCAL6, case, check, tail, wait_until
from lib.proc import alive, as_user, children, fd_targets, read_pid
from lib.net import free_port, free_udp_port, http_get, prom_values
from lib.server import installed_copy, pipeline_server, start_activated
from lib.events import check_once, has_msgs, read_events, wait_events, wait_lines
from lib.clients import token
from lib.peers import rsyslog_relay, rsyslog_relay_end


def udp_server(ctx, listeners, workers=2, level="info"):
    """
    A started server with these datagram listeners (dicts of settings), a
    file sink and the stats endpoint: (server, sink path, stats port).
    """
    path = ctx.path("events.jsonl")
    sport = free_port()
    s = pipeline_server(ctx, listeners, sinks=[{"name": "events", "path": path}],
                        workers=workers, level=level,
                        extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
    s.start()
    return s, path, sport


def listener_figure(sport, metric, listener):
    """A listener's figure in /metrics (ingestd_METRIC{listener="NAME"})."""
    v = prom_values(http_get(sport, "/metrics")[2])
    return int(v.get(f'ingestd_{metric}{{listener="{listener}"}}', -1))


def sender(host=LOCAL4, src=None):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    if src:
        s.bind((src, 0))
    return s


def send_windowed(socks, addr, n, sport, listener, window=1000, base=0, during=None):
    """
    n datagrams "c=I s=Q" spread over socks (connection number = the
    socket's index), never more than window ahead of what the server
    received (its datagrams_total): a pace any machine takes, whatever its
    load, so that nothing needs to be dropped.  during(q) runs every
    window datagrams.
    """
    t = token()
    for q in range(n):
        i = q % len(socks)
        socks[i].sendto(f"<13>Dec  5 01:02:03 host app: c={i} s={q // len(socks)} {t}".encode(),
                        addr)
        if (q + 1) % window == 0:
            if during:
                during(q)
            got = lambda: listener_figure(sport, "datagrams_total", listener) >= base + q + 1 - window
            check(wait_until(got, 30, interval=0.01),
                  f"the server received {listener_figure(sport, 'datagrams_total', listener)} of "
                  f"{base + q + 1} datagrams and is not catching up")
    return t


def paced_exactly_once(s, path, sport, port, n, what, during=None):
    """
    n datagrams from 4 sockets at the server's pace (send_windowed), all
    received; then, with the server stopped, each once in the sink: the
    kernel's drops meanwhile.
    """
    socks = [sender() for _ in range(4)]
    send_windowed(socks, (LOCAL4, port), n, sport, "l0", during=during)
    check(wait_until(lambda: listener_figure(sport, "datagrams_total", "l0") == n, 30),
          f"{listener_figure(sport, 'datagrams_total', 'l0')} of {n} datagrams received")
    drops = listener_figure(sport, "datagrams_dropped_total", "l0")
    wait_lines([path], n, 30)
    s.stop()
    check_once(read_events(path), {(i, q) for i in range(4) for q in range(n // 4)}, what)
    return drops


@case
def udp_logger(ctx):
    """
    logger -d over IPv4 and IPv6, into udp:// listeners: one event each,
    with the sender's address and port as its peer, parsed as syslog.
    """
    port, port6 = free_udp_port(), free_udp_port(LOCAL6)
    s, path, _ = udp_server(ctx, [{"listen": f"udp://{LOCAL4}:{port}"},
                                  {"listen": f"udp://[{LOCAL6}]:{port6}"}])
    t = token()
    for host, p, what in ((LOCAL4, port, "v4"), (LOCAL6, port6, "v6")):
        rc = subprocess.run(["logger", "-d", "-n", host, "-P", str(p), "-t", "udptest",
                             f"over {what} {t}"], timeout=10).returncode
        check(rc == 0, f"logger -d to {host}:{p} exited {rc}")
    evs = wait_events(path, has_msgs(f"over v4 {t}", f"over v6 {t}"), what="logger's datagrams")
    by = {e["msg"]: e for e in evs}
    v4, v6 = by[f"over v4 {t}"], by[f"over v6 {t}"]
    check(re.fullmatch(r"127\.0\.0\.1:\d+", v4["peer"]) and v4["listener"] == "l0" and
          v4.get("app") == "udptest" and v4.get("severity") == "notice",
          f"logger's IPv4 datagram became {v4}")
    check(re.fullmatch(r"\[::1\]:\d+", v6["peer"]) and v6["listener"] == "l1",
          f"logger's IPv6 datagram became {v6}")
    s.stop()


@case
def udp_lines_truncation_garbage(ctx):
    """
    A datagram of three LF-separated lines (one ending in CRLF, a trailing
    LF, an empty line) is three records; one longer than max_record (200)
    is cut to 200 bytes and marked truncated; a 100 KiB datagram on a unix
    datagram socket (longer than any UDP datagram) with max_record 1M is
    cut to 64 KiB, where the worker's buffers end, and marked; a datagram of
    random bytes (no LF in them) becomes one valid event; a trailing NUL is
    dropped; the worker lives on and the next datagram arrives.
    """
    port = free_udp_port()
    unix = ctx.path("dgram.sock")
    s, path, sport = udp_server(ctx, [{"listen": f"udp://{LOCAL4}:{port}", "max_record": 200},
                                      {"listen": f"unixgram:{unix}", "max_record": "1M"}])
    pids = s.workers()
    t = token()
    c = sender()
    c.sendto(f"first {t}\nsecond {t}\r\n\nthird {t}\n".encode(), (LOCAL4, port))
    c.sendto(f"long {t} ".encode() + b"x" * 1000, (LOCAL4, port))
    rnd = random.Random(5)
    c.sendto(bytes(rnd.choice([b for b in range(256) if b != 10]) for _ in range(150)),
             (LOCAL4, port))
    u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    u.sendto(f"huge {t} ".encode() + b"y" * (100 << 10), unix)
    c.sendto(f"after {t}\0".encode(), (LOCAL4, port))
    evs = wait_events(path, lambda e: len(e) >= 7, what="the seven records")
    msgs = [e.get("msg", "") for e in evs]
    for want in (f"first {t}", f"second {t}", f"third {t}", f"after {t}"):
        check(msgs.count(want) == 1, f"{want!r} arrived {msgs.count(want)} times: {msgs}")
    check(not any(m == "" for m in msgs), f"an empty line became an event: {msgs}")
    for what, size in (("long", 200), ("huge", 65536)):
        cut = [e for e in evs if e.get("msg", "").startswith(f"{what} {t}")]
        check(len(cut) == 1 and cut[0].get("truncated") is True and len(cut[0]["msg"]) == size,
              f"the {what} datagram became {[(len(e['msg']), e.get('truncated')) for e in cut]}, "
              f"expected one event of {size} bytes, truncated")
    check(len(evs) == 7, f"{len(evs)} events, expected 7: {msgs}")
    check(s.workers() == pids, f"the workers changed from {pids} to {s.workers()}")
    check(listener_figure(sport, "datagrams_total", "l0") == 4,
          "datagrams_total of the UDP listener is not 4")
    v = prom_values(http_get(sport, "/metrics")[2])
    check(v.get("ingestd_records_truncated_total") == 2,
          f"records_truncated_total is {v.get('ingestd_records_truncated_total')}, expected 2")
    s.stop()


@case
def udp_allow_deny(ctx):
    """
    allow = 127.0.0.2/32 on a UDP listener: datagrams from 127.0.0.2 arrive,
    the ones from 127.0.0.3 are dropped, counted in
    datagrams_refused_total and logged (once a second at most).
    """
    port = free_udp_port()
    s, path, sport = udp_server(ctx, [{"listen": f"udp://{LOCAL4}:{port}",
                                       "allow": ["127.0.0.2/32"]}])
    good, bad = sender(src="127.0.0.2"), sender(src="127.0.0.3")
    t = token()
    for i in range(50):
        bad.sendto(f"bad {i} {t}".encode(), (LOCAL4, port))
        good.sendto(f"good {i} {t}".encode(), (LOCAL4, port))
    wait_events(path, has_msgs(*(f"good {i} {t}" for i in range(50))), what="the allowed datagrams")
    check(wait_until(lambda: listener_figure(sport, "datagrams_refused_total", "l0") == 50, 5),
          f"datagrams_refused_total is {listener_figure(sport, 'datagrams_refused_total', 'l0')}, "
          "expected 50")
    s.stop()
    msgs = [e["msg"] for e in read_events(path)]
    check(len(msgs) == 50 and not any(m.startswith("bad") for m in msgs),
          f"{len(msgs)} events; from the denied sender: "
          f"{sum(m.startswith('bad') for m in msgs)}")
    lines = s.grep(r"listener l0: refused a datagram from 127\.0\.0\.3:\d+: allow_deny")
    check(1 <= len(lines) <= 4, f"{len(lines)} lines say a datagram was refused, expected a few "
          "(at most one a second)")


@case
def udp_paced_exactly_once(ctx):
    """
    100,000 datagrams from 4 sockets (so both workers' sockets get some),
    never more than 1,000 ahead of the server: each arrives exactly once
    and the kernel dropped none.
    """
    port = free_udp_port()
    s, path, sport = udp_server(ctx, [{"listen": f"udp://{LOCAL4}:{port}"}])
    n = 100000
    drops = paced_exactly_once(s, path, sport, port, n, "paced UDP datagrams")
    check(drops == 0, f"the kernel dropped {drops} datagrams at a pace the server took")
    print(f"# udp_paced_exactly_once: {n} datagrams, each once, {drops} dropped",
          file=sys.stderr, flush=True)


@case
def udp_flood_drops_counted(ctx):
    """
    recv_buffer = 64K and both workers stopped (SIGSTOP) while 20,000
    datagrams arrive: the kernel keeps what fits and drops the rest; once
    the workers run again, what arrived plus datagrams_dropped_total is
    exactly what was sent, the drops are more than 0, and the master's
    log says how many the kernel dropped.
    """
    port = free_udp_port()
    s, path, sport = udp_server(ctx, [{"listen": f"udp://{LOCAL4}:{port}",
                                       "recv_buffer": "64K"}])
    pids = s.workers()
    n = 20000
    c = sender()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        for q in range(n):
            c.sendto(f"<13>flood: c=0 s={q}".encode(), (LOCAL4, port))
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    got = lambda: (listener_figure(sport, "datagrams_total", "l0") +
                   listener_figure(sport, "datagrams_dropped_total", "l0"))
    check(wait_until(lambda: got() == n, 15),
          f"received + dropped = {got()}, expected the {n} sent")
    received = listener_figure(sport, "datagrams_total", "l0")
    drops = listener_figure(sport, "datagrams_dropped_total", "l0")
    check(drops > 0, "a 64K receive buffer took 20,000 datagrams while the workers were stopped")
    wait_lines([path], received, 10)
    logged = wait_until(lambda: sum(int(m) for m in re.findall(
        r"the kernel dropped (\d+) datagrams", s.log())) == drops, 5)
    s.stop()
    events = read_events(path)
    check(len(events) == received, f"{len(events)} events for {received} datagrams received")
    check_once(events, {(0, int(re.search(r"s=(\d+)", e["msg"])[1])) for e in events},
               "the flood's datagrams that the kernel kept")
    check(logged, f"the log does not add up to the {drops} dropped datagrams: "
          f"{tail(s.log(), 6)}")
    print(f"# udp_flood_drops_counted: {n} sent, {received} received, {drops} dropped by the "
          "kernel (counted and logged)", file=sys.stderr, flush=True)


@case
def udp_reload_under_stream(ctx):
    """
    30,000 datagrams at the server's pace while it reloads 5 times (HUP):
    each arrives exactly once, the kernel dropped none; the sockets are the
    master's, so what they hold when a generation leaves is read by the
    next.
    """
    port = free_udp_port()
    s, path, sport = udp_server(ctx, [{"listen": f"udp://{LOCAL4}:{port}"}])

    def fault(q):
        k = q // 1000
        if k in (4, 8, 12, 16, 20):
            m = s.mark()
            s.signal(signal.SIGHUP)
            s.wait_for_log(r"reload: generation \d+ accepting", since=m, timeout=10)
    drops = paced_exactly_once(s, path, sport, port, 30000, "datagrams across 5 reloads",
                               during=fault)
    check(drops == 0, f"the kernel dropped {drops} datagrams")


@case
def udp_many_lines_per_datagram(ctx):
    """
    64 datagrams of 1,000 lines each (64,000 records, far over what a
    worker routes in one wake-up, so the rest of a batch is held and routed
    at the next turn): every record arrives exactly once.
    """
    port = free_udp_port()
    s, path, sport = udp_server(ctx, [{"listen": f"udp://{LOCAL4}:{port}"}], workers=1)
    c, t = sender(), token()
    for d in range(64):
        c.sendto("".join(f"<13>lines: c={d} s={q} {t}\n" for q in range(1000)).encode(),
                 (LOCAL4, port))
    wait_lines([path], 64000, 30)
    s.stop()
    check_once(read_events(path), {(d, q) for d in range(64) for q in range(1000)},
               "the lines of 64 datagrams")


@case
def udp_backpressure(ctx):
    """
    A forward sink (queue 64K) to an upstream ingestd whose workers are
    stopped: the sink fills, the UDP listener stops reading and the
    datagrams wait in its receive buffer (256M); once the upstream runs
    again, all 60,000 arrive there exactly once and the kernel dropped
    none.
    """
    up_path = ctx.path("upstream.jsonl")
    up = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], name="upstream",
                         sinks=[{"name": "events", "path": up_path}])
    up.start()
    up_pids = up.workers()
    port, sport = free_udp_port(), free_port()
    s = pipeline_server(ctx, [{"listen": f"udp://{LOCAL4}:{port}", "recv_buffer": "256M"}],
                        sinks=[{"name": "up", "type": "forward", "queue": "64K",
                                "upstreams": [f"{LOCAL4}:{ctx.port}"], "payload": "record"}],
                        extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
    s.start()
    for pid in up_pids:
        os.kill(pid, signal.SIGSTOP)
    n, t = 60000, token()
    try:
        socks = [sender() for _ in range(4)]
        pad = "x" * 150
        for q in range(n):
            socks[q % 4].sendto(f"<13>bp: c={q % 4} s={q // 4} {t} {pad}".encode(),
                                (LOCAL4, port))
        last = -1
        while listener_figure(sport, "datagrams_total", "l0") != last:
            last = listener_figure(sport, "datagrams_total", "l0")
            time.sleep(0.5)
        check(last < n, f"the listener read all {n} datagrams while its sink could take none")
    finally:
        for pid in up_pids:
            os.kill(pid, signal.SIGCONT)
    wait_lines([up_path], n, 60)
    drops = listener_figure(sport, "datagrams_dropped_total", "l0")
    s.stop()
    up.stop()
    check_once(read_events(up_path), {(i, q) for i in range(4) for q in range(n // 4)},
               "datagrams held back by a full forward sink")
    check(drops == 0, f"the kernel dropped {drops} datagrams")
    print(f"# udp_backpressure: the listener had read {last} of {n} datagrams when its sink "
          "was full; all arrived once, 0 dropped", file=sys.stderr, flush=True)


@case
def udp_upgrade(ctx):
    """
    A binary upgrade (-s upgrade, run while 20,000 datagrams come at the
    pace the file sink shows, then 4,000 more) hands the UDP sockets and
    the unixgram socket to the new master: every datagram arrives exactly
    once, the old master exits and leaves the unix socket file, which
    still takes datagrams.
    """
    binary = installed_copy(ctx)
    port, dev_log = free_udp_port(), ctx.path("log.sock")
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"udp://{LOCAL4}:{port}"},
                              {"listen": f"unixgram:{dev_log}"}],
                        sinks=[{"name": "events", "path": path}], level="info")
    s.start(binary=binary)
    old = s.master
    result = {}
    upgrade = threading.Thread(target=lambda: result.update(
        zip(("rc", "out", "err"), ctx.run(["-c", s.conf, "-s", "upgrade"], timeout=30,
                                          binary=binary))))
    socks = [sender() for _ in range(4)]
    n, t = 24000, token()
    for q in range(n):
        i = q % 4
        socks[i].sendto(f"<13>up: c={i} s={q // 4} {t}".encode(), (LOCAL4, port))
        if q == 2000:
            upgrade.start()
        if q == 20000:      # the last 4,000 go to the new master's workers alone
            upgrade.join(40)
            check(result.get("rc") == 0, f"-s upgrade: {result}")
            check(wait_until(lambda: not alive(old), 10), f"the old master {old} did not exit")
        if q % 1000 == 999:
            wait_lines([path], q + 1 - 1000, 30)
    s.master = read_pid(s.pid_file)
    u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    u.sendto(f"<13>up: c=9 s=0 {t}".encode(), dev_log)
    wait_lines([path], n + 1, 30)
    s.stop()
    expected = {(i, q) for i in range(4) for q in range(n // 4)} | {(9, 0)}
    check_once(read_events(path), expected, "datagrams across a binary upgrade")


@case
def unixgram_local_senders(ctx):
    """
    A unixgram: listener (as /dev/log would be) with socket_mode 0622 and
    socket_group nogroup: the socket file has that mode and group; logger
    -u --socket-errors=on, Python's SysLogHandler and logger run as nobody
    each deliver, with the sender's pid, uid and gid as the kernel says;
    a unix stream listener gets socket_mode 0600 and socket_user nobody; a
    reload that sets the unixgram socket's mode to 0600 applies it to the
    file, and nobody's logger is then refused.
    """
    dev_log, stream = ctx.path("log.sock"), ctx.path("stream.sock")
    os.chmod(ctx.dir, 0o755)
    s, path, _ = udp_server(ctx, [{"listen": f"unixgram:{dev_log}", "socket_mode": "0622",
                                   "socket_group": "nogroup"},
                                  {"listen": stream, "socket_mode": "0600",
                                   "socket_user": "nobody"}])
    st, st2 = os.stat(dev_log), os.stat(stream)
    nobody = pwd.getpwnam("nobody")
    import grp
    nogroup = grp.getgrnam("nogroup").gr_gid
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o622 and
          st.st_gid == nogroup, f"the unixgram socket is {oct(st.st_mode)} gid {st.st_gid}, "
          f"expected a socket 0622 of group nogroup ({nogroup})")
    check(stat.S_IMODE(st2.st_mode) == 0o600 and st2.st_uid == nobody.pw_uid,
          f"the stream socket is {oct(st2.st_mode)} uid {st2.st_uid}, expected 0600 of nobody")
    t = token()
    p = subprocess.run(["logger", "-u", dev_log, "--socket-errors=on", "-t", "devlog",
                        f"from logger {t}"], timeout=10)
    check(p.returncode == 0, f"logger -u exited {p.returncode}")
    h = logging.handlers.SysLogHandler(address=dev_log)
    log = logging.getLogger(f"ingestd-test-{t}")
    log.addHandler(h)
    log.propagate = False
    log.warning("from python %s", t)
    h.close()
    rc = as_user("nobody", ["logger", "-u", dev_log, "--socket-errors=on", f"from nobody {t}"])
    check(rc == 0, f"logger -u as nobody exited {rc} (the socket's mode lets others write)")
    want = {f"from logger {t}", f"from python {t}", f"from nobody {t}"}
    evs = wait_events(path, lambda e: want <= {x.get("msg", "") for x in e},
                      what="the three local senders' messages")
    by = {e["msg"]: e for e in evs if e.get("msg") in want}
    py = by[f"from python {t}"]
    check(py["peer"] == "unix" and py["listener"] == "l0" and py.get("peer_pid") == os.getpid()
          and py.get("peer_uid") == os.getuid() and py.get("peer_gid") == os.getgid(),
          f"Python's message became {py}, expected peer_pid {os.getpid()}")
    check(by[f"from nobody {t}"].get("peer_uid") == nobody.pw_uid,
          f"the message logger sent as nobody became {by[f'from nobody {t}']}")
    check(by[f"from logger {t}"].get("app") == "devlog" and
          isinstance(by[f"from logger {t}"].get("peer_pid"), int),
          f"logger's message became {by[f'from logger {t}']}")
    m = s.mark()
    s.opts["listeners"][0]["socket_mode"] = "0600"
    s.write_config()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 2 accepting", since=m, timeout=10)
    mode = stat.S_IMODE(os.stat(dev_log).st_mode)
    check(mode == 0o600, f"after a reload to socket_mode 0600 the socket is {oct(mode)}")
    rc = as_user("nobody", ["logger", "-u", dev_log, "--socket-errors=on", f"denied {t}"])
    check(rc != 0, "logger as nobody could still write to a socket of mode 0600")
    s.stop()


@case
def udp_rsyslog_relay(ctx):
    """
    rsyslog as a relay (imtcp in, omfwd with protocol="udp" out) into a
    UDP listener: 2,000 messages, each once, from 127.0.0.1.
    """
    port = free_udp_port()
    s, path, _ = udp_server(ctx, [{"listen": f"udp://{LOCAL4}:{port}"}])
    rs, feed = rsyslog_relay(ctx, None, f'action(type="omfwd" target="127.0.0.1" port="{port}" '
                             'protocol="udp")')
    t, n = token(), 2000
    for q in range(n):
        feed.sendall(f"<13>Nov 24 01:02:03 host relay: c=1 s={q} {t}\n".encode())
        if q % 200 == 199:
            wait_lines([path], q + 1 - 200, 20)     # a pace rsyslog's UDP output keeps
    feed.close()
    rsyslog_relay_end(rs, s, path, n, "rsyslog's relayed messages")


@case
def datagram_socket_activation(ctx):
    """
    $LISTEN_FDS: a bound UDP socket (without SO_REUSEPORT, as systemd's
    ListenDatagram= makes it) and a unix datagram socket handed over as
    descriptors 3 and 4 serve the listeners with their addresses, the UDP
    one held by both workers.
    """
    path = ctx.path("events.jsonl")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((LOCAL4, 0))
    port = udp.getsockname()[1]
    inode = f"socket:[{os.fstat(udp.fileno()).st_ino}]"
    dev_log = ctx.path("log.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unix.bind(dev_log)
    s = pipeline_server(ctx, [{"listen": f"udp://{LOCAL4}:{port}"},
                              {"listen": f"unixgram:{dev_log}"}],
                        sinks=[{"name": "events", "path": path}], level="info")
    p, log = start_activated(ctx, s.conf, [udp, unix])
    check(wait_until(lambda: "workers accepting" in log(), 10),
          f"the activated ingestd did not start: {tail(log())}")
    workers = children(p.pid)
    holders = [w for w in workers if inode in fd_targets(w)]
    check(len(workers) == 2 and holders == workers,
          f"workers {workers}: {holders} hold the handed-over UDP socket, expected both")
    t = token()
    c = sender()
    for i in range(20):
        c.sendto(f"udp {i} {t}".encode(), (LOCAL4, port))
    u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    u.sendto(f"unix {t}".encode(), dev_log)
    wait_events(path, has_msgs(f"unix {t}", *(f"udp {i} {t}" for i in range(20))),
                what="a datagram through each handed-over socket")
    for want in (r"using the inherited socket \(descriptor 3\)",
                 r"using the inherited socket \(descriptor 4\)"):
        check(re.search(want, log()), f"the log does not say /{want}/: {tail(log())}")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
    check(p.returncode == 0, f"the activated ingestd exited {p.returncode}: {tail(log())}")


@case
def datagram_config_checks(ctx):
    """
    -t: RELP or proxy_protocol on a datagram listener is an error naming
    the setting; connection settings on one are valid but said to be
    ignored; -T shows the transport in listen and reuseport for UDP.
    """
    port = free_udp_port()
    base = {"listen": f"udp://{LOCAL4}:{port}"}
    for bad, why in (({"protocol": "relp"}, "RELP needs a stream"),
                     ({"proxy_protocol": True}, "PROXY headers come on streams")):
        s = pipeline_server(ctx, [dict(base, **bad)], name=f"bad{len(why)}")
        rc, _, err = ctx.run(["-t", "-c", s.conf])
        check(rc != 0 and why in err and "listeners[0]." in err,
              f"-t with {bad} on a UDP listener: exit {rc}, {tail(err)}")
    s = pipeline_server(ctx, [dict(base, max_connections=5, idle_timeout=3)], name="warn")
    rc, out, err = ctx.run(["-T", "-c", s.conf])
    check(rc == 0, f"-T exited {rc}: {tail(err)}")
    for what in ("max_connections", "idle_timeout"):
        check(re.search(rf"listeners\[0\]\.{what}: does not apply to a datagram listener", err),
              f"-t does not say that {what} does not apply: {tail(err)}")
    check(f'listen = "udp://{LOCAL4}:{port}";' in out and 'accept_mode = "reuseport";' in out,
          f"-T does not show the UDP listener: {out[:600]}")
