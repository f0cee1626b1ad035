/*
 * boost_switch - Boost.Context, the reference stackful switch, measured two
 * ways on one thread:
 *   - the raw detail API, jump_fcontext(): main and one context ping-pong,
 *     each jump is one switch (Debian's build saves MXCSR + x87 CW and ends
 *     in jmp, the same instruction mix zio's switch has);
 *   - the public boost::context::fiber, resume() in a loop, which adds the
 *     fiber object's move and ontop bookkeeping.
 * Both report ns per single switch (a round trip is two).
 *
 * usage: boost_switch [round_trips=50000000]
 * prints: RESULT fcontext_switch_ns <ns> ns
 *         RESULT fiber_switch_ns <ns> ns
 */
#include <boost/context/detail/fcontext.hpp>
#include <boost/context/fiber.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <utility>
#include <vector>

namespace ctx = boost::context;
namespace det = boost::context::detail;

static int64_t now_ns()
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void result(const char *metric, double v)
{
	std::printf("RESULT %s %.6g ns\n", metric, v);
	std::fflush(stdout);
}

/* The context side of the jump_fcontext ping-pong: jump back forever. */
static void pong(det::transfer_t t)
{
	for (;;)
		t = det::jump_fcontext(t.fctx, nullptr);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? (long)std::strtod(argv[1], nullptr) : 50000000;

	if (n < 1)
		n = 1;

	/* jump_fcontext: make a context on our own 64 KiB stack. */
	{
		std::vector<char> stack(64 * 1024);
		void *top = stack.data() + stack.size();
		det::fcontext_t f = det::make_fcontext(top, stack.size(), pong);

		f = det::jump_fcontext(f, nullptr).fctx; /* enter once, untimed */
		int64_t t0 = now_ns();
		for (long i = 0; i < n; i++)
			f = det::jump_fcontext(f, nullptr).fctx;
		int64_t t1 = now_ns();
		result("fcontext_switch_ns", (double)(t1 - t0) / (2.0 * n));
		/* The context is abandoned mid-loop: it owns nothing to unwind. */
	}

	/* fiber::resume with the default (fixedsize) stack allocator. */
	{
		ctx::fiber f{[](ctx::fiber &&m) {
			for (;;)
				m = std::move(m).resume();
			return std::move(m);
		}};
		f = std::move(f).resume(); /* enter once, untimed */
		int64_t t0 = now_ns();
		for (long i = 0; i < n; i++)
			f = std::move(f).resume();
		int64_t t1 = now_ns();
		result("fiber_switch_ns", (double)(t1 - t0) / (2.0 * n));
		/* ~fiber() unwinds the loop above with forced_unwind. */
	}
	std::fprintf(stderr, "boost_switch: %ld round trips each\n", n);
	return 0;
}
