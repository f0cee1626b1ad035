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

#include <arpa/inet.h>
#include <netdb.h>
#include <strings.h>

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
	/* glibc says "no such name" when it could not open what it reads
	 * (/etc/hosts, a socket to the resolver): errno tells. */
	if (rc == EAI_NONAME && (sys_errno == EMFILE || sys_errno == ENFILE || sys_errno == ENOMEM))
		return -sys_errno;
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

/* Names that only ever mean this host (RFC 6761's localhost and the
 * Debian /etc/hosts names for ::1), any case, with or without the final
 * dot. Their addresses are loopback ones, which AI_ADDRCONFIG may hide: a
 * name found without it is worth a second lookup, one that only might be
 * is not (that would double every failed lookup's time). */
static bool names_this_host(const char *host)
{
	size_t n = strlen(host);
	if (n && host[n - 1] == '.')
		n--;
	static const char *const names[] = { "localhost", "ip6-localhost", "ip6-loopback" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (n == strlen(names[i]) && strncasecmp(host, names[i], n) == 0)
			return true;
	/* foo.localhost */
	return n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0;
}

static void dns_run(struct zio__job *j)
{
	struct dns_job *d = (struct dns_job *)j;
	struct addrinfo hints = { .ai_family = d->family, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	errno = 0;
	int rc = getaddrinfo(d->host, NULL, &hints, &res);
	if (rc == EAI_BADFLAGS ||
	    ((rc == EAI_NONAME || rc == EAI_ADDRFAMILY) && names_this_host(d->host))) {
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

/* The older IPv4 forms getaddrinfo() also takes as numbers ("127.1",
 * "0x7f000001", "2130706433"), which need no lookup either; nothing but
 * their digits and dots, as inet_aton() ignores what follows a space. */
static bool legacy_ipv4(zio_addr *a, const char *host, uint16_t port)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port) };
	return !host[strspn(host, "0123456789abcdefABCDEFxX.")] && inet_aton(host, &in.sin_addr) &&
	       zio_addr_from_sockaddr(a, (struct sockaddr *)&in, sizeof(in)) == 0;
}

ZIO_API int zio_dns_resolve(const char *host, uint16_t port, int family, zio_addr *out, int max,
			    int64_t deadline)
{
	if (!host || !out || max <= 0)
		return -EINVAL;
	if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
		return -EINVAL;
	/* 253 characters, or 254 with the root's final dot. */
	size_t hl = strnlen(host, 256);
	if (hl == 0 || hl > 254 || (hl == 254 && host[253] != '.'))
		return -EINVAL;
	/* Numeric: no lookup at all. IPv6 also in brackets, as in URLs. */
	zio_addr a;
	char inner[64];
	if (host[0] == '[' && hl > 2 && hl - 2 < sizeof(inner) && host[hl - 1] == ']') {
		memcpy(inner, host + 1, hl - 2);
		inner[hl - 2] = 0;
		if (zio_addr_ip(&a, inner, port) != 0 || a.sa.sa_family != AF_INET6)
			return -EINVAL;
		host = inner;
	}
	if (zio_addr_ip(&a, host, port) == 0 || legacy_ipv4(&a, host, port)) {
		if (family != AF_UNSPEC && a.sa.sa_family != family)
			return -ENOENT;
		out[0] = a;
		return 1;
	}
	if (deadline == 0)
		return -EAGAIN; /* a lookup always waits for the pool */
	struct dns_job *d = calloc(1, sizeof(*d) + hl + 1);
	if (!d)
		return -ENOMEM;
	memcpy(d->host, host, hl);
	/* /etc/hosts knows "localhost", not "localhost.". */
	if (host[hl - 1] == '.' && names_this_host(host))
		d->host[hl - 1] = 0;
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
