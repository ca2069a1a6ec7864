#!/usr/bin/env python3
"""
make bench: ingestd against rsyslog and syslog-ng, all on loopback, in one
run, plus the pipeline's cost on one core.

    python3 tests/bench/bench.py            the suite (what `make bench` runs)
    python3 tests/bench/bench.py --smoke    a short check of ingestd-bench
                                            against ingestd (`make check`)
    python3 tests/bench/bench.py --chart tests/bench/results/bench-DATE.json
                                            draw that run's chart again

Every server is started with a generated configuration on a free port and
stopped by its pid (what is left of it killed only while /proc/PID/cmdline
still names its directory).  The /proc figures, free ports, the stop by pid
and the peers' paths come from the integration tests' library,
tests/integration/lib.  The servers:

  ingestd          2 workers, one file sink (its defaults otherwise)
  rsyslog-imptcp   rsyslogd, imptcp -> omfile
  rsyslog-imtcp    rsyslogd, imtcp (MaxSessions 20000) -> omfile
  syslog-ng        network() source -> file() destination, flags(flow-control)
  discard          tests/bench/discard: reads and counts lines, writes nothing
                   (the loopback ceiling)

The records are 100-byte RFC 3164 records.  The runs:

  throughput   ingestd-bench blast over 8 connections (BENCH_ROUNDS rounds,
               the median reported), and syslog-ng's
               loggen (8 connections, 100-byte messages) as an independent
               client; records/s written (counted in the output file, from
               the start of the load to the output file's last write),
               server CPU seconds per million records (utime + stime of
               every server process, from /proc), peak RSS (VmHWM summed
               over the server's processes), bytes written per record
               (ingestd's JSON event against rsyslog's and syslog-ng's text
               line: the file write is a share of the CPU), records lost
               (sent - written)
  churn        one record per connection, 30,000 new connections a second
               (at most 2,000 open, from 64 source addresses): connections/s
               completed, refused, lost records, send -> written latency
  latency      (BENCH_ROUNDS rounds, the median by p99 reported)
               30,000 records/s over 1,000 connections, open loop, the
               sink file followed: send -> written latency percentiles;
               ingestd with its default flush_interval = 0 (a batch is
               written at the end of each turn of the worker's loop) and
               with 0.1 s;
               over RELP (defaults), send -> acknowledgement as well
  relp         ingestd-bench --relp (window 128) over 8 connections into
               ingestd's RELP listener and rsyslog's imrelp (-> omfile):
               acknowledged records/s
  accept       ingestd's accept_mode shared vs reuseport under the churn
               load: each worker's share of the connections (its exit line
               in the log) and the latency percentiles
  udp          syslog over UDP, one record per datagram (ingestd-bench
               --udp, rate mode, 8 sockets, the sink file followed) into
               ingestd (udp://), rsyslog (imudp, recvmmsg) and syslog-ng
               (network(transport("udp"))), each with a 4 MB receive
               buffer: first 100,000 datagrams/s into each (CPU per
               record, latency, lost); then rates from UDP_RATES,
               ascending, until one loses 0.1% or more or the sender
               cannot keep the rate (on 2 cores, a UDP sender pays most of
               the kernel's receive path too): the highest rate each took
               with less, and what stopped the climb
  tls          a private CA and an ECDSA P-256 server certificate made
               with openssl; blast --tls over 8 connections (TLS 1.3,
               BENCH_ROUNDS rounds) into ingestd, rsyslog imtcp with the
               ossl and the gtls drivers (rsyslog-ossl, rsyslog-gtls) and
               syslog-ng network(transport("tls")), every one writing JSON
               events (rsyslog by a template, syslog-ng by format-json),
               and into ingestd in clear text in the same rounds; churn
               --tls (one record a connection, TLS_RATE asked, 2 sender
               processes), full and --resume, into ingestd and nginx's
               stream module (nginx, `make bench-deps` unpacks it) proxying
               to the discard receiver: connections/s and server CPU per
               connection; and the workers' RSS before and with IDLE_CONNS
               idle connections, TLS and plain, per connection.
               `bench.py --tls` runs this part alone.
  handover     HANDOVER_CONNS idle connections (ingestd-bench idle, 2
               processes), then a reload: the time from the new
               generation accepting to the exit of the last old worker,
               each having handed its connections over, from the
               master's log; the master's and the workers' CPU for it;
               and what the client saw closed.  `bench.py --part
               handover` runs it alone (any part can be: --part NAME).
  spool        blast over 8 connections into a forward sink to the
               discard receiver (no spool: what an upstream takes today);
               into a forward sink with a spool whose upstream is down,
               sync always and none: events/s into the spool (from its
               metrics), CPU per event, bytes on disk per event, then the
               discard receiver comes up on the upstream's port: events/s
               drained; the same blast into syslog-ng with a network
               destination that is down behind disk-buffer(reliable(yes))
               (messages/s queued, from syslog-ng-ctl stats); and RELP
               answer latency (rate, 30,000/s over 1,000 connections)
               with a file sink, and with a file sink and a spool.
  nats         a 3-node nats-server cluster on loopback (etc/scale-out's
               configuration, file storage), an R1 and an R3 stream: blast
               over 8 connections into ingestd with a nats sink (2
               workers, max_pending 4096 each): events/s acknowledged (the
               stream's message count over time), ingestd's and the
               cluster's CPU per event; then the bare asynchronous
               publisher (natspub: libnats' js_PublishMsgAsync, window
               4096, a Nats-Msg-Id each) in 2 processes, as many as
               ingestd has workers, with the same number of the same
               events (read back from ingestd's stream) into a stream of
               the same kind: the cluster's ceiling on this machine.
  routes       blast over 8 connections into ingestd without routes and
               with the five routes of `micro -r`, BENCH_ROUNDS rounds:
               what routing costs end to end.
  sandbox      the same blast with the workers' seccomp filter (the
               default) and with `sandbox = false`, BENCH_ROUNDS rounds,
               then churn at 30,000 connections/s (one record each, where
               system calls are most per record) both ways: what the filter
               costs.

It prints markdown tables with ratios relative to ingestd, and writes
tests/bench/results/bench-DATE.json (raw results) and bench-DATE.png (a
gnuplot chart), and latest.json / latest.png beside them.  Before each run
it waits while an integration run (tests/integration/run.py) is active: the
machine is shared.  BENCH_SECONDS (4) sets the length of each load,
BENCH_ROUNDS (3) how often the throughput and latency runs are repeated:
their figures vary by tens of percent from one run to the next here, so
every server runs once per round, round after round, and the median
counts.

A load that overruns its time (a server that stops accepting under churn)
is interrupted and its partial figures reported, so the suite stays
bounded (about 12 minutes).

Python 3 standard library only.
"""
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from lib.base import BINARY as INGESTD, ROOT, steady
from lib.clients import BENCH_BINARY as LOADGEN
from lib.net import free_port, free_udp_port, http_get, prom_values
from lib.peers import RSYSLOGD, rsyslog_modules
from lib.proc import cpu_seconds, descendants, fd_count, kill_by_pid, status_kb
from lib.tls import Pki, SERVER_NAME
from lib.nats import NATSCTL, NatsCluster

DISCARD = os.path.join(HERE, "discard")
NATSPUB = os.path.join(HERE, "natspub")
NATS_WINDOW = 4096              # events in flight: a nats sink's max_pending, natspub's window
MICRO = os.path.join(HERE, "micro")
RESULTS = os.path.join(HERE, "results")
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
NOFILE = 20000                  # descriptors per process, at most
RECORDS = ["-s", "3164", "--size", "100"]
# One source address has some 28,000 ports to connect from, and finding a
# free one among as many TIME_WAIT sockets costs the client more than the
# server spends: 64 addresses keep that search short.
CHURN = ["--per-conn", 1, "--sources", 64]

SERVERS = ["ingestd", "rsyslog-imptcp", "rsyslog-imtcp", "syslog-ng", "discard"]
UDP_SERVERS = ["ingestd", "rsyslog-imudp", "syslog-ng"]
UDP_RATES = [50000, 100000, 200000, 300000, 400000, 600000, 800000]
UDP_FIXED = 100000              # the rate every server gets for the CPU comparison
UDP_LOSS = 0.001                # the most a rate may lose and count as taken
RCVBUF = 4 << 20                # every UDP server's receive buffer (ingestd's default)
TLS_SERVERS = ["ingestd", "rsyslog-ossl", "rsyslog-gtls", "syslog-ng"]
TLS_RATE = 20000                # new TLS connections/s asked of each server (more than any takes)
IDLE_CONNS = 20000              # idle TLS connections for the memory figure
HANDOVER_CONNS = 20000          # connections open across the reload of the handover part
NGINX = os.environ.get("NGINX") or os.path.join(ROOT, "tests", "peers", "nginx", "usr", "sbin",
                                                "nginx")
NGINX_STREAM = os.path.join(ROOT, "tests", "peers", "nginx", "usr", "lib", "nginx", "modules",
                            "ngx_stream_module.so")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def wait_quiet():
    """Never measure while an integration run (timing-sensitive, shared machine) is active."""
    while subprocess.run(["pgrep", "-f", "tests/integration/run.py"],
                         capture_output=True).stdout.strip():
        log("bench: an integration run is active; waiting 30 s")
        time.sleep(30)


def limit_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


# ----------------------------------------------------------- /proc figures

def server_cpu(pids):
    """utime + stime of pids, in seconds."""
    return sum(cpu_seconds(p) or 0 for p in pids)


def count_lines(path):
    if not os.path.exists(path):
        return 0
    out = subprocess.run(["wc", "-l", path], capture_output=True, text=True).stdout
    return int(out.split()[0])


# ---------------------------------------------------------------- servers

class Server:
    """One server under test: its generated config, its processes, its output."""

    def __init__(self, kind, tmp, conf=None, relp=False, udp=False):
        self.kind, self.relp, self.udp, self.conf = kind, relp, udp, conf or {}
        self.dir = tempfile.mkdtemp(prefix=kind + "-", dir=tmp)
        self.port = free_udp_port() if udp else free_port()
        self.out = os.path.join(self.dir, "out.log")
        self.logfile = os.path.join(self.dir, "server.log")
        self.proc = None
        self.pids = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def argv(self):
        k = self.kind
        if k == "ingestd":
            return [INGESTD, "-f", "-c", self.write_ingestd()]
        if k.startswith("rsyslog"):
            mods = rsyslog_modules(RSYSLOGD, "imptcp.so")
            if mods is None:
                raise RuntimeError("no rsyslog modules under %s/lib (make deps unpacks them)"
                                   % os.path.dirname(os.path.dirname(RSYSLOGD)))
            return [RSYSLOGD, "-n", "-f", self.write_rsyslog(), "-i", self.path("rs.pid"),
                    "-M", mods]
        if k in ("syslog-ng", "syslog-ng-diskbuf"):
            conf = self.write_syslog_ng() if k == "syslog-ng" else self.write_syslog_ng_diskbuf()
            return ["syslog-ng", "-F", "--no-caps", "-f", conf,
                    "-p", self.path("sng.pid"), "-R", self.path("sng.persist"),
                    "-c", self.path("sng.ctl")]
        if k == "discard":
            self.out = self.path("count")
            return [DISCARD, "-p", str(self.port), "-o", self.out]
        if k == "nginx":
            return [NGINX, "-e", self.path("error.log"), "-p", self.dir, "-c", self.write_nginx()]
        raise ValueError(k)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def write_ingestd(self):
        c = self.conf
        if self.udp:
            listener = 'name = "bench"; listen = "udp://127.0.0.1:%d"; recv_buffer = %d;' % (
                self.port, c.get("recv_buffer", RCVBUF))
        else:
            listener = 'name = "bench"; listen = "127.0.0.1:%d"; accept_mode = "%s";' % (
                self.port, c.get("accept_mode", "shared"))
        if self.relp:
            listener += ' protocol = "relp";'
        if c.get("tls"):
            listener += ' tls = { certificate = "%s/server.pem"; key = "%s/server.key"; };' % (
                c["tls"], c["tls"])
        sink = 'name = "file"; path = "%s";' % self.out
        if "flush_interval" in c:
            sink += " flush_interval = %s;" % c["flush_interval"]
        sinks = "{ %s }" % sink if "sinks" not in c else c["sinks"](self)
        stats = 'stats = { listen = "127.0.0.1:%d"; };\n' % c["stats"] if "stats" in c else ""
        stats += c.get("extra", "")
        return self.write("ingestd.conf",
                          'workers = 2;\npid_file = "%s";\nworker_connections = %d;\n'
                          'log = { level = "info"; target = "%s"; };\n%s'
                          'listeners = ( { %s } );\nsinks = ( %s );\n'
                          % (self.path("ingestd.pid"), c.get("worker_connections", 10000),
                             self.logfile, stats, listener, sinks))

    def write_rsyslog(self):
        extra, head, action = "", "", 'action(type="omfile" file="%s")' % self.out
        if self.conf.get("tls"):        # TLS rows: the server's certificate, JSON lines out
            d = self.conf["tls"]
            head = ('global(DefaultNetstreamDriverCAFile="%s/ca.pem" '
                    'DefaultNetstreamDriverCertFile="%s/server.pem" '
                    'DefaultNetstreamDriverKeyFile="%s/server.key")\n%s\n' % (d, d, d, RSYSLOG_JSON))
            action = 'action(type="omfile" file="%s" template="json")' % self.out
        if self.kind in ("rsyslog-ossl", "rsyslog-gtls"):
            mod, inp = ('module(load="imtcp" MaxSessions="20000" StreamDriver.Name="%s" '
                        'StreamDriver.Mode="1" StreamDriver.AuthMode="anon")'
                        % self.kind[len("rsyslog-"):], "imtcp")
        elif self.kind == "rsyslog-imptcp":
            mod, inp = 'module(load="imptcp")', "imptcp"
        elif self.kind == "rsyslog-imtcp":
            mod, inp = 'module(load="imtcp" MaxSessions="20000")', "imtcp"
        elif self.kind == "rsyslog-imudp":
            mod, inp, extra = 'module(load="imudp")', "imudp", ' rcvbufSize="%d"' % RCVBUF
        else:
            mod, inp = 'module(load="imrelp")', "imrelp"
        return self.write("rsyslog.conf",
                          'global(workDirectory="%s")\n%s%s\n'
                          'input(type="%s" address="127.0.0.1" port="%d" ruleset="bench"%s)\n'
                          'ruleset(name="bench") {\n    %s\n}\n'
                          % (self.dir, head, mod, inp, self.port, extra, action))

    def write_syslog_ng(self):
        d = self.conf.get("tls")
        transport = ('transport("udp") so-rcvbuf(%d)' % RCVBUF if self.udp else
                     'transport("%s")\n    max-connections(4000) log-iw-size(400000)'
                     % ("tls" if d else "tcp"))
        if d:           # TLS rows: the server's certificate, JSON lines out
            transport += ('\n    tls(key-file("%s/server.key") cert-file("%s/server.pem") '
                          'peer-verify(optional-untrusted))' % (d, d))
        dest = 'file("%s"%s)' % (self.out, ' template("$(format-json --scope rfc5424 '
                                            '--scope nv-pairs)\\n")' if d else "")
        return self.write("syslog-ng.conf",
                          '@version: 3.38\n'
                          'options { stats-freq(0); };\n'
                          'source s_net { network(ip("127.0.0.1") port(%d) %s); };\n'
                          'destination d_file { %s; };\n'
                          'log { source(s_net); destination(d_file); flags(flow-control); };\n'
                          % (self.port, transport, dest))

    def write_syslog_ng_diskbuf(self):
        """syslog-ng into a reliable disk buffer of a network destination (conf["upstream"])."""
        os.makedirs(self.path("diskbuf"), exist_ok=True)
        return self.write("syslog-ng.conf",
                          '@version: 3.38\n'
                          'options { stats-freq(0); };\n'
                          'source s_net { network(ip("127.0.0.1") port(%d) transport("tcp")\n'
                          '    max-connections(4000) log-iw-size(400000)); };\n'
                          'destination d_up { network("127.0.0.1" port(%d) disk-buffer(\n'
                          '    reliable(yes) disk-buf-size(8000000000) mem-buf-size(200000000)\n'
                          '    dir("%s"))); };\n'
                          'log { source(s_net); destination(d_up); flags(flow-control); };\n'
                          % (self.port, self.conf["upstream"], self.path("diskbuf")))

    def write_nginx(self):
        """nginx's stream module terminating TLS in front of a discard server (conf upstream)."""
        d = self.conf["tls"]
        return self.write("nginx.conf",
                          'load_module %s;\nworker_processes 2;\npid %s;\ndaemon off;\n'
                          'error_log %s notice;\nevents { worker_connections 20000; }\n'
                          'stream {\n  server {\n    listen 127.0.0.1:%d ssl;\n'
                          '    ssl_certificate %s/server.pem;\n'
                          '    ssl_certificate_key %s/server.key;\n'
                          '    ssl_protocols TLSv1.2 TLSv1.3;\n'
                          '    proxy_pass 127.0.0.1:%d;\n  }\n}\n'
                          % (NGINX_STREAM, self.path("nginx.pid"), self.path("error.log"),
                             self.port, d, d, self.conf["upstream"]))

    def start(self):
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=open(self.path("stdout"), "wb"),
                                     stderr=subprocess.STDOUT, preexec_fn=limit_nofile)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited %s at start: %s" % (self.kind, self.proc.returncode,
                                                                   self.tail()))
            if self.kind != "ingestd" or len(descendants(self.proc.pid)) >= 2:
                if self.listening():
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("%s did not listen on %d: %s" % (self.kind, self.port, self.tail()))
        time.sleep(0.2)
        self.pids = [self.proc.pid] + descendants(self.proc.pid)

    def listening(self):
        """Whether the server has bound its port: TCP accepts; a UDP port is taken."""
        if not self.udp:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", self.port))
            return False
        except OSError:
            return True

    def tail(self):
        text = ""
        for name in ("stdout", "server.log"):
            try:
                with open(self.path(name), errors="replace") as f:
                    text += f.read()[-600:]
            except OSError:
                pass
        return text.strip()

    def all_pids(self):
        return sorted(set(self.pids + [self.proc.pid] + descendants(self.proc.pid)))

    def written(self):
        if self.kind == "discard":
            try:
                with open(self.out) as f:
                    return int(f.read() or 0)
            except (OSError, ValueError):
                return 0
        return count_lines(self.out)

    def output_size(self):
        try:
            st = os.stat(self.out)
            return (st.st_size, st.st_mtime_ns) if self.kind != "discard" else \
                (self.written(), st.st_mtime_ns)
        except OSError:
            return (0, 0)

    def stop(self):
        """
        Stop by pid (SIGTERM, then SIGKILL after 15 s to every pid seen that
        still runs with this server's directory in its command line); the
        worker exit lines stay in the log.
        """
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            kill_by_pid(self.all_pids(), self.dir)
            self.proc.wait(5)

    def worker_connections(self):
        """Per worker: connections accepted, from the exit lines (ingestd)."""
        text = ""
        for name in (self.logfile, self.path("stdout")):     # -f logs to stderr
            try:
                with open(name, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return [int(n) for n in
                re.findall(r"worker \d+ \(generation \d+\): exiting: (\d+) connections", text)]


# Every TLS row writes JSON events, as ingestd does: rsyslog's fields by a template.
RSYSLOG_JSON = """template(name="json" type="list" option.jsonf="on") {
    property(outname="received_at" name="timegenerated" dateFormat="rfc3339" format="jsonf")
    property(outname="peer" name="fromhost-ip" format="jsonf")
    property(outname="facility" name="syslogfacility-text" format="jsonf")
    property(outname="severity" name="syslogseverity-text" format="jsonf")
    property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
    property(outname="host" name="hostname" format="jsonf")
    property(outname="app" name="app-name" format="jsonf")
    property(outname="msg" name="msg" format="jsonf")
}"""


# ------------------------------------------------------------------ loads

def loadgen(port, *args, budget=None):
    """
    Run ingestd-bench with -j; its JSON summary.  After budget seconds (the
    load's length + 10 s) it is interrupted (SIGINT: stop sending; a second
    one 10 s later: stop following), and its summary says "interrupted".
    """
    argv = [LOADGEN, "-p", str(port), "-j"] + [str(a) for a in args]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    interrupted = False
    try:
        out, err = p.communicate(timeout=budget or SECONDS + 10)
    except subprocess.TimeoutExpired:
        interrupted = True
        p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
    try:
        r = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError("`%s` exited %d: %s" % (" ".join(argv), p.returncode,
                                                   (out + err)[-600:]))
    r["interrupted"] = interrupted
    return r


def loggen(port, seconds):
    argv = ["loggen", "--inet", "--stream", "--active-connections=8", "--size=127",
            "--interval=%d" % max(1, round(seconds)), "--rate=1000000", "127.0.0.1", str(port)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"average rate = .*count=(\d+)", r.stdout + r.stderr)
    if not m:
        raise RuntimeError("loggen: %s" % (r.stdout + r.stderr)[-600:])
    return {"records": int(m[1]), "client": "loggen"}


def settle(srv, expect, t_start, quiet=1.0, limit=30):
    """
    Wait until the output stops growing (quiet seconds) and holds expect
    records, at most limit seconds; (records written, seconds from t_start
    to the output's last write).
    """
    deadline = time.monotonic() + limit
    last, since = srv.output_size(), time.monotonic()
    written = 0
    while time.monotonic() < deadline:
        time.sleep(0.05)
        cur = srv.output_size()
        if cur != last:
            last, since = cur, time.monotonic()
        elif time.monotonic() - since >= quiet:
            written = srv.written()
            if written >= expect:
                break
            quiet = 2.0
            since = time.monotonic()
    else:
        written = srv.written()
    return written, max(1e-9, last[1] / 1e9 - t_start)


def measure(srv, run_load, expect_of=lambda r: r["records"]):
    """Run one load against a started server: its figures."""
    wait_quiet()
    pids = srv.all_pids()
    cpu0, t_start = server_cpu(pids), time.time()
    res = run_load()
    sent = expect_of(res)
    written, seconds = settle(srv, sent, t_start)
    pids = srv.all_pids()
    cpu = server_cpu(pids) - cpu0
    size = srv.output_size()[0] if srv.kind != "discard" else None
    return {"sent": sent, "written": written, "lost": sent - written, "seconds": round(seconds, 3),
            "bytes_per_record": round(size / written) if size and written else None,
            "records_per_s": round(written / seconds), "server_cpu_s": round(cpu, 2),
            "cpu_s_per_million": round(cpu / (written / 1e6), 3) if written else None,
            "peak_rss_kb": sum(status_kb(p, "VmHWM") or 0 for p in pids),
            "processes": len(pids), "client": res}


def with_server(tmp, kind, fn, conf=None, relp=False, udp=False):
    srv = Server(kind, tmp, conf, relp, udp)
    try:
        srv.start()
        r = fn(srv)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        log("bench: %s: %s" % (kind, e))
        r = {"error": str(e)}
    finally:
        srv.stop()
    if srv.kind == "ingestd":
        r["worker_connections"] = srv.worker_connections()
    shutil.rmtree(srv.dir, ignore_errors=True)
    return r


# ------------------------------------------------------------------- runs

def median_run(runs, key):
    """
    Of ROUNDS runs of one configuration, the run with the median key, with
    every run's key and the most records any run lost beside it: on a
    shared machine one run can be twice as fast as the next.
    """
    ok = [r for r in runs if key(r) is not None]
    if not ok:
        return runs[-1]
    ok.sort(key=key)
    r = dict(ok[(len(ok) - 1) // 2])
    r["rounds"] = [key(x) for x in runs]
    r["lost"] = max((x.get("lost") or 0) for x in runs)
    return r


def rounds(name, configs, run, key):
    """Run every configuration ROUNDS times, round by round; the median runs."""
    runs = {i: [] for i in range(len(configs))}
    for n in range(ROUNDS):
        for i, c in enumerate(configs):
            log("bench: %s, %s (round %d of %d)" % (name, ", ".join(c), n + 1, ROUNDS))
            runs[i].append(run(*c))
    return [median_run(runs[i], key) for i in range(len(configs))]


def throughput(tmp):
    def run(kind, client):
        if client == "loggen":
            fn = lambda s: measure(s, lambda: loggen(s.port, SECONDS))
        else:
            fn = lambda s: measure(s, lambda: loadgen(s.port, "-m", "blast", "-c", 8,
                                                      "-d", SECONDS, *RECORDS))
        r = with_server(tmp, kind, fn)
        r.update(server=kind, load=client)
        return r
    rows = rounds("throughput", [(k, "ingestd-bench") for k in SERVERS], run,
                  lambda r: r.get("records_per_s"))
    for kind in SERVERS:         # loggen is the cross-check of the client: one round
        log("bench: throughput, %s, loggen" % kind)
        rows.append(run(kind, "loggen"))
    return rows


def follow_load(mode, rate, conns, extra=()):
    def run(srv):
        args = ["-m", mode, "-r", rate, "-c", conns, "-d", SECONDS, "-f", srv.out,
                "--follow-grace", 5] + list(extra) + RECORDS
        return measure(srv, lambda: loadgen(srv.port, *args))
    return run


def churn(tmp):
    rows = []
    for kind in SERVERS:
        log("bench: churn, %s" % kind)
        extra = CHURN
        if kind == "discard":
            fn = lambda s: measure(s, lambda: loadgen(s.port, "-m", "churn", "-r", 30000, "-c",
                                                      2000, "-d", SECONDS, *extra, *RECORDS))
        else:
            fn = follow_load("churn", 30000, 2000, extra)
        r = with_server(tmp, kind, fn)
        r.update(server=kind)
        rows.append(r)
    return rows


def latency(tmp):
    configs = [("ingestd", "defaults (flush_interval = 0)"), ("ingestd", "flush_interval = 0.1"),
               ("rsyslog-imptcp", "defaults"), ("rsyslog-imtcp", "defaults"),
               ("syslog-ng", "defaults, flow-control"), ("ingestd", "RELP, defaults")]
    confs = {"flush_interval = 0.1": {"flush_interval": "0.1"}}

    def run(kind, note):
        relp = note.startswith("RELP")
        r = with_server(tmp, kind, follow_load("rate", 30000, 1000, ["--relp"] if relp else []),
                        confs.get(note), relp)
        r.update(server=kind, config=note, protocol="relp" if relp else "tcp")
        return r
    return rounds("latency", configs, run, lambda r: get(r, "client", "latency_us", "p99"))


def relp(tmp):
    rows = []
    for kind in ("ingestd", "rsyslog-imrelp"):
        log("bench: relp, %s" % kind)
        fn = lambda s: measure(s, lambda: loadgen(s.port, "-m", "blast", "--relp", "-c", 8,
                                                  "-d", SECONDS, *RECORDS))
        r = with_server(tmp, kind, fn, relp=True)
        r.update(server=kind)
        rows.append(r)
    return rows


def accept(tmp):
    rows = []
    for mode in ("shared", "reuseport"):
        log("bench: accept_mode = %s, churn" % mode)
        r = with_server(tmp, "ingestd", follow_load("churn", 30000, 2000, CHURN),
                        {"accept_mode": mode})
        r.update(server="ingestd", accept_mode=mode)
        rows.append(r)
    return rows


def udp_at(srv, rate):
    """One rate into a started UDP server: measure()'s figures, with what was lost."""
    args = ["-m", "rate", "--udp", "-r", rate, "-c", 8, "-d", SECONDS, "-f", srv.out,
            "--follow-grace", 3] + RECORDS
    r = measure(srv, lambda: loadgen(srv.port, *args),
                expect_of=lambda c: get(c, "follow", "received") or 0)
    sent = get(r, "client", "records") or 0
    r.update(rate=rate, sent=sent, lost=sent - r["written"],
             loss=(sent - r["written"]) / sent if sent else None,
             send_rate=get(r, "client", "records_per_s"))
    return r


def rmem_max(value=None):
    """net.core.rmem_max, set to value when given (root): the cap of a plain SO_RCVBUF."""
    path = "/proc/sys/net/core/rmem_max"
    with open(path) as f:
        old = int(f.read())
    if value is not None:
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as e:
            log("bench: cannot set %s: %s; syslog-ng's receive buffer stays at %d" % (path, e, old))
    return old


def udp(tmp):
    """
    Each server, rates ascending until one loses UDP_LOSS or more (a fresh
    server each rate, so one rate's backlog does not spill into the next):
    the highest rate taken, and the first one not.  net.core.rmem_max is
    raised to RCVBUF meanwhile (and put back): syslog-ng asks with a plain
    SO_RCVBUF, which it caps, where ingestd and rsyslog force theirs.
    """
    old = rmem_max(max(rmem_max(), RCVBUF))
    try:
        return udp_rows(tmp)
    finally:
        rmem_max(old)


def udp_rows(tmp):
    fixed, rows = [], []
    for kind in UDP_SERVERS:
        log("bench: udp, %s, %d datagrams/s" % (kind, UDP_FIXED))
        r = with_server(tmp, kind, lambda s: udp_at(s, UDP_FIXED), udp=True)
        r.update(server=kind)
        fixed.append(r)
    for kind in UDP_SERVERS:
        best, stop, tried = None, None, []
        for rate in UDP_RATES:
            log("bench: udp, %s, %d datagrams/s" % (kind, rate))
            r = with_server(tmp, kind, lambda s: udp_at(s, rate), udp=True)
            tried.append((rate, r.get("send_rate"), r.get("loss")))
            if r.get("loss") is None or r["loss"] >= UDP_LOSS:
                stop = "%s/s: %.2f%% lost" % (fmt(rate), 100 * r["loss"]) \
                    if r.get("loss") is not None else (r.get("error") or "no figure")[:80]
                break
            best = r
            if (r.get("send_rate") or 0) < 0.95 * rate:
                stop = "%s/s: the sender's ceiling, %s/s sent" % (fmt(rate), fmt(r["send_rate"]))
                break
        row = dict(best or {})
        row.update(server=kind, tried=tried, stop=stop or "none")
        rows.append(row)
    return {"fixed": fixed, "ladder": rows}


class PkiDir:
    """Where lib.tls.Pki makes its files: a directory of the suite's."""

    def __init__(self, d):
        self.dir = d

    def path(self, *parts):
        return os.path.join(self.dir, *parts)


def tls_pki(tmp):
    """A CA and the servers' certificate (ECDSA P-256, ingestd.test and 127.0.0.1): its directory."""
    d = os.path.join(tmp, "pki")
    os.makedirs(d, exist_ok=True)
    Pki(PkiDir(d)).leaf("server", SERVER_NAME)
    return d


def tls(tmp):
    """The TLS rows: throughput, handshakes/s, memory per idle connection."""
    pki = tls_pki(tmp)
    return {"throughput": tls_throughput(tmp, pki), "handshakes": tls_handshakes(tmp, pki),
            "memory": tls_memory(tmp, pki)}


def tls_throughput(tmp, pki):
    """ingestd-bench blast --tls over 8 connections into each TLS server, and into ingestd in clear."""
    def run(kind, proto):
        args = ["-m", "blast", "-c", 8, "-d", SECONDS] + RECORDS
        if proto == "tls":
            args += ["--tls", "--ca", os.path.join(pki, "ca.pem")]
        r = with_server(tmp, kind, lambda s: measure(s, lambda: loadgen(s.port, *args)),
                        {"tls": pki} if proto == "tls" else None)
        r.update(server=kind, protocol=proto)
        return r
    return rounds("tls throughput", [(k, "tls") for k in TLS_SERVERS] + [("ingestd", "tcp")], run,
                  lambda r: r.get("records_per_s"))


def handshakes_at(srv, pids_of, resume, pki):
    """Churn over TLS, one record a connection, TLS_RATE asked: connections/s and server CPU."""
    # two sender processes: a TLS client's handshake costs about what the server's does
    args = ["-m", "churn", "-r", TLS_RATE, "-c", 500, "-d", SECONDS, "--procs", 2, "--tls",
            "--ca", os.path.join(pki, "ca.pem")] + CHURN + RECORDS + (["--resume"] if resume else [])
    wait_quiet()
    pids = pids_of()
    cpu0 = server_cpu(pids)
    res = loadgen(srv.port, *args)
    cpu = server_cpu(pids_of()) - cpu0
    done = res.get("completed") or 0
    return {"connections_per_s": res.get("connections_per_s"), "completed": done,
            "resumed": res.get("tls_resumed"), "connect_errors": res.get("connect_errors"),
            "server_cpu_s": round(cpu, 2),
            "cpu_ms_per_handshake": round(1000 * cpu / done, 4) if done else None, "client": res}


def tls_handshakes(tmp, pki):
    """
    New TLS connections a second, full and resumed: ingestd (one record
    each into its file) and nginx's stream module (proxying each to the
    discard server, whose CPU is not counted).
    """
    rows = []
    have_nginx = os.access(NGINX, os.X_OK) and os.path.exists(NGINX_STREAM)
    if not have_nginx:
        log("bench: no nginx at %s (make bench unpacks it): no nginx rows" % NGINX)
    for resume in (False, True):
        for kind in ("ingestd", "nginx") if have_nginx else ("ingestd",):
            log("bench: tls handshakes, %s, %s" % (kind, "resumed" if resume else "full"))
            if kind == "ingestd":
                r = with_server(tmp, kind, lambda s: handshakes_at(s, s.all_pids, resume, pki),
                                {"tls": pki})
            else:
                up = Server("discard", tmp)
                try:
                    up.start()
                    r = with_server(tmp, "nginx", lambda s: handshakes_at(
                        s, s.all_pids, resume, pki), {"tls": pki, "upstream": up.port})
                finally:
                    up.stop()
            r.update(server=kind, handshake="resumed" if resume else "full")
            rows.append(r)
    return rows


def idle_memory(srv, tls_on, pki):
    """
    The workers' RSS before and with IDLE_CONNS idle connections (TLS ones
    after their handshake): the difference per connection.
    """
    wait_quiet()
    workers = lambda: [p for p in srv.all_pids() if p != srv.proc.pid]
    base = sum(status_kb(p, "VmRSS") or 0 for p in workers())
    fds0 = sum(fd_count(p) or 0 for p in workers())
    argv = [LOADGEN, "-p", srv.port, "-j", "-m", "idle", "-c", IDLE_CONNS, "-d", 60,
            "--sources", 16] + (["--tls", "--ca", os.path.join(pki, "ca.pem")] if tls_on else [])
    p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, text=True)
    held = lambda: sum(fd_count(p) or 0 for p in workers()) - fds0
    deadline = time.monotonic() + 50
    while held() < IDLE_CONNS and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.5)
    time.sleep(2)                   # the last handshakes end, buffers are released
    n, rss = held(), sum(status_kb(q, "VmRSS") or 0 for q in workers())
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    res = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    return {"connections": n, "base_rss_kb": base, "rss_kb": rss,
            "bytes_per_connection": round((rss - base) * 1024 / n) if n > 0 else None,
            "client": res}


def tls_memory(tmp, pki):
    rows = []
    for proto in ("tcp", "tls"):
        log("bench: memory of %d idle %s connections" % (IDLE_CONNS, proto))
        conf = {"worker_connections": IDLE_CONNS // 2 + 500}
        if proto == "tls":
            conf["tls"] = pki
        r = with_server(tmp, "ingestd", lambda s: idle_memory(s, proto == "tls", pki), conf)
        r.update(server="ingestd", protocol=proto)
        rows.append(r)
    return rows


def log_ms(line):
    """The time of a log line ("2026-12-05T06:35:01.690Z ..."), in ms since the epoch."""
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000


def handover_at(srv):
    """
    HANDOVER_CONNS idle connections, then a reload: from the new generation
    accepting to the old workers' exits, with the CPU it took.
    """
    wait_quiet()
    workers = lambda: [q for q in srv.all_pids() if q != srv.proc.pid]
    fds0 = sum(fd_count(q) or 0 for q in workers())
    argv = [LOADGEN, "-p", srv.port, "-j", "-m", "idle", "-c", HANDOVER_CONNS, "-d", 90,
            "--sources", 16, "--procs", 2]
    p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, text=True)
    held = lambda: sum(fd_count(q) or 0 for q in workers()) - fds0
    deadline = time.monotonic() + 60
    while held() < HANDOVER_CONNS and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.5)
    time.sleep(1)
    old, before = workers(), held()
    cpu = lambda pids: sum(cpu_seconds(q) or 0 for q in pids)
    master0 = cpu([srv.proc.pid])
    with open(srv.path("stdout")) as f:     # -f: the log is on stderr
        f.seek(0, 2)
        mark = f.tell()
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while any(os.path.exists("/proc/%d" % q) for q in old) and time.monotonic() < deadline:
        time.sleep(0.05)
    master1 = cpu([srv.proc.pid])
    time.sleep(1)
    new = workers()
    after, new_cpu = held(), cpu(new)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    res = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    with open(srv.path("stdout")) as f:
        f.seek(mark)
        lines = f.read().splitlines()
    ready = [log_ms(x) for x in lines if "reload: generation 2 accepting" in x]
    exits = [log_ms(x) for x in lines if re.search(r"\(pid \d+, generation 1\) exited", x)]
    handed = sum(int(m[1]) for m in (re.search(r"generation 1\): exiting: .* (\d+) handed over",
                                              x) for x in lines) if m)
    return {"connections": before, "after": after, "handed_over": handed,
            "ms": round(max(exits) - ready[0]) if ready and exits else None,
            "master_cpu_ms": round((master1 - master0) * 1000),
            "new_workers_cpu_ms": round(new_cpu * 1000), "client": res}


def handover(tmp):
    log("bench: a reload with %d connections open" % HANDOVER_CONNS)
    return with_server(tmp, "ingestd", handover_at,
                       {"worker_connections": HANDOVER_CONNS // 2 + 2000})


def forward_sinks(port, spool=None, sync="always", file=False):
    """The sinks of a forward sink to port (with a spool in srv's directory), and a file sink."""
    def text(srv):
        sink = ('{ name = "up"; type = "forward"; upstreams = [ "127.0.0.1:%d" ];%s }'
                % (port, ' spool = { path = "%s"; max_size = "16G"; sync = "%s"; };'
                   % (srv.path("spool"), sync) if spool else ""))
        if spool:
            os.makedirs(srv.path("spool"), exist_ok=True)
        return sink + (', { name = "file"; path = "%s"; }' % srv.out if file else "")
    return text


def metrics(port):
    """The server's /metrics, {'name{labels}': value}."""
    return prom_values(http_get(port, "/metrics")[2])


def forward_at(srv, up):
    """Blast into a server whose forward sink (no spool) sends to the discard receiver."""
    wait_quiet()
    cpu0, t0 = server_cpu(srv.all_pids()), time.time()
    res = loadgen(srv.port, "-m", "blast", "-c", 8, "-d", SECONDS, *RECORDS)
    n, t1 = steady(up.written, quiet=1.0, timeout=120)
    cpu = server_cpu(srv.all_pids()) - cpu0
    return {"sent": res["records"], "drained": n, "drain_per_s": round(n / (t1 - t0)),
            "cpu_s_per_million": round(cpu / (n / 1e6), 3) if n else None, "client": res}


def spool_at(srv, down_port, sport):
    """
    Blast into a server whose sink's upstream is down: events/s into the
    spool and CPU per event; then the discard receiver comes up on the
    upstream's port: events/s drained.
    """
    wait_quiet()
    pids = srv.all_pids()
    cpu0, t0 = server_cpu(pids), time.time()
    res = loadgen(srv.port, "-m", "blast", "-c", 8, "-d", SECONDS, *RECORDS)
    spooled, t1 = steady(lambda: metrics(sport).get('ingestd_sink_spool_records{sink="up"}', 0), timeout=120)
    cpu = server_cpu(srv.all_pids()) - cpu0
    disk = metrics(sport).get('ingestd_sink_spool_bytes{sink="up"}', 0)
    up = Server("discard", os.path.dirname(srv.dir))
    up.port = down_port
    up.start()
    try:
        t2 = time.time()
        deadline = time.monotonic() + 30        # the sink's next try: within its 5 s back-off
        while up.written() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        t_first = time.time()
        drained, t3 = steady(up.written, quiet=2.0, timeout=120)
    finally:
        up.stop()
    return {"sent": res["records"], "spooled": int(spooled), "records_per_s": round(spooled / (t1 - t0)),
            "cpu_s_per_million": round(cpu / (spooled / 1e6), 3) if spooled else None,
            "bytes_per_record": round(disk / spooled) if spooled else None,
            "drained": drained, "drain_per_s": round(drained / max(1e-9, t3 - t_first)),
            "first_delivery_s": round(t_first - t2, 2), "client": res}


def syslog_ng_diskbuf_at(srv):
    """The same blast into syslog-ng's reliable disk buffer: messages/s queued, from its stats."""
    wait_quiet()
    pids = srv.all_pids()
    cpu0, t0 = server_cpu(pids), time.time()
    res = loadgen(srv.port, "-m", "blast", "-c", 8, "-d", SECONDS, *RECORDS)

    def queued():
        out = subprocess.run(["syslog-ng-ctl", "stats", "-c", srv.path("sng.ctl")],
                             capture_output=True, text=True, timeout=10).stdout
        return sum(int(m[1]) for m in re.finditer(r"^dst\.network;d_up#0;[^;]*;a;queued;(\d+)",
                                                  out, re.M))
    n, t1 = steady(queued, timeout=120)
    cpu = server_cpu(srv.all_pids()) - cpu0
    return {"sent": res["records"], "spooled": n, "records_per_s": round(n / (t1 - t0)),
            "cpu_s_per_million": round(cpu / (n / 1e6), 3) if n else None, "client": res}


def spool(tmp):
    """The spool: into it with the upstream down, drained, and RELP answers through it."""
    rows = []
    up = Server("discard", tmp)
    up.start()
    try:
        log("bench: spool, a plain forward sink into the discard receiver (no spool)")
        r = with_server(tmp, "ingestd", lambda s: forward_at(s, up),
                        {"sinks": forward_sinks(up.port)})
    finally:
        up.stop()
    r.update(row="forward, no spool (what the upstream takes today)")
    rows.append(r)
    for sync in ("always", "none"):
        log("bench: spool, upstream down, sync = %s" % sync)
        down, sport = free_port(), free_port()
        r = with_server(tmp, "ingestd", lambda s: spool_at(s, down, sport),
                        {"sinks": forward_sinks(down, True, sync), "stats": sport})
        r.update(row="spool, upstream down, sync = %s" % sync)
        rows.append(r)
    log("bench: spool, syslog-ng disk-buffer(reliable(yes)), upstream down")
    r = with_server(tmp, "syslog-ng-diskbuf", syslog_ng_diskbuf_at, {"upstream": free_port()})
    r.update(row="syslog-ng disk-buffer(reliable(yes)), upstream down")
    rows.append(r)
    lat = []
    for note, sinks in (("RELP, a file sink", None),
                        ("RELP, a file sink and a spool (sync always, upstream down)",
                         forward_sinks(free_port(), True, "always", file=True))):
        log("bench: spool, latency: %s" % note)
        r = with_server(tmp, "ingestd", follow_load("rate", 30000, 1000, ["--relp"]),
                        {"sinks": sinks} if sinks else None, True)
        r.update(server="ingestd", config=note, protocol="relp")
        lat.append(r)
    return {"rows": rows, "latency": lat}


class BenchCtx(PkiDir):
    """What lib.nats.NatsCluster needs of a case: a directory and a list of processes."""

    def __init__(self, d):
        super().__init__(d)
        self.procs = []


def nats_sink(js, prefix):
    def text(srv):
        return ('{ name = "js"; type = "nats"; servers = [ %s ]; subject = "%s.${host}"; '
                'stream = "%s"; max_pending = %d; }'
                % (", ".join('"%s"' % u for u in js.urls), prefix.lower(), prefix, NATS_WINDOW))
    return text


def nats_at(srv, js, stream):
    """Blast into a server whose nats sink publishes into stream: events/s acknowledged."""
    wait_quiet()
    pids, cluster = srv.all_pids(), [p.pid for p in js.procs]
    cpu0, ncpu0, t0 = server_cpu(pids), server_cpu(cluster), time.time()
    res = loadgen(srv.port, "-m", "blast", "-c", 8, "-d", SECONDS, *RECORDS)
    n, t1 = steady(lambda: js.info(stream)["msgs"], quiet=2.0, timeout=180, interval=0.2)
    cpu, ncpu = server_cpu(srv.all_pids()) - cpu0, server_cpu(cluster) - ncpu0
    return {"sent": res["records"], "events": n, "records_per_s": round(n / (t1 - t0)),
            "cpu_s_per_million": round(cpu / (n / 1e6), 3) if n else None,
            "cluster_cpu_s_per_million": round(ncpu / (n / 1e6), 3) if n else None,
            "client": res}


def natspub_at(js, stream, events, n):
    """The bare publisher, 2 processes, n events of the file in all, into stream."""
    wait_quiet()
    cluster = [p.pid for p in js.procs]
    ncpu0, t0 = server_cpu(cluster), time.time()
    procs = [subprocess.Popen([NATSPUB, ",".join(js.urls), stream.lower(), events,
                               str(n // 2), str(NATS_WINDOW)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    got, t1 = steady(lambda: js.info(stream)["msgs"], quiet=1.0, timeout=60, interval=0.2)
    secs = max(o["seconds"] for o in outs)
    ncpu = server_cpu(cluster) - ncpu0
    return {"events": got, "errors": sum(o["errors"] for o in outs),
            "records_per_s": round(got / secs),
            "cpu_s_per_million": round(sum(o["cpu_s"] for o in outs) / (got / 1e6), 3)
            if got else None,
            "cluster_cpu_s_per_million": round(ncpu / (got / 1e6), 3) if got else None,
            "wall_s": round(time.time() - t0, 1)}


def nats(tmp):
    """ingestd's nats sink and the bare publisher into an R1 and an R3 stream of one cluster."""
    d = os.path.join(tmp, "nats")
    os.makedirs(d, exist_ok=True)
    js = NatsCluster(BenchCtx(d))
    rows = []
    try:
        js.start()
        for r in (1, 3):
            ing, pub = "ING%d" % r, "PUB%d" % r
            js.add_stream(name=ing, subjects=[ing.lower() + ".>"], num_replicas=r)
            js.add_stream(name=pub, subjects=[pub.lower() + ".>"], num_replicas=r)
            log("bench: nats, ingestd into an R%d stream" % r)
            row = with_server(tmp, "ingestd", lambda s: nats_at(s, js, ing),
                              {"sinks": nats_sink(js, ing)})
            row.update(row="ingestd, nats sink, R%d" % r, replicas=r)
            rows.append(row)
            if not row.get("events"):
                continue
            events = os.path.join(d, "events-%d" % r)
            with open(events, "w") as f:
                subprocess.run([NATSCTL, ",".join(js.urls), "read", ing, "100000"], stdout=f,
                               check=True, timeout=300)
            log("bench: nats, the bare publisher into an R%d stream" % r)
            b = natspub_at(js, pub, events, row["events"])
            b.update(row="natspub (libnats js_PublishMsgAsync), R%d" % r, replicas=r)
            rows.append(b)
    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as e:
        log("bench: nats: %s" % e)
        rows.append({"row": "error", "error": str(e)})
    finally:
        for p in js.ctx.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return rows


# The five routes of `micro -r`, every one into the one file sink: what routing costs.
ROUTES = r"""routes = (
  { name = "errors"; match = "severity <= err"; sinks = [ "file" ]; final = false; },
  { name = "auth"; match = "facility in [auth, authpriv]"; sinks = [ "file" ]; },
  { name = "ssh"; match = "app == sshd and host == host7"; sinks = [ "file" ]; },
  { name = "fail"; match = "msg ~ \"fail(ed|ure)\""; sinks = [ "file" ]; },
  { name = "json"; match = "body.level == error or listener == audit"; sinks = [ "file" ]; }
);
"""


def blast_variants(tmp, name, variants):
    """blast over 8 connections into ingestd, for each (row, extra config or None), in rounds."""
    extra = dict(variants)

    def run(variant):
        r = with_server(tmp, "ingestd", lambda s: measure(s, lambda: loadgen(
            s.port, "-m", "blast", "-c", 8, "-d", SECONDS, *RECORDS)),
            {"extra": extra[variant]} if extra[variant] else None)
        r.update(row="ingestd, " + variant)
        return r
    return rounds(name, [(v,) for v, _ in variants], run, lambda r: r.get("records_per_s"))


def routes(tmp):
    """blast over 8 connections into ingestd with and without the five routes, in rounds."""
    return blast_variants(tmp, "routes", [("no routes", None), ("5 routes", ROUTES)])


SANDBOX = [("sandbox on", None), ("sandbox off", "sandbox = false;")]


def sandbox(tmp):
    """
    ingestd with its workers' seccomp filter and without: blast over 8
    connections (few system calls a record), and churn at 30,000
    connections/s (about ten a connection: accept4, epoll_ctl, reads, close).
    """
    extra = dict(SANDBOX)

    def churn_run(variant):
        r = with_server(tmp, "ingestd", follow_load("churn", 30000, 2000, CHURN),
                        {"extra": extra[variant]} if extra[variant] else None)
        r.update(row="ingestd, churn, " + variant)
        return r
    return {"blast": blast_variants(tmp, "sandbox", SANDBOX),
            "churn": rounds("sandbox churn", [(v,) for v, _ in SANDBOX], churn_run,
                            lambda r: r.get("cpu_s_per_million"))}


def micro():
    wait_quiet()
    out = []
    for args in ([], ["-r"], ["-t"]):
        r = subprocess.run([MICRO] + args + ["3"], capture_output=True, text=True)
        out.append(r.stdout.strip().splitlines()[0] if r.stdout.strip() else r.stderr.strip())
    return "\n".join(out)


# ----------------------------------------------------------------- report

def get(r, *keys):
    for k in keys:
        if not isinstance(r, dict) or k not in r:
            return None
        r = r[k]
    return r


def fmt(v, spec="{:,.0f}"):
    return "-" if v is None else spec.format(v)


def ratio(v, base):
    return "-" if v is None or not base else "%.2f" % (v / base)


def ms(us):
    return "-" if us is None else "%.2f" % (us / 1000)


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def throughput_table(rows):
    out = []
    for r in rows:
        base = next((b for b in rows if b["server"] == "ingestd" and b["load"] == r["load"]), {})
        out.append([r["server"], r["load"], fmt(r.get("records_per_s")),
                    ratio(r.get("records_per_s"), base.get("records_per_s")),
                    fmt(r.get("cpu_s_per_million"), "{:.3f}"),
                    ratio(r.get("cpu_s_per_million"), base.get("cpu_s_per_million")),
                    fmt(r.get("peak_rss_kb") and r["peak_rss_kb"] / 1024, "{:.1f}"),
                    fmt(r.get("bytes_per_record")), fmt(r.get("sent")), fmt(r.get("lost")),
                    note(r, lambda v: "%.2fM" % (v / 1e6))])
    return table(["server", "load", "records/s written", "x ingestd", "CPU s / M records",
                  "x ingestd", "peak RSS MB", "bytes / record written", "sent", "lost", "note"],
                 out)


def variants_table(rows, vs, rounds_of="records/s", spec="{:,.0f}"):
    """Rows of one load in variants (blast_variants'), each against the first."""
    base = get(rows[0], "records_per_s")
    return table(["ingestd", "records/s written", vs, "CPU s / M records",
                  "rounds (%s)" % rounds_of],
                 [[r.get("row"), fmt(get(r, "records_per_s")), ratio(get(r, "records_per_s"), base),
                   fmt(get(r, "cpu_s_per_million"), "{:.3f}"),
                   ", ".join(fmt(x, spec) for x in r.get("rounds") or [])] for r in rows])


def lat_cells(r, key="latency_us"):
    h = get(r, "client", key) or get(r, "client", "relp", key)
    return [ms(get(h, "p50")), ms(get(h, "p99")), ms(get(h, "p99_9")), ms(get(h, "max"))]


def note(r, spread=None):
    """The note column: an error, an interrupted load, or every round's figure."""
    if r.get("error"):
        return r["error"][:120]
    if get(r, "client", "interrupted"):
        return "load interrupted at its time limit"
    if spread and len(r.get("rounds", [])) > 1:
        return "rounds: " + ", ".join("-" if v is None else spread(v) for v in r["rounds"])
    return ""


def churn_table(rows):
    base = next((b for b in rows if b["server"] == "ingestd"), {})
    out = []
    for r in rows:
        c = r.get("client", {})
        out.append([r["server"], fmt(c.get("connections_per_s")),
                    ratio(c.get("connections_per_s"), get(base, "client", "connections_per_s")),
                    fmt(c.get("refused")), fmt(c.get("connect_errors")),
                    fmt(c.get("eof_timeouts")), fmt(r.get("lost")),
                    fmt(r.get("cpu_s_per_million"), "{:.3f}")] + lat_cells(r)[:2] + [note(r)])
    return table(["server", "connections/s", "x ingestd", "refused", "connect errors",
                  "EOF timeouts", "records lost", "CPU s / M conns", "p50 ms", "p99 ms",
                  "note"], out)


def latency_table(rows):
    out = []
    for r in rows:
        ack = lat_cells(r, "ack_latency_us") if r.get("protocol") == "relp" else ["-"] * 4
        out.append([r["server"], r["config"]] + lat_cells(r) + ack[:2] +
                   [fmt(get(r, "client", "follow", "duplicates")), fmt(r.get("lost")),
                    note(r, lambda v: "p99 %.2f" % (v / 1000))])
    return table(["server", "config", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
                  "ack p50 ms", "ack p99 ms", "duplicates", "lost", "note"], out)


def relp_table(rows):
    base = next((b for b in rows if b["server"] == "ingestd"), {})
    out = []
    for r in rows:
        acked = get(r, "client", "relp", "acked_per_s")
        h = get(r, "client", "relp", "ack_latency_us")
        out.append([r["server"], fmt(acked), ratio(acked, get(base, "client", "relp", "acked_per_s")),
                    ms(get(h, "p50")), ms(get(h, "p99")), fmt(r.get("written")),
                    fmt(r.get("cpu_s_per_million"), "{:.3f}"),
                    fmt(r.get("peak_rss_kb") and r["peak_rss_kb"] / 1024, "{:.1f}"), note(r)])
    return table(["server", "acked records/s", "x ingestd", "ack p50 ms", "ack p99 ms",
                  "written", "CPU s / M records", "peak RSS MB", "note"], out)


def udp_fixed_table(rows):
    base = next((b for b in rows if b["server"] == "ingestd"), {})
    out = []
    for r in rows:
        out.append([r["server"], fmt(r.get("send_rate")), fmt(r.get("lost")),
                    fmt(r.get("cpu_s_per_million"), "{:.3f}"),
                    ratio(r.get("cpu_s_per_million"), base.get("cpu_s_per_million"))] +
                   lat_cells(r)[:2] + [fmt(r.get("peak_rss_kb") and r["peak_rss_kb"] / 1024,
                                           "{:.1f}"), note(r)])
    return table(["server", "datagrams/s sent", "lost", "CPU s / M records", "x ingestd",
                  "p50 ms", "p99 ms", "peak RSS MB", "note"], out)


def udp_table(rows):
    base = next((b for b in rows if b["server"] == "ingestd"), {})
    out = []
    for r in rows:
        out.append([r["server"], fmt(r.get("send_rate")),
                    ratio(r.get("send_rate"), base.get("send_rate")),
                    fmt(r.get("lost")), fmt(r.get("cpu_s_per_million"), "{:.3f}"),
                    ratio(r.get("cpu_s_per_million"), base.get("cpu_s_per_million")),
                    r.get("stop", "-"), note(r)])
    return table(["server", "highest rate taken (datagrams/s sent)", "x ingestd", "lost",
                  "CPU s / M records", "x ingestd", "what stopped the climb", "note"], out)


def tls_throughput_table(rows):
    base = next((b for b in rows if b["server"] == "ingestd" and b["protocol"] == "tls"), {})
    out = []
    for r in rows:
        out.append([r["server"], "TLS 1.3" if r["protocol"] == "tls" else "clear text",
                    fmt(r.get("records_per_s")),
                    ratio(r.get("records_per_s"), base.get("records_per_s")),
                    fmt(r.get("cpu_s_per_million"), "{:.3f}"),
                    ratio(r.get("cpu_s_per_million"), base.get("cpu_s_per_million")),
                    fmt(r.get("peak_rss_kb") and r["peak_rss_kb"] / 1024, "{:.1f}"),
                    fmt(r.get("bytes_per_record")), fmt(r.get("lost")),
                    note(r, lambda v: "%.2fM" % (v / 1e6))])
    return table(["server", "transport", "records/s written", "x ingestd TLS",
                  "CPU s / M records", "x ingestd TLS", "peak RSS MB", "bytes / record written",
                  "lost", "note"], out)


def tls_handshake_table(rows):
    out = []
    for r in rows:
        base = next((b for b in rows if b["server"] == "ingestd" and
                     b["handshake"] == r["handshake"]), {})
        out.append([r["server"], r["handshake"], fmt(r.get("connections_per_s")),
                    ratio(r.get("connections_per_s"), base.get("connections_per_s")),
                    fmt(r.get("resumed")), fmt(r.get("connect_errors")),
                    fmt(r.get("cpu_ms_per_handshake"), "{:.3f}"), note(r)])
    return table(["server", "handshake", "connections/s", "x ingestd", "resumed",
                  "connect errors", "server CPU ms / connection", "note"], out)


def tls_memory_table(rows):
    out = []
    for r in rows:
        out.append([r["protocol"], fmt(r.get("connections")), fmt(r.get("base_rss_kb")),
                    fmt(r.get("rss_kb")), fmt(r.get("bytes_per_connection")),
                    fmt(r.get("bytes_per_connection") and r["bytes_per_connection"] / 1024,
                        "{:.1f}"), note(r)])
    return table(["connections", "idle", "workers' RSS before, KiB", "with them, KiB",
                  "bytes / connection", "KiB / connection", "note"], out)


def handover_table(r):
    c = r.get("client") or {}
    return table(["open before", "open after", "handed over", "hand-over (ms)", "master CPU (ms)",
                  "closed or reset at the client"],
                 [[fmt(r["connections"]), fmt(r["after"]), fmt(r["handed_over"]), fmt(r["ms"]),
                   fmt(r["master_cpu_ms"]),
                   fmt((c.get("closed_by_server") or 0) + (c.get("resets") or 0))]])


def spool_table(rows):
    out = []
    base = next((r for r in rows if r.get("row", "").startswith("spool, upstream down, sync "
                                                                  "= always")), {})
    for r in rows:
        out.append([r.get("row"), fmt(r.get("records_per_s")),
                    ratio(r.get("records_per_s"), base.get("records_per_s")),
                    fmt(r.get("cpu_s_per_million"), "{:.3f}"), fmt(r.get("bytes_per_record")),
                    fmt(r.get("drain_per_s")), fmt(r.get("sent")),
                    fmt(r.get("spooled", r.get("drained"))), r.get("error", "")])
    return table(["row", "events/s into the spool", "x ingestd (sync always)",
                  "CPU s / M events", "bytes / event on disk", "events/s to the upstream",
                  "sent", "spooled (or delivered)", "note"], out)


def nats_table(rows):
    out = []
    for r in rows:
        base = next((x for x in rows if x.get("replicas") == r.get("replicas") and
                     x.get("row", "").startswith("natspub")), {})
        out.append([r.get("row"), fmt(r.get("records_per_s")),
                    ratio(r.get("records_per_s"), base.get("records_per_s")),
                    fmt(r.get("cpu_s_per_million"), "{:.3f}"),
                    fmt(r.get("cluster_cpu_s_per_million"), "{:.3f}"),
                    fmt(r.get("events")), r.get("error", "")])
    return table(["row", "events/s acknowledged", "x the bare publisher", "CPU s / M events",
                  "cluster CPU s / M events", "events", "note"], out)


def accept_table(rows):
    out = []
    for r in rows:
        w = r.get("worker_connections") or []
        share = " / ".join("%.0f%%" % (100 * n / sum(w)) for n in w) if sum(w) else "-"
        out.append([r["accept_mode"], fmt(get(r, "client", "connections_per_s")),
                    " / ".join(str(n) for n in w) or "-", share,
                    fmt(get(r, "client", "refused"))] + lat_cells(r) + [note(r)])
    return table(["accept_mode", "connections/s", "per-worker connections", "share", "refused",
                  "p50 ms", "p99 ms", "p99.9 ms", "max ms", "note"], out)


def targets(res):
    """The issue's targets for ingestd: (what, figure, met)."""
    t = []
    tp = {(r["server"], r["load"]): r for r in res.get("throughput", [])}
    for load in ("ingestd-bench", "loggen"):
        i, rs = tp.get(("ingestd", load), {}), tp.get(("rsyslog-imptcp", load), {})
        for rsname in ("rsyslog-imptcp", "rsyslog-imtcp"):
            rs = tp.get((rsname, load), {})
            a, b = i.get("records_per_s"), rs.get("records_per_s")
            if a and b:
                t.append(("records/s >= 4x %s (%s)" % (rsname, load), "%.2fx" % (a / b), a >= 4 * b))
            a, b = i.get("cpu_s_per_million"), rs.get("cpu_s_per_million")
            if a and b:
                t.append(("CPU per record <= 1/4 of %s (%s)" % (rsname, load),
                          "%.2fx" % (a / b), a <= b / 4))
    c = next((r for r in res.get("churn", []) if r["server"] == "ingestd"), {})
    cps, refused = get(c, "client", "connections_per_s"), get(c, "client", "connect_errors")
    if cps is not None:
        t.append(("30,000 one-record connections/s, none refused",
                  "%.0f/s, %d connect errors, %d lost" % (cps, refused, c.get("lost", 0)),
                  cps >= 29700 and refused == 0 and c.get("lost") == 0))
    for r in res.get("latency", []):
        if r["server"] != "ingestd":
            continue
        p99 = get(r, "client", "latency_us", "p99")
        if p99 is not None:
            t.append(("p99 send->written < 2 ms at 30,000/s over 1,000 connections (%s)"
                      % r["config"], "%.2f ms" % (p99 / 1000), p99 < 2000))
        a99 = get(r, "client", "relp", "ack_latency_us", "p99")
        if a99 is not None:
            t.append(("p99 send->ack < 2 ms (%s)" % r["config"], "%.2f ms" % (a99 / 1000),
                      a99 < 2000))
    u = {r["server"]: r for r in get(res, "udp", "ladder") or []}
    i, rs = u.get("ingestd", {}), u.get("rsyslog-imudp", {})
    if i.get("send_rate") and rs.get("send_rate"):
        bound = "the sender's ceiling" in i.get("stop", "")
        t.append(("UDP rate taken (< 0.1% lost) >= 3x rsyslog imudp",
                  "%.2fx%s" % (i["send_rate"] / rs["send_rate"],
                               " (ingestd took all the sender could send)" if bound else ""),
                  i["send_rate"] >= 3 * rs["send_rate"]))
    for what, rows in (("at the highest rate", u), ("at %s/s" % fmt(UDP_FIXED),
                       {r["server"]: r for r in get(res, "udp", "fixed") or []})):
        a, b = get(rows, "ingestd", "cpu_s_per_million"), get(rows, "rsyslog-imudp",
                                                               "cpu_s_per_million")
        if a and b:
            t.append(("UDP CPU per record <= 1/3 of rsyslog imudp (%s)" % what,
                      "%.2fx" % (a / b), a <= b / 3))
    tt = {(r["server"], r["protocol"]): r for r in get(res, "tls", "throughput") or []}
    i = tt.get(("ingestd", "tls"), {})
    for peer in ("rsyslog-ossl", "rsyslog-gtls"):
        a, b = i.get("records_per_s"), get(tt, (peer, "tls"), "records_per_s")
        if a and b:
            t.append(("TLS records/s >= 4x %s" % peer, "%.2fx" % (a / b), a >= 4 * b))
        a, b = i.get("cpu_s_per_million"), get(tt, (peer, "tls"), "cpu_s_per_million")
        if a and b:
            t.append(("TLS CPU per record <= 1/4 of %s" % peer, "%.2fx" % (a / b), a <= b / 4))
    a, b = i.get("records_per_s"), get(tt, ("ingestd", "tcp"), "records_per_s")
    if a and b:
        t.append(("ingestd over TLS >= 70% of its clear-text records/s", "%.0f%%" % (100 * a / b),
                  a >= 0.7 * b))
    hs = {(r["server"], r["handshake"]): r for r in get(res, "tls", "handshakes") or []}
    a, b = get(hs, ("ingestd", "full"), "connections_per_s"), get(hs, ("nginx", "full"),
                                                                 "connections_per_s")
    if a and b:
        t.append(("full TLS handshakes/s >= 90% of nginx's", "%.0f%%" % (100 * a / b), a >= 0.9 * b))
    c = get(hs, ("ingestd", "resumed"), "connections_per_s")
    if a and c:
        t.append(("resumed handshakes/s clearly above full ones", "%.2fx" % (c / a), c >= 1.2 * a))
    m = next((r for r in get(res, "tls", "memory") or [] if r["protocol"] == "tls"), {})
    if m.get("bytes_per_connection"):
        t.append(("RSS per idle TLS connection <= 12 KiB at %s" % fmt(m.get("connections")),
                  "%.1f KiB" % (m["bytes_per_connection"] / 1024),
                  m["bytes_per_connection"] <= 12 * 1024))
    rl = {r["server"]: get(r, "client", "relp", "acked_per_s") for r in res.get("relp", [])}
    if rl.get("ingestd") and rl.get("rsyslog-imrelp"):
        t.append(("RELP acked records/s >= 5x imrelp",
                  "%.2fx" % (rl["ingestd"] / rl["rsyslog-imrelp"]),
                  rl["ingestd"] >= 5 * rl["rsyslog-imrelp"]))
    h = res.get("handover") or {}
    if h.get("ms") is not None:
        t.append(("reload hands %s connections over in < 1 s" % fmt(h["connections"]),
                  "%s ms, %s handed over" % (fmt(h["ms"]), fmt(h["handed_over"])),
                  h["ms"] < 1000 and h["handed_over"] == h["connections"]))
    sp = {r.get("row", ""): r for r in get(res, "spool", "rows") or []}
    a = sp.get("spool, upstream down, sync = always", {})
    f = sp.get("forward, no spool (what the upstream takes today)", {})
    if a.get("records_per_s"):
        t.append(("events/s into a spool, sync always, upstream down >= 500,000",
                  fmt(a["records_per_s"]), a["records_per_s"] >= 500000))
    if a.get("drain_per_s") and f.get("drain_per_s"):
        t.append(("drain from the spool >= a forward sink without one",
                  "%.2fx" % (a["drain_per_s"] / f["drain_per_s"]),
                  a["drain_per_s"] >= f["drain_per_s"]))
    g = sp.get("syslog-ng disk-buffer(reliable(yes)), upstream down", {})
    if a.get("records_per_s") and g.get("records_per_s"):
        t.append(("events/s into a spool >= 10x syslog-ng's reliable disk buffer",
                  "%.1fx" % (a["records_per_s"] / g["records_per_s"]),
                  a["records_per_s"] >= 10 * g["records_per_s"]))
    nt = {(r.get("row") or "")[:7] + str(r.get("replicas")): r for r in res.get("nats") or []}
    for rep in (1, 3):
        i, b = nt.get("ingestd%d" % rep, {}), nt.get("natspub%d" % rep, {})
        if i.get("records_per_s") and b.get("records_per_s"):
            t.append(("nats sink >= 80%% of the bare publisher, R%d" % rep,
                      "%.2fx" % (i["records_per_s"] / b["records_per_s"]),
                      i["records_per_s"] >= 0.8 * b["records_per_s"]))
    i = nt.get("ingestd3", {})
    if i.get("records_per_s"):
        t.append(("events/s into an R3 stream >= 100,000", fmt(i["records_per_s"]),
                  i["records_per_s"] >= 100000))
    return t


def chart(res, stem):
    """A PNG: records/s written and CPU per million records, per server and load."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        log("bench: no gnuplot, no chart (make bench installs gnuplot-nox)")
        return None
    data = stem + ".dat"
    with open(data, "w") as f:
        # columns: server, records/s (ingestd-bench, loggen), CPU s per M (same)
        for kind in SERVERS:
            row = {r["load"]: r for r in res.get("throughput", []) if r["server"] == kind}
            vals = [get(row, "ingestd-bench", "records_per_s"), get(row, "loggen", "records_per_s"),
                    get(row, "ingestd-bench", "cpu_s_per_million"),
                    get(row, "loggen", "cpu_s_per_million")]
            f.write("%s %s\n" % (kind, " ".join("%g" % (v or 0) for v in vals)))
    png = stem + ".png"
    script = """
set terminal pngcairo size 1100,460 font ",10"
set output '%s'
set multiplot layout 1,2 title "%s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top right
set grid ytics
set xtics rotate by -20
set format y "%%.1s%%c"
set title "records/s written (100-byte RFC 3164, 8 connections; log scale)"
set logscale y
set yrange [10000:*]
plot '%s' using 2:xtic(1) title 'ingestd-bench', '' using 3 title 'loggen'
unset logscale y
set yrange [0:*]
set format y "%%g"
set title "server CPU seconds per million records (lower is better)"
plot '%s' using 4:xtic(1) title 'ingestd-bench', '' using 5 title 'loggen'
unset multiplot
""" % (png, "make bench, %s" % res["date"], data, data)
    r = subprocess.run([gnuplot], input=script, capture_output=True, text=True)
    if r.returncode != 0:
        r = subprocess.run([gnuplot], input=script.replace("pngcairo", "png"),
                           capture_output=True, text=True)
    os.unlink(data)
    if r.returncode != 0 or not os.path.exists(png):
        log("bench: gnuplot failed: %s" % r.stderr[-400:])
        return None
    return png


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        m = re.search(r"model name\s*:\s*(.*)", f.read())
        model = m[1].strip() if m else platform.processor()
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30)}


def report(res):
    m = res["machine"]
    print("# make bench, %s\n" % res["date"])
    print("Machine: %d CPUs (%s), %d GiB, Linux %s; every load %g s; "
          "100-byte RFC 3164 records.\n" % (m["cpus"], m["cpu_model"], m["mem_gb"],
                                           m["kernel"], SECONDS))
    print("Pipeline on one core (tests/bench/micro; with five routes; with a template):\n\n%s\n"
          % "\n".join("- " + line for line in res["micro"].splitlines()))
    print("## Throughput (8 connections; ratios: the server's figure / ingestd's)\n")
    print("With ingestd-bench, each server's median of %d rounds by records/s (every round's "
          "figure in the note; lost: the most any round lost); loggen: one round.\n" % ROUNDS)
    print(throughput_table(res.get("throughput", [])) + "\n")
    print("## Churn: one record per connection, 30,000 connections/s target, at most 2,000 open\n")
    print(churn_table(res.get("churn", [])) + "\n")
    print("## Latency: 30,000 records/s over 1,000 connections, send -> written "
          "(and -> acknowledged over RELP)\n")
    print("Each row: the median of %d rounds by p99 (every round's p99 in the note).\n" % ROUNDS)
    print(latency_table(res.get("latency", [])) + "\n")
    print("## RELP: acknowledged records/s, ingestd-bench --relp (window 128) over 8 connections\n")
    print(relp_table(res.get("relp", [])) + "\n")
    print("## UDP: %s datagrams/s of 100-byte RFC 3164 records from 8 sockets\n" % fmt(UDP_FIXED))
    print(udp_fixed_table(get(res, "udp", "fixed") or []) + "\n")
    print("## UDP: the highest rate taken with under 0.1%% lost, of %s\n"
          % ", ".join(fmt(r) for r in UDP_RATES))
    print(udp_table(get(res, "udp", "ladder") or []) + "\n")
    if res.get("tls"):
        tls_report(res["tls"])
    print("## Accept balancing under churn (ingestd)\n")
    print(accept_table(res.get("accept", [])) + "\n")
    if res.get("spool"):
        print("## Spool: blast over 8 connections into a forward sink whose upstream is down, "
              "then drained into the discard receiver\n")
        print(spool_table(res["spool"]["rows"]) + "\n")
        print("RELP answers (30,000 records/s over 1,000 connections) with and without a spool:\n")
        print(latency_table(res["spool"]["latency"]) + "\n")
    if res.get("nats"):
        print("## NATS JetStream: blast over 8 connections into a nats sink, and the bare "
              "publisher with the same events (3-node loopback cluster, file storage)\n")
        print(nats_table(res["nats"]) + "\n")
    if res.get("routes"):
        print("## Routes: blast over 8 connections, without routes and with the five of "
              "`micro -r` (all into the one file sink)\n")
        print(variants_table(res["routes"], "x no routes") + "\n")
    if res.get("sandbox"):
        print("## Sandbox: blast over 8 connections, the workers under their seccomp filter "
              "(the default) and without it\n")
        print(variants_table(res["sandbox"]["blast"], "x sandbox on") + "\n")
        print("Churn, 30,000 connections/s, one record each (CPU s / M records: per million "
              "connections):\n")
        print(variants_table(res["sandbox"]["churn"], "x sandbox on", "CPU s / M", "{:.3f}") +
              "\n")
    if res.get("handover"):
        print("## A reload with %s connections open, each handed to the new generation\n"
              % fmt(HANDOVER_CONNS))
        print(handover_table(res["handover"]) + "\n")
    print("## Targets\n")
    print(table(["target", "figure", "met"],
                [[a, b, "yes" if c else "**no**"] for a, b, c in res["targets"]]) + "\n")


def tls_report(t):
    print("## TLS: 8 connections, TLS 1.3, ECDSA P-256, every server writing JSON events\n")
    print("Each server's median of %d rounds by records/s; ingestd in clear text in the same "
          "rounds.\n" % ROUNDS)
    print(tls_throughput_table(t["throughput"]) + "\n")
    print("## TLS handshakes: one record per connection, %s connections/s asked, at most 500 open"
          "\n" % fmt(TLS_RATE))
    print(tls_handshake_table(t["handshakes"]) + "\n")
    print("## Memory per idle connection (ingestd's workers, %s connections, nothing sent)\n"
          % fmt(IDLE_CONNS))
    print(tls_memory_table(t["memory"]) + "\n")


PARTS = ("throughput", "churn", "latency", "relp", "accept", "udp", "tls", "handover", "spool",
         "nats", "routes", "sandbox")


def suite(parts=PARTS):
    for path in (INGESTD, LOADGEN, DISCARD, MICRO, RSYSLOGD, NATSPUB, NATSCTL):
        if not os.access(path, os.X_OK):
            sys.exit("bench: no %s (make bench builds and installs what it needs)" % path)
    os.makedirs(RESULTS, exist_ok=True)
    t0 = time.monotonic()
    date = datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    res = {"date": date, "machine": machine(), "seconds_per_load": SECONDS,
           "command": "make bench", "micro": micro()}
    tmp = tempfile.mkdtemp(prefix="ingestd-bench-")
    try:
        for name, fn in (("throughput", throughput), ("churn", churn), ("latency", latency),
                         ("relp", relp), ("accept", accept), ("udp", udp), ("tls", tls),
                         ("handover", handover), ("spool", spool), ("nats", nats),
                         ("routes", routes), ("sandbox", sandbox)):
            if name in parts:
                res[name] = fn(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["targets"] = targets(res)
    res["suite_seconds"] = round(time.monotonic() - t0, 1)
    stem = os.path.join(RESULTS, "bench-" + date.replace(":", ""))
    with open(stem + ".json", "w") as f:
        json.dump(res, f, indent=1)
    shutil.copy(stem + ".json", os.path.join(RESULTS, "latest.json"))
    png = chart(res, stem)
    if png:
        shutil.copy(png, os.path.join(RESULTS, "latest.png"))
    report(res)
    print("Raw results: %s.json%s; the suite took %.0f s."
          % (os.path.relpath(stem, ROOT), ", chart: %s" % os.path.relpath(png, ROOT) if png else "",
             res["suite_seconds"]))


# ------------------------------------------------------------------ smoke

def smoke():
    """
    make check: ingestd-bench against ingestd, briefly: blast and rate with
    --follow (exactly once), --relp through a reload (SIGHUP) mid-run:
    every acknowledged record in the sink, the re-sent ones reported as
    duplicates; --udp at 10,000 datagrams/s into a UDP listener whose
    receive buffer (32 MB) holds more than the whole run, so that none is
    lost even if the machine stalls the worker; and --tls, blast (exactly
    once) and churn with --resume (the handshakes after the first ticket
    resume).
    """
    tmp = tempfile.mkdtemp(prefix="ingestd-smoke-")
    passed, failed, servers = 0, 0, []

    def case(name, ok, detail):
        nonlocal passed, failed
        print("%s %s%s" % ("ok  " if ok else "FAIL", name, "" if ok else ": " + detail), flush=True)
        passed, failed = passed + ok, failed + (not ok)

    def server(relp, udp=False, tls=None):
        servers.append(Server("ingestd", tmp, {"flush_interval": "0.01", "recv_buffer": 32 << 20,
                                               "tls": tls}, relp, udp))
        servers[-1].start()
        return servers[-1]

    try:
        srv = server(False)
        r = loadgen(srv.port, "-m", "blast", "-n", 200000, "-c", 4, "-f", srv.out)
        case("bench_smoke_blast", r["ok"] and r["follow"]["received"] == 200000, json.dumps(r))
        r = loadgen(srv.port, "-m", "rate", "-r", 20000, "-c", 100, "-d", 1, "-f", srv.out)
        case("bench_smoke_rate", r["ok"] and r["latency_us"]["count"] == 20000, json.dumps(r))
        srv.stop()
        srv = server(True)
        argv = [LOADGEN, "-p", str(srv.port), "-j", "-m", "rate", "--relp", "-r", 20000,
                "-c", 20, "-d", 3, "-f", srv.out]
        p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        srv.proc.send_signal(signal.SIGHUP)
        out, _ = p.communicate(timeout=60)
        if not out.strip():
            raise RuntimeError("`%s` exited %d with no summary" % (" ".join(map(str, argv)),
                                                                   p.returncode))
        r = json.loads(out.strip().splitlines()[-1])
        rl, fl = r.get("relp", {}), r.get("follow", {})
        case("bench_smoke_relp_reload",
             r["ok"] and rl.get("reconnects", 0) >= 1 and rl.get("unacked") == 0 and
             rl.get("acked") == 60000 and fl.get("missing") == 0 and fl.get("unexpected") == 0 and
             fl.get("duplicates") <= rl.get("resends"), json.dumps(r))
        srv.stop()
        srv = server(False, udp=True)
        r = loadgen(srv.port, "-m", "rate", "--udp", "-r", 10000, "-c", 4, "-d", 1, "-f", srv.out)
        case("bench_smoke_udp", r["ok"] and r["follow"]["received"] == 10000, json.dumps(r))
        srv.stop()
        pki = tls_pki(tmp)
        srv = server(False, tls=pki)
        tls = ["--tls", "--ca", os.path.join(pki, "ca.pem"), "--server-name", SERVER_NAME]
        r = loadgen(srv.port, "-m", "blast", "-n", 100000, "-c", 4, "-f", srv.out, *tls)
        case("bench_smoke_tls_blast", r["ok"] and r["follow"]["received"] == 100000 and
             r["established"] == 4, json.dumps(r))
        r = loadgen(srv.port, "-m", "churn", "-r", 500, "-c", 50, "-d", 1, "--resume", *tls)
        case("bench_smoke_tls_churn", r["ok"] and r["completed"] == 500 and
             r["tls_resumed"] >= 400 and r["tls_failed"] == 0, json.dumps(r))
    except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        case("bench_smoke", False, repr(e))
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("bench-smoke: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def redraw(path):
    """--chart RESULTS.json: draw the chart of an earlier run again, beside it."""
    with open(path) as f:
        res = json.load(f)
    print(chart(res, os.path.splitext(path)[0]))


if __name__ == "__main__":
    # A SIGTERM (timeout(1), say) still stops the servers, in the finally clauses.
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(1))
    if sys.argv[1:] == ["--smoke"]:
        sys.exit(smoke())
    if len(sys.argv) == 3 and sys.argv[1] == "--chart":
        sys.exit(redraw(sys.argv[2]))
    if sys.argv[1:] == ["--tls"]:
        suite(parts=("tls",))
        sys.exit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "--part" and sys.argv[2] in PARTS:
        suite(parts=(sys.argv[2],))
        sys.exit(0)
    if sys.argv[1:]:
        sys.exit("usage: bench.py [--smoke | --tls | --part %s | --chart FILE]" % "|".join(PARTS))
    suite()
