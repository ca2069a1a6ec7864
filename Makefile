# ingestd: build, dependencies, run, tests, install.
#
#   make            build ./ingestd and ./ingestd-bench (the load generator)
#   make run        build and start ingestd in the foreground on its embedded default
#   make check      all tests: unit (Check) and integration (the real binary on loopback)
#   make bench      the comparative benchmark suite (not part of make check)
#   make install    PREFIX=/usr/local DESTDIR=
#   make deb        the Debian packages ingestd and ingestd-bench (debian/)
#   make check-deb  build them, install them here, run the installed daemon, purge (root)

CC	?= cc
PREFIX	?= /usr/local
SBINDIR	?= $(PREFIX)/sbin
BINDIR	?= $(PREFIX)/bin
MANDIR	?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
# The version: common/version.h is the one place (ingestd -V, the man pages'
# .Os line as installed, the Debian packages).
VERSION	:= $(shell sed -n 's/^\#define[[:space:]]*INGESTD_VERSION[[:space:]]*"\(.*\)"/\1/p' common/version.h)
PKGS	 = libevent libconfig libsystemd hiredis libnats libssl libcrypto libpcre2-8 libseccomp
CFLAGS	?= -O2 -g
CFLAGS	+= -std=gnu11 -Wall -Wextra -D_GNU_SOURCE -MMD -MP
CFLAGS	+= $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# make SANITIZE=1 ...: the same build under AddressSanitizer and UBSan (make clean first).
ifeq ($(SANITIZE),1)
CFLAGS	+= -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS	+= -fsanitize=address,undefined
endif
LDLIBS	+= $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# Debian packages the build and the tests need; `make deps` installs the missing ones.
DEB_PKGS = gcc make clang libclang-rt-14-dev pkg-config libevent-dev libconfig-dev check \
	   python3 util-linux bsdutils syslog-ng-core groff-base man-db procps iproute2 logrotate \
	   libsystemd-dev libhiredis-dev libnats-dev libpcre2-dev libssl-dev openssl redis-server nats-server libestr0 libfastjson4 liblognorm5 librelp0 \
	   haproxy libseccomp-dev debhelper lintian fakeroot

# What make bench needs besides DEB_PKGS: gnuplot draws the chart.
BENCH_PKGS = gnuplot-nox

# Test peers unpacked from Debian packages under tests/peers instead of
# installed: rsyslog (omrelp as a RELP client) conflicts with syslog-ng-core
# (loggen), and of prometheus only promtool is needed (it checks /metrics),
# not a service.
PEERS	 = tests/peers
RSYSLOGD = $(PEERS)/rsyslog/usr/sbin/rsyslogd
# rsyslog with RELP and both TLS stream drivers (ossl, gtls); the stamp's
# number changes with the list, so a tree unpacked before unpacks again.
RSYSLOG_PKGS  = rsyslog rsyslog-relp rsyslog-openssl rsyslog-gnutls
RSYSLOG_STAMP = $(PEERS)/rsyslog/.unpacked-2
PROMTOOL = $(PEERS)/prometheus/usr/bin/promtool
# nginx with its stream module (make bench: TLS handshakes), unpacked, not
# installed: installing would start the service.
NGINX	 = $(PEERS)/nginx/usr/sbin/nginx

# The layers, bottom up.  Each folder is compiled with the include paths of
# the layers it may use and no others, so a call upward does not build:
#   common/           shared by the master and the workers
#   worker/protocol/  pure parsers                          sees common
#   worker/sinks/     queues and drivers                    sees protocol
#   worker/pipeline/  record -> event -> sinks              sees sinks
#   worker/conn/      accept, connections, handlers         sees pipeline
#   worker/           the worker process, wires the hooks   sees conn
#   server/           the master                            sees common, worker.h
INC_common	= -Icommon
INC_protocol	= $(INC_common) -Iworker/protocol
INC_sinks	= $(INC_protocol) -Iworker/sinks
INC_pipeline	= $(INC_sinks) -Iworker/pipeline
INC_conn	= $(INC_pipeline) -Iworker/conn
INC_worker	= $(INC_conn) -Iworker
INC_server	= $(INC_common) -Iworker -Iserver
INC_tests	= $(INC_worker) -Iserver

LAYERS	   = protocol sinks pipeline conn
COMMON_SRC = $(filter-out common/cfgdoc.c, $(wildcard common/*.c))
SERVER_SRC = $(filter-out server/main.c, $(wildcard server/*.c))
WORKER_SRC = $(wildcard worker/*.c) $(foreach l,$(LAYERS),$(wildcard worker/$(l)/*.c))
LIB_SRC	   = $(COMMON_SRC) $(SERVER_SRC) $(WORKER_SRC)
LIB_OBJ	   = $(LIB_SRC:.c=.o)
UNIT_SRC   = $(wildcard tests/unit/*.c)
BENCH_SRC  = $(wildcard tests/bench/bench*.c)

.PHONY: all deps bench-deps install-missing run check unit integration bench-smoke check-docs install clean man \
	fuzz bench deb check-deb

all: ingestd ingestd-bench

ingestd: server/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The load generator: libc, libm and OpenSSL (--tls) only (see man/ingestd-bench.1).
ingestd-bench: $(BENCH_SRC:.c=.o)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lm -lssl -lcrypto

tests/bench/%.o: tests/bench/%.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

cfgdoc: common/cfgdoc.o $(COMMON_SRC:.c=.o)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

common/%.o: common/%.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(INC_common) -c -o $@ $<
worker/protocol/%.o: worker/protocol/%.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(INC_protocol) -c -o $@ $<
worker/sinks/%.o: worker/sinks/%.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(INC_sinks) -c -o $@ $<
worker/pipeline/%.o: worker/pipeline/%.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(INC_pipeline) -c -o $@ $<
worker/conn/%.o: worker/conn/%.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(INC_conn) -c -o $@ $<
worker/%.o: worker/%.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(INC_worker) -c -o $@ $<
server/%.o: server/%.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(INC_server) -c -o $@ $<

-include $(wildcard common/*.d server/*.d worker/*.d worker/*/*.d tests/*/*.d)

deps:
	@$(MAKE) -s install-missing PKGS_WANTED="$(DEB_PKGS)"
	@$(MAKE) -s $(RSYSLOG_STAMP)

bench-deps:
	@$(MAKE) -s install-missing PKGS_WANTED="$(BENCH_PKGS)"
	@$(MAKE) -s $(NGINX)

# Install the Debian packages of PKGS_WANTED that are missing.
install-missing:
	@missing=$$(for p in $(PKGS_WANTED); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing$$(echo $$missing | sed 's/^/ /')"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@$(MAKE) -s $(RSYSLOG_STAMP) $(PROMTOOL)

# $(call unpack,DIR,PACKAGES): the packages' files under $(PEERS)/DIR.
unpack = echo "make deps: unpacking $(2) under $(PEERS)/$(1)"; \
	rm -rf $(PEERS)/$(1) $(PEERS)/debs-$(1) && mkdir -p $(PEERS)/debs-$(1) && \
	cd $(PEERS)/debs-$(1) && { apt-get download -q $(2) 2>/dev/null || \
		{ apt-get update -qq && apt-get download -q $(2); }; } && cd $(CURDIR) && \
	for d in $(PEERS)/debs-$(1)/*.deb; do dpkg-deb -x $$d $(PEERS)/$(1) || exit 1; done && \
	rm -rf $(PEERS)/debs-$(1)

$(RSYSLOG_STAMP):
	@$(call unpack,rsyslog,$(RSYSLOG_PKGS)) && touch $@

$(PROMTOOL):
	@$(call unpack,prometheus,prometheus)

$(NGINX):
	@$(call unpack,nginx,nginx libnginx-mod-stream)

run: deps ingestd
	./ingestd -f

# The unit tests see every layer; the sinks' driver table is theirs (a fake driver).
UNIT_LIB_OBJ = $(filter-out worker/sinks/drivers.o, $(LIB_OBJ))
tests/unit/run: $(UNIT_SRC) $(UNIT_LIB_OBJ)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(INC_tests) $(shell pkg-config --cflags check) $(LDFLAGS) -o $@ \
		$(UNIT_SRC) $(UNIT_LIB_OBJ) $(LDLIBS) $(shell pkg-config --libs check)

unit: tests/unit/run
	tests/unit/run

# make integration AREA=relp: the cases of one area (tests/integration/test_relp.py);
# AREA empty: every case.
integration: ingestd
	python3 tests/integration/run.py $(AREA)

# The man page's settings section and the sample config are rendered from the
# settings table; this fails when they differ from what is committed.
check-docs: cfgdoc
	./cfgdoc man man/ingestd.conf.5 | diff -u man/ingestd.conf.5 -
	./cfgdoc conf | diff -u etc/ingestd.conf -
	for m in man/*.[0-9]; do groff -ww -z -mandoc $$m 2>&1 | (! grep .) || exit 1; done

man: cfgdoc
	./cfgdoc man man/ingestd.conf.5 > man/ingestd.conf.5.new && mv man/ingestd.conf.5.new man/ingestd.conf.5
	./cfgdoc conf > etc/ingestd.conf

# The package test (check-deb) is left out of the sanitized pass: the package
# is built with its own flags, so a second run would test the same thing.
check: deps
	$(MAKE) all tests/unit/run cfgdoc tests/integration/natsctl
	$(MAKE) check-docs unit bench-smoke integration $(if $(SANITIZE),,check-deb)

# ingestd-bench against ingestd, a few seconds: blast, rate and RELP through a reload.
bench-smoke: ingestd ingestd-bench
	python3 tests/bench/bench.py --smoke

# libFuzzer targets: tests/fuzz/fuzz_NAME.c drives worker/protocol/NAME.c (or the files
# FUZZ_SRC_NAME names, linked with FUZZ_LIBS_NAME), with its seed corpus in tests/fuzz/corpus/NAME (read
# only: what a run finds goes to tests/fuzz/findings/, which git ignores).
# FUZZ_TIME seconds per target.
FUZZ_TIME ?= 60
FUZZ_NAMES = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	      -D_GNU_SOURCE $(INC_sinks) -Iserver

# What each target drives: worker/protocol/NAME.c, or FUZZ_SRC_NAME; with common/obuf.c.
FUZZ_SRC_httphead = server/httphead.c
FUZZ_SRC_frame_restore = worker/protocol/framing.c
FUZZ_SRC_relp_client = worker/protocol/relp_client.c worker/protocol/relp.c
FUZZ_SRC_segment = worker/sinks/segment.c
FUZZ_SRC_cond = common/cond.c common/cidr.c
FUZZ_SRC_parse_syslog = worker/protocol/parse_syslog.c common/tz.c
FUZZ_SRC_tz = common/tz.c
# Libraries a target needs besides the sanitizers.
FUZZ_LIBS_cond = -lpcre2-8
fuzz_src = $(or $(FUZZ_SRC_$(1)),worker/protocol/$(1).c) common/obuf.c

.SECONDEXPANSION:
tests/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $$(call fuzz_src,$$*) \
		$(wildcard common/*.h worker/protocol/*.h worker/sinks/*.h server/*.h)
	clang $(FUZZ_CFLAGS) -o $@ $< $(call fuzz_src,$*) $(FUZZ_LIBS_$*)

fuzz: deps $(FUZZ_NAMES:%=tests/fuzz/fuzz_%)
	@for n in $(FUZZ_NAMES); do \
		echo "fuzz $$n: $(FUZZ_TIME) s"; mkdir -p tests/fuzz/findings/corpus-$$n; \
		tests/fuzz/fuzz_$$n -max_total_time=$(FUZZ_TIME) -max_len=70000 \
			-artifact_prefix=tests/fuzz/findings/$$n- \
			tests/fuzz/findings/corpus-$$n tests/fuzz/corpus/$$n \
			2>tests/fuzz/findings/$$n.log || { tail -50 tests/fuzz/findings/$$n.log; exit 1; }; \
		tail -1 tests/fuzz/findings/$$n.log; \
	done

tests/bench/micro: tests/bench/micro.c tests/bench/bench_records.o worker/protocol/framing.o \
		worker/protocol/parse_syslog.o worker/protocol/json.o worker/pipeline/encode.o \
		worker/pipeline/routes.o worker/pipeline/template.o common/cond.o common/cidr.o \
		common/proc.o common/obuf.o common/tz.o
	$(CC) $(CPPFLAGS) $(CFLAGS) $(INC_pipeline) $(LDFLAGS) -o $@ $^ -lpcre2-8

tests/bench/blast: tests/bench/blast.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^

# Test tools, not the product: built without the sanitizers, which only slow them.
TOOL_CFLAGS = -O2 -g -std=gnu11 -Wall -Wextra -D_GNU_SOURCE

# What the nats cases ask of a JetStream cluster (create a stream, read it back).
tests/integration/natsctl: tests/integration/natsctl.c
	$(CC) $(TOOL_CFLAGS) -o $@ $^ $(shell pkg-config --libs libnats)

# The bare JetStream publisher make bench sets beside the nats sink.
tests/bench/natspub: tests/bench/natspub.c
	$(CC) $(TOOL_CFLAGS) -o $@ $^ $(shell pkg-config --libs libnats)

tests/bench/discard: tests/bench/discard.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^

# Not part of make check: figures, not pass/fail, within 10 minutes (see
# tests/bench/bench.py); results under tests/bench/results/.  Never run two at once.
bench: deps bench-deps ingestd ingestd-bench tests/bench/micro tests/bench/discard \
		tests/bench/natspub tests/integration/natsctl
	python3 tests/bench/bench.py

# The man pages' .Os line gets the version; logrotate's snippet, which names
# /usr/local/sbin/ingestd (the default PREFIX's), runs $(SBINDIR)/ingestd.
install: ingestd ingestd-bench
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SYSCONFDIR)/ingestd
	install -m 755 ingestd $(DESTDIR)$(SBINDIR)/ingestd
	install -m 755 ingestd-bench $(DESTDIR)$(BINDIR)/ingestd-bench
	for m in ingestd-bench.1 ingestd.8 ingestd.conf.5; do \
		out=$(DESTDIR)$(MANDIR)/man$${m##*.}/$$m; \
		sed 's/^\.Os$$/.Os ingestd $(VERSION)/' man/$$m > $$out && chmod 644 $$out && \
		grep -q '^\.Os ingestd $(VERSION)$$' $$out || { echo "make install: no .Os line in man/$$m" >&2; exit 1; }; \
	done
	test -e $(DESTDIR)$(SYSCONFDIR)/ingestd/ingestd.conf || \
		install -m 644 etc/ingestd.conf $(DESTDIR)$(SYSCONFDIR)/ingestd/ingestd.conf
	install -d $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	test -e $(DESTDIR)$(SYSCONFDIR)/logrotate.d/ingestd || \
		{ sed 's,/usr/local/sbin/ingestd,$(SBINDIR)/ingestd,g' etc/logrotate.d/ingestd > \
			$(DESTDIR)$(SYSCONFDIR)/logrotate.d/ingestd && \
		chmod 644 $(DESTDIR)$(SYSCONFDIR)/logrotate.d/ingestd; }

# make deb: ingestd_VERSION_ARCH.deb and ingestd-bench_VERSION_ARCH.deb in the
# top directory, built by dpkg-buildpackage from debian/ in a copy of the
# working tree (its tracked and new files, committed or not) under build/deb/:
# the package build runs make clean in its tree, which must not be this one,
# whose ./ingestd the tests may be running.  debian/changelog is written in
# the copy only, with common/version.h's version.  lintian must find no error
# and no warning (an override would go in debian/PACKAGE.lintian-overrides,
# with its reason; there is none).
DEB_ARCH = $(shell dpkg --print-architecture 2>/dev/null)
DEB_TREE = build/deb/ingestd-$(VERSION)
DEBS	 = ingestd_$(VERSION)_$(DEB_ARCH).deb ingestd-bench_$(VERSION)_$(DEB_ARCH).deb
# The same packages whatever make runs this one: make check SANITIZE=1 passes
# SANITIZE down, and CFLAGS or LDFLAGS in the environment would replace
# dpkg-buildflags' (the hardening lintian checks).
DEB_ENV	 = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SANITIZE -u CFLAGS -u CPPFLAGS -u LDFLAGS -u LDLIBS

deb:
	rm -rf build/deb ingestd_*.deb ingestd-bench_*.deb
	mkdir -p $(DEB_TREE)
	git ls-files -co --exclude-standard | while read -r f; do [ -e "$$f" ] && echo "$$f"; done | \
		tar -cf - -T - | tar -xf - -C $(DEB_TREE)
	{ echo "ingestd ($(VERSION)) unstable; urgency=medium"; echo; \
	  echo "  * Built by make deb; the version is common/version.h's."; echo; \
	  echo " -- $$(sed -n 's/^Maintainer: //p' debian/control)  $$(git log -1 --format=%aD)"; \
	} > $(DEB_TREE)/debian/changelog
	cd $(DEB_TREE) && $(DEB_ENV) dpkg-buildpackage -b -us -uc -jauto
	lintian --fail-on error,warning build/deb/ingestd_$(VERSION)_$(DEB_ARCH).changes
	cp $(DEBS:%=build/deb/%) .

# Build the packages, install them on this machine, run the installed daemon
# on loopback, purge them: tests/deb/check_deb.py (root; about 30 s).
check-deb:
	python3 tests/deb/check_deb.py

clean:
	rm -f ingestd ingestd-bench cfgdoc tests/unit/run */*.o */*/*.o \
		common/*.d server/*.d worker/*.d worker/*/*.d tests/*/*.d \
		$(FUZZ_NAMES:%=tests/fuzz/fuzz_%) tests/bench/micro tests/bench/blast \
		tests/bench/discard tests/integration/natsctl tests/bench/natspub
	rm -rf build ingestd_*.deb ingestd-bench_*.deb
