#!/usr/bin/env python3
"""
The Debian packages end to end on this machine (what `make check-deb` runs):
`make deb` builds ingestd and ingestd-bench (lintian included); dpkg -i
installs both; the installed files, their owners, the user ingestd and its
directories are checked; the installed daemon is started by hand on
loopback with a copy of the installed config (free ports, the sink in a
temporary directory) and RFC 5424 records sent to it must reach the sink;
dpkg --purge then removes both, and nothing named ingestd may be left
under /etc, /usr and /var but the user, which policy keeps.

    python3 tests/deb/check_deb.py

Root only (dpkg).  Skips, exiting 0 with a message, when dpkg-buildpackage
is missing, and when ingestd is installed here already (the package, or
make install's /etc/ingestd or /usr/sbin/ingestd): the purge would remove
it.  Prints `ok   STEP (1.2s)` for each step and `check-deb: passed (N s)`;
on the first failure prints `FAIL STEP: reason`, purges what it
installed, kills what it started (by pid) and exits 1.

Python 3 standard library only, with tests/integration/lib.
"""
import glob
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from lib.base import LOCAL4, ROOT, Failure, check, tail, wait_until
from lib.events import read_events, wait_lines
from lib.net import free_port, http_get, try_connect
from lib.proc import alive, cmdline, descendants, kill_by_pid

SBIN = "/usr/sbin/ingestd"
CONF = "/etc/ingestd/ingestd.conf"
PACKAGES = ("ingestd", "ingestd-bench")
# Where a package's files, dpkg's and debhelper's state and the rc links go.
SWEPT = ("/etc", "/usr", "/var/lib", "/var/log", "/var/cache")
DPKG_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
BUILD_LOG = os.path.join(ROOT, "build", "make-deb.log")


def run(argv, timeout=60, env=None):
    """(exit status, stdout and stderr together) of argv."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout


POLICY_RC = "/usr/sbin/policy-rc.d"


def dpkg(args):
    """
    dpkg ARGS with services never started or stopped by the maintainer
    scripts (policy-rc.d answering 101, as in a container image, made for
    the call where the machine has none): the package's own service would
    bind the configuration's ports; the test starts the daemon itself.
    """
    made = not os.path.exists(POLICY_RC)
    if made:
        with open(POLICY_RC, "w") as f:
            f.write("#!/bin/sh\n# made by ingestd's tests/deb/check_deb.py for one dpkg call\n"
                    "exit 101\n")
        os.chmod(POLICY_RC, 0o755)
    try:
        return run(["dpkg"] + args, timeout=120, env=DPKG_ENV)
    finally:
        if made:
            os.unlink(POLICY_RC)


def version():
    with open(os.path.join(ROOT, "common", "version.h")) as f:
        return re.search(r'#define\s+INGESTD_VERSION\s+"([^"]+)"', f.read()).group(1)


def installed(pkg):
    rc, out = run(["dpkg-query", "-W", "-f=${Status}", pkg])
    return rc == 0 and "not-installed" not in out and out.strip() != ""


def named_ingestd():
    """Every path under SWEPT whose name has 'ingestd' in it."""
    found = set()
    for top in SWEPT:
        for d, dirs, files in os.walk(top):
            found.update(os.path.join(d, n) for n in dirs + files if "ingestd" in n)
    return found


def owner(path, user, group, mode=None):
    st = os.lstat(path)
    got = (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name)
    check(got == (user, group), f"{path} is {got[0]}:{got[1]}, expected {user}:{group}")
    if mode is not None:
        check(stat.S_IMODE(st.st_mode) == mode,
              f"{path} has mode {stat.S_IMODE(st.st_mode):04o}, expected {mode:04o}")


# ------------------------------------------------------------------- steps

def build(debs):
    """make deb, not under the jobserver of a make that runs this script; its output in BUILD_LOG."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    rc, out = run(["make", "-C", ROOT, "deb"], timeout=600, env=env)
    with open(BUILD_LOG, "w") as f:
        f.write(out)
    check(rc == 0, f"make deb: exit {rc} (all of it in {BUILD_LOG}): {tail(out, 12)}")
    for deb in debs:
        check(os.path.exists(deb), f"make deb did not make {os.path.basename(deb)}")


def install(debs):
    rc, out = dpkg(["-i"] + debs)
    check(rc == 0, f"dpkg -i: exit {rc}: {tail(out, 8)}")
    for pkg in PACKAGES:
        check(installed(pkg), f"{pkg} is not installed after dpkg -i")


def files(ver):
    """The files, their owners, the user, the directories, the enabled units."""
    rc, out = run([SBIN, "-V"])
    check(rc == 0 and out.strip() == f"ingestd {ver}",
          f"{SBIN} -V: exit {rc}, {out.strip()!r}; common/version.h says {ver}")
    for path in (SBIN, "/usr/bin/ingestd-bench", CONF, "/etc/init.d/ingestd",
                 "/etc/logrotate.d/ingestd", "/lib/systemd/system/ingestd.service",
                 "/lib/systemd/system/ingestd.socket"):
        check(os.path.isfile(path), f"{path} is missing")
        owner(path, "root", "root")
    for page in ("man8/ingestd.8", "man5/ingestd.conf.5", "man1/ingestd-bench.1"):
        rc, out = run(["zcat", f"/usr/share/man/{page}.gz"])
        check(rc == 0, f"/usr/share/man/{page}.gz: {tail(out)}")
        check(f"\n.Os ingestd {ver}\n" in out, f"{page}: no `.Os ingestd {ver}` line")
    rc, out = run(["dpkg-query", "-W", "-f=${Conffiles}", "ingestd"])
    check(CONF in out, f"{CONF} is not a conffile: {out.strip()!r}")
    user = pwd.getpwnam("ingestd")
    check(user.pw_uid < 1000 and user.pw_dir == "/var/lib/ingestd" and
          user.pw_shell.endswith("nologin") and grp.getgrgid(user.pw_gid).gr_name == "ingestd",
          f"the user ingestd is not a system user of group ingestd: {user}")
    owner("/var/lib/ingestd", "ingestd", "ingestd", 0o750)
    owner("/var/log/ingestd", "ingestd", "ingestd", 0o750)  # the service's master writes its log
    check(os.path.islink("/etc/systemd/system/multi-user.target.wants/ingestd.service"),
          "ingestd.service is not enabled (deb-systemd-helper)")
    check(not glob.glob("/etc/systemd/system/*.wants/ingestd.socket"), "ingestd.socket is enabled")
    check(glob.glob("/etc/rc2.d/S*ingestd"), "no /etc/rc2.d link to the init script")


def paths():
    """The unit, the init script and logrotate's snippet run /usr/sbin/ingestd."""
    with open("/lib/systemd/system/ingestd.service") as f:
        execs = re.findall(r"^Exec\w*=(\S+)", f.read(), re.M)
    check(SBIN in execs and all(os.access(e, os.X_OK) for e in execs),
          f"ingestd.service runs {execs}")
    for path in ("/etc/init.d/ingestd", "/etc/logrotate.d/ingestd"):
        with open(path) as f:
            text = f.read()
        check(SBIN in text and "/usr/local/sbin/ingestd" not in text, f"{path} does not run {SBIN}")
    rc, out = run([SBIN, "-t", "-c", CONF])
    check(rc == 0, f"ingestd -t -c {CONF}: exit {rc}: {tail(out)}")
    rc, out = run(["/etc/init.d/ingestd", "configtest"])
    check(rc == 0, f"/etc/init.d/ingestd configtest: exit {rc}: {tail(out)}")
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if os.path.exists(logrotate):      # -d: parse and say what it would do, change nothing
        rc, out = run([logrotate, "-d", "/etc/logrotate.d/ingestd"])
        check(rc == 0 and "error" not in out, f"logrotate -d: exit {rc}: {tail(out)}")


def sub_once(text, pattern, repl):
    new, n = re.subn(pattern, repl, text, flags=re.M)
    check(n == 1, f"{CONF}: {pattern!r} matched {n} times, expected once")
    return new


def serve(tmp):
    """The installed binary on a copy of the installed config: records reach the sink."""
    user = pwd.getpwnam("ingestd")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    os.chown(data, user.pw_uid, user.pw_gid)
    os.chmod(data, 0o750)
    sink = os.path.join(data, "events.jsonl")
    port, stats = free_port(), free_port()
    with open(CONF) as f:
        text = f.read()
    text = sub_once(text, r'^(\s+listen = )"127\.0\.0\.1:5514";$', rf'\1"{LOCAL4}:{port}";')
    text = sub_once(text, r'^(\s+listen = )"127\.0\.0\.1:9514";$', rf'\1"{LOCAL4}:{stats}";')
    text = sub_once(text, r'^(\s+target = )"syslog";$', r'\1"stderr";')
    text = sub_once(text, r'^(\s+path = )"/var/lib/ingestd/events\.jsonl";$', rf'\1"{sink}";')
    conf, pid_file = os.path.join(tmp, "ingestd.conf"), os.path.join(tmp, "ingestd.pid")
    with open(conf, "w") as f:
        f.write(text)
    rc, out = run([SBIN, "-t", "-c", conf])
    check(rc == 0, f"ingestd -t -c {conf}: exit {rc}: {tail(out)}")
    log = open(os.path.join(tmp, "ingestd.log"), "w+")
    master = subprocess.Popen([SBIN, "-f", "-c", conf, "-p", pid_file],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    pids = [master.pid]
    try:
        up = wait_until(lambda: master.poll() is None and try_connect((LOCAL4, port)), 10)
        check(up, f"the installed ingestd does not accept on port {port}: {tail(open(log.name).read())}")
        up.close()
        tag = f"deb-{os.getpid()}-{int(time.time())}"
        with socket.create_connection((LOCAL4, port), timeout=5) as s:
            s.sendall("".join(f"<14>1 2026-12-05T10:00:00.000Z debhost check_deb 42 - - "
                              f"{tag} {i}\n" for i in range(100)).encode())
            s.shutdown(socket.SHUT_WR)
        wait_lines([sink], 100, 10)
        pids += descendants(master.pid)          # the workers, which wrote them
        msgs = sorted(e["msg"] for e in read_events(sink) if e.get("app") == "check_deb")
        check(msgs == sorted(f"{tag} {i}" for i in range(100)),
              f"{len(msgs)} of the 100 records in the sink, or not as sent")
        check(os.stat(sink).st_uid == user.pw_uid, "the workers did not write the sink as ingestd")
        status, _, body = http_get(stats, "/metrics")
        check(status == 200 and "ingestd_" in body, f"GET /metrics on port {stats}: {status}")
        master.send_signal(signal.SIGTERM)
        check(master.wait(10) == 0, f"ingestd exited {master.returncode} on SIGTERM: "
              f"{tail(open(log.name).read())}")
        check(wait_until(lambda: not [p for p in pids if alive(p) and SBIN in cmdline(p)], 5),
              "workers outlived their master")
    finally:
        left = kill_by_pid(pids, SBIN)
        master.wait(5)
        log.close()
        check(not left, f"could not kill {left}")


def purge(before):
    rc, out = dpkg(["--purge"] + list(PACKAGES))
    check(rc == 0, f"dpkg --purge: exit {rc}: {tail(out, 8)}")
    for pkg in PACKAGES:
        check(not installed(pkg), f"{pkg} is still installed after the purge")
    left = sorted(named_ingestd() - before)
    check(not left, f"left after the purge: {' '.join(left[:12])}")


def main():
    if shutil.which("dpkg-buildpackage") is None:
        print("check-deb: skip: no dpkg-buildpackage (apt-get install dpkg-dev debhelper)")
        return 0
    if os.geteuid() != 0:
        print("check-deb: skip: dpkg -i needs root")
        return 0
    here = [p for p in PACKAGES if installed(p)] + [p for p in (SBIN, "/etc/ingestd")
                                                     if os.path.exists(p)]
    if here:
        print(f"check-deb: skip: ingestd is installed here ({', '.join(here)}); "
              "this check installs and purges it")
        return 0
    ver = version()
    arch = run(["dpkg", "--print-architecture"])[1].strip()
    debs = [os.path.join(ROOT, f"{p}_{ver}_{arch}.deb") for p in PACKAGES]
    before = named_ingestd()
    tmp = tempfile.mkdtemp(prefix="check-deb-")
    os.chmod(tmp, 0o755)                # the workers' user reaches its directory
    steps = [("make deb", lambda: build(debs)), ("dpkg -i", lambda: install(debs)),
             ("files", lambda: files(ver)), ("paths", paths), ("serve", lambda: serve(tmp)),
             ("dpkg --purge", lambda: purge(before))]
    t0, done = time.monotonic(), 0
    try:
        for name, step in steps:
            t = time.monotonic()
            step()
            done += 1
            print(f"ok   {name} ({time.monotonic() - t:.1f}s)", flush=True)
    except (Failure, OSError, subprocess.SubprocessError, KeyError, KeyboardInterrupt) as e:
        print(f"FAIL {name}: {e or type(e).__name__}", flush=True)
        if 1 <= done < len(steps) - 1:       # installed, not purged yet
            rc, out = dpkg(["--purge"] + list(PACKAGES))
            print(f"check-deb: purged what it installed: exit {rc}", flush=True)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"check-deb: passed ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
