/*
 * options: what the command line asks of the master.
 */
#ifndef INGESTD_OPTIONS_H
#define INGESTD_OPTIONS_H

struct options {
	const char	*config_path;	/* -c, or NULL for the default */
	const char	*pid_path;	/* -p, or NULL for pid_file */
	int		 foreground;	/* -f */
	char *const	*argv;		/* the command line, for a binary upgrade */
};

#endif
