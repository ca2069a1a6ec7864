"""
Per-client rate limits (rate_records, rate_bytes, rate_burst, rate_action):
a noisy client beside a well-behaved one on the same worker, throttled
(held to its rate, nothing lost, the other unharmed) and dropped (what
does not fit is dropped and counted, exactly); the limits refused where
they cannot apply.
"""
import re
import sys
import threading
import time

from lib.base import LOCAL4, case, check, tail, wait_until
from lib.events import log_time, read_events, wait_lines
from lib.net import LORIS_SOURCES, connect_from, free_port, http_get, prom_values
from lib.server import pipeline_server

NOISY, CALM = LORIS_SOURCES[0], LORIS_SOURCES[1]
PAD = "x" * 200


def record(cid, seq):
    return f"<13>Oct 11 22:14:15 h app: c={cid} s={seq} {PAD}\n".encode()


class Sender(threading.Thread):
    """
    A client from source sending records c=cid s=0..count-1: paced at rate
    a second (batches every 20 ms), or as fast as TCP lets it (rate 0);
    bounded by count and by seconds.
    """

    def __init__(self, ctx, addr, source, cid, count, rate=0, seconds=30):
        super().__init__(daemon=True)
        self.ctx, self.addr, self.source, self.cid, self.count = ctx, addr, source, cid, count
        self.rate, self.seconds, self.sent = rate, seconds, 0
        self.t0 = self.t1 = None

    def run(self):
        with connect_from(self.ctx, self.source, self.addr, timeout=30) as c:
            self.t0 = time.monotonic()
            deadline = self.t0 + self.seconds
            while self.sent < self.count and time.monotonic() < deadline:
                n = min(self.count - self.sent, max(1, self.rate // 50) if self.rate else 200)
                c.sendall(b"".join(record(self.cid, self.sent + i) for i in range(n)))
                self.sent += n
                if self.rate:
                    time.sleep(max(0.0, self.t0 + self.sent / self.rate - time.monotonic()))
            self.t1 = time.monotonic()


def received(path, cid):
    """The receive times (seconds since the epoch) of client cid's events, in order."""
    return [log_time(e["received_at"]) for e in read_events(path)
            if f"c={cid} " in e.get("msg", "")]


def limited_server(ctx, action, rate):
    sport, path = free_port(), ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "rate_records": rate,
                               "rate_burst": 0.5, "rate_action": action}], workers=1,
                        sinks=[{"name": "events", "path": path}],
                        extra=f'stats = {{ listen = "{LOCAL4}:{sport}"; }};')
    s.start()
    return s, sport, path


@case
def ratelimit_throttle(ctx):
    """
    rate_records = 2000, throttle: a client sending 500 records/s alone and
    then beside a noisy client flooding from another address on the same
    worker; the calm one's records arrive as promptly as alone (>= 90% of
    them within 0.5 s of being sent), the noisy one is held to 2,000/s
    (+-10%, measured by the events' receive times after its burst), and
    every record it sent arrives.
    """
    rate = 2000
    s, sport, path = limited_server(ctx, "throttle", rate)
    alone = Sender(ctx, s.addr, CALM, 1, 1500, rate=500)
    alone.run()
    wait_lines([path], 1500, timeout=10)
    calm = Sender(ctx, s.addr, CALM, 2, 2500, rate=500)
    noisy = Sender(ctx, s.addr, NOISY, 3, 16000, seconds=8)
    noisy.start()
    time.sleep(0.5)
    calm.start()
    calm.join(20)
    noisy.join(20)
    wait_lines([path], 1500 + calm.sent + noisy.sent, timeout=20)
    s.stop()

    def prompt(cid, sender):
        times = received(path, cid)
        epoch0 = time.time() - time.monotonic()     # the senders' clock on the events'
        late = [t for i, t in enumerate(times)
                if t - (epoch0 + sender.t0 + i / sender.rate) > 0.5]
        return len(times), 1 - len(late) / max(1, len(times))

    n_alone, p_alone = prompt(1, alone)
    n_calm, p_calm = prompt(2, calm)
    check(n_alone == 1500 and n_calm == calm.sent, f"the calm client's records: {n_alone} of "
          f"1500 alone, {n_calm} of {calm.sent} beside the noisy one")
    check(p_calm >= 0.9 * p_alone, f"beside the noisy client {p_calm:.0%} of the calm one's "
          f"records arrived within 0.5 s, {p_alone:.0%} alone")
    times = received(path, 3)
    check(len(times) == noisy.sent, f"{len(times)} of the noisy client's {noisy.sent} records "
          "arrived: throttling lost some")
    burst = rate // 2
    steady = times[burst:]
    got = (len(steady) - 1) / (steady[-1] - steady[0])
    check(abs(got - rate) <= 0.1 * rate, f"the noisy client was held to {got:.0f} records/s, "
          f"not {rate} +-10%")
    print(f"# ratelimit_throttle: the calm client {p_alone:.0%} prompt alone, {p_calm:.0%} "
          f"beside the noisy one; the noisy one {got:.0f} records/s for a limit of {rate}, "
          f"{len(times)} of {noisy.sent} delivered", file=sys.stderr, flush=True)


@case
def ratelimit_drop(ctx):
    """
    rate_records = 1000, rate_action = drop: a client flooding 6,000
    records loses what does not fit, ingestd_ratelimit_dropped_total says
    exactly how many, and a calm client from another address loses none.
    """
    s, sport, path = limited_server(ctx, "drop", 1000)
    noisy = Sender(ctx, s.addr, NOISY, 3, 6000)
    calm = Sender(ctx, s.addr, CALM, 2, 500, rate=250)
    noisy.start()
    calm.start()
    noisy.join(20)
    calm.join(20)
    metric = 'ingestd_ratelimit_dropped_total{listener="l0"}'
    records = 'ingestd_records_total{listener="l0"}'
    check(wait_until(lambda: prom_values(http_get(sport, "/metrics")[2]).get(records, 0) >= 6500,
                     10, interval=0.05), "not every record was read")
    dropped = int(prom_values(http_get(sport, "/metrics")[2]).get(metric, 0))
    wait_lines([path], 6500 - dropped, timeout=10)
    time.sleep(0.2)
    s.stop()
    got_noisy, got_calm = len(received(path, 3)), len(received(path, 2))
    check(got_calm == 500, f"the calm client lost {500 - got_calm} records")
    check(dropped > 0 and got_noisy + dropped == 6000, f"the noisy client: {got_noisy} delivered, "
          f"{dropped} counted as dropped, of 6000")
    check(got_noisy < 6000 * 0.8, f"{got_noisy} of 6000 passed a limit of 1000/s")
    print(f"# ratelimit_drop: the noisy client {got_noisy} of 6000 delivered, {dropped} dropped "
          "and counted; the calm one 500 of 500", file=sys.stderr, flush=True)


@case
def ratelimit_config_checks(ctx):
    """A rate limit on a datagram listener, and one without a burst, are refused by -t."""
    udp = free_port()
    for listener, why in (
            ({"listen": f"udp://{LOCAL4}:{udp}", "rate_records": 10},
             r"listeners\[0\]\.rate_records: rate limits hold back streams; udp://"),
            ({"listen": f"{LOCAL4}:{ctx.port}", "rate_bytes": "1M", "rate_burst": 0},
             r"listeners\[0\]\.rate_burst: must be more than 0 with a rate limit")):
        s = pipeline_server(ctx, [listener])
        rc, _, err = ctx.run(["-t", "-c", s.conf])
        check(rc == 1 and re.search(why, err), f"-t exited {rc}: {tail(err)}")
