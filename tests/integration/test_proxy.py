"""
PROXY protocol.  Listeners with proxy_protocol = true take a PROXY v1 or
v2 header before the client's bytes and record the client it names as
the events' peer: headers in pieces, malformed or cut, their timeouts,
allow applied to the balancer and max_connections_per_ip to the header's
client.  HAProxy (Debian's haproxy, `make deps` installs it) in front of
two instances is the deployment they are for.
"""
import collections
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

from lib.base import LOCAL4, ROOT, case, check, tail, wait_until
from lib.net import (LORIS_SOURCES, connect_from, free_port, peer_of, peer_state, refused_at_once,
                     wait_closed)
from lib.server import pipeline_server
from lib.events import (CS_RE, check_defences, check_once, has_msgs, LineCount, read_events,
                        record_text, wait_events, wait_lines)
from lib.clients import play, token
from lib.relp import RelpClient
from lib.peers import haproxy_binary, haproxy_two


PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v1(src, dst):
    """A PROXY v1 line for (host, port) pairs: TCP4 or TCP6 as the host says."""
    fam = "TCP6" if ":" in src[0] else "TCP4"
    return f"PROXY {fam} {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode()


def proxy_v2(src=None, dst=None, tlv=b""):
    """A PROXY v2 header: the PROXY command for (host, port) pairs, LOCAL without them."""
    if src is None:
        return PROXY_V2_SIG + b"\x20\x00" + struct.pack("!H", len(tlv)) + tlv
    fam = socket.AF_INET6 if ":" in src[0] else socket.AF_INET
    body = (socket.inet_pton(fam, src[0]) + socket.inet_pton(fam, dst[0]) +
            struct.pack("!HH", src[1], dst[1]) + tlv)
    return (PROXY_V2_SIG + (b"\x21\x21" if fam == socket.AF_INET6 else b"\x21\x11") +
            struct.pack("!H", len(body)) + body)


def send_pieces(sock, data, cuts, pause=0.02):
    """data in pieces cut at the offsets cuts, each its own segment (TCP_NODELAY, a pause)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bounds = [0] + sorted(cuts) + [len(data)]
    for a, b in zip(bounds, bounds[1:]):
        if b > a:
            sock.sendall(data[a:b])
            time.sleep(pause)


@case
def proxy_protocol_headers(ctx):
    """
    proxy_protocol = true: v1 TCP4/TCP6 and v2 IPv4/IPv6 (with TLVs)
    headers, sent in pieces, make the header's client the events' peer, on
    plain TCP and RELP; v2 LOCAL and v1 UNKNOWN keep the socket's peer; a
    malformed header, a stream without one, a bad v2 version and a header
    cut by the client's close are framing errors, closed at once.  On a
    listener without proxy_protocol a PROXY line is a record like any other.
    """
    path = ctx.path("events.jsonl")
    plain, relp = free_port(), free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "proxy_protocol": True},
                              {"listen": f"{LOCAL4}:{plain}"},
                              {"listen": f"{LOCAL4}:{relp}", "protocol": "relp",
                               "proxy_protocol": True}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    dst = ("198.51.100.1", 5514)
    good = [  # name, header, cuts, the peer expected (None: the socket's own)
        ("v1-tcp4", proxy_v1(("192.0.2.10", 40000), dst), [1, 6, 20], "192.0.2.10:40000"),
        ("v1-tcp6", proxy_v1(("2001:db8::7", 1), ("2001:db8::1", 2)), [30], "[2001:db8::7]:1"),
        ("v2-ipv4", proxy_v2(("192.0.2.11", 40001), dst), list(range(1, 28)), "192.0.2.11:40001"),
        ("v2-ipv6-tlv", proxy_v2(("2001:db8::8", 2), ("2001:db8::1", 5514),
                                 tlv=b"\x01\x00\x02h2\x04\x00\x00"), [5, 13, 16, 40], "[2001:db8::8]:2"),
        ("v2-local", proxy_v2(), [12], None),
        ("v1-unknown", b"PROXY UNKNOWN\r\n", [7], None),
    ]
    want = {}
    for name, header, cuts, peer in good:
        c = ctx.connect(s.addr)
        first = f"<13>{name} first {t}\n".encode()
        send_pieces(c, header + first, cuts + [len(header) + 3])   # header and record share a piece
        c.sendall(f"<13>{name} second {t}\n".encode())
        want[f"{name} first {t}"] = want[f"{name} second {t}"] = peer or peer_of(c)
    rc = RelpClient(ctx, (LOCAL4, relp))
    send_pieces(rc.sock, proxy_v2(("192.0.2.12", 40002), dst), [3, 15])
    rc.open()
    answers = rc.syslog([f"<13>relp {t}".encode()])
    check(list(answers.values()) == [b"200 OK"], f"RELP after a PROXY header: {answers}")
    rc.close()
    want[f"relp {t}"] = "192.0.2.12:40002"
    # On the listener without proxy_protocol the header is data: one record more.
    pc = ctx.connect((LOCAL4, plain))
    line = proxy_v1(("192.0.2.13", 1), dst)
    pc.sendall(line + f"<13>plain {t}\n".encode())
    want[line.decode().rstrip()] = want[f"plain {t}"] = peer_of(pc)
    bad = [
        ("malformed", proxy_v1(("192.0.2.1", 1), dst).replace(b" 1 ", b" 01 ")),
        ("no header", b"<13>not a PROXY header\n"),
        ("http", b"GET / HTTP/1.0\r\n\r\n"),
        ("v2 version 1", PROXY_V2_SIG + b"\x11\x11\x00\x0c" + b"\x00" * 12),
    ]
    for name, data in bad:
        c = ctx.connect(s.addr)
        c.sendall(data + f"<13>{name} {t}\n".encode())
        refused_at_once(c, name)
    cut = ctx.connect(s.addr)
    cut.sendall(b"PROXY TCP4 192.0.2.")
    time.sleep(0.1)
    cut.shutdown(socket.SHUT_WR)
    check(wait_closed(cut, 2) in ("eof", "reset"), "a header cut by the client's close: the "
          "connection stays open")
    wait_events(path, has_msgs(*want), what="the events after PROXY headers")
    s.wait_for_log(r"l0 127\.0\.0\.1:\d+: closing: (no PROXY header|PROXY v[12] header: |closed "
                   r"inside the PROXY header)")
    s.stop()
    got = {e.get("msg"): e["peer"] for e in read_events(path)}
    check(got == want, f"the sink holds (msg: peer) {got}, expected {want}")
    check_defences(s, 2, framing=len(bad) + 1)


@case
def proxy_protocol_timeouts(ctx):
    """
    record_timeout = 1 on a proxy_protocol listener: a client that sends
    nothing and one that trickles a valid header a byte every 0.3 s are
    closed 1-1.5 s after they connect; one whose header comes at once and
    whose next record takes 0.7 s from 0.6 s on stays open (the record's
    clock starts with the record, not with the header), as does one sending
    a line every 0.5 s for 3 s.
    """
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "proxy_protocol": True,
                               "record_timeout": 1}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    t0 = time.monotonic()                       # before the connects: what took counts from
    socks = {name: ctx.connect(s.addr) for name in ("silent", "trickle", "steady", "late")}
    for sk in socks.values():
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    dst = ("198.51.100.1", 5514)
    trickle = proxy_v1(("192.0.2.20", 1), dst)
    plan = [(0.3 * i, "trickle", trickle[i:i + 1]) for i in range(len(trickle))]
    plan += [(0, "steady", proxy_v1(("192.0.2.21", 2), dst))]
    plan += [(0.5 * q, "steady", f"c=0 s={q} steady {t}\n".encode()) for q in range(7)]
    plan += [(0, "late", proxy_v1(("192.0.2.22", 3), dst)), (0.6, "late", b"c=3 s=0 in"),
             (1.0, "late", b" three"), (1.3, "late", f" pieces {t}\n".encode())]
    closed = play(plan, socks, 3.1, t0=t0)
    for name in ("silent", "trickle"):
        check(name in closed, f"the {name} client is still open after 3 s with record_timeout = 1")
        took = closed[name][1]
        check(0.9 <= took <= 1.6, f"the {name} client was closed ({closed[name][0]}) {took:.2f} s "
              "after it connected, expected 1-1.5 s")
    for name in ("steady", "late"):
        check(name not in closed, f"the {name} client, whose header came at once, was closed "
              f"({closed.get(name)})")
        socks[name].close()
    wait_lines([path], 8, 5)
    s.wait_for_log(r"l0 127\.0\.0\.1:\d+: closing: record_timeout: no complete PROXY header")
    s.stop()
    events = read_events(path)
    check_once(events, {(0, q) for q in range(7)} | {(3, 0)}, "proxy_protocol, record_timeout = 1")
    peers = {e["peer"] for e in events}
    check(peers == {"192.0.2.21:2", "192.0.2.22:3"}, f"the events' peers are {peers}")
    check_defences(s, 2, record=2)


@case
def proxy_protocol_caps(ctx):
    """
    proxy_protocol, allow = [ "127.0.0.1" ], max_connections_per_ip = 2: a
    balancer on 127.0.0.2 is refused at accept whatever its header says;
    the one on 127.0.0.1 holds 8 connections (it is not capped itself), and
    the cap counts the clients in the headers: a third from 192.0.2.50, and
    a third from 2001:db8::/64, are closed once their header is read and
    counted as refused; when one of 192.0.2.50's closes, a new one gets in.
    """
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "proxy_protocol": True,
                               "allow": ["127.0.0.1/32"], "max_connections_per_ip": 2}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    dst = ("198.51.100.1", 5514)
    outsider = connect_from(ctx, "127.0.0.2", s.addr)
    try:
        outsider.sendall(proxy_v1(("127.0.0.1", 1), dst) + b"<13>outsider\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    refused_at_once(outsider, "a balancer that allow does not list")

    def client(host, port):
        c = connect_from(ctx, LOCAL4, s.addr)
        to = ("2001:db8::100", 5514) if ":" in host else dst
        c.sendall(proxy_v1((host, port), to) + f"<13>{host} {port} {t}\n".encode())
        return c

    def msg(host, port):
        return f"{host} {port} {t}"
    held = {(h, p): client(h, p) for h, p in (("192.0.2.50", 1001), ("192.0.2.50", 1002),
                                              ("192.0.2.51", 1003), ("192.0.2.51", 1004),
                                              ("2001:db8::1", 1005), ("2001:db8::ffff:2", 1006))}
    wait_events(path, has_msgs(*(msg(h, p) for h, p in held)), what="the admitted clients' events")
    for key, what in ((("192.0.2.50", 1007), "a third connection for 192.0.2.50"),
                      (("2001:db8::3", 1008), "a third connection for 2001:db8::/64")):
        refused_at_once(client(*key), what)
    for key, c in held.items():
        check(peer_state(c) == "open", f"{key} is {peer_state(c)}, expected open")
    mark = s.mark()
    held.pop(("192.0.2.50", 1001)).close()
    s.wait_for_log(r"l0 192\.0\.2\.50:1001 closed \(closed by peer\)", since=mark)
    again = client("192.0.2.50", 1009)
    wait_events(path, has_msgs(msg("192.0.2.50", 1009)), what="the event of a client let in again")
    check(peer_state(again) == "open", "192.0.2.50's new connection was closed after one of "
          "its two closed")
    s.wait_for_log(r"listener l0: refused (192\.0\.2\.50:1007|\[2001:db8::3\]:1008): "
                   r"max_connections_per_ip")
    s.stop()
    events = read_events(path)
    got = {e["msg"]: e["peer"] for e in events}
    want = {msg(h, p): (f"[{h}]:{p}" if ":" in h else f"{h}:{p}")
            for h, p in list(held) + [("192.0.2.50", 1001), ("192.0.2.50", 1009)]}
    check(got == want, f"the sink holds (msg: peer) {got}, expected {want}")
    check_defences(s, 2, acl=1, per_ip=2)


class ProxiedSender(threading.Thread):
    """
    A client behind the balancer, bound to source address src: one
    connection after another, each sending per_conn records "c=CID s=SEQ"
    in batches of 20, then closing its side and waiting for the server's
    close, until finish().  A batch counts as sent once sendall() began.
    conns: (its own address as "host:port", first seq, records, how it
    ended, start and end times) for each connection.
    """

    def __init__(self, addr, src, cid, per_conn=100, max_seconds=30):
        super().__init__(daemon=True)
        self.addr, self.src, self.cid, self.per_conn = addr, src, cid, per_conn
        self.max_seconds = max_seconds
        self.halt = threading.Event()
        self.sent, self.conns, self.crash = 0, [], None

    @staticmethod
    def text(cid, seq):
        return f"c={cid} s={seq} through the balancer"

    def one(self, sock):
        """Send one connection's records; how it ended."""
        n = 0
        try:
            while n < self.per_conn and not self.halt.is_set():
                k = min(20, self.per_conn - n)
                first = self.sent
                self.sent += k
                n += k
                sock.sendall("".join(self.text(self.cid, first + i) + "\n"
                                     for i in range(k)).encode())
                self.halt.wait(0.004)
            sock.shutdown(socket.SHUT_WR)
            return wait_closed(sock, 10)
        except OSError as e:
            return f"error ({e})"

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self.halt.is_set() and time.monotonic() < deadline:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.settimeout(5)
                    sock.bind((self.src, 0))
                    sock.connect(self.addr)
                except OSError:
                    sock.close()
                    time.sleep(0.05)
                    continue
                t0, first = time.monotonic(), self.sent
                peer = peer_of(sock)
                ended = self.one(sock)
                sock.close()
                self.conns.append((peer, first, self.sent - first, ended, t0, time.monotonic()))
        except Exception as e:      # reported by finish()
            self.crash = e

    def finish(self):
        self.halt.set()
        self.join(20)
        check(not self.is_alive(), f"client {self.cid} did not stop")
        check(self.crash is None, f"client {self.cid} failed: {self.crash!r}")




@case
def haproxy_two_instances(ctx):
    """
    HAProxy (TCP mode, send-proxy-v2, health checks with PROXY headers) in
    front of two ingestd instances, each with its own sink; 8 clients on
    127.0.0.2-5 connect through it, 100 records a connection, one
    connection after another.  1.5 s in, instance a gets a graceful QUIT;
    the clients go on (HAProxy gives their new connections to b) until 4 s.
    Both sinks hold records, no record twice, every event's peer is its
    client's own address, not HAProxy's; whatever was lost was on a
    connection open while a stopped (reported).
    """
    front = free_port()
    ports = {"a": free_port(), "b": free_port()}
    paths = {n: ctx.path(f"events-{n}.jsonl") for n in ports}
    servers = {n: pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ports[n]}", "proxy_protocol": True,
                                         "allow": ["127.0.0.1"]}],
                                  sinks=[{"name": "events", "path": paths[n]}], name=n,
                                  port=ports[n])
               for n in ports}
    for srv in servers.values():
        srv.start()
    hp = haproxy_two(ctx, front, ports["a"], ports["b"])
    for n, srv in servers.items():     # its health checks send LOCAL headers
        srv.wait_for_log(r"PROXY header without a client address \(LOCAL or UNKNOWN\)", timeout=5)
    clients = [ProxiedSender((LOCAL4, front), LORIS_SOURCES[i % 4], cid=i) for i in range(8)]
    t0 = time.monotonic()
    for c in clients:
        c.start()
    time.sleep(1.5)
    quit_at = time.monotonic()
    servers["a"].stop()                 # graceful: it finishes its connections (2 s at most)
    a_gone = time.monotonic()
    time.sleep(max(0, 4 - (time.monotonic() - t0)))
    for c in clients:
        c.finish()
    sent = sum(c.sent for c in clients)
    counts = [LineCount(p) for p in paths.values()]
    wait_until(lambda: sum(lc() for lc in counts) >= sent, 5, interval=0.1)
    servers["b"].stop()
    check(hp.poll() is None, "haproxy exited during the run")
    events = {n: read_events(p) for n, p in paths.items()}
    where = {}                          # (cid, seq) -> (client address, connection start, end)
    for c in clients:
        for peer, first, n, ended, start, end in c.conns:
            for q in range(first, first + n):
                where[(c.cid, q)] = (peer, start, end, ended)
    seen = collections.Counter()
    for n, evs in events.items():
        for ev in evs:
            m = CS_RE.search(record_text(ev))
            check(m and "parse_error" not in ev, f"events-{n}: not a sent record: {json.dumps(ev)[:300]}")
            key = (int(m[1]), int(m[2]))
            check(key in where, f"events-{n}: {key} was never sent")
            check(ev["peer"] == where[key][0], f"events-{n}: {key} has peer {ev['peer']}, but its "
                  f"client's address was {where[key][0]}")
            seen[key] += 1
    dups = [k for k, v in seen.items() if v > 1]
    check(not dups, f"{len(dups)} records written twice, e.g. {dups[:5]}")
    lost = [k for k in where if k not in seen]
    late = [k for k in lost if where[k][2] < quit_at or where[k][1] > a_gone + 1]
    check(not late, f"{len(late)} records lost on connections that were not open while a stopped, "
          f"e.g. {[(k, where[k]) for k in late[:3]]}")
    after = [k for k in where if where[k][1] > a_gone + 1]
    b_keys = {(int(m[1]), int(m[2])) for m in (CS_RE.search(record_text(e)) for e in events["b"])}
    check(after and all(k in b_keys for k in after), f"of {len(after)} records sent on "
          "connections made after a stopped, not all are in b's sink")
    check(events["a"] and events["b"], f"a wrote {len(events['a'])} events, b {len(events['b'])}: "
          "expected both to take part")
    nconns = sum(len(c.conns) for c in clients)
    cut = {(c.cid, cn[0]) for c in clients for cn in c.conns if cn[3] != "eof"}
    print(f"# haproxy_two_instances: {sent} records over {nconns} connections from 4 source "
          f"addresses; a wrote {len(events['a'])} (QUIT at 1.5 s, gone {a_gone - quit_at:.1f} s "
          f"later), b {len(events['b'])}; "
          f"lost {len(lost)}, 0 duplicates, {len(cut)} connections not closed cleanly; every "
          "peer the client's own", file=sys.stderr, flush=True)


@case
def haproxy_example_configs(ctx):
    """
    etc/haproxy/haproxy.cfg passes `haproxy -c`, etc/haproxy/ingestd.conf
    `ingestd -t` (its sinks' directory, /var/lib/ingestd, one of the case's).
    """
    p = subprocess.run([haproxy_binary(), "-c", "-f", os.path.join(ROOT, "etc", "haproxy",
                                                                   "haproxy.cfg")],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    check(p.returncode == 0, f"haproxy -c: exit {p.returncode}: {tail(p.stdout.decode())}")
    # Its sink's directory, /var/lib/ingestd, is the package's: here, one of the case's.
    with open(os.path.join(ROOT, "etc", "haproxy", "ingestd.conf")) as f:
        text = f.read().replace("/var/lib/ingestd", ctx.dir)
    conf = ctx.path("ingestd.conf")
    with open(conf, "w") as f:
        f.write(text)
    rc, _, err = ctx.run(["-t", "-c", conf])
    check(rc == 0, f"ingestd -t -c etc/haproxy/ingestd.conf: exit {rc}: {tail(err)}")
