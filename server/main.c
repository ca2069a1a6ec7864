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
#include "control.h"
#include "generation.h"
#include "log.h"
#include "master.h"
#include "version.h"

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
			if (!control_valid(optarg)) {
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
		return control_send(signal_cmd, opt.pid_path);
	if ((cf = gen_load_config(&opt, err, sizeof(err))) == NULL) {
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
		int rc = control_send(signal_cmd, master_pid_path(&opt, cf));

		cfg_unref(cf);
		return rc;
	}
	return master_run(cf, &opt);
}
