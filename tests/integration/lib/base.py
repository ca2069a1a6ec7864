"""Paths, the binary under test, Failure and check(), polling, and the case registry."""
import collections
import os
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))    # tests/integration
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.path.abspath(os.environ.get("INGESTD", os.path.join(ROOT, "ingestd")))
SANITIZER_MARKS = ("runtime error:", "AddressSanitizer")
SANDBOX_MARK = "killed by its sandbox"     # a worker made a call its seccomp filter lacks
LOCAL4 = "127.0.0.1"
LOCAL6 = "::1"


def sanitized_build(path=BINARY):
    """Whether the binary is built with AddressSanitizer (make SANITIZE=1)."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


class Failure(Exception):
    """What a user would notice: the reason a case fails."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def wait_until(pred, timeout, interval=0.02):
    """Poll pred until it returns something true or timeout seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def steady(value, quiet=1.0, timeout=30, interval=0.05):
    """
    Poll value() until it has not changed for quiet seconds (at most
    timeout): (its last value, the time.time() it last changed).
    """
    last, since, deadline = value(), time.time(), time.monotonic() + timeout
    while time.monotonic() < deadline and time.time() - since < quiet:
        time.sleep(interval)
        now = value()
        if now != last:
            last, since = now, time.time()
    return last, since


def tail(text, n=4):
    lines = [ln for ln in text.strip().splitlines() if ln.strip()][-n:]
    return " | ".join(ln[-300:] for ln in lines) or "(empty)"


# ------------------------------------------------------------------- cases

CASES = collections.OrderedDict()       # name -> fn(ctx), in the order the areas define them


LONG = set()        # names of the long load cases (long_case)


def long_case(fn):
    """
    A case with 25 s or more of load: a full run under the sanitizers
    (make check SANITIZE=1, after the plain make check in CI) leaves it out
    to keep CI within its time; naming it runs it there too.
    """
    LONG.add(fn.__name__)
    return case(fn)


def case(fn):
    """Register fn(ctx) as a case named after it; its docstring is its documentation."""
    if fn.__name__ in CASES:
        raise ValueError(f"case {fn.__name__} is defined in {CASES[fn.__name__].__module__} "
                         f"and again in {fn.__module__}")
    CASES[fn.__name__] = fn
    return fn
