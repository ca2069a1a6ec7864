"""
NATS JetStream sinks against a real 3-node nats-server cluster on loopback
(started from etc/scale-out/nats-server.conf, its stream from
etc/scale-out/stream.json: file storage, 3 replicas, 2 minutes of duplicate
window), read back with natsctl (libnats, an ordered consumer): events and
subjects intact; every answered RELP record in the stream, once, through a
leader killed, a replica killed and a node stopped; the whole cluster down
with a block and a drop queue; a reload and a binary upgrade; two instances
behind HAProxy; user and password over TLS.  Where nodes are killed, what
counts is what a majority of the nodes' stores holds, read from their
files after the run (held_counts): a node nats-server 2.9.10 brought back
diverged would otherwise hide acknowledged messages from a reader.
"""
import collections
import json
import os
import re
import signal
import subprocess
import sys
import time

from lib.base import case, check, Failure, LOCAL4, long_case, tail, wait_until
from lib.clients import TcpLoad, octet_frame
from lib.events import CS_RE, read_events, record_text, wait_lines
from lib.nats import NatsCluster, nats_binary, natsctl, operator_mode, quorum
from lib.net import LORIS_SOURCES, free_port, http_get, prom_values, try_connect
from lib.peers import haproxy_two
from lib.proc import threads_state
from lib.relp import RelpLoad, fault_run
from lib.server import pipeline_server
from lib.tls import SERVER_NAME, Pki
from test_faults import kills, upgrade
from test_proxy import ProxiedSender


def cluster(ctx):
    """The example deployment's 3 nodes, started, with its stream LOGS."""
    js = NatsCluster(ctx)
    js.start()
    js.add_stream()
    return js


def nats_sink(js, **kw):
    return dict({"name": "js", "type": "nats", "servers": js.urls,
                 "subject": "logs.${host}", "stream": "LOGS"}, **kw)


def cs_key(ev):
    m = CS_RE.search(record_text(ev))
    return (int(m[1]), int(m[2])) if m else None


def stream_counts(js):
    """A Counter of the (c, s) of the stream's events, as a reader gets them."""
    return lambda: js.counts("LOGS", cs_key)


def held_counts(js):
    """
    For the cases that kill nodes: a Counter of the (c, s) of the events a
    majority of the stream's replicas holds, read from the nodes' own
    stores once they stopped, which is what JetStream acknowledged.  A
    reader gets them through the leader; what it misses must be where the
    replicas diverged (nats-server 2.9.10 may bring a node killed -9 back
    lacking acknowledged messages the others hold, holding others twice or
    at other sequences, and a reader reading through it while it leads
    misses those): said, with the figures, and anything else missed fails
    the case.
    """
    def counts():
        seen = stream_counts(js)()
        js.stop()
        agreed, odd, lacks = quorum(js.stores("LOGS"))
        held = collections.Counter(cs_key(json.loads(p)) for p in agreed.values())
        odd_keys = {cs_key(json.loads(agreed[m])) for m in odd if m in agreed}
        missed = [k for k in held if k and seen[k] == 0]
        check(all(k in odd_keys for k in missed), f"the reader missed {len(missed)} events "
              f"every replica holds alike, e.g. {[k for k in missed if k not in odd_keys][:5]}")
        if odd:
            print(f"# nats-server: the replicas diverged: of the {len(agreed)} messages a "
                  f"majority holds, " + ", ".join(f"{n} lacks {k}" for n, k in
                                                zip(js.names, lacks)) +
                  f"; {len(odd)} are not held alike (missing, or at other sequences); the "
                  f"reader missed {len(missed)} events a majority holds",
                  file=sys.stderr, flush=True)
        return held
    return counts


def all_answered(js, loads):
    """Every record the RELP loads had answered is held by the stream: (how many, copies more)."""
    seen = held_counts(js)()
    acked = [(t.cid, q) for t in loads for q in t.acked]
    lost = [k for k in acked if seen[k] == 0]
    check(not lost, f"{len(lost)} of {len(acked)} answered records are not in the stream")
    return len(acked), sum(seen[k] - 1 for k in acked)


def sink_metrics(port, sink="js"):
    v = prom_values(http_get(port, "/metrics")[2])
    return {k.split("{")[0][len("ingestd_sink_"):]: int(n) for k, n in v.items()
            if k.startswith("ingestd_sink_") and f'sink="{sink}"' in k}


def stalls(port):
    """How often the workers' loops came back more than 1 s late (ingestd_loop_stalls_total)."""
    return prom_values(http_get(port, "/metrics")[2]).get(
        'ingestd_loop_stalls_total{reason="over_1s"}', 0)


def stats_extra():
    port = free_port()
    return port, f'stats = {{ listen = "{LOCAL4}:{port}"; }};'


def subject_of(host):
    """The subject a host makes of logs.${host} (see subject in ingestd.conf(5))."""
    if host is None or host == "":
        return "logs._"
    t = "".join("_" if c <= " " or c in "*>\x7f" else c for c in host)
    t = "".join("_" if c == "." and (i == 0 or i == len(t) - 1 or t[i - 1] == ".") else c
                for i, c in enumerate(t))
    return "logs." + t


@case
def nats_events(ctx):
    """
    Events published to an R3 stream are the very events a file sink beside
    it writes, field for field, each on the subject logs.${host} (dots in a
    host make more tokens, "*" becomes "_", no host "_"), each with its own
    Nats-Msg-Id; the worker says at start that the stream captures the subject.
    """
    js = cluster(ctx)
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "framing": "octet-counted"}],
                        sinks=[{"name": "file", "path": path}, nats_sink(js)], level="info")
    s.start()
    s.wait_for_log(r'sink js: nats: stream "LOGS" captures the subject logs\.\$\{host\}, 3 '
                   r"replicas", timeout=15)
    records = [b"<13>1 2024-05-06T07:08:09.123Z web1 app 42 ID7 [ex@1 k=\"v\\\"q\"] \xef\xbb\xbfhi",
               b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed on /dev/pts/8",
               b"<13>1 2024-05-06T07:08:09Z a.example app - - - dots",
               b"<13>1 2024-05-06T07:08:09Z h*st app - - - star",
               b"<13>1 2024-05-06T07:08:09Z - app - - - no host",
               b'{"host":"in-body","msg":"json","n":[1,2,{"x":null}]}',
               b"raw \x00 bytes \xff\xfe that are not UTF-8",
               b"<13>1 2024-05-06T07:08:09Z web1 app - - - " + b"x" * 20000]
    c = ctx.connect(s.addr)
    c.sendall(b"".join(octet_frame(r) for r in records))
    wait_lines([path], len(records), timeout=10)
    check(wait_until(lambda: js.info("LOGS")["msgs"] >= len(records), 15),
          f"the stream holds {js.info('LOGS')['msgs']} of {len(records)} events")
    c.close()
    s.stop()
    want = read_events(path)
    got = js.messages("LOGS")
    key = lambda ev: json.dumps(ev, sort_keys=True)
    check(sorted(key(e) for _, _, e in got) == sorted(key(e) for e in want),
          f"the stream's events differ from the file's: {[e for _, _, e in got][:3]} ... vs "
          f"{want[:3]} ...")
    bad = [(subj, ev.get("host")) for subj, _, ev in got if subj != subject_of(ev.get("host"))]
    check(not bad, f"subjects that are not logs.${{host}}: {bad}")
    subjects = sorted(subj for subj, _, _ in got)
    check({"logs.a.example", "logs.h_st", "logs._", "logs.web1"} <= set(subjects),
          f"the subjects are {subjects}")
    ids = [i for _, i, _ in got]
    check(len(set(ids)) == len(ids) and all(i != "-" for i in ids),
          f"message ids are not one per event: {ids}")


def cluster_faults(js, stream, sport):
    """
    The leader killed and restarted, a replica killed and restarted, a node
    stopped 10 s.  Should the answers stop, the failure says what the sink
    and each worker's threads were doing (a loop blocked on a lock, say).
    """
    def progressed(loads, by=1000, timeout=90):
        n = sum(len(t.acked) for t in loads)
        if not wait_until(lambda: sum(len(t.acked) for t in loads) >= n + by, timeout,
                          interval=0.1):
            check(all(t.is_alive() for t in loads), "the RELP clients reached their time "
                  "bound before the faults were through")
            raise Failure(f"the RELP answers stopped: sink {sink_metrics(sport)}, "
                          f"{stalls(sport)} loop stalls over 1 s; stream {js.info(stream)}; "
                          f"threads (tid state wchan syscall): " + " | ".join(
                              f"worker {w}: {threads_state(w)}" for w in current_workers))

    def current():
        check(wait_until(lambda: js.info(stream)["current"] == 3, 60, interval=0.2),
              "the stream's replicas did not catch up")

    def fault(s, loads):
        steps = []
        current_workers[:] = s.workers()
        progressed(loads, 3000)
        lead = js.leader(stream)
        js.kill(lead)
        steps.append(f"leader {js.names[lead]} killed")
        progressed(loads)
        js.start(lead)
        current()
        other = next(i for i in range(3) if i != js.leader(stream))
        js.kill(other)
        steps.append(f"replica {js.names[other]} killed")
        progressed(loads)
        js.start(other)
        current()
        lead = js.leader(stream)
        js.kill(lead, signal.SIGSTOP)
        steps.append(f"leader {js.names[lead]} stopped 10 s")
        time.sleep(10)
        js.kill(lead, signal.SIGCONT)
        progressed(loads)
        print(f"# nats_cluster_faults: {'; '.join(steps)}", file=sys.stderr, flush=True)
    current_workers = []
    return fault


@long_case
def nats_cluster_faults(ctx):
    """
    Under RELP load from 3 clients (and one plain TCP client), the stream's
    leader is killed (-9) and restarted, then a replica, then the leader
    is stopped (SIGSTOP) for 10 s: every answered record is in the stream
    (held by a majority of the replicas: held_counts), and none twice (the
    resends the faults cause carry their first message id, and the stream's
    duplicate window drops them).  The clients run for up to 500 s: a
    replica catching up on a loaded machine can take a minute.
    """
    js = cluster(ctx)
    sport, extra = stats_extra()
    counts = held_counts(js)
    got = {}

    def after(s, loads, _):
        got.update(sink_metrics(sport))

    _, r = fault_run(ctx, "nats_cluster_faults", cluster_faults(js, "LOGS", sport), relp=3, tcp=1,
                     sinks=[nats_sink(js)], delivered=counts, after=after, extra=extra,
                     seconds=500)
    check(r["dups"] == 0, f"{r['dups']} answered records are in the stream more than once")
    print(f"# nats_cluster_faults: the sink published {got.get('resent_total', 0)} events again, "
          f"the stream dropped {got.get('duplicates_total', 0)} of them as duplicates",
          file=sys.stderr, flush=True)


def outage_server(ctx, js, overflow, queue, protocol="relp"):
    """RELP (or TCP) into the nats sink, TCP into a file: the file shows the loop runs on."""
    sport, extra = stats_extra()
    tcp_port = free_port()
    path = ctx.path("alive.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "protocol": protocol,
                               "sinks": ["js"]},
                              {"listen": f"{LOCAL4}:{tcp_port}", "sinks": ["file"]}],
                        sinks=[nats_sink(js, overflow=overflow, queue=queue),
                               {"name": "file", "path": path}], extra=extra, level="info")
    s.start()
    return s, sport, tcp_port, path


def loop_runs(ctx, tcp_port, path, n):
    """
    While the nats sink is stuck, records sent to the file sink arrive: no
    worker's loop waits on the NATS client.  (Each worker serves some of 8
    connections; a loop blocked would hold its share back.)
    """
    socks = [ctx.connect((LOCAL4, tcp_port)) for _ in range(8)]
    for k, c in enumerate(socks):
        c.sendall(b"".join(b"<13>Nov 24 01:02:03 host alive[1]: c=%d s=%d\n" % (900 + k, q)
                           for q in range(n)))
    try:
        wait_lines([path], 8 * n, timeout=5)
        return True
    except Failure:
        return False
    finally:
        for c in socks:
            c.close()


@long_case
def nats_cluster_down_block(ctx):
    """
    The whole cluster killed for 10 s under RELP load, with overflow =
    "block": the answers stop (the clients are held, not refused), the
    workers' loops run on (records to a file sink arrive meanwhile, and no
    loop came back more than 1 s late: a connect to a dead server in the
    loop would block it for the 2 s of its timeout, again and again), and
    once the nodes are back delivery resumes by itself: every answered
    record is in the stream.
    """
    js = cluster(ctx)
    s, sport, tcp_port, path = outage_server(ctx, js, "block", "1M")
    loads = [RelpLoad(s.addr, c) for c in range(3)]
    for t in loads:
        t.start()
    check(wait_until(lambda: sum(len(t.acked) for t in loads) > 2000, 20), "no answers")
    pids, stalled = s.workers(), stalls(sport)
    for i in range(3):
        js.kill(i)
    t0 = time.monotonic()
    time.sleep(3)
    held = sum(len(t.acked) for t in loads)
    check(loop_runs(ctx, tcp_port, path, 200), "records to the file sink did not arrive while "
          "the cluster was down: a worker's loop is blocked")
    time.sleep(max(0, 10 - (time.monotonic() - t0)))
    check(sum(len(t.acked) for t in loads) == held, "records were answered while the whole "
          "cluster was down")
    check(stalls(sport) == stalled, f"a worker's loop stopped for more than 1 s "
          f"{stalls(sport) - stalled} times while the cluster was down (ingestd_loop_stalls_total)")
    js.start()
    check(wait_until(lambda: sum(len(t.acked) for t in loads) > held + 2000, 60, interval=0.2),
          "delivery did not resume once the cluster was back")
    for t in loads:
        t.finish(timeout=60)
    m = sink_metrics(sport)
    check(s.workers() == pids, "a worker was restarted")
    s.stop()
    acked, dups = all_answered(js, loads)
    print(f"# nats_cluster_down_block: {acked} answered, 0 lost, {dups} duplicates; {held} "
          f"answered before the outage held the clients; {m.get('resent_total', 0)} published "
          "again", file=sys.stderr, flush=True)


@case
def nats_cluster_down_drop(ctx):
    """
    The whole cluster killed under plain TCP load, with overflow = "drop"
    and a 64 KiB queue: what does not fit is dropped and counted, the
    workers stay and serve on, and once the nodes are back new records
    reach the stream.
    """
    js = cluster(ctx)
    s, sport, tcp_port, path = outage_server(ctx, js, "drop", "64K", protocol="tcp")
    pids = s.workers()
    for i in range(3):
        js.kill(i)
    load = TcpLoad(s.addr, 1)
    load.start()
    check(wait_until(lambda: sink_metrics(sport).get("dropped_total", 0) > 1000, 20),
          f"nothing was dropped: {sink_metrics(sport)}")
    check(loop_runs(ctx, tcp_port, path, 200), "records to the file sink did not arrive while "
          "the cluster was down")
    load.finish()
    js.start()
    check(wait_until(lambda: sink_metrics(sport)["queue_bytes"] == 0, 60, interval=0.2),
          "the queue did not drain once the cluster was back")
    c = ctx.connect(s.addr)
    c.sendall(b"".join(b"<13>Nov 24 01:02:03 host after[1]: c=7 s=%d\n" % q for q in range(100)))
    after = lambda: stream_counts(js)()
    check(wait_until(lambda: sum(v for k, v in after().items() if k[0] == 7) == 100, 60,
                     interval=0.5), "records sent once the cluster was back did not arrive")
    c.close()
    m = sink_metrics(sport)
    check(s.workers() == pids, "a worker was restarted")
    s.stop()
    check(s.grep(r"sink js: queue full; dropping events"), "the drops were not logged")
    print(f"# nats_cluster_down_drop: {m['dropped_total']} events dropped and counted while the "
          f"cluster was down, of {load.sent} sent", file=sys.stderr, flush=True)


@long_case
def nats_spool_outage(ctx):
    """
    A nats sink with a spool (sync always): the whole cluster killed under
    RELP load, and the clients are still answered (the records are on
    disk), to the last one; a worker killed meanwhile leaves its spool to
    the next one; the nodes back, the spools drain into the stream by
    themselves: every answered record is there.
    """
    js = cluster(ctx)
    d = ctx.path("spool")
    os.makedirs(d, exist_ok=True)
    sport, extra = stats_extra()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "protocol": "relp"}],
                        sinks=[nats_sink(js, spool={"path": d})], extra=extra, level="info")
    s.start()
    loads = [RelpLoad(s.addr, c) for c in range(3)]
    for t in loads:
        t.start()
    check(wait_until(lambda: sum(len(t.acked) for t in loads) > 2000, 20), "no answers")
    for i in range(3):
        js.kill(i)
    down = sum(len(t.acked) for t in loads)
    check(wait_until(lambda: sum(len(t.acked) for t in loads) > down + 20000, 30, interval=0.1),
          "the RELP clients were not answered while the cluster was down, with a spool")
    check(wait_until(lambda: sink_metrics(sport).get("spool_records", 0) > 10000, 20),
          f"the spool does not hold the records: {sink_metrics(sport)}")
    spooled = collections.Counter()   # bytes of segments by owner: w<pid in hex>-<ms>-<seq>.seg
    for f in os.listdir(d):
        m = re.match(r"w([0-9a-f]+)-[0-9a-f]+-[0-9a-f]+\.seg$", f)
        if m and int(m[1], 16) in s.workers():
            spooled[int(m[1], 16)] += os.path.getsize(os.path.join(d, f))
    check(spooled, f"no worker has records in its spool: {os.listdir(d)}")
    os.kill(spooled.most_common(1)[0][0], signal.SIGKILL)
    for t in loads:                     # answered from the spool: the cluster is still down
        t.finish(timeout=60)
    held = sum(len(t.acked) for t in loads) - down
    js.start()
    check(wait_until(lambda: sink_metrics(sport).get("spool_records", 1) == 0, 90, interval=0.5),
          f"the spool did not drain: {sink_metrics(sport)}")
    m = sink_metrics(sport)
    s.stop()
    check(s.grep(r"taking over w[0-9a-f]+-"), "no worker took the killed one's spool over")
    acked, dups = all_answered(js, loads)
    print(f"# nats_spool_outage: {held} records answered while the cluster was down; {acked} "
          f"answered in all, 0 lost, {dups} duplicates ({m.get('resent_total', 0)} published "
          "again)", file=sys.stderr, flush=True)


@case
def nats_reload_upgrade(ctx):
    """
    Under RELP load, a reload that changes the subject (logs.${host} to
    logs.${app}), then a binary upgrade: every answered record is in the
    stream, the ones after the reload on the new subject.
    """
    js = cluster(ctx)

    def fault(s, loads):
        m = s.mark()
        s.write_config(sinks=[nats_sink(js, subject="logs.${app}")])
        s.signal(signal.SIGHUP)
        s.wait_for_log(r"reload: generation 2 accepting", since=m, timeout=10)
        time.sleep(1)
        upgrade(s, loads)
        time.sleep(1)

    fault_run(ctx, "nats_reload_upgrade", fault, relp=3, tcp=1, sinks=[nats_sink(js)],
              delivered=stream_counts(js))
    subjects = collections.Counter(subj for subj, _, _ in js.messages("LOGS"))
    check(subjects.get("logs.host", 0) > 0 and subjects.get("logs.relp", 0) > 0,
          f"the subjects before and after the reload: {dict(subjects)}")


@case
def nats_haproxy_two_instances(ctx):
    """
    The README's deployment: HAProxy (send-proxy-v2) in front of two
    ingestd instances publishing to one cluster; 8 clients from 4
    addresses: every record in the stream once, both instances took part,
    each event's peer its client's own address.
    """
    js = cluster(ctx)
    front = free_port()
    ports = {"a": free_port(), "b": free_port()}
    servers = {n: pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ports[n]}",
                                         "proxy_protocol": True, "allow": ["127.0.0.1"]}],
                                  sinks=[nats_sink(js, subject="logs." + n)], name=n,
                                  port=ports[n])
               for n in ports}
    for srv in servers.values():
        srv.start()
    hp = haproxy_two(ctx, front, ports["a"], ports["b"])
    clients = [ProxiedSender((LOCAL4, front), LORIS_SOURCES[i % 4], cid=i) for i in range(8)]
    for c in clients:
        c.start()
    time.sleep(4)
    for c in clients:
        c.finish()
    check(hp.poll() is None, "haproxy exited during the run")
    sent = sum(c.sent for c in clients)
    check(wait_until(lambda: js.info("LOGS")["msgs"] >= sent, 20, interval=0.2),
          f"the stream holds {js.info('LOGS')['msgs']} of {sent} records")
    for srv in servers.values():
        srv.stop()
    peers = {(c.cid, q): peer for c in clients for peer, first, n, *_ in c.conns
             for q in range(first, first + n)}
    seen, by = collections.Counter(), collections.Counter()
    for subj, _, ev in js.messages("LOGS"):
        m = CS_RE.search(record_text(ev))
        check(m, f"not a sent record: {json.dumps(ev)[:200]}")
        k = (int(m[1]), int(m[2]))
        check(peers.get(k) == ev["peer"], f"{k} has peer {ev['peer']}, its client was "
              f"{peers.get(k)}")
        seen[k] += 1
        by[subj] += 1
    check(set(seen) == set(peers) and all(v == 1 for v in seen.values()),
          f"{len(set(peers) - set(seen))} records missing, "
          f"{sum(1 for v in seen.values() if v > 1)} twice")
    check(by["logs.a"] and by["logs.b"], f"one instance took no part: {dict(by)}")
    print(f"# nats_haproxy_two_instances: {sent} records over "
          f"{sum(len(c.conns) for c in clients)} connections, each once in the stream "
          f"(a {by['logs.a']}, b {by['logs.b']})", file=sys.stderr, flush=True)


TLS_NODE = """\
server_name: tls1
host: 127.0.0.1
port: {port}
tls {{ cert_file: "{cert}"; key_file: "{key}"; ca_file: "{ca}"; verify: true }}
authorization {{ user: ingest; password: s3cret }}
jetstream {{ store_dir: "{store}" }}
"""

TOKEN_NODE = """\
server_name: tok1
host: 127.0.0.1
port: {port}
authorization {{ token: "t0k-en" }}
jetstream {{ store_dir: "{store}" }}
"""


def one_node(ctx, text):
    """A single nats-server (JetStream) from the configuration text; its port."""
    port = free_port()
    conf = ctx.path("nats-one.conf")
    with open(conf, "w") as f:
        f.write(text.format(port=port, store=ctx.path("nats-one")))
    p = subprocess.Popen([nats_binary(), "-c", conf], stdin=subprocess.DEVNULL,
                         stdout=open(ctx.path("nats-one.log"), "ab"), stderr=subprocess.STDOUT)
    ctx.procs.append(p)
    up = wait_until(lambda: try_connect((LOCAL4, port)), 15, interval=0.05)
    check(up, f"nats-server does not listen: {tail(open(ctx.path('nats-one.log')).read())}")
    up.close()
    return port


def publishes(ctx, s, url, env=None, n=1000):
    """n records to the server's listener reach the stream LOGS of url."""
    c = ctx.connect(s.addr)
    c.sendall(b"".join(b"<13>Nov 24 01:02:03 onehost app: c=1 s=%d\n" % q for q in range(n)))
    info = lambda: natsctl(url, "info", "LOGS", env=env)
    check(wait_until(lambda: f" msgs {n} " in info(), 15, interval=0.2),
          f"the stream holds: {info()}")
    c.close()


@case
def nats_tls_user_password(ctx):
    """
    A node that requires TLS with a client certificate, and a user and
    password: a sink with the CA, the server name, its certificate and the
    password publishes into an R1 stream; a sink with a wrong password says
    why in the log (drop queue: its events are counted), and the workers stay.
    """
    pki = Pki(ctx)
    cert, key = pki.leaf("server", SERVER_NAME)
    ccert, ckey = pki.leaf("client", "client.test")
    port = one_node(ctx, TLS_NODE.replace("{cert}", cert).replace("{key}", key)
                    .replace("{ca}", pki.path("ca.pem")))
    env = {"NATSCTL_CA": pki.path("ca.pem"), "NATSCTL_NAME": SERVER_NAME,
           "NATSCTL_CERT": ccert, "NATSCTL_KEY": ckey}
    url = f"tls://ingest:s3cret@{LOCAL4}:{port}"
    natsctl(url, "add", "LOGS", "logs.>", "1", env=env)
    tls = {"ca_file": pki.path("ca.pem"), "server_name": SERVER_NAME, "certificate": ccert,
           "key": ckey}
    sink = {"type": "nats", "servers": [f"tls://{LOCAL4}:{port}"], "subject": "logs.${host}",
            "stream": "LOGS", "user": "ingest", "tls": tls}
    sport, extra = stats_extra()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], extra=extra, level="info",
                        sinks=[dict(sink, name="js", password="s3cret"),
                               dict(sink, name="bad", password="wrong", overflow="drop",
                                    queue="64K")])
    s.start()
    pids = s.workers()
    publishes(ctx, s, url, env)
    s.wait_for_log(r"sink bad: nats: cannot connect: .*[Aa]uthorization", timeout=15)
    check(s.workers() == pids, "a worker was restarted")
    check(sink_metrics(sport, "js").get("dropped_total", 0) == 0, "the good sink dropped events")
    s.stop()


@case
def nats_token(ctx):
    """A node that authenticates by token: a sink with the token publishes."""
    port = one_node(ctx, TOKEN_NODE)
    url = f"nats://t0k-en@{LOCAL4}:{port}"
    natsctl(url, "add", "LOGS", "logs.>", "1")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], level="info",
                        sinks=[{"name": "js", "type": "nats", "servers": [f"nats://{LOCAL4}:{port}"],
                                "subject": "logs.${host}", "stream": "LOGS", "token": "t0k-en"}])
    s.start()
    publishes(ctx, s, url)
    s.stop()


CREDS_NODE = """\
server_name: op1
host: 127.0.0.1
port: {port}
jetstream {{ store_dir: "{store}" }}
"""


@case
def nats_credentials(ctx):
    """
    A node in operator mode (an operator, an account with JetStream and a
    user, made as nsc(1) would: Ed25519 NKeys by openssl, signed JWTs): a
    sink with the user's .creds file publishes; one without is refused, and
    says why.
    """
    conf, creds = operator_mode(ctx)
    port = one_node(ctx, conf.replace("{", "{{").replace("}", "}}") + CREDS_NODE)
    url = f"nats://{LOCAL4}:{port}"
    env = {"NATSCTL_CREDS": creds}
    natsctl(url, "add", "LOGS", "logs.>", "1", env=env)
    sink = {"type": "nats", "servers": [url], "subject": "logs.${host}", "stream": "LOGS"}
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}], level="info",
                        sinks=[dict(sink, name="js", credentials=creds),
                               dict(sink, name="anon", overflow="drop", queue="64K")])
    s.start()
    publishes(ctx, s, url, env)
    s.wait_for_log(r"sink anon: nats: cannot connect: .*[Aa]uthoriz", timeout=15)
    s.stop()


@case
def nats_kill9_workers(ctx):
    """
    kill -9 of a random worker every second for 6 s under RELP load into an
    R3 stream: every answered record is in the stream (a RELP client's
    resend after a kill is a new event: it may be there twice, counted).
    """
    js = cluster(ctx)
    fault_run(ctx, "nats_kill9_workers", kills, relp=3, tcp=1, sinks=[nats_sink(js)],
                     delivered=stream_counts(js))
