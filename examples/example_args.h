/*
 * example_args.h - small helpers the examples share (not part of zio's API):
 * command-line numbers, and what a server does when accept() fails.
 */
#ifndef EXAMPLE_ARGS_H
#define EXAMPLE_ARGS_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <zio.h>

/* A whole number from text, min to max, or -1 for anything else. */
static inline long num_arg(const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return *s && !*end && !errno && v >= min && v <= max ? v : -1;
}

/* A port number from text: 0 to 65535, or -1 for anything else. */
static inline int port_arg(const char *s)
{
	return (int)num_arg(s, 0, 65535);
}

/* Whether a failed zio_tcp_accept() leaves the listener serving: out of
 * descriptors or memory (then wait a moment for some to be freed), or a
 * connection that went away before it was taken. Anything else ends the
 * server. */
static inline bool accept_goes_on(int err)
{
	switch (err) {
	case -EMFILE:
	case -ENFILE:
	case -ENOBUFS:
	case -ENOMEM:
		zio_sleep(ZIO_MSEC(10));
		return true;
	case -ECONNABORTED:
	case -EINTR:
		return true;
	default:
		return false;
	}
}

#endif
