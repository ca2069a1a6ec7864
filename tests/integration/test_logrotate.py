"""
Rotation: files moved away and opened anew by name.  USR1 after the log
was moved; -s reopen while clients send, and sink paths that move on by
themselves (strftime); logrotate -f with etc/logrotate.d/ingestd, the
sink rotated as the workers' user.  Nothing lost, nothing twice, no line
split.
"""
import grp
import os
import pwd
import shutil
import signal
import sys
import time

from lib.base import BINARY, LOCAL4, ROOT, case, check, tail, wait_until
from lib.server import pipeline_server
from lib.events import check_once, read_events, wait_lines
from lib.clients import RecordSender, tool


@case
def reopen_logs(ctx):
    """USR1 after the log file was moved away: the master and every worker write to a new file."""
    s = ctx.server(workers=2)
    s.start()
    w = s.wait_workers(2)
    rotated = s.log_path + ".1"
    os.rename(s.log_path, rotated)
    s.signal(signal.SIGUSR1)
    check(wait_until(lambda: os.path.exists(s.log_path), 2), "USR1 did not create a new log file")
    with open(rotated) as f:
        check("reopening log files" in f.read(), "the master did not log the reopen")
    size = os.path.getsize(rotated)
    s.stop()
    log = s.log()
    check("graceful shutdown" in log, f"the master's shutdown is not in the new log: {tail(log)}")
    exited = {e["pid"] for e in s.exits()}
    check(exited == set(w), f"exit lines of workers {sorted(exited)} in the new log, expected {w}")
    check(os.path.getsize(rotated) == size, "lines went to the rotated log after the reopen")


@case
def strftime_rotation_and_reopen(ctx):
    """
    path ev-%Y%m%d.jsonl is today's UTC date and sec-%H%M%S.jsonl moves on
    every second; mv ev.jsonl ev.jsonl.1 and -s reopen while clients send:
    new events in a new ev.jsonl; none lost, none twice, none split.
    """
    day0 = time.strftime("%Y%m%d", time.gmtime())
    plain = ctx.path("ev.jsonl")
    rotated = plain + ".1"
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "dated", "path": ctx.path("ev-%Y%m%d.jsonl")},
                               {"name": "plain", "path": plain, "flush_interval": 0.05},
                               {"name": "secs", "path": ctx.path("sec-%H%M%S.jsonl"),
                                "flush_interval": 0.05}],
                        accept_mode="reuseport")
    secs = lambda: sorted(f for f in os.listdir(ctx.dir) if f.startswith("sec-"))
    s.start()
    senders = [RecordSender(s.addr, cid) for cid in range(2)]
    for x in senders:
        x.start()
    try:
        wait_lines([plain], 1000, 5)
        os.rename(plain, rotated)
        at_rename = sum(x.sent for x in senders)
        rc, out, err = ctx.run(["-c", s.conf, "-s", "reopen"])
        check(rc == 0, f"`ingestd -s reopen` exited {rc}: {tail(err)}")
        n = wait_lines([plain], 1000, 5)
        size = os.path.getsize(rotated)
        wait_lines([plain], n + 1000, 5)
        check(os.path.getsize(rotated) == size, "events still go to the renamed ev.jsonl.1 after "
              "the reopen")
        check(all(x.is_alive() for x in senders), "a sender stopped (at its bound) before the reopen")
        check(wait_until(lambda: len(secs()) >= 2, 3), f"path sec-%H%M%S.jsonl: {secs()} after "
              "more than a second of events")
    finally:
        for x in senders:
            x.finish()
    sent = {x.cid: x.sent for x in senders}
    total = sum(sent.values())
    check(total > at_rename, "nothing was sent after the rename")
    wait_lines([plain, rotated], total, 10)
    s.stop()
    day1 = time.strftime("%Y%m%d", time.gmtime())
    expected = {(c, q) for c, n in sent.items() for q in range(n)}
    old, new = read_events(rotated), read_events(plain)
    check(old and new, f"{len(old)} events in ev.jsonl.1, {len(new)} in the new ev.jsonl")
    check_once(old + new, expected, "ev.jsonl.1 + ev.jsonl")
    dated = sorted(f for f in os.listdir(ctx.dir) if f.startswith("ev-"))
    check(len(dated) == 1 and dated[0] in (f"ev-{day0}.jsonl", f"ev-{day1}.jsonl"),
          f"files for path ev-%Y%m%d.jsonl: {dated}, expected ev-{day1}.jsonl (UTC)")
    check_once(read_events(ctx.path(dated[0])), expected, dated[0])
    check_once([e for f in secs() for e in read_events(ctx.path(f))], expected,
               " + ".join(secs()))


@case
def logrotate_reopen(ctx):
    """
    logrotate -f with etc/logrotate.d/ingestd (paths pointed at the case's
    directories) while a client sends records and the log is written: the
    log (in a directory of root's) and the sink's file (in one of the
    workers' user's, rotated as that user: nobody, as root) move to .1 and
    are opened anew by name; across the old and new files every record is
    there exactly once and every line is whole JSON.
    """
    check(shutil.which("logrotate") or os.path.exists("/usr/sbin/logrotate"),
          "no logrotate (`make deps` installs it)")
    user = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    group = grp.getgrgid(user.pw_gid).gr_name
    os.chmod(ctx.dir, 0o755)                    # the workers' user reaches its directory
    logdir, datadir = ctx.path("log"), ctx.path("data")
    os.makedirs(logdir)
    os.makedirs(datadir)
    os.chown(datadir, user.pw_uid, user.pw_gid)
    os.chmod(datadir, 0o750)
    sink = os.path.join(datadir, "events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "events", "path": sink, "flush_interval": 0.01}],
                        level="debug", extra=f'user = "{user.pw_name}"; group = "{group}";')
    s.log_path = os.path.join(logdir, "ingestd.log")
    s.write_config()
    s.start()
    with open(os.path.join(ROOT, "etc", "logrotate.d", "ingestd")) as f:
        text = f.read()
    text = (text.replace("/var/log/ingestd", logdir).replace("/var/lib/ingestd", datadir)
            .replace("su ingestd ingestd", f"su {user.pw_name} {group}")
            .replace("/usr/local/sbin/ingestd", BINARY)
            .replace("/run/ingestd/ingestd.pid", s.pid_file))
    conf = ctx.path("logrotate.conf")
    with open(conf, "w") as f:
        f.write(text)
    os.chmod(conf, 0o644)
    sender = RecordSender(s.addr, cid=1, max_records=20000, max_seconds=20)
    sender.start()
    wait_until(lambda: sender.sent >= 3000, 10)
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    rc, out = tool([logrotate, "-f", "-s", ctx.path("logrotate.state"), conf])
    check(rc == 0, f"logrotate -f: exit {rc}: {tail(out)}")
    rotated_log = os.path.join(logdir, "ingestd.log.1")
    said = wait_until(lambda: os.path.exists(rotated_log) and
                      "reopening log files" in open(rotated_log).read(), 5)
    check(said, "the master did not log the reopen (in the rotated log)")
    sender.join(30)
    sender.finish()
    check(sender.sent == 20000, f"the client sent {sender.sent} of 20000 records")
    wait_until(lambda: len(read_events(sink, whole_only=True)) +
               len(read_events(sink + ".1", whole_only=True)) >= 20000, 10)
    s.stop()
    old, new = read_events(sink + ".1"), read_events(sink)
    check(old and new, f"{len(old)} events in events.jsonl.1 and {len(new)} in events.jsonl: "
          "the rotation did not split the stream")
    check_once(old + new, {(1, q) for q in range(20000)}, "records across the rotation")
    check("exiting" in open(s.log_path).read(), "the reopened log did not get the later lines")
    print(f"# logrotate_reopen: {len(old)} events before the reopen, {len(new)} after, none "
          "lost or split", file=sys.stderr, flush=True)
