"""
Processes by pid, from /proc: state, children, command line, CPU, memory,
descriptors and limits; pid files; killing by pid only what is still the
process meant; the subreaper that adopts our orphans.
"""
import ctypes
import os
import pwd
import re
import resource
import signal
import subprocess

from .base import Failure, wait_until


PR_CAPBSET_DROP = 24
CAP_SYS_RESOURCE = 24


def proc_state(pid):
    """The state letter of pid ('R', 'S', 'Z', ...), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()[0]


def threads_state(pid):
    """
    What each thread of pid is doing, for a failure message: "tid state
    wchan syscall-number" per thread (a loop blocked on a lock shows
    futex_wait_queue and syscall 202), or "gone".
    """
    out = []
    try:
        tids = sorted(os.listdir(f"/proc/{pid}/task"), key=int)
    except OSError:
        return "gone"
    for tid in tids:
        fields = []
        for name in ("stat", "wchan", "syscall"):
            try:
                with open(f"/proc/{pid}/task/{tid}/{name}") as f:
                    fields.append(f.read().strip())
            except OSError:
                fields.append("?")
        state = fields[0][fields[0].rfind(")") + 2:].split()[0] if ")" in fields[0] else "?"
        out.append(f"{tid} {state} {fields[1] or '-'} {fields[2].split()[0] if fields[2] else '?'}")
    return "; ".join(out)


def alive(pid):
    """A process that exists and has not exited (a zombie has exited)."""
    st = proc_state(pid)
    return st is not None and st not in ("Z", "X")


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children(pid):
    """Live child processes of pid, sorted."""
    kids = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return sorted(p for p in kids if alive(p))


def descendants(pid):
    """Every live process below pid: its children, theirs, and so on."""
    kids = children(pid)
    return kids + [d for k in kids for d in descendants(k)]


def kill_by_pid(pids, mark, sig=signal.SIGKILL, timeout=5):
    """
    Send sig to each of pids, in order, that is alive and whose
    /proc/PID/cmdline holds mark (the process meant, not another one that
    got its pid since); wait up to timeout seconds for them to end; return
    those still running.
    """
    pids = [p for p in pids if p]
    ours = lambda pid: alive(pid) and mark in cmdline(pid)
    for pid in pids:
        if ours(pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    wait_until(lambda: not [p for p in pids if ours(p)], timeout)
    return [p for p in pids if ours(p)]


def reap(pid):
    """The wait status of pid if it is an exited child of ours, else None."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return status if got == pid else None


def become_subreaper():
    """
    Orphans of our processes (a daemonized master, the workers of a killed
    master) are re-parented to us rather than to an init that may never reap
    them, so that their exit status can be read.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0    # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def unused_pid():
    """A pid that no process has (below pid_max, so it could be a real one)."""
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            top = int(f.read())
    except OSError:
        top = 32768
    for pid in range(top - 1, max(top - 5000, 300), -1):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    raise Failure("no unused pid found below pid_max")


def nofile_preexec(rlimit):
    """
    A preexec_fn that sets RLIMIT_NOFILE to rlimit (soft, hard), or None for
    rlimit None.  As root it also drops CAP_SYS_RESOURCE from the bounding
    set, so that the exec'd master cannot raise the hard limit back (it
    raises it to fit worker_connections when it may: server/master.c
    raise_nofile).
    """
    if rlimit is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def pre():
        resource.setrlimit(resource.RLIMIT_NOFILE, rlimit)
        if os.geteuid() == 0 and libc.prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE)")
    return pre


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def as_user(name, argv):
    """Run argv as user name (its uid, gid and no other groups), to completion; its exit status."""
    pw = pwd.getpwnam(name)

    def demote():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return subprocess.run(argv, preexec_fn=demote, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=10).returncode


def status_kb(pid, field):
    """A "Name:   N kB" field of /proc/PID/status (VmRSS, VmHWM, ...), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def vm_rss_kb(pid):
    return status_kb(pid, "VmRSS")


def cpu_seconds(pid):
    """utime + stime of pid from /proc/PID/stat, in seconds (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nofile_of(pid):
    """(soft, hard) "Max open files" of pid from /proc/PID/limits, or None."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            m = re.search(r"^Max open files\s+(\d+)\s+(\d+)", f.read(), re.M)
    except OSError:
        return None
    return (int(m[1]), int(m[2])) if m else None


def fd_targets(pid):
    """
    What the descriptors of pid point to ("socket:[INODE]", paths), one
    entry a descriptor; empty once it is gone.
    """
    out = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def sweep_children():
    """At the end: reap our exited children (orphans we adopted); list the live ones."""
    me = os.getpid()
    kids = set()
    for task in os.listdir(f"/proc/{me}/task"):
        try:
            with open(f"/proc/{me}/task/{task}/children") as f:
                kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    for pid in kids:
        if proc_state(pid) == "Z":
            reap(pid)
    return sorted(p for p in kids if alive(p))
