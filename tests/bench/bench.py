#!/usr/bin/env python3
"""make bench (first version): the pipeline's cost on one core, and an
end-to-end run into a real ingestd.

1. tests/bench/micro: framing + parse + encode of a 100-300 byte mix of
   RFC 3164, RFC 5424 and JSON records, in memory, one core.
2. end to end: ingestd (2 workers, file sink) on a free loopback port,
   tests/bench/blast sending as fast as it can over 8 connections; the
   figures are the records counted in the output file per second (from the
   first byte sent to the last line written) and the server's CPU seconds
   (master and workers, from /proc) per million records.

The machine is shared and small: compare ratios within one run, not
absolute figures across runs.
"""
import json, os, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INGESTD = os.environ.get("INGESTD", os.path.join(ROOT, "ingestd"))
BENCH = os.path.join(ROOT, "tests", "bench")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def children(pid):
    try:
        return [int(p) for p in open("/proc/%d/task/%d/children" % (pid, pid)).read().split()]
    except OSError:
        return []


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return n
            n += b.count(b"\n")


def end_to_end(seconds, conns, shape):
    tmp = tempfile.mkdtemp(prefix="ingestd-bench-")
    port, out = free_port(), os.path.join(tmp, "events.jsonl")
    conf = os.path.join(tmp, "ingestd.conf")
    with open(conf, "w") as f:
        f.write('workers = 2;\npid_file = "%s/ingestd.pid";\nlog = { level = "warning"; };\n'
                'listeners = ( { name = "bench"; listen = "127.0.0.1:%d"; } );\n'
                'sinks = ( { name = "file"; path = "%s"; } );\n' % (tmp, port, out))
    srv = subprocess.Popen([INGESTD, "-f", "-c", conf], stderr=open(os.path.join(tmp, "log"), "w"))
    try:
        # A connect can succeed before the workers exist (the kernel queues
        # it): wait for both workers, then for a connection.
        for _ in range(200):
            if len(children(srv.pid)) == 2:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    pass
            time.sleep(0.05)
        pids = [srv.pid] + children(srv.pid)
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        res = subprocess.run([os.path.join(BENCH, "blast"), "-p", str(port), "-c", str(conns),
                              "-d", str(seconds), "-s", shape], capture_output=True, text=True)
        sent = int(res.stdout.split("sent ")[1].split()[0])
        deadline, written = time.monotonic() + 60, 0
        while time.monotonic() < deadline:
            written = count_lines(out) if os.path.exists(out) else 0
            if written >= sent:
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(pids) - cpu0
        with open(out) as f:
            for i, line in enumerate(f):
                if i % 997 == 0:
                    json.loads(line)
        return {"shape": shape, "connections": conns, "sent": sent, "written": written,
                "seconds": round(elapsed, 2), "records_per_s": round(written / elapsed),
                "server_cpu_s": round(cpu, 2),
                "cpu_s_per_million": round(cpu / (written / 1e6), 3) if written else None,
                "client": res.stdout.strip()}
    finally:
        srv.terminate()
        srv.wait(10)
        subprocess.run(["rm", "-rf", tmp])


def main():
    seconds = float(os.environ.get("BENCH_SECONDS", "5"))
    micro = subprocess.run([os.path.join(BENCH, "micro"), "3"], capture_output=True, text=True)
    print(micro.stdout.strip())
    for shape in ("mix", "3164"):
        r = end_to_end(seconds, 8, shape)
        print("end-to-end %-4s: %d sent, %d written (lost %d), %.0f records/s written, "
              "server CPU %.2f s = %.3f CPU s per million records"
              % (r["shape"], r["sent"], r["written"], r["sent"] - r["written"],
                 r["records_per_s"], r["server_cpu_s"], r["cpu_s_per_million"] or 0))


if __name__ == "__main__":
    main()
