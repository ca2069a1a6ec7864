"""
TLS listeners: syslog over TLS (RFC 5425) from openssl s_client, Python's
ssl module, rsyslog (omfwd with the ossl and gtls drivers, omrelp with
TLS) and HAProxy passing TLS through with a PROXY header; mutual TLS and
RFC 5425 authorization (names, wildcards, fingerprints, CRLs), each
refusal counted by reason; the handshake's timeout and the defences
(plain text on a TLS port, TLS on a plain port, records in pieces, a
close_notify inside a record); session resumption across workers; and
certificates replaced by a reload.  Certificates are made by each case
with the openssl command (lib/tls.py).
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

from lib.base import LOCAL4, case, check, tail, wait_until
from lib.clients import token
from lib.events import check_once, has_msgs, read_events, wait_events, wait_lines
from lib.net import free_port, http_get, prom_values
from lib.peers import haproxy_binary, rsyslog_relay, rsyslog_relay_end
from lib.proc import cpu_seconds
from lib.relp import RelpClient, fault_run
from lib.server import nobody_sinks, pipeline_server
from lib.tls import (MemTls, Pki, SERVER_NAME, client_context, client_hello, handshake_result,
                     tls_connect, tls_group)
from test_faults import kills, reloads, upgrade
from test_proxy import proxy_v2


def tls_server(ctx, pki, tls=None, more=None, listeners=None, workers=2, **kw):
    """A server with a TLS listener on ctx.port (tls: its group's settings), stats on a free port."""
    path = ctx.path("events.jsonl")
    sport = free_port()
    first = {"listen": f"{LOCAL4}:{ctx.port}", "tls": tls_group(pki, **(tls or {}))}
    first.update(more or {})
    s = pipeline_server(ctx, [first] + (listeners or []), workers=workers,
                        sinks=[{"name": "events", "path": path}],
                        extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};', **kw)
    s.start()
    return s, path, sport


def metrics(sport):
    return prom_values(http_get(sport, "/metrics")[2])


def failures(sport, listener="l0"):
    """{reason: count} of the listener's failed handshakes, the zeros left out."""
    rx = re.compile(r'ingestd_tls_handshake_failures_total\{listener="%s",reason="(\w+)"\}' %
                    listener)
    return {m[1]: int(v) for k, v in metrics(sport).items() if (m := rx.match(k)) and v}


def closed(sock, timeout=2):
    """Read what the server sends (a TLS alert) until it closes: 'eof', 'reset' or 'open'."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
        return "eof"
    except socket.timeout:
        return "open"
    except ConnectionResetError:
        return "reset"


@case
def tls_clients(ctx):
    """
    A TLS listener takes syslog from openssl s_client (mutual TLS, TLS 1.3),
    octet-counted and LF records from Python (TLS 1.2 and 1.3) and JSON
    lines: every record arrives once, and each event carries the client's
    verified identity (tls_peer, the permitted name that matched), as do
    the connection's log lines.  A session resumes: a client that comes
    back with its ticket skips the full handshake, on either worker.
    """
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    pki.leaf("client", "client.test")
    s, path, sport = tls_server(ctx, pki, tls={"ca_file": pki.path("ca.pem"), "verify": "optional",
                                               "permitted_peers": ["client.test"]})
    t = token()
    p = subprocess.run(["openssl", "s_client", "-connect", f"{LOCAL4}:{ctx.port}", "-CAfile",
                        pki.path("ca.pem"), "-cert", pki.path("client.pem"), "-key",
                        pki.path("client.key"), "-servername", SERVER_NAME, "-verify_hostname",
                        SERVER_NAME, "-verify_return_error", "-tls1_3", "-quiet", "-no_ign_eof"],
                       input=f"<13>Dec  5 03:00:00 host app: s_client {t}\n".encode(),
                       capture_output=True, timeout=20)
    check(p.returncode == 0, f"s_client exited {p.returncode}: {tail(p.stderr.decode())}")
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        c = tls_connect(ctx, client_context(pki, cert="client", version=version))
        msg = f"py {version.name} {t}"
        c.sendall(f"{len(msg) + 4} <13>{msg}".encode() + f"<13>{msg} lf\n".encode() +
                  b'{"msg":"%s json"}\n' % msg.encode())
        c.unwrap()
    anon = tls_connect(ctx, client_context(pki))
    anon.sendall(f"<13>anonymous {t}\n".encode())
    anon.unwrap()
    want = [f"s_client {t}", f"anonymous {t}"] + [f"py {v} {t}{x}" for v in ("TLSv1_2", "TLSv1_3")
                                                  for x in ("", " lf")]
    wait_events(path, has_msgs(*want), what="the records over TLS")
    events = read_events(path)
    got = {e["msg"]: e.get("tls_peer") for e in events if "msg" in e}
    for m in want:
        check(got.get(m) == (None if m.startswith("anonymous") else "client.test"),
              f"{m!r}: tls_peer {got.get(m)!r}")
    bodies = [e for e in events if "body" in e]
    check(len(bodies) == 2 and all(e["tls_peer"] == "client.test" for e in bodies),
          f"the JSON records' events: {bodies}")
    check(len(events) == len(want) + 2, f"{len(events)} events for {len(want) + 2} records")
    s.wait_for_log(r"l0 127\.0\.0\.1:\d+ \[client\.test\]: TLS handshake done")
    # Resumption: a ticket from one connection, used by the next ones.
    context = client_context(pki, cert="client")
    first = tls_connect(ctx, context)
    first.settimeout(0.5)
    try:
        first.recv(1)           # the ticket comes after the handshake
    except socket.timeout:
        pass
    session = first.session
    first.close()
    reused = 0
    for i in range(8):
        c = tls_connect(ctx, context, session=session)
        c.sendall(f"<13>resumed {i} {t}\n".encode())
        reused += c.session_reused
        c.unwrap()
    check(reused == 8, f"{reused} of 8 connections resumed the session")
    wait_events(path, has_msgs(*[f"resumed {i} {t}" for i in range(8)]),
                what="the records of resumed sessions")
    check(all(e.get("tls_peer") == "client.test" for e in read_events(path)
              if "resumed" in e.get("msg", "")), "a resumed session's events lack tls_peer")
    workers = {m[1] for m in re.finditer(r"worker (\d) \(generation 1\): l0 \S+ \[client\.test\]: "
                                          r"TLS handshake done \(resumed\)", s.log())}
    check(len(workers) == 2, f"sessions resumed on workers {workers}, expected both")
    resumed = metrics(sport)['ingestd_tls_resumed_total{listener="l0"}']
    check(resumed == 8, f"ingestd_tls_resumed_total is {resumed}, expected 8")
    s.stop()


@case
def tls_authorization(ctx):
    """
    RFC 5425 authorization with verify = "required": a client certificate
    signed by the CA and named in permitted_peers (by name, by a "*."
    wildcard, by its SHA-256 or SHA-1 fingerprint, the last ones also
    self-signed) is admitted, with that name or fingerprint as tls_peer;
    no certificate, one from another CA, a wrong name, two labels under a
    wildcard, a revoked one (crl_file) and an expired one are refused,
    each counted in /metrics under its reason.  verify = "optional" admits
    a client without a certificate and refuses a bad one; verify = "none"
    asks for none.
    """
    pki = Pki(ctx)
    pki.make_ca("other")
    pki.leaf("server", SERVER_NAME)
    pki.leaf("good", "client.test")
    pki.leaf("wild", "a.dept.test")
    pki.leaf("deep", "a.b.dept.test")
    pki.leaf("wrong", "wrong.test")
    pki.leaf("stranger", "client.test", ca="other")
    pki.leaf("gone", "client.test")
    pki.leaf("old", "client.test", expired=True)
    pki.self_signed("pinned", "pinned.test")
    pki.self_signed("pinned1", "pinned1.test")
    pki.revoke("gone")
    crl = pki.crl()
    sha256, sha1 = pki.fingerprint("pinned"), pki.fingerprint("pinned1", "sha1")
    sha1_colons = "SHA1:" + ":".join(sha1[5:][i:i + 2].upper() for i in range(0, 40, 2))
    optional, none = free_port(), free_port()
    common = {"ca_file": pki.path("ca.pem"), "crl_file": crl,
              "permitted_peers": ["client.test", "*.dept.test", sha256, sha1_colons]}
    s, path, sport = tls_server(ctx, pki, tls=dict(common, verify="required"), listeners=[
        {"listen": f"{LOCAL4}:{optional}", "tls": tls_group(pki, verify="optional", **common)},
        {"listen": f"{LOCAL4}:{none}", "tls": tls_group(pki)}])
    t = token()
    cases = [  # port, client certificate, admitted tls_peer or the refusal's reason
        (ctx.port, "good", "client.test"), (ctx.port, "wild", "*.dept.test"),
        (ctx.port, "pinned", sha256), (ctx.port, "pinned1", sha1),
        (ctx.port, None, "no_certificate"), (ctx.port, "stranger", "untrusted"),
        (ctx.port, "wrong", "not_permitted"), (ctx.port, "deep", "not_permitted"),
        (ctx.port, "gone", "revoked"), (ctx.port, "old", "expired"),
        (optional, None, None), (optional, "good", "client.test"),
        (optional, "stranger", "untrusted"), (none, "stranger", None), (none, None, None),
    ]
    admitted, refused = {}, {}
    for port, cert, outcome in cases:
        msg = f"{port} {cert} {t}"
        # The server's side is the oracle: with TLS 1.3 a client may finish
        # before the server has judged its certificate.
        handshake_result(ctx, client_context(pki, cert=cert), f"<13>{msg}\n".encode(), port)
        if outcome in ("no_certificate", "untrusted", "not_permitted", "revoked", "expired"):
            key = ("l0" if port == ctx.port else "l1", outcome)
            refused[key] = refused.get(key, 0) + 1
        else:
            admitted[msg] = outcome
    wait_events(path, has_msgs(*admitted), what="the admitted clients' records")
    check(wait_until(lambda: s.grep(r"closed \(") and len(s.grep(r"closed \(")) == len(cases), 5),
          f"{len(s.grep(r'closed [(]'))} of {len(cases)} connections closed")
    got = {e["msg"]: e.get("tls_peer") for e in read_events(path)}
    check(got == admitted, f"events (msg: tls_peer) {got}, expected {admitted}")
    want = {}
    for (listener, reason), n in refused.items():
        want.setdefault(listener, {})[reason] = n
    for listener in ("l0", "l1"):
        f = wait_until(lambda: failures(sport, listener) == want[listener] and
                       failures(sport, listener), 5)
        check(f, f"{listener}: failures {failures(sport, listener)}, expected {want[listener]}")
    s.wait_for_log(r"l0 127\.0\.0\.1:\d+: TLS handshake failed \(revoked\): certificate: "
                   r"certificate revoked")
    s.stop()


@case
def tls_defences(ctx):
    """
    handshake_timeout = 1: a client that connects and sends nothing, and
    one that stops after half a ClientHello, are closed about a second
    later and counted (handshake_timeout).  Plain-text syslog on the TLS
    port and garbage in a handshake record are refused at once (not_tls,
    protocol), and a TLS client on a plain listener is closed with a word
    saying so.  A record whose TLS bytes come one at a time over two
    seconds arrives whole without the worker spinning; a close_notify
    inside a record is logged and counted (ingestd_tls_truncated_total),
    and the part before it is delivered, as at a plain EOF.
    """
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    plain = free_port()
    s, path, sport = tls_server(ctx, pki, tls={"handshake_timeout": 1},
                                listeners=[{"listen": f"{LOCAL4}:{plain}"}], workers=1)
    t = token()
    context = client_context(pki)
    silent = ctx.connect(s.addr)
    half = MemTls(ctx, context)
    hello = half.hello()
    half.sock.sendall(hello[:len(hello) // 2])
    t0 = time.monotonic()
    text = ctx.connect(s.addr)
    text.sendall(b"<13>plain text on a TLS port\n")
    check(closed(text) != "open", "plain text on the TLS port: still open")
    garbage = ctx.connect(s.addr)
    garbage.sendall(b"\x16\x03\x01\x00\x05hello, not a ClientHello")
    check(closed(garbage) != "open", "garbage in a handshake record: still open")
    wrong = socket.create_connection((LOCAL4, plain), timeout=5)
    ctx.socks.append(wrong)
    try:
        context.wrap_socket(wrong, server_hostname=SERVER_NAME)
        check(False, "a TLS handshake with a plain listener succeeded")
    except (ssl.SSLError, OSError):
        pass
    for c, what in ((silent, "a silent client"), (half.sock, "half a ClientHello")):
        check(closed(c, 4) != "open", f"{what}: open 4 s after connecting")
    elapsed = time.monotonic() - t0
    check(elapsed >= 0.9, f"the stalled handshakes were closed after {elapsed:.2f} s, "
          "before handshake_timeout")
    # A record in pieces: one byte every 20 ms.
    worker = s.workers()[0]
    cpu0 = cpu_seconds(worker)
    slow = MemTls(ctx, context)
    slow.handshake()
    record = slow.seal(f"<13>byte by byte {t}\n".encode())
    for i in range(len(record)):
        slow.sock.sendall(record[i:i + 1])
        time.sleep(2.0 / len(record))
    wait_events(path, has_msgs(f"byte by byte {t}"), what="the record sent byte by byte")
    burnt = cpu_seconds(worker) - cpu0
    # A worker that spun on the partial records would burn about the 2 s they took.
    check(burnt < 0.5, f"the worker used {burnt:.2f} s of CPU for one record in pieces")
    cut = MemTls(ctx, context)
    cut.handshake()
    cut.sock.sendall(cut.seal(f"<13>cut short {t}".encode()) + cut.close_notify())
    wait_events(path, has_msgs(f"cut short {t}"), what="the record before the close_notify")
    s.wait_for_log(r"l0 127\.0\.0\.1:\d+: TLS close_notify inside a record")
    s.wait_for_log(r"l1 127\.0\.0\.1:\d+: closing: a TLS handshake on a listener without tls")
    s.wait_for_log(r"TLS handshake failed \(not_tls\): not TLS \(plain-text syslog\?\)")
    v = metrics(sport)
    check(v['ingestd_tls_truncated_total{listener="l0"}'] == 1, "ingestd_tls_truncated_total")
    f = failures(sport)
    check(f.get("handshake_timeout") == 2 and f.get("not_tls") == 1 and
          f.get("protocol", 0) + f.get("not_tls", 0) == 2, f"failures by reason: {f}")
    s.stop()


@case
def tls_after_proxy_header(ctx):
    """
    proxy_protocol and tls on one listener: a PROXY v2 header and the
    ClientHello in one segment, and HAProxy passing TLS through with
    send-proxy-v2: the handshake reads what followed the header, the
    events' peer is the client the header names, and tls_peer is its
    certificate's subject (no permitted_peers: no name matched).
    """
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    pki.leaf("client", "client.test")
    s, path, sport = tls_server(ctx, pki, tls={"ca_file": pki.path("ca.pem"), "verify": "required"},
                                more={"proxy_protocol": True})
    t = token()
    context = client_context(pki, cert="client")
    m = MemTls(ctx, context)
    m.handshake(first=proxy_v2(("192.0.2.20", 40020), ("198.51.100.1", 6514)))
    m.sock.sendall(m.seal(f"<13>after the header {t}\n".encode()) + m.close_notify())
    hp = free_port()
    with open(ctx.path("haproxy.cfg"), "w") as f:
        f.write(f"""global
    maxconn 100
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend in
    bind {LOCAL4}:{hp}
    default_backend out
backend out
    server ingestd {LOCAL4}:{ctx.port} send-proxy-v2
""")
    ha = subprocess.Popen([haproxy_binary(), "-db", "-f", ctx.path("haproxy.cfg")],
                          stdout=open(ctx.path("haproxy.out"), "wb"), stderr=subprocess.STDOUT)
    ctx.procs.append(ha)
    c = wait_until(lambda: _try_tls(ctx, context, hp), 10, interval=0.1)
    check(c, f"no TLS through haproxy: {tail(open(ctx.path('haproxy.out')).read())}")
    c.sendall(f"<13>through haproxy {t}\n".encode())
    client = "%s:%d" % c.getsockname()[:2]
    c.unwrap()
    wait_events(path, has_msgs(f"after the header {t}", f"through haproxy {t}"),
                what="the records after PROXY headers")
    got = {e["msg"]: (e["peer"], e.get("tls_peer")) for e in read_events(path)}
    want = {f"after the header {t}": ("192.0.2.20:40020", "CN=client.test"),
            f"through haproxy {t}": (client, "CN=client.test")}
    check(got == want, f"events (msg: peer, tls_peer) {got}, expected {want}")
    s.stop()


def _try_tls(ctx, context, port):
    try:
        return tls_connect(ctx, context, port=port, timeout=2)
    except (OSError, ssl.SSLError):
        return None


class Reconnector(threading.Thread):
    """A client that connects, handshakes, sends one record and closes, again and again."""

    def __init__(self, ctx, pki, max_seconds=30):
        super().__init__(daemon=True)
        self.ctx, self.context = ctx, client_context(pki)
        self.deadline = time.monotonic() + max_seconds
        self.stop, self.sent, self.errors, self.certs = False, [], [], set()

    def run(self):
        i = 0
        while not self.stop and time.monotonic() < self.deadline:
            msg = f"reconnect {i}"
            try:
                c = tls_connect(self.ctx, self.context)
                self.certs.add(c.getpeercert(binary_form=True))
                c.sendall(f"<13>{msg}\n".encode())
                c.unwrap()
                c.close()
                self.sent.append(msg)
            except (OSError, ssl.SSLError) as e:
                self.errors.append(f"{msg}: {e}")
            i += 1


@case
def tls_certificate_reload(ctx):
    """
    Workers as nobody, the key readable by root only: the master reads it.
    A certificate replaced on disk, then HUP, under a client that reconnects
    in a loop: no connection is refused or reset, every record arrives, and
    connections after the reload get the new certificate; a connection open
    across the reload goes on, then ends with the old generation's drain,
    gracefully (no reset).  A reload with a key that does not match, a
    missing key or an expired certificate keeps the running generation and
    its certificate, and the log names the file and the reason.  -t warns
    about a certificate that expires within 30 days.
    """
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    pki.leaf("old", SERVER_NAME, expired=True)
    sinks = nobody_sinks(ctx)
    path = sinks[0]["path"]
    for name in ("server.key", "old.key"):
        os.chmod(pki.path(name), 0o600)
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "tls": tls_group(pki)}],
                        sinks=sinks, extra='user = "nobody";')
    s.start()
    check(all(os.stat(f"/proc/{w}").st_uid != 0 for w in s.workers()), "workers run as root")
    old = open(pki.path("server.pem"), "rb").read()
    held = tls_connect(ctx, client_context(pki))
    held.sendall(b"<13>held before the reload\n")
    loop = Reconnector(ctx, pki)
    loop.start()
    wait_until(lambda: len(loop.sent) >= 20, 10)
    pki.leaf("server2", SERVER_NAME)
    shutil.copy(pki.path("server2.pem"), pki.path("server.pem"))
    shutil.copy(pki.path("server2.key"), pki.path("server.key"))
    mark = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"reload: generation 2", since=mark, timeout=10)
    held.sendall(b"<13>held after the reload\n")
    check(closed(held, 10) == "eof", "the connection open across the reload was not closed "
          "gracefully by the old generation's drain")
    n = len(loop.sent)
    wait_until(lambda: len(loop.sent) >= n + 40, 15)
    # A key that does not match: the reload fails, generation 2 goes on.
    pki.leaf("server3", SERVER_NAME)
    shutil.copy(pki.path("server3.key"), pki.path("server.key"))
    mark = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"key \S+/server\.key does not match certificate \S+/server\.pem", since=mark)
    n = len(loop.sent)
    wait_until(lambda: len(loop.sent) >= n + 20, 15)
    os.unlink(pki.path("server.key"))
    mark = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"key \S+/server\.key: No such file or directory", since=mark)
    n = len(loop.sent)
    wait_until(lambda: len(loop.sent) >= n + 20, 15)
    shutil.copy(pki.path("old.pem"), pki.path("server.pem"))
    shutil.copy(pki.path("old.key"), pki.path("server.key"))
    mark = s.mark()
    s.signal(signal.SIGHUP)
    s.wait_for_log(r"certificate \S+/server\.pem has expired", since=mark)
    n = len(loop.sent)
    wait_until(lambda: len(loop.sent) >= n + 20, 15)
    loop.stop = True
    loop.join(10)
    check(not loop.errors, f"{len(loop.errors)} failed connections: {loop.errors[:3]}")
    new = ssl.PEM_cert_to_DER_cert(open(pki.path("server2.pem")).read())
    check(loop.certs == {ssl.PEM_cert_to_DER_cert(old.decode()), new},
          f"the clients saw {len(loop.certs)} certificates, expected the old and the new")
    held_msgs = ["held before the reload", "held after the reload"]
    wait_events(path, has_msgs(*loop.sent, *held_msgs), timeout=10,
                what="every reconnecting client's record, and the held connection's")
    check(len(read_events(path)) == len(loop.sent) + 2, "records twice")
    check(s.grep(r"reload: starting generation 3") == [], "a failed reload started a generation")
    s.stop()
    shutil.copy(pki.path("server2.pem"), pki.path("server.pem"))
    shutil.copy(pki.path("server2.key"), pki.path("server.key"))
    rc, _, err = ctx.run(["-t", "-c", s.conf])
    check(rc == 0 and re.search(r"certificate \S+/server\.pem expires in [12] days", err),
          f"-t on a certificate expiring in 2 days: exit {rc}, {tail(err)}")


@case
def tls_relp(ctx):
    """
    RELP over TLS: a RELP listener with a tls group answers every record
    of a client that speaks RELP inside TLS, and the events carry tls_peer.
    """
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    pki.leaf("client", "client.test")
    s, path, sport = tls_server(ctx, pki, tls={"ca_file": pki.path("ca.pem"), "verify": "required",
                                               "permitted_peers": ["client.test"]},
                                more={"protocol": "relp"})
    t = token()
    rc = RelpClient(ctx, s.addr)
    rc.sock = client_context(pki, cert="client").wrap_socket(rc.sock, server_hostname=SERVER_NAME)
    ctx.socks.append(rc.sock)
    rc.open()
    records = [f"<13>relp {i} {t}".encode() for i in range(500)]
    answers = rc.syslog(records)
    check(len(answers) == 500 and set(answers.values()) == {b"200 OK"},
          f"{len(answers)} answers, {set(answers.values())}")
    rc.close()
    events = read_events(path)
    check(sorted(e["msg"] for e in events) == sorted(f"relp {i} {t}" for i in range(500)),
          f"{len(events)} events for 500 answered records")
    check({e.get("tls_peer") for e in events} == {"client.test"}, "tls_peer")
    s.stop()


RSYSLOG_TLS = {  # name: (module to load, the action's settings for ingestd on PORT in D)
    "omfwd-ossl": (None, 'type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" '
                   'TCP_Framing="octet-counted" StreamDriver="ossl" StreamDriverMode="1" '
                   'StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="ingestd.test" '
                   'streamdriver.CAFile="{d}/ca.pem" streamdriver.CertFile="{d}/client.pem" '
                   'streamdriver.KeyFile="{d}/client.key" gnutlsPriorityString="MinProtocol=TLSv1.3"'),
    "omfwd-gtls": (None, 'type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" '
                   'StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" '
                   'StreamDriverPermittedPeers="ingestd.test" streamdriver.CAFile="{d}/ca.pem" '
                   'streamdriver.CertFile="{d}/client.pem" streamdriver.KeyFile="{d}/client.key" '
                   'gnutlsPriorityString="NORMAL:-VERS-ALL:+VERS-TLS1.3"'),
    "omrelp-openssl": ("omrelp", 'type="omrelp" target="127.0.0.1" port="{port}" tls="on" '
                       'tls.tlslib="openssl" tls.caCert="{d}/ca.pem" tls.myCert="{d}/client.pem" '
                       'tls.myPrivKey="{d}/client.key" tls.authMode="name" '
                       'tls.permittedPeer=["ingestd.test"]'),
    "omrelp-gnutls": ("omrelp", 'type="omrelp" target="127.0.0.1" port="{port}" tls="on" '
                      'tls.tlslib="gnutls" tls.caCert="{d}/ca.pem" tls.myCert="{d}/client.pem" '
                      'tls.myPrivKey="{d}/client.key" tls.authMode="name" '
                      'tls.permittedPeer=["ingestd.test"]'),
}


def rsyslog_over_tls(ctx, name):
    """rsyslog's own TLS client (name: a row of RSYSLOG_TLS) into a mutual-TLS listener."""
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    pki.leaf("client", "client.test")
    module, action = RSYSLOG_TLS[name]
    more = {"protocol": "relp"} if module == "omrelp" else {}
    s, path, sport = tls_server(ctx, pki, tls={"ca_file": pki.path("ca.pem"), "verify": "required",
                                               "permitted_peers": ["client.test"]}, more=more)
    rs, feed = rsyslog_relay(ctx, module, "action(" + action.format(port=ctx.port, d=ctx.dir) + ")")
    t = token()
    n = 2000
    feed.sendall("".join(f"<13>Nov 24 01:02:03 host {name}: c=1 s={q} {t}\n"
                         for q in range(n)).encode())
    feed.close()
    wait_lines([path], n, 20)
    check(failures(sport) == {}, f"failed handshakes: {failures(sport)}")
    rsyslog_relay_end(rs, s, path, n, f"rsyslog's {name} records over TLS")
    peers = {e.get("tls_peer") for e in read_events(path)}
    check(peers == {"client.test"}, f"tls_peer of rsyslog's events: {peers}")


@case
def tls_rsyslog_omfwd_ossl(ctx):
    """rsyslog's omfwd with the ossl driver (TLS 1.3, mutual TLS, x509/name): every record once."""
    rsyslog_over_tls(ctx, "omfwd-ossl")


@case
def tls_rsyslog_omfwd_gtls(ctx):
    """rsyslog's omfwd with the gtls driver (GnuTLS, TLS 1.3, x509/name): every record once."""
    rsyslog_over_tls(ctx, "omfwd-gtls")


@case
def tls_rsyslog_omrelp(ctx):
    """rsyslog's omrelp with tls="on" (librelp over OpenSSL) into a RELP listener: every record once."""
    rsyslog_over_tls(ctx, "omrelp-openssl")


@case
def tls_rsyslog_omrelp_gnutls(ctx):
    """rsyslog's omrelp with tls="on" over GnuTLS into a RELP listener: every record once."""
    rsyslog_over_tls(ctx, "omrelp-gnutls")


def relay_to(ctx, pki, name, port, tls, sinks_more=None, workers=1):
    """A server (name) on a free port whose one sink forwards records over TLS to port."""
    sink = {"name": "relay", "type": "forward", "upstreams": [f"{LOCAL4}:{port}"],
            "payload": "record", "framing": "octet-counted", "tls": tls}
    sink.update(sinks_more or {})
    sport, lport = free_port(), free_port()
    a = ctx.server(name=name, port=lport, workers=workers, sinks=[sink],
                   listeners=[{"listen": f"{LOCAL4}:{lport}"}],
                   extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
    a.start()
    a.sport, a.feed_port = sport, lport
    return a


def feed(ctx, port, n, t, cid=1):
    c = ctx.connect((LOCAL4, port), timeout=5)
    c.sendall("".join(f"<13>Nov 24 01:02:03 host relay: c={cid} s={q} {t}\n"
                      for q in range(n)).encode())
    c.close()


@case
def tls_forward(ctx):
    """
    A forward sink with a tls group (mutual TLS: a client certificate, the
    upstream verified against the CA and its address) relays 2,000 records
    to a second ingestd's TLS listener, which admits it by name: every
    record once, each event with the relay's identity.  A relay that
    expects another name (server_name) refuses the upstream, logs why, and
    keeps its events queued: none reaches the upstream.
    """
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    pki.leaf("client", "client.test")
    b, path, bsport = tls_server(ctx, pki, tls={"ca_file": pki.path("ca.pem"), "verify": "required",
                                                "permitted_peers": ["client.test"]})
    client = {"ca_file": pki.path("ca.pem"), "certificate": pki.path("client.pem"),
              "key": pki.path("client.key")}
    a = relay_to(ctx, pki, "a", ctx.port, client)
    wrong = relay_to(ctx, pki, "wrong", ctx.port, dict(client, server_name="other.test"))
    t = token()
    feed(ctx, a.feed_port, 2000, t)
    feed(ctx, wrong.feed_port, 100, t, cid=2)
    wait_lines([path], 2000, 20)
    wrong.wait_for_log(r"sink relay: upstream 127\.0\.0\.1:\d+: TLS: certificate: "
                       r"[Hh]ostname mismatch")
    queued = wait_until(lambda: metrics(wrong.sport).get('ingestd_sink_queue_bytes{sink="relay"}',
                                                         0) > 0, 5)
    check(queued, "the refused upstream's events are not queued")
    a.stop()
    events = read_events(path)
    check_once(events, {(1, q) for q in range(2000)}, "the relayed records")
    check({e.get("tls_peer") for e in events} == {"client.test"}, "tls_peer of relayed events")
    check(metrics(bsport)['ingestd_tls_handshakes_total{listener="l0"}'] >= 1, "no handshake")
    wrong.stop()
    b.stop()
    check(not [e for e in read_events(path) if "c=2 " in e.get("msg", "")],
          "events went to an upstream with the wrong name")


@case
def tls_forward_relp(ctx):
    """
    A forward sink over RELP and mutual TLS (protocol = "relp" with a tls
    group) to a second ingestd's RELP-over-TLS listener: 2,000 records,
    each once, with the relay's identity; the relay ends its sessions with
    RELP's close, so the upstream logs no cut connection.
    """
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    pki.leaf("client", "client.test")
    b, path, bsport = tls_server(ctx, pki, tls={"ca_file": pki.path("ca.pem"), "verify": "required",
                                                "permitted_peers": ["client.test"]},
                                 more={"protocol": "relp"}, level="info")
    client = {"ca_file": pki.path("ca.pem"), "certificate": pki.path("client.pem"),
              "key": pki.path("client.key")}
    a = relay_to(ctx, pki, "a", ctx.port, client, sinks_more={"protocol": "relp"}, workers=2)
    t = token()
    feed(ctx, a.feed_port, 2000, t)
    wait_lines([path], 2000, 20)
    a.stop()
    b.stop()
    events = read_events(path)
    check_once(events, {(1, q) for q in range(2000)}, "the relayed records")
    check({e.get("tls_peer") for e in events} == {"client.test"}, "tls_peer of relayed events")
    cut = b.grep(r"l0 .*(reset|closed|RELP|truncated)")
    check(not cut, f"the upstream saw a session end badly: {cut[:3]}")


@case
def tls_forward_to_rsyslog(ctx):
    """
    ingestd -> rsyslog over TLS: a forward sink relays the records as they
    came (octet-counted) to rsyslog's imtcp with the ossl driver, which
    writes each message once.
    """
    from lib.peers import rsyslog_paths
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    rsyslogd, modules = rsyslog_paths()
    port = free_port()
    d = ctx.dir
    os.makedirs(ctx.path("rsyslog"), exist_ok=True)
    with open(ctx.path("rsyslog.conf"), "w") as f:
        f.write(f"""global(workDirectory="{d}/rsyslog" DefaultNetstreamDriverCAFile="{d}/ca.pem"
       DefaultNetstreamDriverCertFile="{d}/server.pem" DefaultNetstreamDriverKeyFile="{d}/server.key")
module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="out")
template(name="m" type="string" string="%msg%\\n")
ruleset(name="out") {{ action(type="omfile" file="{d}/rsyslog.out" template="m") }}
""")
    rs = subprocess.Popen([rsyslogd, "-n", "-f", ctx.path("rsyslog.conf"), "-i",
                           ctx.path("rsyslog.pid"), "-M", modules], stdin=subprocess.DEVNULL,
                          stdout=open(ctx.path("rsyslog.log"), "wb"), stderr=subprocess.STDOUT)
    ctx.procs.append(rs)
    check(wait_until(lambda: _listening(port), 10), "rsyslogd does not listen: " +
          tail(open(ctx.path("rsyslog.log")).read()))
    a = relay_to(ctx, pki, "a", port, {"ca_file": pki.path("ca.pem"), "server_name": SERVER_NAME})
    t = token()
    feed(ctx, a.feed_port, 2000, t)
    out = ctx.path("rsyslog.out")
    got = lambda: open(out).read().count("\n") if os.path.exists(out) else 0
    check(wait_until(lambda: got() >= 2000, 20), f"rsyslog wrote {got()} of 2000 messages")
    a.stop()
    rs.terminate()
    rs.wait(10)
    lines = open(out).read().splitlines()
    want = {f" c=1 s={q} {t}" for q in range(2000)}
    check(len(lines) == 2000 and set(lines) == want, f"{len(lines)} lines, "
          f"{len(want - set(lines))} messages missing")


def _listening(port):
    try:
        socket.create_connection((LOCAL4, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def relp_faults_over_tls(ctx, name, fault):
    """fault_run's RELP clients over TLS 1.3 (mutual) into a RELP listener with a tls group."""
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    pki.leaf("client", "client.test")
    fault_run(ctx, name, fault, relp_tls=client_context(pki, cert="client"),
              tls=tls_group(pki, ca_file=pki.path("ca.pem"), verify="required",
                            permitted_peers=["client.test"]))


@case
def tls_relp_faults_reloads(ctx):
    """20 reloads under RELP over TLS and plain TCP load: no answered record lost."""
    relp_faults_over_tls(ctx, "tls_relp_faults_reloads", reloads)


@case
def tls_relp_faults_kill9(ctx):
    """kill -9 of a random worker every second under RELP over TLS: no answered record lost."""
    relp_faults_over_tls(ctx, "tls_relp_faults_kill9", kills)


@case
def tls_relp_faults_upgrade(ctx):
    """A binary upgrade under RELP over TLS: no answered record lost."""
    relp_faults_over_tls(ctx, "tls_relp_faults_upgrade", upgrade)


def tls_rate(ctx, context, seconds):
    """Records/s one TLS client gets through in seconds (LF lines, 64 KiB writes)."""
    c = tls_connect(ctx, context)
    line = b"<13>Nov 24 01:02:03 host rate: " + b"x" * 60 + b"\n"
    chunk = line * (65536 // len(line))
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        c.sendall(chunk)
        n += 65536 // len(line)
    rate = n / (time.monotonic() - t0)
    c.unwrap()
    c.close()
    return rate


@case
def tls_stalled_handshakes(ctx):
    """
    2,000 connections that stop after half a ClientHello, beside a good TLS
    client: every one is closed by handshake_timeout and counted, and the
    good client's rate meanwhile is at least 80% of its rate alone (the
    median of three measures each, alternating).  The stalled handshakes
    cost the worker memory until they time out, not time: a stalled
    connection wakes it once.
    """
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    # Events to stdout (/dev/null): a file's dirty pages would throttle the
    # writes, and the rate with them, whatever the handshakes do.
    sport = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}",
                               "tls": tls_group(pki, handshake_timeout=6)}],
                        sinks=[{"name": "null", "type": "stdout"}], level="info",
                        extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
    s.start()
    context = client_context(pki)
    hello = client_hello(context)
    alone = [tls_rate(ctx, context, 0.5)]
    stalled = []
    for i in range(2000):
        c = socket.socket()
        c.bind((f"127.0.0.{2 + i % 4}", 0))
        c.connect((LOCAL4, ctx.port))
        c.sendall(hello[:len(hello) // 2])
        ctx.socks.append(c)
        stalled.append(c)
    loaded = [tls_rate(ctx, context, 0.5) for _ in range(3)]
    v = metrics(sport)
    check(v.get('ingestd_tls_handshake_failures_total{listener="l0",reason="handshake_timeout"}',
                0) == 0, "handshakes timed out before the measure ended")
    for c in stalled:
        check(closed(c, 10) != "open", "a stalled handshake is still open 10 s on")
    check(wait_until(lambda: failures(sport).get("handshake_timeout") == 2000, 5),
          f"failures by reason: {failures(sport)}")
    alone = [a for a in alone if a] + [tls_rate(ctx, context, 0.5) for _ in range(2)]
    a, b = sorted(alone)[1], sorted(loaded)[1]
    print(f"# tls_stalled_handshakes: {a:,.0f} records/s alone, {b:,.0f} beside 2,000 stalled "
          f"handshakes ({b / a:.0%})", file=sys.stderr, flush=True)
    check(b >= 0.8 * a, f"the good client got {b:,.0f} records/s beside the stalled handshakes, "
          f"{b / a:.0%} of its {a:,.0f} alone")
    s.stop()


@case
def tls_timeouts_and_caps(ctx):
    """
    The defences of clear text hold over TLS: max_connections counts
    connections still in their handshake (a third is refused at once);
    record_timeout closes a client that sent half a TLS record and stopped
    (half a TLS record is half a record); idle_timeout closes one that
    finished its handshake and sends nothing; each counted by reason.
    """
    pki = Pki(ctx)
    pki.leaf("server", SERVER_NAME)
    s, path, sport = tls_server(ctx, pki, tls={"handshake_timeout": 30},
                                more={"max_connections": 2, "record_timeout": 1,
                                      "idle_timeout": 2})
    context = client_context(pki)
    stalled = [ctx.connect(s.addr), ctx.connect(s.addr)]
    for c in stalled:
        c.sendall(b"\x16")         # a handshake begun, never finished
    check(wait_until(lambda: metrics(sport).get('ingestd_listener_connections{listener="l0"}')
                     == 2, 5), "the two handshakes are not counted as connections")
    third = ctx.connect(s.addr)
    check(closed(third, 2) != "open", "a third connection beside two in their handshake "
          "was not refused by max_connections = 2")
    for c in stalled:
        c.close()
    check(wait_until(lambda: metrics(sport).get('ingestd_listener_connections{listener="l0"}')
                     == 0, 5), "the stalled handshakes' connections are still counted")
    half = MemTls(ctx, context)
    half.handshake()
    record = half.seal(b"<13>a record whose TLS record never ends\n")
    half.sock.sendall(record[:len(record) // 2])
    quiet = tls_connect(ctx, context)
    t0 = time.monotonic()
    check(closed(half.sock, 5) != "open", "half a TLS record: open 5 s on, past record_timeout")
    t_half = time.monotonic() - t0
    quiet.settimeout(6)
    try:
        check(quiet.recv(1) == b"", "the idle TLS client got bytes")
    except (ssl.SSLError, OSError):
        pass
    t_quiet = time.monotonic() - t0
    check(t_half < t_quiet, f"half a record was closed after {t_half:.1f} s, the idle client "
          f"after {t_quiet:.1f} s: record_timeout (1 s) should come first")
    v = metrics(sport)
    for reason in ("record_timeout", "idle_timeout"):
        n = v.get(f'ingestd_connections_closed_total{{reason="{reason}"}}')
        check(n == 1, f"connections closed for {reason}: {n}")
    check(v.get('ingestd_connections_refused_total{reason="max_connections"}') == 1,
          "refusals by max_connections")
    s.stop()
