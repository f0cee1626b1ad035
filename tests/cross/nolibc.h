/*
 * nolibc.h - just enough of a C runtime for arch_smoke.c on a target whose
 * libc is not installable here (loongarch64: Debian 12 has a compiler and
 * qemu-user for it but no cross libc). Static, -nostdlib, raw Linux system
 * calls: _start, write, exit_group, mmap, munmap, mprotect, and the memset/
 * memcpy that compilers may emit calls to even in freestanding code.
 *
 * Only loongarch64 is implemented; the other targets use their real libc.
 */
#ifndef ZIO_NOLIBC_H
#define ZIO_NOLIBC_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__loongarch64)
#error "nolibc.h: only loongarch64 is implemented"
#endif

/* asm-generic syscall numbers, which LoongArch uses. */
#define NL_SYS_write 64
#define NL_SYS_exit_group 94
#define NL_SYS_munmap 215
#define NL_SYS_mmap 222
#define NL_SYS_mprotect 226

#define PROT_NONE 0
#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_PRIVATE 0x02
#define MAP_ANONYMOUS 0x20
#define MAP_FAILED ((void *)-1)

static long nl_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
	register long a7 __asm__("$a7") = n;
	register long a0 __asm__("$a0") = a;
	register long a1 __asm__("$a1") = b;
	register long a2 __asm__("$a2") = c;
	register long a3 __asm__("$a3") = d;
	register long a4 __asm__("$a4") = e;
	register long a5 __asm__("$a5") = f;

	/* The kernel may clobber the temporaries t0-t8. */
	__asm__ volatile("syscall 0"
			 : "+r"(a0)
			 : "r"(a7), "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5)
			 : "memory", "$t0", "$t1", "$t2", "$t3", "$t4", "$t5", "$t6", "$t7",
			   "$t8");
	return a0;
}

static inline long write(int fd, const void *buf, size_t n)
{
	return nl_syscall6(NL_SYS_write, fd, (long)buf, (long)n, 0, 0, 0);
}

static inline void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	long r = nl_syscall6(NL_SYS_mmap, (long)addr, (long)len, prot, flags, fd, off);
	return (r < 0 && r > -4096) ? MAP_FAILED : (void *)r;
}

static inline int munmap(void *addr, size_t len)
{
	return (int)nl_syscall6(NL_SYS_munmap, (long)addr, (long)len, 0, 0, 0, 0);
}

static inline int mprotect(void *addr, size_t len, int prot)
{
	return (int)nl_syscall6(NL_SYS_mprotect, (long)addr, (long)len, prot, 0, 0, 0);
}

static inline __attribute__((noreturn)) void nl_exit(int code)
{
	for (;;)
		nl_syscall6(NL_SYS_exit_group, code, 0, 0, 0, 0, 0);
}

/* Byte loops through volatile pointers, so the compiler cannot turn them
 * back into calls to themselves. */
__attribute__((used)) void *memset(void *d, int c, size_t n);
__attribute__((used)) void *memset(void *d, int c, size_t n)
{
	volatile unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

__attribute__((used)) void *memcpy(void *d, const void *s, size_t n);
__attribute__((used)) void *memcpy(void *d, const void *s, size_t n)
{
	volatile unsigned char *p = d;
	const volatile unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int main(void);

/* The kernel starts us with sp 16-aligned and argc at 0(sp); main needs
 * neither argc nor argv. fp = 0 ends frame walks. */
__asm__(".text\n"
	".globl _start\n"
	".type _start, @function\n"
	"_start:\n"
	"	move $fp, $zero\n"
	"	bstrins.d $sp, $zero, 3, 0\n"
	"	bl main\n"
	"	addi.d $a7, $zero, 94\n"
	"	syscall 0\n"
	".size _start, .-_start\n");

#endif
