"""
A NATS JetStream cluster for the nats sink's cases: nats-server nodes on
loopback (free ports, a store directory each), started from the example
deployment's own configuration (etc/scale-out/nats-server.conf, which
takes its ports and paths from the environment), each a helper process of
the case killed by pid in its cleanup; streams created from
etc/scale-out/stream.json.  natsctl (tests/integration/natsctl.c, built by
make check) reads a stream back over the NATS protocol with libnats;
store_messages() reads a stopped node's own store files, and quorum() what
a majority of them agrees on.
"""
import base64
import collections
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import time

from .base import LOCAL4, ROOT, check, steady, tail, wait_until
from .net import free_port, try_connect
from .clients import tool

EXAMPLE = os.path.join(ROOT, "etc", "scale-out")
NATSCTL = os.path.join(ROOT, "tests", "integration", "natsctl")


def nats_binary():
    path = shutil.which("nats-server") or "/usr/sbin/nats-server"
    check(os.access(path, os.X_OK), f"no nats-server at {path} (`make deps` installs it)")
    return path


def natsctl(urls, *args, env=None, timeout=120):
    """natsctl URLS ARGS... (env: more variables, such as NATSCTL_CA): its output."""
    rc, out = tool([NATSCTL, urls] + list(args), env=env, timeout=timeout)
    check(rc == 0, f"natsctl {' '.join(args)}: exit {rc}: {tail(out)}")
    return out


def example_stream(**changes):
    """The example deployment's stream definition, with changes."""
    with open(os.path.join(EXAMPLE, "stream.json")) as f:
        return dict(json.load(f), **changes)


class NatsCluster:
    """nodes nats-server processes forming one JetStream cluster on loopback."""

    def __init__(self, ctx, nodes=3):
        self.ctx = ctx
        self.ports = [free_port() for _ in range(nodes)]
        self.cluster_ports = [free_port() for _ in range(nodes)]
        self.procs = [None] * nodes
        self.names = [f"n{i + 1}" for i in range(nodes)]

    @property
    def urls(self):
        return [f"nats://{LOCAL4}:{p}" for p in self.ports]

    def env(self, i):
        store = self.ctx.path(f"nats-{self.names[i]}")
        os.makedirs(store, exist_ok=True)
        routes = {f"ROUTE{k + 1}": f"nats-route://{LOCAL4}:{p}"
                  for k, p in enumerate(self.cluster_ports)}
        for k in range(len(self.ports), 3):     # the file names three routes
            routes[f"ROUTE{k + 1}"] = routes["ROUTE1"]
        return dict(os.environ, NODE=self.names[i], HOST=LOCAL4, PORT=str(self.ports[i]),
                    CLUSTER_PORT=str(self.cluster_ports[i]), STORE=store, **routes)

    def start(self, i=None):
        """Start node i (or every node), and wait until it takes connections."""
        for k in ([i] if i is not None else range(len(self.ports))):
            log = open(self.ctx.path(f"nats-{self.names[k]}.log"), "ab")
            p = subprocess.Popen([nats_binary(), "-c", os.path.join(EXAMPLE, "nats-server.conf")],
                                 env=self.env(k), stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT)
            self.ctx.procs.append(p)
            self.procs[k] = p
        for k in ([i] if i is not None else range(len(self.ports))):
            up = wait_until(lambda: try_connect((LOCAL4, self.ports[k])), 15, interval=0.05)
            check(up, f"nats-server {self.names[k]} does not listen on {self.ports[k]}: "
                  f"{tail(open(self.ctx.path(f'nats-{self.names[k]}.log')).read())}")
            up.close()

    def kill(self, i, sig=signal.SIGKILL):
        self.procs[i].send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.procs[i].wait(timeout=15)

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
                p.wait(timeout=15)

    def ctl(self, *args, timeout=120):
        """natsctl on the nodes that run."""
        return natsctl(",".join(u for u, p in zip(self.urls, self.procs)
                                if p and p.poll() is None), *args, timeout=timeout)

    def add_stream(self, **changes):
        """The example stream (with changes), created; its definition."""
        st = example_stream(**changes)
        self.ctl("add", st["name"], ",".join(st["subjects"]), str(st["num_replicas"]))
        check(wait_until(lambda: self.info(st["name"])["current"] == st["num_replicas"], 30,
                         interval=0.2),
              f"stream {st['name']}: its {st['num_replicas']} replicas are not current")
        return st

    def info(self, stream):
        """{leader, msgs, replicas, current} of a stream."""
        w = self.ctl("info", stream).split()
        return {"leader": w[1], "msgs": int(w[3]), "replicas": int(w[5]), "current": int(w[7])}

    def leader(self, stream):
        """The index of the node leading stream."""
        name = self.info(stream)["leader"]
        check(name in self.names, f"stream {stream} has no leader ({name})")
        return self.names.index(name)

    def settled(self, stream, quiet=1.0, timeout=60):
        """
        Wait until every replica of stream is current and its message count
        held still for quiet seconds: reads go to the leader, and one just
        elected may still be applying what the old one had acknowledged.
        """
        info = lambda: (lambda i: (i["msgs"], i["current"] == i["replicas"]))(self.info(stream))
        deadline = time.monotonic() + timeout
        current = False
        while not current and time.monotonic() < deadline:     # held still, and current
            (_, current), _ = steady(info, quiet=quiet, timeout=deadline - time.monotonic(),
                                     interval=0.2)
        check(current, f"stream {stream}: its replicas are not current after {timeout} s")

    def messages(self, stream):
        """Every message of stream (once settled): (subject, message id, event as parsed JSON)."""
        self.settled(stream)
        out = []
        for line in self.ctl("read", stream, timeout=300).splitlines():
            if line.startswith("natsctl: "):     # it read again after a leader change
                continue
            _, subject, msgid, data = line.split(" ", 3)
            out.append((subject, msgid, json.loads(data)))
        return out

    def stores(self, stream):
        """
        What each node's own store holds of stream, read from its files once
        the nodes stopped (stop() first): per node, a dict stream sequence ->
        (message id, payload).  It tells a message a quorum of the replicas
        holds from one missing on the node a reader happened to read through.
        """
        return [store_messages(os.path.join(self.ctx.path(f"nats-{n}"), "jetstream", "$G",
                                            "streams", stream, "msgs")) for n in self.names]

    def counts(self, stream, key):
        """A Counter of key(event) over the stream's events, key returning None to skip."""
        c = collections.Counter()
        for _, _, ev in self.messages(stream):
            k = key(ev)
            if k is not None:
                c[k] += 1
        return c


# ------------------------------------------------ a node's store, read from its files

MSG_HDR = struct.Struct("<IQqH")    # record length, sequence, time, subject length
HBIT, EBIT = 1 << 31, 1 << 63       # the record has headers; the message was erased


def store_messages(msgs_dir):
    """
    The messages of one stream's file store (nats-server 2.9, not
    compressed or encrypted: what etc/scale-out's configuration makes): its
    N.blk files hold records [length u32][seq u64][time i64][subject
    length u16][subject][header length u32, header, if the length's high
    bit is set][payload][hash 8], little-endian.  A record cut short (a
    node killed while it wrote) ends its block.  Returns {seq: (message id,
    payload)}.
    """
    out = {}
    blocks = [f for f in os.listdir(msgs_dir) if f.endswith(".blk")] if os.path.isdir(
        msgs_dir) else []
    for name in sorted(blocks, key=lambda f: int(f.split(".")[0])):
        with open(os.path.join(msgs_dir, name), "rb") as f:
            b = f.read()
        off = 0
        while off + MSG_HDR.size <= len(b):
            rl, seq, _, sl = MSG_HDR.unpack_from(b, off)
            size = rl & ~HBIT
            if size < MSG_HDR.size + sl + 8 or off + size > len(b):
                break
            p = off + MSG_HDR.size + sl
            hdr = b""
            if rl & HBIT:
                hl = struct.unpack_from("<I", b, p)[0]
                hdr, p = b[p + 4:p + 4 + hl], p + 4 + hl
            if not seq & EBIT and seq > 0:
                m = re.search(rb"Nats-Msg-Id:\s*(\S+)", hdr)
                out[seq] = (m[1].decode() if m else "-", b[p:off + size - 8])
            off += size
    return out


def quorum(stores):
    """
    What a majority of the nodes' stores holds, by message id: {id:
    payload} of the messages a majority holds, each at whatever sequence
    (a diverged replica may hold one at another, or twice); the ids of
    those not held alike (a node lacks it, or nodes hold it at different
    sequences); and per node how many of the majority's it lacks.
    """
    need = len(stores) // 2 + 1
    places = collections.defaultdict(set)      # id -> {(node, seq)}
    for k, st in enumerate(stores):
        for seq, (mid, _) in st.items():
            places[mid].add((k, seq))
    agreed, odd, lacks = {}, set(), [0] * len(stores)
    for mid, at in places.items():
        nodes = {k for k, _ in at}
        if len(nodes) >= need:
            k, seq = min(at)
            agreed[mid] = stores[k][seq][1]
            for k in set(range(len(stores))) - nodes:
                lacks[k] += 1
        if len(nodes) < len(stores) or len({seq for _, seq in at}) > 1:
            odd.add(mid)
    return agreed, odd, lacks


# ------------------------------------------------ operator mode (a .creds file)

def _crc16(data):
    """CRC-16/XMODEM, as NKeys check their encoding."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _b32(raw):
    return base64.b32encode(raw + _crc16(raw).to_bytes(2, "little")).decode().rstrip("=")


def _b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class NKey:
    """An Ed25519 key pair made with openssl, in NKey form: prefix "O", "A" or "U"."""
    PREFIX = {"O": 14 << 3, "A": 0, "U": 20 << 3}

    def __init__(self, ctx, name, kind):
        self.ctx, self.pem = ctx, ctx.path(f"{name}.key.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", self.pem],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "pkey", "-in", self.pem, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        pub = subprocess.run(["openssl", "pkey", "-in", self.pem, "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        p = self.PREFIX[kind]
        self.public = _b32(bytes([p]) + pub[-32:])
        self.seed = _b32(bytes([(18 << 3) | (p >> 5), (p & 31) << 3]) + der[-32:])

    def sign(self, data):
        path = self.ctx.path("to-sign")
        with open(path, "wb") as f:
            f.write(data)
        return subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", self.pem, "-rawin",
                               "-in", path], check=True, capture_output=True).stdout


def _jwt(issuer, subject, name, nats):
    head = _b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    claims = {"jti": os.urandom(16).hex().upper(), "iat": int(time.time()),
              "iss": issuer.public, "name": name, "sub": subject.public, "nats": nats}
    body = _b64url(json.dumps(claims).encode())
    return f"{head}.{body}." + _b64url(issuer.sign(f"{head}.{body}".encode()))


def operator_mode(ctx):
    """
    What nsc(1) would make for a server in operator mode: an operator, an
    account with JetStream and a user: (the server's configuration lines,
    the user's .creds file).
    """
    op, acct, user = NKey(ctx, "op", "O"), NKey(ctx, "acct", "A"), NKey(ctx, "user", "U")
    sys_acct = NKey(ctx, "sys", "A")            # JetStream needs a system account
    unlimited = {k: -1 for k in ("subs", "data", "payload", "imports", "exports", "conn", "leaf",
                                 "mem_storage", "disk_storage", "streams", "consumer")}
    op_jwt = _jwt(op, op, "op", {"type": "operator", "version": 2})
    acct_jwt = _jwt(op, acct, "acct", {"limits": dict(unlimited, wildcards=True),
                                      "type": "account", "version": 2})
    sys_jwt = _jwt(op, sys_acct, "SYS", {"limits": {k: -1 for k in ("subs", "data", "payload",
                                                                 "imports", "exports", "conn",
                                                                 "leaf")},
                                         "type": "account", "version": 2})
    user_jwt = _jwt(acct, user, "user", {"pub": {}, "sub": {}, "subs": -1, "data": -1,
                                         "payload": -1, "type": "user", "version": 2})
    with open(ctx.path("op.jwt"), "w") as f:
        f.write(op_jwt)
    creds = ctx.path("user.creds")
    with open(creds, "w") as f:
        f.write(f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
                f"-----BEGIN USER NKEY SEED-----\n{user.seed}\n------END USER NKEY SEED------\n")
    conf = (f'operator: "{ctx.path("op.jwt")}"\nsystem_account: {sys_acct.public}\n'
            f'resolver: MEMORY\nresolver_preload: {{ {acct.public}: "{acct_jwt}", '
            f'{sys_acct.public}: "{sys_jwt}" }}\n')
    return conf, creds
