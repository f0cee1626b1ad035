/*
 * tcp_client - connects to HOST:PORT with a timeout, sends each line of
 * stdin and prints the one reply line it expects for it, waiting at most
 * the timeout for that (a line-based echo server's way; lines of stdin
 * are at most 4094 bytes).
 *
 *   tcp_client [-t TIMEOUT_MS] HOST PORT
 *
 * Exit status: 0 on success (stdin ended), 1 on a connection error, a
 * timeout or a failed write to stdout (a full disk, a reader that went
 * away), with the reason on stderr; 2 for a usage error. stdin is read
 * through zio too, so a slow producer never blocks the executor.
 */
#define _GNU_SOURCE /* the examples use Linux's and glibc's extensions */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zio.h>

#include "example_util.h"

struct opts {
	const char *host;
	int port;
	int64_t timeout;
};

static void *client(void *arg)
{
	struct opts *o = arg;
	int fd = zio_tcp_connect_host(o->host, (uint16_t)o->port, zio_deadline_after(o->timeout));
	if (fd < 0) {
		fprintf(stderr, "tcp_client: connect %s:%d: %s\n", o->host, o->port,
			fd == -ENOENT ? "no such host" : strerror(-fd));
		return (void *)1;
	}
	char ib[4096], sb[4096], ob[4096], line[4096];
	zio_reader in, sock;
	zio_writer out;
	zio_reader_init_fd(&in, STDIN_FILENO, ib, sizeof(ib));
	zio_reader_init_fd(&sock, fd, sb, sizeof(sb));
	zio_writer_init_fd(&out, STDOUT_FILENO, ob, sizeof(ob));
	intptr_t rc = 0;
	ssize_t n;
	/* One byte short of line: room for the newline a last line may lack. */
	while ((n = zio_reader_take_delim(&in, '\n', true, line, sizeof(line) - 1)) > 0) {
		if (line[n - 1] != '\n')
			line[n++] = '\n'; /* the last line had none */
		ssize_t w = zio_write_all(fd, line, (size_t)n, zio_deadline_after(o->timeout));
		if (w < 0) {
			fprintf(stderr, "tcp_client: send: %s\n", strerror((int)-w));
			rc = 1;
			break;
		}
		sock.deadline = zio_deadline_after(o->timeout);
		ssize_t r = zio_reader_take_delim(&sock, '\n', true, line, sizeof(line));
		if (r <= 0) {
			if (r == -ETIMEDOUT)
				fprintf(stderr, "tcp_client: no reply within %lld ms (timed out)\n",
					(long long)(o->timeout / ZIO_MSEC(1)));
			else
				fprintf(stderr, "tcp_client: reply: %s\n",
					r == 0 ? "connection closed" : strerror((int)-r));
			rc = 1;
			break;
		}
		ssize_t put = zio_writer_write(&out, line, (size_t)r);
		if (put >= 0)
			put = zio_writer_flush(&out);
		if (put < 0) {
			fprintf(stderr, "tcp_client: stdout: %s\n", strerror((int)-put));
			rc = 1;
			break;
		}
	}
	if (n < 0 && rc == 0) {
		if (n == -EMSGSIZE)
			fprintf(stderr, "tcp_client: stdin: a line longer than %zu bytes\n",
				sizeof(line) - 2);
		else
			fprintf(stderr, "tcp_client: stdin: %s\n", strerror((int)-n));
		rc = 1;
	}
	zio_close(fd);
	return (void *)rc;
}

static const char synopsis[] = "[-t TIMEOUT_MS] HOST PORT";
static const char help[] =
	"Connects to HOST (a name or an address) at PORT, sends each line of stdin\n"
	"and prints the reply line it expects for each (a line-based echo\n"
	"server's way). Lines are at most 4094 bytes.\n\n"
	"  -t TIMEOUT_MS  how long the connect, and each reply, may take\n"
	"                 (1 to 86400000; default 5000)\n\n" EXAMPLE_ENV_HELP
	"Exit status: 0 once stdin ends, 1 on a connection error, a timeout or a\n"
	"failed write to stdout, 2 for a usage error.\n";

int main(int argc, char **argv)
{
	if (!std_fds_open())
		return 1;
	struct opts o = { .timeout = ZIO_SEC(5) };
	int c;
	help_exits(argc, argv, synopsis, help);
	while ((c = getopt(argc, argv, "t:")) != -1) {
		if (c == 't') {
			long ms = num_arg(optarg, 1, 86400000);
			if (ms < 0) {
				fprintf(stderr, "tcp_client: -t takes milliseconds, 1 to 86400000\n");
				return 2;
			}
			o.timeout = ZIO_MSEC(ms);
		} else {
			return usage_error(argv[0], synopsis);
		}
	}
	if (argc - optind != 2)
		return usage_error(argv[0], synopsis);
	o.host = argv[optind];
	o.port = port_arg(argv[optind + 1]);
	if (o.port < 0) {
		fprintf(stderr, "tcp_client: PORT must be a number from 0 to 65535\n");
		return 2;
	}
	zio_runtime *rt;
	int err = zio_runtime_create(&rt, NULL);
	if (err) {
		fprintf(stderr, "tcp_client: cannot start the zio runtime: %s\n", strerror(-err));
		return 1;
	}
	void *res = NULL;
	zio_runtime_run(rt, client, &o, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
