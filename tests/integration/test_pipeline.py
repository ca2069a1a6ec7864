"""
The record pipeline from bytes to events: framing (LF, octet counting,
auto and forced), max_record truncation and the end of a stream; the
parsers (RFC 5424, RFC 3164 and its variants, JSON, raw) and their parse
errors, kept or dropped; output always valid UTF-8 JSON.  Records come
from real clients (util-linux logger, syslog-ng's loggen) and plain
sockets, and are read back from the sink's file (see lib/events.py).
"""
import collections
import json
import re
import socket
import time

from lib.base import LOCAL4, case, check, Failure, tail
from lib.net import free_port, peer_of, peer_state, wait_closed
from lib.server import pipeline_server
from lib.events import (RFC3339_RE, exit_counts, has_msgs, log_time, read_events, wait_events,
                        wait_lines)
from lib.clients import octet_frame, token, tool


@case
def logger_tcp(ctx):
    """util-linux logger --tcp: RFC 5424, RFC 3164, octet counting, structured data: each message once, parsed."""
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    host = socket.gethostname()
    run = token()
    # (logger options, facility, severity, app, procid, msgid, rfc5424, sd)
    sends = [
        (["--rfc5424", "-p", "local3.warning", "-t", "app5424", "--msgid", "ID47"],
         "local3", "warning", "app5424", None, "ID47", True, None),
        (["--rfc3164", "-p", "user.err", "-t", "app3164", "--id=4242"],
         "user", "err", "app3164", "4242", None, False, None),
        (["--rfc5424", "--octet-count", "-p", "daemon.info", "-t", "oct5424", "--id=77"],
         "daemon", "info", "oct5424", "77", None, True, None),
        (["--rfc3164", "--octet-count", "-p", "mail.debug", "-t", "oct3164"],
         "mail", "debug", "oct3164", None, None, False, None),
        (["--rfc5424", "-p", "local7.notice", "-t", "sdapp", "--sd-id", "ex@1",
          "--sd-param", 'k="v\\"q"', "--sd-param", 'z="a\\]b\\\\c"'],
         "local7", "notice", "sdapp", None, None, True, {"k": 'v"q', "z": "a]b\\c"}),
    ]
    expect = {}
    for i, (opts, fac, sev, app, procid, msgid, is5424, sd) in enumerate(sends):
        msgs = [f"m{i}-{j}-{run} with spaces" for j in range(3)]
        # Several messages on one connection: logger sends each line of its stdin.
        args = ["logger", "--tcp", "-n", LOCAL4, "-P", str(s.port)] + opts
        rc, out = tool(args, stdin=("\n".join(msgs) + "\n").encode())
        check(rc == 0, f"`{' '.join(args)}` exited {rc}: {tail(out)}")
        for msg in msgs:
            expect[msg] = (opts, fac, sev, app, procid, msgid, is5424, sd)
    wait_events(path, has_msgs(*expect), timeout=5, what=f"the {len(expect)} logger messages")
    s.stop()
    events = read_events(path)
    count = collections.Counter(e.get("msg") for e in events)
    check(len(events) == len(expect) and all(count[m] == 1 for m in expect),
          f"{len(events)} events for {len(expect)} messages; counts {dict(count)}")
    for ev in events:
        opts, fac, sev, app, procid, msgid, is5424, sd = expect[ev["msg"]]
        what = f"logger {' '.join(opts)}: event {json.dumps(ev)}"
        check("parse_error" not in ev and "truncated" not in ev, what)
        check((ev.get("facility"), ev.get("severity")) == (fac, sev),
              f"{what}: facility/severity, expected {fac}.{sev}")
        check(ev.get("app") == app, f"{what}: app, expected {app}")
        check(ev.get("procid") == procid, f"{what}: procid, expected {procid}")
        check(ev.get("msgid") == msgid, f"{what}: msgid, expected {msgid}")
        check(ev.get("host") in (host, host.split(".")[0]), f"{what}: host, expected {host}")
        check(RFC3339_RE.fullmatch(ev.get("timestamp", "")), f"{what}: timestamp")
        if sd is not None:
            check(ev.get("sd", {}).get("ex@1") == sd, f"{what}: sd ex@1, expected {sd}")
        if not is5424:
            check("sd" not in ev, f"{what}: an RFC 3164 event with sd")
    _, (nbytes, nrec, trunc, perr, pdrop) = exit_counts(s)
    check(nrec == len(expect) and perr == 0, f"the workers counted {nrec} records and {perr} "
          f"parse errors, expected {len(expect)} and 0")


LOGGEN_RE = re.compile(r"seq: (\d+), thread: (\d+), runid: (\d+)")


@case
def loggen(ctx):
    """syslog-ng's loggen, 4 connections: RFC 3164, RFC 5424 octet-counted and LF: every message once."""
    path = ctx.path("events.jsonl")
    variants = [("rfc3164", []), ("rfc5424_octet", ["--syslog-proto"]),
                ("rfc5424_lf", ["--syslog-proto", "--no-framing"])]
    ports = [ctx.port] + [free_port() for _ in variants[1:]]
    s = pipeline_server(ctx, [{"name": n, "listen": f"{LOCAL4}:{p}"}
                              for (n, _), p in zip(variants, ports)],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    conns, number = 4, 2500
    sent = {}
    for (name, opts), port in zip(variants, ports):
        args = ["loggen", "--inet", "--stream", f"--active-connections={conns}",
                f"--number={number}", "--rate=50000"] + opts + [LOCAL4, str(port)]
        rc, out = tool(args, timeout=60)
        m = re.search(r"count=(\d+)", out)
        check(rc == 0 and m, f"`{' '.join(args)}` exited {rc}: {tail(out)}")
        sent[name] = int(m[1])
        check(sent[name] == conns * number, f"loggen ({name}) sent {sent[name]} messages, "
              f"expected {conns} connections x {number}")
    total = sum(sent.values())
    wait_lines([path], total, 20)
    s.stop()
    events = read_events(path)
    check(len(events) == total, f"{len(events)} events for the {total} messages loggen sent")
    for name, _ in variants:
        seen = collections.Counter()
        for ev in (e for e in events if e["listener"] == name):
            m = LOGGEN_RE.search(ev.get("msg", ""))
            if not m or "parse_error" in ev:
                raise Failure(f"{name}: not a loggen message: {json.dumps(ev)[:300]}")
            if (ev.get("facility"), ev.get("severity")) != ("auth", "info"):
                raise Failure(f"{name}: <38> is not auth.info in {json.dumps(ev)[:300]}")
            # loggen's RFC 3164 timestamp is "2026-11-24T01:17:40", without a zone.
            if (ev.get("host"), ev.get("app"), ev.get("procid")) != \
                    ("localhost", "prg00000", "1234") or not ev["msg"].startswith("seq: "):
                raise Failure(f"{name}: header not parsed (or a BOM kept): {json.dumps(ev)[:300]}")
            seen[(int(m[2]), int(m[1]))] += 1
        expected = {(t, q) for t in range(conns) for q in range(number)}
        dups = sorted(k for k, n in seen.items() if n > 1)
        missing = sorted(expected - set(seen))
        check(not dups and not missing and set(seen) == expected,
              f"{name}: {sum(seen.values())} events for {sent[name]} messages; {len(dups)} "
              f"duplicated (first {dups[:3]}), {len(missing)} missing (first {missing[:3]}) "
              "as (thread, seq)")


@case
def framing_and_limits(ctx):
    """
    max_record 100: LF and octet-counted records cut, flagged, the next one
    intact, the same when the bytes come in small pieces; blank lines
    ignored; an invalid octet count closes only its connection; "54 <1 ..."
    is a line; at end of stream a last line counts, a partial frame does not.
    """
    path = ctx.path("events.jsonl")
    p_oc = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "max_record": 100},
                              {"listen": f"{LOCAL4}:{p_oc}", "framing": "octet-counted"}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    stream = b"".join([
        b"L" * 250 + b"\n", f"after-lf-{t}\n".encode(), b"\n\r\n\n",
        b"E" * 100 + b"\r\n", b"F" * 101 + b"\n", f"cr-{t}\r\n".encode(),
        b"300 <13>" + b"o" * 296, octet_frame(f"<13>after-octet-{t}"),
        b"54 <1 minute elapsed\n", f"last-{t}\n".encode()])
    # (msg, truncated, facility) in the order sent
    want = [("L" * 100, True, None), (f"after-lf-{t}", None, None), ("E" * 100, None, None),
            ("F" * 100, True, None), (f"cr-{t}", None, None), ("o" * 96, True, "user"),
            (f"after-octet-{t}", None, "user"), ("54 <1 minute elapsed", None, None),
            (f"last-{t}", None, None)]
    whole = ctx.connect(s.addr)
    whole.sendall(stream)
    # The same bytes in pieces of 1 to 13 bytes, each its own segment.
    pieces = ctx.connect(s.addr)
    pieces.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    off, size = 0, 1
    while off < len(stream):
        pieces.sendall(stream[off:off + size])
        off += size
        size = size % 13 + 1
        time.sleep(0.0005)
    conns = {"sent whole": peer_of(whole), "sent in pieces": peer_of(pieces)}
    events = wait_events(path, lambda evs: sum(e["peer"] in conns.values() for e in evs)
                         >= 2 * len(want), what="the max_record connections' records")
    for how, peer in conns.items():
        got = [(e.get("msg"), e.get("truncated"), e.get("facility")) for e in events
               if e["peer"] == peer]
        check(got == want, f"events of the max_record = 100 connection ({how}): {got}, "
              f"expected {want}")
    check(peer_state(whole) == "open", f"the connection is {peer_state(whole)} after truncated "
          "records")

    # End of stream: a last line without LF is a record; a partial octet frame is not.
    for data, msgs in ((f"tail-{t}".encode(), [f"tail-{t}"]),
                       (octet_frame(f"<13>whole-{t}") + b"40 <13>cut short", [f"whole-{t}"])):
        c = ctx.connect(s.addr)
        peer = peer_of(c)
        m = s.mark()
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        closed = s.wait_for_log(rf"l0 {re.escape(peer)} closed \(closed by peer\): \d+ bytes, "
                                r"(\d+) records", since=m)
        check(int(closed[1]) == len(msgs), f"{data!r} then end of stream: the worker counted "
              f"{closed[1]} records, expected {len(msgs)}")
        got = [e.get("msg") for e in wait_events(path, has_msgs(*msgs)) if e["peer"] == peer]
        check(got == msgs, f"{data!r} then end of stream gave {got}, expected {msgs}")
        c.close()

    good = ctx.connect((LOCAL4, p_oc))
    good.sendall(octet_frame(f"<13>before-{t}"))
    wait_events(path, has_msgs(f"before-{t}"), what="a record on the octet-counted listener")
    bad = ctx.connect((LOCAL4, p_oc))
    bad_peer = peer_of(bad)
    m = s.mark()
    bad.sendall(b"012 <13>x")
    st = wait_closed(bad, 3)
    check(st == "eof", f"after \"012 <13>x\" on an octet-counted listener the client sees "
          f"{st}, expected EOF")
    s.wait_for_log(rf"warning: .*l1 {re.escape(bad_peer)}: closing: octet count has a "
                   r"leading zero", since=m)
    good.sendall(octet_frame(f"<13>after-{t}"))
    wait_events(path, has_msgs(f"after-{t}"), what="the other connection's next record")
    check(peer_state(good) == "open", f"the other connection is {peer_state(good)}")
    check(not [e for e in read_events(path, whole_only=True) if e["peer"] == bad_peer],
          "the connection with a bad octet count produced an event")
    for x in (whole, pieces, good, bad):
        x.close()
    s.stop()
    _, (nbytes, nrec, trunc, perr, pdrop) = exit_counts(s)
    check(trunc == 6, f"the workers counted {trunc} truncated records, expected 6")


@case
def parse_errors(ctx):
    """
    Bad syslog and bad JSON keep their text with parse_error, or vanish with
    on_parse_error = "drop"; a good JSON record is its body; NUL, 0xff and
    ESC come out escaped, the file is UTF-8.
    """
    path = ctx.path("events.jsonl")
    p_drop = free_port()
    s = pipeline_server(ctx, [{"name": "keep", "listen": f"{LOCAL4}:{ctx.port}"},
                              {"name": "drop", "listen": f"{LOCAL4}:{p_drop}",
                               "on_parse_error": "drop"}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    raw = b"ctl \x00 nul \xff byte \x1b[31m red \xc3\xa9 " + t.encode()
    good_json = b'{ "a" : [1, 2.5e3, true, null], "s": "\\u00e9x", "n": {"k": "v"} }'
    deep = b'{"a":' * 100 + b"1" + b"}" * 100
    # (record, parse_error expected: None, True or the exact reason)
    records = [(b"<999>x", "PRI out of range"), (b"{bad json", True), (raw, None),
               (good_json, None), (b'{"a":1} trailing', "trailing data"),
               (b'{"s":"\xff"}', True), (deep, True), (f"good-keep-{t}".encode(), None)]
    k = ctx.connect(s.addr)
    k.sendall(b"".join(r + b"\n" for r, _ in records))
    d = ctx.connect((LOCAL4, p_drop))
    d.sendall(b"<999>x\n{bad json\n" + f"good-drop-{t}\n".encode())
    wait_events(path, has_msgs(f"good-keep-{t}", f"good-drop-{t}"), what="the good records")
    kpeer, dpeer = peer_of(k), peer_of(d)
    k.close()
    d.close()
    s.stop()
    with open(path, "rb") as f:
        data = f.read()
    events = read_events(path)              # strict UTF-8, every line JSON
    keep = [e for e in events if e["peer"] == kpeer]
    check(len(keep) == len(records), f"{len(keep)} events of the \"keep\" listener for "
          f"{len(records)} records: {[json.dumps(e)[:120] for e in keep]}")
    for (rec, err), ev in zip(records, keep):
        what = f"record {rec[:40]!r}: event {json.dumps(ev)[:300]}"
        if err is None:
            check("parse_error" not in ev, f"{what}: a parse_error")
        else:
            check(ev.get("parse_error") and (err is True or ev["parse_error"] == err),
                  f"{what}: parse_error, expected {err}")
            check("body" not in ev and ev.get("msg") == rec.decode(errors="replace"),
                  f"{what}: the raw text is not kept in msg")
    check(keep[2].get("msg") == f"ctl \x00 nul \ufffd byte \x1b[31m red \u00e9 {t}",
          f"the raw record with control bytes became {keep[2].get('msg')!r}")
    check(keep[3].get("body") == {"a": [1, 2500.0, True, None], "s": "\u00e9x", "n": {"k": "v"}}
          and "msg" not in keep[3], f"the JSON record became {json.dumps(keep[3])}")
    check(b'"body":{"a":[1,2.5e3,true,null],"s":"\\u00e9x","n":{"k":"v"}}' in data,
          "the JSON record's body is not the object as sent without whitespace")
    check(keep[5].get("msg") == '{"s":"\ufffd"}', f"JSON with a 0xff byte: {json.dumps(keep[5])}")
    line = [ln for ln in data.split(b"\n") if t.encode() in ln and b"ctl " in ln]
    check(len(line) == 1, f"{len(line)} lines hold the raw record with control bytes")
    for esc in (rb"\u0000", rb"\ufffd", rb"\u001b"):
        check(esc in line[0], f"{esc.decode()} is not in the raw record's line: {line[0][:300]!r}")
    drop = [e.get("msg") for e in events if e["peer"] == dpeer]
    check(drop == [f"good-drop-{t}"], f"events of the \"drop\" listener: {drop}")
    _, (nbytes, nrec, trunc, perr, pdrop) = exit_counts(s)
    check((nrec, perr, pdrop) == (11, 5, 2), f"the workers counted {nrec} records, {perr} parse "
          f"errors, {pdrop} dropped by on_parse_error; expected 11, 5, 2")


@case
def forced_format_and_framing(ctx):
    """format = syslog / json / raw parse every record that way; framing = "lf" never counts octets."""
    path = ctx.path("events.jsonl")
    ports = [ctx.port, free_port(), free_port()]
    s = pipeline_server(ctx, [{"name": "syslog", "listen": f"{LOCAL4}:{ports[0]}",
                               "format": "syslog", "framing": "lf"},
                              {"name": "json", "listen": f"{LOCAL4}:{ports[1]}", "format": "json"},
                              {"name": "raw", "listen": f"{LOCAL4}:{ports[2]}", "format": "raw"}],
                        workers=1, sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    for port in ports:
        with ctx.connect((LOCAL4, port)) as c:
            c.sendall(f'<13>hello\n{{"a":1}}\nplain\n5 <13>x\nend-{t}\n'.encode())
    events = wait_events(path, lambda evs: sum(e.get("msg") == f"end-{t}" for e in evs) == 3,
                         what="the last record of each listener")
    s.stop()
    got = {}
    for e in events:
        got.setdefault(e["listener"], []).append(
            {k: v for k, v in e.items() if k not in ("received_at", "peer", "listener")})
    want = {
        "syslog": [{"facility": "user", "severity": "notice", "msg": "hello"},
                   {"parse_error": "no PRI", "msg": '{"a":1}'},
                   {"parse_error": "no PRI", "msg": "plain"},
                   {"parse_error": "no PRI", "msg": "5 <13>x"},          # lf: a line
                   {"parse_error": "no PRI", "msg": f"end-{t}"}],
        "json": [{"parse_error": "not an object", "msg": "<13>hello"}, {"body": {"a": 1}},
                 {"parse_error": "not an object", "msg": "plain"},
                 {"parse_error": "not an object", "msg": "<13>x"},        # auto: octet-counted
                 {"parse_error": "not an object", "msg": f"end-{t}"}],
        "raw": [{"msg": "<13>hello"}, {"msg": '{"a":1}'}, {"msg": "plain"}, {"msg": "<13>x"},
                {"msg": f"end-{t}"}],
    }
    for name in want:
        check(got.get(name) == want[name], f"listener {name}: {got.get(name)}, expected {want[name]}")


@case
def rfc3164_iso_timestamp(ctx):
    """
    RFC 3164 with an ISO 8601 timestamp without a zone, as syslog-ng's
    loggen (and syslog-ng with ts-format(iso) on a local clock) sends it:
    host, app and procid are parsed.
    """
    path = ctx.path("events.jsonl")
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}"}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    t = token()
    with ctx.connect(s.addr) as c:
        c.sendall(f"<38>2026-11-24T01:17:40 localhost prg00000[1234]: seq: 0000000000, thread: "
                  f"0000, runid: {t}\n".encode())
    ev = [e for e in wait_events(path, lambda evs: any(t in e.get("msg", "") for e in evs))
          if t in e.get("msg", "")][0]
    s.stop()
    check((ev.get("host"), ev.get("app"), ev.get("procid")) == ("localhost", "prg00000", "1234")
          and ev.get("msg", "").startswith("seq: "),
          f"loggen's RFC 3164 line gives {json.dumps(ev)}: its timestamp "
          "\"2026-11-24T01:17:40\" (no zone) is not recognised, so host, app and procid stay in msg")


@case
def timezone_rfc3164(ctx):
    """
    Listeners with timezone = "Europe/Berlin" and "America/New_York":
    util-linux logger --rfc3164 run in each zone (TZ) writes local time
    without a zone, and each event's timestamp, with that zone's offset,
    is the moment it was sent (within 5 s of received_at); the days the
    clocks change, a skipped time takes the offset before, a repeated one
    the first of its two.
    """
    path = ctx.path("events.jsonl")
    ny = free_port()
    s = pipeline_server(ctx, [{"listen": f"{LOCAL4}:{ctx.port}", "timezone": "Europe/Berlin"},
                              {"listen": f"{LOCAL4}:{ny}", "timezone": "America/New_York"}],
                        sinks=[{"name": "events", "path": path}])
    s.start()
    for port, zone in ((s.port, "Europe/Berlin"), (ny, "America/New_York")):
        rc, out = tool(["logger", "--tcp", "--rfc3164", "-n", LOCAL4, "-P", str(port), "-t", "tz",
                        f"now in {zone}"], env={"TZ": zone})
        check(rc == 0, f"logger exited {rc}: {tail(out)}")
    edges = [(s.port, "Mar 29 02:30:00", "-03-29T02:30:00+01:00"),
             (s.port, "Oct 25 02:30:00", "-10-25T02:30:00+02:00"),
             (ny, "Mar  8 02:30:00", "-03-08T02:30:00-05:00"),
             (ny, "Nov  1 01:30:00", "-11-01T01:30:00-04:00")]
    for port, stamp, _ in edges:
        with socket.create_connection((LOCAL4, port)) as c:
            c.sendall(f"<13>{stamp} h edge: {stamp}\n".encode())
    wait_lines([path], 2 + len(edges), timeout=10)
    s.stop()
    events = {e["msg"]: e for e in read_events(path)}
    for zone in ("Europe/Berlin", "America/New_York"):
        e = events[f"now in {zone}"]
        check(abs(log_time(e["timestamp"]) - log_time(e["received_at"])) <= 5,
              f"{zone}: timestamp {e['timestamp']} for an event received at {e['received_at']}")
    for _, stamp, want in edges:
        got = events[stamp]["timestamp"]
        check(got.endswith(want), f"{stamp}: timestamp {got}, expected YYYY{want}")
