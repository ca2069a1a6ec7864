"""
The integration tests' library, shared by the area files (test_*.py) and
tests/bench/bench.py.  Python 3 standard library only.

    base      paths (ROOT, BINARY from $INGESTD), Failure and check(),
              wait_until(), tail(), the @case registry
    proc      processes by pid from /proc: state, children, cmdline, CPU,
              memory, descriptors; the pid file; cleanup by pid after
              checking /proc/PID/cmdline; the subreaper; RLIMIT_NOFILE
    net       sockets: free_port, what a peer did (open, EOF, reset), who
              accepted a connection, clients bound to 127.0.0.2-5, HTTP GET
    server    Server (one ingestd: its config, log, master and workers) and
              Ctx (a case's directory, servers, sockets, helpers and
              mounts, and their cleanup); the sanitizer environment and the
              LD_PRELOAD shims (failpriv.c, slowwrite.c)
    events    what a server writes: sink files (read_events, check_once,
              wait_lines) and its log (regexes, exit lines, defence counts)
    clients   client programs and threads: RecordSender, ConnectLoop,
              TcpLoad, blast, ingestd-bench, logger/loggen, timed plans
    relp      a RELP client, a RELP load that re-sends what was not
              answered, and fault_run (load through a fault)
    disk      small tmpfs file systems to fill (root only)
    peers     third-party servers and tools: redis-server, rsyslogd,
              haproxy, promtool

A stand-in that one area needs (a collector, a scripted Redis, a notify
socket) stays in that area's file.
"""
