/*
 * main: the command line.
 *
 *   ingestd [-fhtTV] [-c file] [-p pid_file] [-s reload|stop|quit|reopen|upgrade]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "pidfile.h"
#include "version.h"

static const struct {
	const char	*name;
	int		 sig;
} commands[] = {
	{ "reload", SIGHUP }, { "stop", SIGTERM }, { "quit", SIGQUIT }, { "reopen", SIGUSR1 },
	{ "upgrade", SIGUSR2 },
};

#define UPGRADE_WAIT_MS	60000

static void __attribute__((noreturn))
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: ingestd [-fhtTV] [-c file] [-p pid_file] [-s reload|stop|quit|reopen|upgrade]\n"
	    "  -c file    configuration file (default %s;\n"
	    "             without it, the embedded default is used)\n"
	    "  -f         stay in the foreground and log to stderr\n"
	    "  -p file    pid file (overrides pid_file)\n"
	    "  -s signal  send a signal to the running master: reload, stop, quit, reopen;\n"
	    "             upgrade: start the binary anew and retire the old master\n"
	    "  -t         test the configuration and exit\n"
	    "  -T         test the configuration and print it with every default filled in\n"
	    "  -V         print the version and exit\n"
	    "  -h         print this help and exit\n", CFG_DEFAULT_PATH);
	exit(code);
}

/*
 * The whole binary upgrade: USR2, wait until a new master holds the pid
 * file (it writes it once its workers accept), then QUIT the old one.
 */
static int
upgrade(pid_t old, const char *pid_path)
{
	long waited = 0;
	pid_t now;

	if (kill(old, SIGUSR2) == -1) {
		log_warn("cannot signal ingestd (pid %ld)", (long)old);
		return 1;
	}
	for (;;) {
		now = pidfile_read(pid_path);
		if (now != 0 && now != old && pidfile_locked(pid_path))
			break;
		if (kill(old, 0) == -1) {
			log_warnx("upgrade: the old master (pid %ld) is gone", (long)old);
			return 1;
		}
		/* Failed: the old master renamed its pid file back. */
		if (waited > 500 && now == old && pidfile_locked(pid_path)) {
			log_warnx("upgrade failed: the old master (pid %ld) keeps serving; see its "
			    "log", (long)old);
			return 1;
		}
		if (waited >= UPGRADE_WAIT_MS) {
			log_warnx("upgrade: no new master accepting after %d s; the old one (pid "
			    "%ld) keeps serving", UPGRADE_WAIT_MS / 1000, (long)old);
			return 1;
		}
		usleep(50 * 1000);
		waited += 50;
	}
	if (kill(old, SIGQUIT) == -1) {
		log_warn("upgrade: cannot tell the old master (pid %ld) to quit", (long)old);
		return 1;
	}
	fprintf(stderr, "ingestd: upgraded: pid %ld accepts; pid %ld finishes its connections "
	    "and exits\n", (long)now, (long)old);
	return 0;
}

static int
signal_master(const char *cmd, const char *pid_path)
{
	int sig = 0;
	pid_t pid;

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			sig = commands[i].sig;
	if ((pid = pidfile_owner(pid_path)) == 0)
		return 1;
	if (sig == SIGUSR2)
		return upgrade(pid, pid_path);
	if (kill(pid, sig) == -1) {
		log_warn("cannot signal ingestd (pid %ld from %s)", (long)pid, pid_path);
		return 1;
	}
	return 0;
}

static int
valid_command(const char *cmd)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return 1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct options opt = { NULL, NULL, 0, argv };
	const char *signal_cmd = NULL;
	int test = 0, dump = 0, ch;
	struct config *cf;
	char err[1024];

	log_init_stderr();
	while ((ch = getopt(argc, argv, "c:fhp:s:tTV")) != -1) {
		switch (ch) {
		case 'c':
			opt.config_path = optarg;
			break;
		case 'f':
			opt.foreground = 1;
			break;
		case 'h':
			usage(0);
		case 'p':
			opt.pid_path = optarg;
			break;
		case 's':
			if (!valid_command(optarg)) {
				fprintf(stderr, "ingestd: -s: unknown signal \"%s\"\n", optarg);
				usage(EX_USAGE);
			}
			signal_cmd = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'T':
			test = dump = 1;
			break;
		case 'V':
			printf("ingestd %s\n", INGESTD_VERSION);
			return 0;
		default:
			usage(EX_USAGE);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "ingestd: unexpected argument \"%s\"\n", argv[optind]);
		usage(EX_USAGE);
	}
	/* With -p, signalling needs no config: a broken one must not stop "-s stop". */
	if (signal_cmd && opt.pid_path && !test)
		return signal_master(signal_cmd, opt.pid_path);
	if ((cf = master_load_config(&opt, err, sizeof(err))) == NULL) {
		fprintf(stderr, "ingestd: %s\n", err);
		if (test)
			fprintf(stderr, "ingestd: configuration test failed\n");
		return 1;
	}
	if (test) {
		if (dump)
			cfg_dump(cf, stdout);
		fprintf(stderr, "ingestd: configuration %s is valid\n", cf->path);
		cfg_unref(cf);
		return 0;
	}
	if (signal_cmd) {
		int rc = signal_master(signal_cmd, master_pid_path(&opt, cf));

		cfg_unref(cf);
		return rc;
	}
	return master_run(cf, &opt);
}
