"""
A NATS JetStream cluster for the nats sink's cases: nats-server nodes on
loopback (free ports, a store directory each), started from the example
deployment's own configuration (etc/scale-out/nats-server.conf, which
takes its ports and paths from the environment), each a helper process of
the case killed by pid in its cleanup; streams created from
etc/scale-out/stream.json.  natsctl (tests/integration/natsctl.c, built by
make check) reads a stream back over the NATS protocol with libnats.
"""
import collections
import json
import os
import shutil
import signal
import subprocess

from .base import LOCAL4, ROOT, check, steady, tail, wait_until
from .net import free_port, try_connect
from .clients import tool

EXAMPLE = os.path.join(ROOT, "etc", "scale-out")
NATSCTL = os.path.join(ROOT, "tests", "integration", "natsctl")


def nats_binary():
    path = shutil.which("nats-server") or "/usr/sbin/nats-server"
    check(os.access(path, os.X_OK), f"no nats-server at {path} (`make deps` installs it)")
    return path


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
        rc, out = tool([NATSCTL, ",".join(u for u, p in zip(self.urls, self.procs)
                                          if p and p.poll() is None)] + list(args),
                       timeout=timeout)
        check(rc == 0, f"natsctl {' '.join(args)}: exit {rc}: {tail(out)}")
        return out

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
        (_, current), _ = steady(info, quiet=quiet, timeout=timeout, interval=0.2)
        check(current, f"stream {stream}: its replicas are not current after {timeout} s")

    def messages(self, stream):
        """Every message of stream (once settled): (subject, message id, event as parsed JSON)."""
        self.settled(stream)
        out = []
        for line in self.ctl("read", stream, timeout=300).splitlines():
            _, subject, msgid, data = line.split(" ", 3)
            out.append((subject, msgid, json.loads(data)))
        return out

    def counts(self, stream, key):
        """A Counter of key(event) over the stream's events, key returning None to skip."""
        c = collections.Counter()
        for _, _, ev in self.messages(stream):
            k = key(ev)
            if k is not None:
                c[k] += 1
        return c
