/*
 * addr.c - socket addresses: parse, format, convert.
 *
 * Text forms (what zio_addr_format writes and zio_addr_parse reads back):
 *   IPv4   1.2.3.4:80            (strict dotted quad, no leading zeros)
 *   IPv6   [::1]:80  [fe80::1%eth0]:80  [fe80::1%3]:80
 *   Unix   unix:/run/x.sock      unix:@abstract      unix: (unnamed)
 * The parser also takes an address without a port (port 0), "/path" and
 * "@name". It is strict and total: any input, however long or malformed,
 * yields 0 or -EINVAL, never a partial address (it is fuzzed in
 * tests/test_addr.c).
 *
 * Unix names are bytes, and an abstract one may hold NULs (a name bound
 * with the whole sun_path length is padded with them), so in the text
 * form a backslash escapes: "\\" is a backslash and "\xNN" the byte NN.
 * The formatter writes control bytes, DEL and backslashes that way, and
 * the rest as they are, so every address the parser can make comes back
 * from its text whole (a 108-byte path with no terminator, which
 * getsockname can report, is formatted but not parsed).
 * "unix:" alone is the unnamed address: a socketpair's ends, an unbound
 * client, and for bind(), autobind. zio_addr_unix() takes a raw name.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <stddef.h>
#include <zio/io.h>

#define SUN_OFF offsetof(struct sockaddr_un, sun_path)
#define SUN_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

static int parse_port(const char *s, size_t n, uint16_t *out)
{
	if (n == 0 || n > 5)
		return -EINVAL;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

static int parse_ip4(zio_addr *out, const char *s, size_t n, uint16_t port)
{
	char tmp[INET_ADDRSTRLEN];
	if (n == 0 || n >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	struct in_addr a;
	if (inet_pton(AF_INET, tmp, &a) != 1)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->in4.sin_family = AF_INET;
	out->in4.sin_port = htons(port);
	out->in4.sin_addr = a;
	out->len = sizeof(out->in4);
	return 0;
}

static int parse_ip6(zio_addr *out, const char *s, size_t n, uint16_t port)
{
	char tmp[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	if (n == 0 || n >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	uint32_t scope = 0;
	char *pct = memchr(tmp, '%', n);
	if (pct) {
		*pct++ = 0;
		size_t sl = strlen(pct);
		if (sl == 0 || sl >= IF_NAMESIZE)
			return -EINVAL;
		bool digits = true;
		for (size_t i = 0; i < sl; i++)
			if (pct[i] < '0' || pct[i] > '9')
				digits = false;
		if (digits) {
			if (sl > 10)
				return -EINVAL;
			unsigned long long v = strtoull(pct, NULL, 10);
			if (v > UINT32_MAX)
				return -EINVAL;
			scope = (uint32_t)v;
		} else {
			/* The name must be the interface's own: if_nametoindex
			 * also takes an alias label ("eth0:8080"), which
			 * would hide a port given without brackets. */
			char back[IF_NAMESIZE];
			scope = if_nametoindex(pct);
			if (scope == 0 || !if_indextoname(scope, back) || strcmp(back, pct) != 0)
				return -EINVAL;
		}
	}
	struct in6_addr a;
	if (inet_pton(AF_INET6, tmp, &a) != 1)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->in6.sin6_family = AF_INET6;
	out->in6.sin6_port = htons(port);
	out->in6.sin6_addr = a;
	out->in6.sin6_scope_id = scope;
	out->len = sizeof(out->in6);
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A Unix name's bytes into out, escapes decoded if escapes is set; their
 * count, or -EINVAL for a bad escape or more than max. */
static ssize_t copy_name(char *out, size_t max, const char *p, size_t n, bool escapes)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '\\' && escapes) {
			int hi, lo;
			if (i + 1 < n && p[i + 1] == '\\') {
				i++;
			} else if (i + 3 < n && p[i + 1] == 'x' && (hi = hex_digit(p[i + 2])) >= 0 &&
				   (lo = hex_digit(p[i + 3])) >= 0) {
				c = (char)(hi << 4 | lo);
				i += 3;
			} else {
				return -EINVAL;
			}
		}
		if (len == max)
			return -EINVAL;
		out[len++] = c;
	}
	return (ssize_t)len;
}

/* A Unix address: "/path" or "@abstract", from text (escapes is set: see
 * the top) or a raw name; "" is the unnamed address. A path keeps room for
 * its terminator and holds no NUL; an abstract name is a leading NUL, then
 * its bytes, no terminator. */
static int unix_addr(zio_addr *out, const char *p, size_t n, bool escapes)
{
	memset(out, 0, sizeof(*out));
	out->un.sun_family = AF_UNIX;
	if (n == 0) {
		out->len = sizeof(sa_family_t);
		return 0;
	}
	bool abstract = p[0] == '@';
	char *name = out->un.sun_path + abstract;
	ssize_t len = copy_name(name, SUN_MAX - 1, p + abstract, n - abstract, escapes);
	if (len < 0 || (!abstract && (len == 0 || memchr(name, 0, (size_t)len)))) {
		memset(out, 0, sizeof(*out));
		return -EINVAL;
	}
	out->len = (socklen_t)(SUN_OFF + 1 + (size_t)len);
	return 0;
}

ZIO_API int zio_addr_parse(zio_addr *out, const char *text)
{
	if (!out || !text)
		return -EINVAL;
	size_t n = strnlen(text, 4096);
	if (n == 0 || n == 4096)
		return -EINVAL;
	if (n >= 5 && memcmp(text, "unix:", 5) == 0)
		return unix_addr(out, text + 5, n - 5, true);
	if (text[0] == '/' || text[0] == '@')
		return unix_addr(out, text, n, true);
	uint16_t port = 0;
	if (text[0] == '[') {
		const char *close = memchr(text, ']', n);
		if (!close)
			return -EINVAL;
		size_t rest = n - (size_t)(close + 1 - text);
		if (rest > 0) {
			if (close[1] != ':' || parse_port(close + 2, rest - 1, &port))
				return -EINVAL;
		}
		return parse_ip6(out, text + 1, (size_t)(close - text - 1), port);
	}
	const char *colon = memchr(text, ':', n);
	if (colon && memchr(colon + 1, ':', n - (size_t)(colon + 1 - text)))
		return parse_ip6(out, text, n, 0); /* bare IPv6, no port */
	if (colon) {
		if (parse_port(colon + 1, n - (size_t)(colon + 1 - text), &port))
			return -EINVAL;
		return parse_ip4(out, text, (size_t)(colon - text), port);
	}
	return parse_ip4(out, text, n, 0);
}

ZIO_API int zio_addr_ip(zio_addr *out, const char *ip, uint16_t port)
{
	if (!out || !ip)
		return -EINVAL;
	size_t n = strnlen(ip, 256);
	if (n == 256)
		return -EINVAL;
	if (memchr(ip, ':', n))
		return parse_ip6(out, ip, n, port);
	return parse_ip4(out, ip, n, port);
}

ZIO_API int zio_addr_unix(zio_addr *out, const char *path)
{
	if (!out || !path)
		return -EINVAL;
	size_t n = strnlen(path, SUN_MAX + 1);
	return n ? unix_addr(out, path, n, false) : -EINVAL;
}

ZIO_API int zio_addr_from_sockaddr(zio_addr *out, const struct sockaddr *sa, socklen_t len)
{
	if (!out || !sa || len < sizeof(sa_family_t))
		return -EINVAL;
	switch (sa->sa_family) {
	case AF_INET:
		if (len < sizeof(struct sockaddr_in))
			return -EINVAL;
		len = sizeof(struct sockaddr_in);
		break;
	case AF_INET6:
		if (len < sizeof(struct sockaddr_in6))
			return -EINVAL;
		len = sizeof(struct sockaddr_in6);
		break;
	case AF_UNIX:
		/* One more is the kernel's NUL after a full sun_path. */
		if (len < SUN_OFF || len > sizeof(struct sockaddr_un) + 1)
			return -EINVAL;
		if (len > sizeof(struct sockaddr_un))
			len = sizeof(struct sockaddr_un);
		break;
	default:
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	memcpy(&out->ss, sa, len);
	out->len = len;
	return 0;
}

/* "unix:" and the name, escaped as the parser reads it back; the length. */
static size_t format_unix(char *out, bool abstract, const char *name, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t len = 0;
	memcpy(out, "unix:@", 6);
	len = abstract ? 6 : 5;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '\\') {
			out[len++] = '\\';
			out[len++] = '\\';
		} else if (c < 0x20 || c == 0x7f || (i == 0 && !abstract && c == '@')) {
			/* (A path's leading '@' escaped: "unix:@" is abstract.) */
			out[len++] = '\\';
			out[len++] = 'x';
			out[len++] = hex[c >> 4];
			out[len++] = hex[c & 15];
		} else {
			out[len++] = (char)c;
		}
	}
	out[len] = 0;
	return len;
}

ZIO_API int zio_addr_format(const zio_addr *a, char *buf, size_t size)
{
	if (!a || !buf)
		return -EINVAL;
	char tmp[ZIO_ADDR_STRLEN];
	int n;
	switch (a->sa.sa_family) {
	case AF_INET: {
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &a->in4.sin_addr, ip, sizeof(ip));
		n = snprintf(tmp, sizeof(tmp), "%s:%u", ip, ntohs(a->in4.sin_port));
		break;
	}
	case AF_INET6: {
		char ip[INET6_ADDRSTRLEN], scope[IF_NAMESIZE + 2] = "";
		inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof(ip));
		if (a->in6.sin6_scope_id) {
			char name[IF_NAMESIZE];
			if (if_indextoname(a->in6.sin6_scope_id, name))
				snprintf(scope, sizeof(scope), "%%%s", name);
			else
				snprintf(scope, sizeof(scope), "%%%u", a->in6.sin6_scope_id);
		}
		n = snprintf(tmp, sizeof(tmp), "[%s%s]:%u", ip, scope, ntohs(a->in6.sin6_port));
		break;
	}
	case AF_UNIX: {
		size_t plen = a->len > SUN_OFF ? a->len - SUN_OFF : 0;
		if (plen > SUN_MAX)
			plen = SUN_MAX; /* a hand-made zio_addr's len is not to be trusted */
		const char *p = a->un.sun_path;
		bool abstract = plen > 0 && p[0] == 0;
		size_t l = abstract ? plen - 1 : strnlen(p, plen);
		n = (int)format_unix(tmp, abstract, p + abstract, l);
		break;
	}
	default:
		return -EINVAL;
	}
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= size)
		return -ENOSPC;
	memcpy(buf, tmp, (size_t)n + 1);
	return n;
}

ZIO_API int zio_addr_port(const zio_addr *a)
{
	if (!a)
		return -EINVAL;
	if (a->sa.sa_family == AF_INET)
		return ntohs(a->in4.sin_port);
	if (a->sa.sa_family == AF_INET6)
		return ntohs(a->in6.sin6_port);
	return -EINVAL;
}

ZIO_API int zio_addr_set_port(zio_addr *a, uint16_t port)
{
	if (!a)
		return -EINVAL;
	if (a->sa.sa_family == AF_INET)
		a->in4.sin_port = htons(port);
	else if (a->sa.sa_family == AF_INET6)
		a->in6.sin6_port = htons(port);
	else
		return -EINVAL;
	return 0;
}

ZIO_API bool zio_addr_is_loopback(const zio_addr *a)
{
	if (!a)
		return false;
	if (a->sa.sa_family == AF_INET)
		return (ntohl(a->in4.sin_addr.s_addr) >> 24) == 127;
	if (a->sa.sa_family == AF_INET6)
		/* ::1, or 127.x.y.z as a dual-stack listener sees it */
		return IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr) ||
		       (IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr) && a->in6.sin6_addr.s6_addr[12] == 127);
	return false;
}
