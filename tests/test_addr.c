/*
 * test_addr.c - address parsing and formatting: the accepted forms, their
 * round trips, what is rejected, and a fuzz of the parser (random bytes and
 * mutations of valid addresses must give 0 or -EINVAL, and whatever parses
 * must format and parse back to the same address).
 */
/* ZIO_TEST_LABELS: io */
#include "helpers.h"

#include <stddef.h>

#include <arpa/inet.h>
#include <string.h>

static void round_trip(const char *in, const char *want)
{
	zio_addr a, b;
	int r = zio_addr_parse(&a, in);
	cr_assert_eq(r, 0, "parse \"%s\": %d", in, r);
	char txt[ZIO_ADDR_STRLEN];
	int n = zio_addr_format(&a, txt, sizeof(txt));
	cr_assert_gt(n, 0);
	cr_assert_str_eq(txt, want, "format of \"%s\"", in);
	cr_assert_eq(zio_addr_parse(&b, txt), 0);
	cr_assert_eq(a.len, b.len);
	cr_assert_eq(memcmp(&a.ss, &b.ss, a.len), 0);
}

Test(addr, valid_forms, .timeout = 10)
{
	round_trip("127.0.0.1:8080", "127.0.0.1:8080");
	round_trip("0.0.0.0:0", "0.0.0.0:0");
	round_trip("255.255.255.255:65535", "255.255.255.255:65535");
	round_trip("10.1.2.3", "10.1.2.3:0");
	round_trip("[::1]:443", "[::1]:443");
	round_trip("::1", "[::1]:0");
	round_trip("[::]:1", "[::]:1");
	round_trip("[2001:db8::1]:53", "[2001:db8::1]:53");
	round_trip("[::ffff:1.2.3.4]:7", "[::ffff:1.2.3.4]:7");
	round_trip("[fe80::1%1]:9", "[fe80::1%lo]:9");
	round_trip("[fe80::1%lo]:9", "[fe80::1%lo]:9");
	round_trip("unix:/tmp/x.sock", "unix:/tmp/x.sock");
	round_trip("/tmp/y", "unix:/tmp/y");
	round_trip("unix:@abstract", "unix:@abstract");
	round_trip("@abs", "unix:@abs");
	/* Unix names are bytes: escapes for NULs, control bytes, backslash. */
	round_trip("unix:", "unix:"); /* unnamed */
	round_trip("@", "unix:@");   /* the empty abstract name */
	round_trip("unix:@", "unix:@");
	round_trip("unix:@a\\x00b", "unix:@a\\x00b");
	round_trip("@tab\\x09\\x7F", "unix:@tab\\x09\\x7f");
	round_trip("unix:/tmp/back\\\\slash", "unix:/tmp/back\\\\slash");
	round_trip("/tmp/nl\\x0a", "unix:/tmp/nl\\x0a");
	round_trip("unix:/tmp/caf\xc3\xa9", "unix:/tmp/caf\xc3\xa9"); /* UTF-8 as is */

	zio_addr a;
	cr_assert_eq(zio_addr_parse(&a, "[fe80::1%1]:9"), 0);
	cr_assert_eq(a.in6.sin6_scope_id, 1u);
	cr_assert_eq(zio_addr_port(&a), 9);
	cr_assert_eq(zio_addr_set_port(&a, 10), 0);
	cr_assert_eq(zio_addr_port(&a), 10);
	cr_assert_eq(zio_addr_ip(&a, "127.0.0.2", 99), 0);
	cr_assert(zio_addr_is_loopback(&a));
	cr_assert_eq(zio_addr_port(&a), 99);
	cr_assert_eq(zio_addr_ip(&a, "::1", 5), 0);
	cr_assert(zio_addr_is_loopback(&a));
	cr_assert_eq(zio_addr_unix(&a, "/p"), 0);
	cr_assert_eq(zio_addr_port(&a), -EINVAL);
	cr_assert_eq(zio_addr_set_port(&a, 1), -EINVAL);
	cr_assert(!zio_addr_is_loopback(&a));

	cr_assert_eq(zio_addr_ip(&a, "::ffff:127.0.0.1", 5), 0);
	cr_assert(zio_addr_is_loopback(&a), "v4-mapped loopback, as a dual-stack listener sees it");
	cr_assert_eq(zio_addr_ip(&a, "::ffff:10.0.0.1", 5), 0);
	cr_assert(!zio_addr_is_loopback(&a));

	/* Buffer too small. */
	cr_assert_eq(zio_addr_parse(&a, "1.2.3.4:5"), 0);
	char small[5];
	cr_assert_eq(zio_addr_format(&a, small, sizeof(small)), -ENOSPC);

	/* From a kernel sockaddr. */
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(7) };
	cr_assert_eq(zio_addr_from_sockaddr(&a, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(zio_addr_port(&a), 7);
	cr_assert_eq(zio_addr_from_sockaddr(&a, (struct sockaddr *)&sin, 4), -EINVAL);
	sin.sin_family = AF_APPLETALK;
	cr_assert_eq(zio_addr_from_sockaddr(&a, (struct sockaddr *)&sin, sizeof(sin)), -EINVAL);

	/* Unix addresses as the kernel gives them back, through text. */
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const socklen_t off = offsetof(struct sockaddr_un, sun_path);
	char txt[ZIO_ADDR_STRLEN];
	zio_addr b;
	/* unnamed: a socketpair's end, an unbound client */
	cr_assert_eq(zio_addr_from_sockaddr(&a, (struct sockaddr *)&sun, off), 0);
	cr_assert_eq(zio_addr_format(&a, txt, sizeof(txt)), 5);
	cr_assert_str_eq(txt, "unix:");
	cr_assert_eq(zio_addr_parse(&b, txt), 0);
	cr_assert_eq(b.len, a.len);
	/* abstract, with NULs inside and after (bound with the whole sun_path) */
	memcpy(sun.sun_path, "\0a\0b", 4);
	cr_assert_eq(zio_addr_from_sockaddr(&a, (struct sockaddr *)&sun, off + 4), 0);
	zio_addr_format(&a, txt, sizeof(txt));
	cr_assert_str_eq(txt, "unix:@a\\x00b");
	cr_assert_eq(zio_addr_parse(&b, txt), 0);
	cr_assert_eq(b.len, a.len);
	cr_assert_eq(memcmp(&a.ss, &b.ss, a.len), 0);
	/* the longest abstract text: 107 NULs (435 bytes, within ZIO_ADDR_STRLEN) */
	memset(sun.sun_path, 0, sizeof(sun.sun_path));
	cr_assert_eq(zio_addr_from_sockaddr(&a, (struct sockaddr *)&sun, sizeof(sun)), 0);
	int n = zio_addr_format(&a, txt, sizeof(txt));
	cr_assert_eq(n, 6 + 107 * 4);
	cr_assert_eq(zio_addr_parse(&b, txt), 0);
	cr_assert_eq(memcmp(&a.ss, &b.ss, a.len), 0);
	cr_assert_eq(zio_addr_format(&a, txt, (size_t)n), -ENOSPC);
}

/* A path whose name starts with '@' (a relative path: bind("@sock"))
 * formats so that it parses back as that path, not as an abstract name
 * ("unix:@sock" did). */
Test(addr, path_starting_with_at_round_trips, .timeout = 10)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	memcpy(un.sun_path, "@sock", 6);
	zio_addr a, back;
	cr_assert_eq(zio_addr_from_sockaddr(&a, (struct sockaddr *)&un,
					    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 6)), 0);
	char text[ZIO_ADDR_STRLEN];
	cr_assert_gt(zio_addr_format(&a, text, sizeof(text)), 0);
	cr_assert_eq(zio_addr_parse(&back, text), 0, "%s", text);
	cr_assert_neq(back.un.sun_path[0], 0, "%s parsed back as an abstract name", text);
	cr_assert_str_eq(back.un.sun_path, "@sock");
}

Test(addr, invalid_forms, .timeout = 10)
{
	static const char *bad[] = {
		"", ":", ":80", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:8o",
		"1.2.3.4:123456", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ",
		" 1.2.3.4", "[::1", "[::1]x", "[::1]:", "[::1]:99999", "::1:80:", "[1.2.3.4]:80",
		"[]:80", "[fe80::1%]:1", "[fe80::1%nosuchif0]:1", "[fe80::1%99999999999]:1",
		"localhost:80", "unix:@a\\", "unix:@\\x4", "unix:@\\xg0",
		"/a\\q", "unix:/a\\x00b", "unix:/\\x00", "[::1]]:80", "1.2.3.4:80:80", "[:::1]:1",
		"abc", "[::1%lo%lo]:1",
		/* an alias label is no interface name: "lo:80" would take the
		 * port of an address written without brackets */
		"fe80::1%lo:8080", "[fe80::1%lo:junk]:9", "[fe80::1%lo ]:9",
	};
	zio_addr a;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = zio_addr_parse(&a, bad[i]);
		cr_assert_eq(r, -EINVAL, "\"%s\" parsed (%d)", bad[i], r);
	}
	char longpath[200];
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[199] = 0;
	cr_assert_eq(zio_addr_parse(&a, longpath), -EINVAL);
	cr_assert_eq(zio_addr_unix(&a, longpath), -EINVAL);
	longpath[107] = 0; /* 107 bytes + NUL = sun_path exactly */
	cr_assert_eq(zio_addr_unix(&a, longpath), 0);
	cr_assert_eq(zio_addr_parse(NULL, "1.2.3.4"), -EINVAL);
	cr_assert_eq(zio_addr_parse(&a, NULL), -EINVAL);
	cr_assert_eq(zio_addr_ip(&a, "fe80::1%lo:1", 9), -EINVAL);
	cr_assert_eq(zio_addr_ip(&a, "fe80::1%lo", 9), 0);
}

/* A path that fills sun_path has no NUL in it: the kernel reports it one
 * byte longer than struct sockaddr_un (with the NUL it adds), and that is
 * the address of the socket, not an error. */
Test(addr, full_sun_path_from_the_kernel, .timeout = 10)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char reported[sizeof(un) + 1];
	memset(un.sun_path, 'p', sizeof(un.sun_path));
	un.sun_path[0] = '/';
	memcpy(reported, &un, sizeof(un));
	reported[sizeof(un)] = 0;
	zio_addr a;
	cr_assert_eq(zio_addr_from_sockaddr(&a, (struct sockaddr *)reported, sizeof(reported)), 0);
	cr_assert_eq(a.len, sizeof(un));
	cr_assert_eq(memcmp(a.un.sun_path, un.sun_path, sizeof(un.sun_path)), 0);
	cr_assert_eq(zio_addr_from_sockaddr(&a, (struct sockaddr *)reported, sizeof(reported) + 1),
		     -EINVAL);
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fuzz_one(const char *s)
{
	zio_addr a, b;
	memset(&a, 0xAA, sizeof(a));
	int r = zio_addr_parse(&a, s);
	cr_assert(r == 0 || r == -EINVAL, "parse returned %d", r);
	if (r)
		return;
	char txt[ZIO_ADDR_STRLEN];
	int n = zio_addr_format(&a, txt, sizeof(txt));
	cr_assert_gt(n, 0, "format after parse of \"%s\"", s);
	cr_assert_eq(zio_addr_parse(&b, txt), 0, "reparse of \"%s\" (from \"%s\")", txt, s);
	cr_assert_eq(a.len, b.len);
	cr_assert_eq(memcmp(&a.ss, &b.ss, a.len), 0, "\"%s\" vs \"%s\"", s, txt);
}

Test(addr, fuzz, .timeout = 60)
{
	static const char alphabet[] = "0123456789abcdef:.[]%@/unix lo-\\";
	static const char *seeds[] = {
		"127.0.0.1:80", "[::1]:443", "[fe80::1%1]:9", "unix:/a/b", "@x", "10.0.0.1",
		"[2001:db8:0:0:1:0:0:1]:65535", "::ffff:1.2.3.4", "unix:@a\\x00b\\\\", "unix:",
	};
	char buf[96];
	for (int i = 0; i < 200000; i++) {
		size_t len;
		if (i % 2) {
			/* random text from the address alphabet (and any byte) */
			len = next() % 40;
			for (size_t k = 0; k < len; k++) {
				uint64_t v = next();
				buf[k] = (v & 0xf00) ? alphabet[v % (sizeof(alphabet) - 1)]
						     : (char)(1 + v % 255);
			}
		} else {
			/* a mutated seed: flip, insert, delete, truncate */
			const char *s = seeds[next() % (sizeof(seeds) / sizeof(seeds[0]))];
			len = strlen(s);
			memcpy(buf, s, len);
			int muts = 1 + (int)(next() % 3);
			for (int m = 0; m < muts && len > 0; m++) {
				size_t at = next() % len;
				switch (next() % 4) {
				case 0:
					buf[at] = alphabet[next() % (sizeof(alphabet) - 1)];
					break;
				case 1:
					if (len < sizeof(buf) - 2) {
						memmove(buf + at + 1, buf + at, len - at);
						buf[at] = alphabet[next() % (sizeof(alphabet) - 1)];
						len++;
					}
					break;
				case 2:
					memmove(buf + at, buf + at + 1, len - at - 1);
					len--;
					break;
				default:
					len = at;
				}
			}
		}
		buf[len] = 0;
		fuzz_one(buf);
	}
	/* Very long input. */
	static char huge[10000];
	memset(huge, '1', sizeof(huge) - 1);
	fuzz_one(huge);
}
