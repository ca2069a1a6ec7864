#!/usr/bin/env python3
"""
Integration tests for ingestd: the real binary, driven as an operator drives
it, on loopback only (127.0.0.0/8, ::1 and unix sockets; clients bind 127.0.0.2-5
for the allow/deny, slowloris and HAProxy cases).

    python3 tests/integration/run.py [AREA|NAME...]   (what `make integration` runs;
                                                      make integration AREA=relp)

The cases are in one file per area, test_AREA.py: its header says what the
area covers, each case's docstring what the case checks.  They build on a
small library, lib/ (see lib/__init__.py), which tests/bench/bench.py shares.
With no argument every case runs, area by area, the process model first.
An argument is an area (relp, or test_relp.py) or a case name, mixed at
will; an unknown one is an error that lists the areas and their cases.

INGESTD names the binary (default: ingestd at the top of the tree).  Each
case runs in its own temporary directory with its own free port and prints
`ok   NAME (1.2s)` or `FAIL NAME: reason`; the run ends with
`integration: N passed, M failed` and exits 1 if any case failed.  A failed
case keeps its directory (configs, logs) and names it.

Every process a case starts is killed in its cleanup: the master and every
worker pid it saw, by pid, and only after /proc/PID/cmdline shows that it is
still the ingestd of that case (so that a reused pid is never touched).  The
run makes itself a subreaper, so that orphans (a daemonized master, the
workers of a killed master) are ours to reap.

For an ASan/UBSan build: unless ASAN_OPTIONS is already set, the servers run
with ASAN_OPTIONS=abort_on_error=0:detect_leaks=0:verify_asan_link_order=0
and UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1, both with a log_path in
the case's directory (a daemon's stderr is /dev/null); a case fails when a
log, a captured stderr or such a report contains "runtime error:" or
"AddressSanitizer".  A full run of such a build leaves out the long load
cases (lib/base.py's long_case, 25 s or more each), which the plain build's
run covers, and says so; naming one runs it.

The record pipeline cases also drive util-linux logger and syslog-ng's
loggen, the PROXY protocol cases HAProxy in front of two servers (`make
deps` installs all three; such helper processes are killed by pid in the
case's cleanup), tests/bench/blast ($BLAST, else the tree's when it is
newer than blast.c, else built once for the run), and mount small tmpfs
file systems to fill a disk (root only; unmounted by the case's cleanup).
RSYSLOGD and PROMTOOL name rsyslogd and promtool (default: the copies `make
deps` unpacks under tests/peers).

Python 3 standard library only.
"""
import collections
import glob
import importlib
import os
import shutil
import sys
import time
import traceback

from lib.base import BINARY, CASES, HERE, LONG, Failure, sanitized_build  # lib/: beside this
from lib.clients import remove_built_tools
from lib.proc import become_subreaper, sweep_children
from lib.server import Ctx

# A full run's order: the process model first, then what builds on it.  An
# area not listed here runs after these, by name.
ORDER = ("process", "cmdline", "reload", "pipeline", "sinks", "logrotate", "defences", "caps",
         "relp", "faults", "forward", "forward_relp", "redis", "metrics", "systemd", "upgrade",
         "handover", "proxy", "datagram", "spool", "nats")


def load_areas():
    """Import every test_AREA.py here, in ORDER: {area: its case names, in their order}."""
    names = [os.path.basename(p)[len("test_"):-len(".py")]
             for p in glob.glob(os.path.join(HERE, "test_*.py"))]
    names.sort(key=lambda a: (ORDER.index(a) if a in ORDER else len(ORDER), a))
    areas = collections.OrderedDict()
    for area in names:
        importlib.import_module("test_" + area)
    for area in names:
        # a case belongs to the file that defines it, even when another imports it first
        areas[area] = [n for n, fn in CASES.items() if fn.__module__ == "test_" + area]
        if area in CASES:
            raise ValueError(f"area {area} has the name of a case: `run.py {area}` is ambiguous")
    return areas


def select(args, areas):
    """The cases args name (areas and cases, in that order, each once), and the unknown args."""
    chosen, unknown = [], []
    for arg in args:
        name = os.path.basename(arg)[:-len(".py")] if arg.endswith(".py") else arg
        if name.startswith("test_") and name[len("test_"):] in areas:
            name = name[len("test_"):]
        if name in areas:
            chosen += areas[name]
        elif name in CASES:
            chosen.append(name)
        else:
            unknown.append(arg)
    return list(dict.fromkeys(chosen)), unknown


def run_case(name, fn):
    ctx = Ctx(name)
    t0 = time.monotonic()
    reason = None
    try:
        fn(ctx)
    except Failure as e:
        reason = str(e)
    except Exception as e:      # a bug in the test or an unexpected OS error: still a failure
        where = traceback.extract_tb(e.__traceback__)[-1]
        reason = f"{type(e).__name__}: {e} ({os.path.basename(where.filename)}:{where.lineno})"
    finally:
        problems = ctx.cleanup()
    if problems:
        reason = "; ".join(([reason] if reason else []) + problems)
    san = ctx.sanitizer_reports()
    if san:
        reason = f"{reason}; {san}" if reason else san
    took = time.monotonic() - t0
    if reason:
        print(f"FAIL {name}: {reason} [{took:.1f}s, kept {ctx.dir}]", flush=True)
        return False
    print(f"ok   {name} ({took:.1f}s)", flush=True)
    shutil.rmtree(ctx.dir, ignore_errors=True)
    return True


def main(argv):
    areas = load_areas()
    selected, unknown = select(argv[1:], areas)
    if unknown:
        print(f"unknown area or case: {' '.join(unknown)}; the areas and their cases:",
              file=sys.stderr)
        for area, names in areas.items():
            print(f"  {area}: {' '.join(names)}", file=sys.stderr)
        return 2
    if not argv[1:]:
        selected = [n for names in areas.values() for n in names]
        if sanitized_build():
            for n in (n for n in selected if n in LONG):
                print(f"skip {n}: a long load case; the run of the plain build covers it",
                      flush=True)
            selected = [n for n in selected if n not in LONG]
    if not os.access(BINARY, os.X_OK):
        for n in selected:
            print(f"FAIL {n}: no executable ingestd at {BINARY} (build it, or set INGESTD)")
        print(f"integration: 0 passed, {len(selected)} failed")
        return 1
    become_subreaper()
    passed = failed = 0
    t0 = time.monotonic()
    for n in selected:
        if run_case(n, CASES[n]):
            passed += 1
        else:
            failed += 1
    remove_built_tools()
    leftovers = sweep_children()
    if leftovers:
        print(f"# processes still running after the run: {leftovers}", file=sys.stderr)
    print(f"# {time.monotonic() - t0:.1f}s with {BINARY}", file=sys.stderr)
    print(f"integration: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
