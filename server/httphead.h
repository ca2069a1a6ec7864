/*
 * httphead: the head of an HTTP/1.0 or 1.1 request (the request line and
 * the header lines, up to the empty line), as the stats endpoint reads it.
 *
 * Pure: bytes in, the method, path and version out, no I/O, so it is
 * unit-tested and fuzzed.  The caller keeps every byte received in one
 * buffer that does not move and calls httphead_feed() after each read with
 * all of it; bytes already scanned are not scanned again, so a head that
 * trickles in a byte at a time costs no more than one that comes whole.
 * The caller bounds the buffer: nothing here limits the head's length.
 *
 * Accepted (RFC 9112): lines that end in CRLF or LF; empty lines before the
 * request line; "METHOD SP TARGET SP HTTP/1.N", where METHOD is a token,
 * TARGET is visible ASCII in origin form ("/path?query"), absolute form
 * ("http://host/path?query", "https://...") or "*", and a minor version
 * above 1 is taken as 1.1.  The path is the target up to its query (the
 * query is ignored); "/" for an absolute form with no path.  Header lines
 * must be "NAME:..." with NAME a token and are otherwise ignored: the stats
 * endpoint needs none of them.
 *
 * Refused, as soon as the line that shows it has ended: a malformed request
 * line or header line, a folded header line (obs-fold), a bare CR in the
 * request line: 400; a version "HTTP/N.M" with N other than 1: 505.
 */
#ifndef INGESTD_HTTPHEAD_H
#define INGESTD_HTTPHEAD_H

#include <stddef.h>

struct httphead {
	size_t		 scanned;	/* bytes of the buffer looked at */
	size_t		 line;		/* where the line being scanned begins */
	int		 started;	/* the request line is in */
	/* Set with the request line, valid while the buffer is. */
	const char	*method, *path;
	size_t		 methodlen, pathlen;
	int		 minor;		/* HTTP/1.minor: 0 or 1 */
	/* Once httphead_feed() returned 1: the head's bytes, its empty line included. */
	size_t		 len;
	/* Once it returned -1. */
	int		 status;	/* 400 or 505 */
	const char	*why;
};

void	 httphead_init(struct httphead *);
int	 httphead_feed(struct httphead *, const char *buf, size_t len);

#endif
