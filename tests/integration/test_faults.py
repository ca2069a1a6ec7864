"""
RELP: nothing acknowledged is lost.  Continuous load from several
connections through faults: 20 reloads, kill -9 of workers, a restart of
the whole server, a binary upgrade, a full disk.  A RELP client keeps
every record until it is answered and re-sends what was not after a
reconnect: every answered record must be in the sink (a re-sent one may
be there twice, and is counted).  A plain TCP client under the same fault
shows what plain TCP loses, for the documentation (lib/relp.py fault_run).
"""
import os
import signal
import time

from lib.base import case, check, tail, wait_until
from lib.proc import alive, read_pid
from lib.relp import fault_run
from lib.disk import mount_tmpfs, remount_tmpfs


def reloads(s, _):
    """The fault of relp_faults_reloads: 20 reloads (HUP) in a row."""
    for g in range(2, 22):
        m = s.mark()
        s.signal(signal.SIGHUP)
        s.wait_for_log(rf"reload: generation {g} accepting", since=m, timeout=10)
        time.sleep(0.1)


def kills(s, _):
    """The fault of relp_faults_kill9: kill -9 of a random worker every second for 6 s."""
    rnd = __import__("random").Random(7)
    for _ in range(6):
        pids = s.workers()
        if pids:
            os.kill(rnd.choice(pids), signal.SIGKILL)
        time.sleep(1)
    s.wait_workers(2, timeout=10)


def upgrade(s, _):
    """The fault of relp_faults_upgrade: ingestd -s upgrade."""
    old = s.master
    rc, _, err = s.ctx.run(["-c", s.conf, "-s", "upgrade"], timeout=30)
    check(rc == 0, f"-s upgrade exited {rc}: {tail(err)}")
    s.master = read_pid(s.pid_file)
    check(wait_until(lambda: not alive(old), 10), f"the old master {old} did not exit")
    time.sleep(0.5)


@case
def relp_faults_reloads(ctx):
    """20 reloads (HUP) in a row under RELP and plain TCP load: no answered record lost."""
    fault_run(ctx, "relp_faults_reloads", reloads)


@case
def relp_faults_kill9(ctx):
    """kill -9 of a random worker every second for 6 s under load: no answered record lost."""
    fault_run(ctx, "relp_faults_kill9", kills)


@case
def relp_faults_master_restart(ctx):
    """The whole server stopped (SIGTERM) and started again under load: no answered record lost."""
    def restart(s, _):
        s.stop(sig=signal.SIGTERM)
        time.sleep(0.3)
        s.start()
        time.sleep(1)

    fault_run(ctx, "relp_faults_master_restart", restart)


@case
def relp_faults_upgrade(ctx):
    """A binary upgrade (ingestd -s upgrade) under load: no answered record lost."""
    fault_run(ctx, "relp_faults_upgrade", upgrade)


@case
def relp_faults_disk_full(ctx):
    """
    The sink's disk (a 1 MiB tmpfs) fills under RELP load: answers stop,
    the clients wait; with space again everything resumes and no answered
    record is lost.
    """
    disk = ctx.path("disk")
    mount_tmpfs(ctx, disk, "1m")
    path = os.path.join(disk, "events.jsonl")

    def fill_then_free(s, loads):
        s.wait_for_log(r"sink events: write \S+: No space left on device", timeout=20)
        time.sleep(0.5)
        answered = sum(len(t.acked) for t in loads)
        time.sleep(1)
        now = sum(len(t.acked) for t in loads)
        check(now == answered, f"{now - answered} records were answered in a second while the "
              "disk was full")
        remount_tmpfs(disk, "256m")
        m = s.mark()
        s.wait_for_log(r"sink events: writing again", since=m, timeout=10)
        time.sleep(0.5)

    fault_run(ctx, "relp_faults_disk_full", fill_then_free, relp=2, tcp=0,
              sinks=[{"name": "events", "path": path, "queue": "256K"}], sink_path=path)
