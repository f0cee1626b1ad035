/*
 * example_args.h - a command-line helper the examples share (not part of
 * zio's API).
 */
#ifndef EXAMPLE_ARGS_H
#define EXAMPLE_ARGS_H

#include <stdlib.h>

/* A port number from text: 0 to 65535, or -1 for anything else. */
static inline int port_arg(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s && !*end && v >= 0 && v <= 65535 ? (int)v : -1;
}

#endif
