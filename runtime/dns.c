/*
 * dns.c - name lookup that never blocks an executor.
 *
 * Numeric addresses are parsed in place. Names go to getaddrinfo() on the
 * blocking pool, in a heap job that holds copies of its inputs and room for
 * its results, so the waiting task can walk away (timeout, cancellation)
 * while the lookup is still running: the job finishes, is thrown away, and
 * frees itself on its last reference.
 */
#include "backend.h"

#include <netdb.h>

#define DNS_MAX 64

struct dns_job {
	struct zio__job job;
	int family;
	uint16_t port;
	int err;
	int n;
	zio_addr addrs[DNS_MAX];
	char host[];
};

static int gai_errno(int rc, int sys_errno)
{
	switch (rc) {
	case 0:
		return 0;
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY:
#endif
		return -ENOENT;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return sys_errno ? -sys_errno : -EIO;
	case EAI_FAMILY:
	case EAI_BADFLAGS:
	case EAI_SERVICE:
	case EAI_SOCKTYPE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static void dns_run(struct zio__job *j)
{
	struct dns_job *d = (struct dns_job *)j;
	struct addrinfo hints = { .ai_family = d->family, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	errno = 0;
	int rc = getaddrinfo(d->host, NULL, &hints, &res);
	if (rc == EAI_BADFLAGS || (rc == EAI_NONAME && strcmp(d->host, "localhost") == 0)) {
		/* AI_ADDRCONFIG hides loopback-only hosts' addresses. */
		hints.ai_flags = 0;
		rc = getaddrinfo(d->host, NULL, &hints, &res);
	}
	d->err = gai_errno(rc, errno);
	d->n = 0;
	for (struct addrinfo *ai = res; ai && d->n < DNS_MAX; ai = ai->ai_next) {
		zio_addr *a = &d->addrs[d->n];
		if (zio_addr_from_sockaddr(a, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    zio_addr_set_port(a, d->port) == 0)
			d->n++;
	}
	if (res)
		freeaddrinfo(res);
	if (!d->err && d->n == 0)
		d->err = -ENOENT;
}

static void dns_release(struct zio__job *j)
{
	free(j);
}

ZIO_API int zio_dns_resolve(const char *host, uint16_t port, int family, zio_addr *out, int max,
			    int64_t deadline)
{
	if (!host || !out || max <= 0)
		return -EINVAL;
	if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
		return -EINVAL;
	size_t hl = strnlen(host, 256);
	if (hl == 0 || hl > 253)
		return -EINVAL;
	/* Numeric: no lookup at all. */
	zio_addr a;
	if (zio_addr_ip(&a, host, port) == 0) {
		if (family != AF_UNSPEC && a.sa.sa_family != family)
			return -ENOENT;
		out[0] = a;
		return 1;
	}
	struct dns_job *d = calloc(1, sizeof(*d) + hl + 1);
	if (!d)
		return -ENOMEM;
	memcpy(d->host, host, hl);
	d->family = family;
	d->port = port;
	d->job.run = dns_run;
	d->job.release = dns_release;
	int err = zio__blocking_wait_detached(&d->job, deadline);
	int r;
	if (err) {
		r = err;
	} else if (d->err) {
		r = d->err;
	} else {
		r = d->n < max ? d->n : max;
		memcpy(out, d->addrs, (size_t)r * sizeof(*out));
	}
	zio__job_unref(&d->job);
	return r;
}
