"""
Sockets on loopback: a free TCP or UDP port, what the server did to a
client socket (open, EOF, reset), which worker accepted a connection,
clients bound to the source addresses 127.0.0.2-5, floods of
connections, the kernel's queue of a socket (ss), and HTTP GET for the
stats endpoint.
"""
import collections
import re
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request

from .base import LOCAL4, check
from .proc import fd_targets


LORIS_SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


_GIVEN = set()


def _unused_port(kind, host):
    """A port of kind nothing is bound to right now and this run has not
    handed out before: the kernel may give a just-closed port 0 again, and
    two listeners of one case then get the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        with socket.socket(family, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if (kind, port) not in _GIVEN:
            _GIVEN.add((kind, port))
            return port


def free_port(host=LOCAL4):
    """A TCP port nothing listens on right now and not handed out before."""
    return _unused_port(socket.SOCK_STREAM, host)


def listen_on(port, timeout):
    """A TCP socket listening on LOCAL4:port (SO_REUSEADDR), its accept() waiting timeout s."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOCAL4, port))
    sock.listen(64)
    sock.settimeout(timeout)
    return sock


def free_udp_port(host=LOCAL4):
    """A UDP port nothing is bound to right now (TCP and UDP ports are apart)."""
    return _unused_port(socket.SOCK_DGRAM, host)


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
    """
    ends = []
    for s in socks:
        try:
            ends.append(s.getsockname()[:2])
        except OSError:
            ends.append(None)
    return held_by(ends, server_port, pids)


def _proc_addr(text):
    """("127.0.0.2", 40000) from /proc/net/tcp*'s "0200007F:9C40" (words in host order)."""
    hexaddr, hexport = text.rsplit(":", 1)
    raw = b"".join(struct.pack("=I", int(hexaddr[i:i + 8], 16)) for i in range(0, len(hexaddr), 8))
    if len(raw) == 16 and raw.startswith(b"\0" * 10 + b"\xff\xff"):
        raw = raw[12:]
    host = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
    return host, int(hexport, 16)


def held_by(ends, server_port, pids):
    """
    For each client end (address, port) of ends, the pid among pids that
    holds the server's end of its connection to server_port, or None.  The
    address matters: clients bound to different source addresses may get
    the same port.  One pass over /proc/net/tcp* and the pids' descriptors.
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
                inodes[_proc_addr(f[2])] = f"socket:[{f[9]}]"
    holder = {target: pid for pid in pids for target in fd_targets(pid)}
    return [holder.get(inodes.get(end)) if end else None for end in ends]


def socket_owner(sock, server_port, pids):
    """Which of pids accepted the client socket sock, or None."""
    return accepted_by([sock], server_port, pids)[0]


def peer_of(sock):
    """The "peer" an event from this client socket carries."""
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def tcp_queue(local_port, peer_port):
    """(Recv-Q, skmem rb) of the socket local_port <-> peer_port on loopback, from ss(8)."""
    try:
        p = subprocess.run(["ss", "-tmnH", "state", "established"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = p.stdout.decode(errors="replace")
    m = re.search(rf"^\s*(\d+)\s+\d+\s+\S+:{local_port}\s+\S+:{peer_port}\s*\n\s*skmem:\(r\d+,rb(\d+)",
                  text, re.M)
    return (int(m[1]), int(m[2])) if m else None


def connect_from(ctx, src, addr, timeout=2):
    """A TCP client socket bound to the source address src (closed by the cleanup)."""
    s = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET, socket.SOCK_STREAM)
    ctx.socks.append(s)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(addr)
    return s


def refused_at_once(sock, what, within=1.0):
    """The server closes sock (EOF or RST) within `within` seconds."""
    t0 = time.monotonic()
    st = wait_closed(sock, within + 1)
    took = time.monotonic() - t0
    check(st in ("eof", "reset") and took <= within,
          f"{what}: the connection is {st} {took:.2f} s after it was made, expected refused at once")
    return st


def flood(ctx, addr, sources, n):
    """n connections to addr, from the source addresses in turn, held open (the cleanup closes them)."""
    return [connect_from(ctx, sources[i % len(sources)], addr) for i in range(n)]


def split_states(socks, settle=0.3, server=None, port=None, timeout=10):
    """
    (the sockets the server holds open, a Counter of how the others ended).
    With server: once each socket has ended or is held by one of its
    workers (on port, default server.port), the same twice in a row,
    however long a loaded machine takes (a connection still in the listen
    queue looks open but is not held); without: after settle seconds.
    """
    def states():
        got = [peer_state(c) for c in socks]
        open_ = [c for c, st in zip(socks, got) if st == "open"]
        return got, None not in accepted_by(open_, port or server.port, server.workers())

    if server is None:
        time.sleep(settle)
        got = [peer_state(c) for c in socks]
    else:
        last, deadline = None, time.monotonic() + timeout
        while True:
            got, settled = states()
            if (settled and got == last) or time.monotonic() >= deadline:
                break
            last = got if settled else None
            time.sleep(0.05)
    return ([c for c, st in zip(socks, got) if st == "open"],
            collections.Counter(st for st in got if st != "open"))


def try_connect(addr):
    """A connected socket, or None while nothing listens."""
    try:
        return socket.create_connection(addr, timeout=2)
    except (ConnectionRefusedError, socket.timeout):
        return None


def http_get(port, path, timeout=5):
    """(status, content type, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://{LOCAL4}:{port}{path}", timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode(errors="replace")


def http_get_unix(path, url, timeout=5):
    """(status, body) of GET url from the HTTP server on the unix socket path."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(timeout)
        c.connect(path)
        c.sendall(f"GET {url} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


def prom_values(text):
    """{'name{labels}': value} of a Prometheus text exposition."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values
