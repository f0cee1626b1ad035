/*
 * aarch64 (AAPCS64) context switch.
 *
 * zio__ctx_switch(from, to) stores the callee-saved state of the running
 * context on its own stack, puts sp in from->sp, loads to->sp and pops the
 * other context's state. zio__ctx_make() builds a frame of the same shape
 * whose "return address" is ctx_entry, which calls entry(arg).
 *
 * Saved frame, from the saved stack pointer upwards (176 bytes, so sp stays
 * 16-aligned as the architecture demands of every sp-based access):
 *     0  x29, x30        a normal frame record at the bottom
 *    16  x19 .. x28
 *    96  d8 .. d15       only the low 64 bits are callee-saved (AAPCS64)
 *   160  fpcr, 8 bytes of padding
 *
 * FPCR (rounding mode, flush-to-zero, default-NaN, trap enables) is stored on
 * every switch and written back only when the incoming value differs:
 * "msr fpcr" is a context-synchronising write on many cores, the store and
 * compare are not. FPSR (the sticky exception flags) is caller-saved status
 * and is left alone, as the x86_64 port leaves the MXCSR flags.
 *
 * The switch resumes with "ret", not "br x30". A ret always mispredicts here
 * (the return-stack predictor expects the caller of *this* context's call),
 * and on x86_64 the indirect jump measured twice as fast. On aarch64 the
 * choice is forced the other way by BTI: in a binary built with
 * -mbranch-protection=bti, "br" may only land on a "bti j" landing pad, and
 * the return sites of ordinary calls are not landing pads, so a "br" resume
 * would fault. "ret" is never checked by BTI. With no aarch64 hardware in this
 * project's CI to measure a br variant on, we take the one that is always
 * correct.
 *
 * Branch protection: when the compiler defaults to it (Ubuntu's and Fedora's
 * do), the functions start with "bti c", x30 is signed with paciasp before it
 * is stored and authenticated with autiasp after it is reloaded, and a GNU
 * property note tells the linker this object is BTI/PAC clean. Signing uses
 * sp as the modifier: sp on entry to the switch equals sp after the frame is
 * popped when that same context resumes, so the pair matches. For a fresh
 * context zio__ctx_make signs ctx_entry with the sp it will resume with. All
 * of these are HINT-space instructions, so they are no-ops on CPUs without
 * the features.
 */

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define BTI_C		hint	#34		/* bti c */
#define ZIO_GNU_BTI	1
#else
#define BTI_C
#define ZIO_GNU_BTI	0
#endif

#if defined(__ARM_FEATURE_PAC_DEFAULT) && __ARM_FEATURE_PAC_DEFAULT
/* Always the A key: the compiler's key choice only matters for frames it
 * builds, and our CIE does not declare the B key to unwinders. */
#define PAC_SIGN	hint	#25; .cfi_negate_ra_state	/* paciasp */
#define PAC_AUTH	hint	#29; .cfi_negate_ra_state	/* autiasp */
#define PAC_SIGN1716	hint	#8				/* pacia1716 */
#define ZIO_GNU_PAC	2
#else
#define PAC_SIGN
#define PAC_AUTH
#define PAC_SIGN1716
#define ZIO_GNU_PAC	0
#endif

#define FRAME	176
#define FPCR_AT	160

	.text

/* void zio__ctx_switch(struct zio__ctx *from, struct zio__ctx *to) */
	.globl	zio__ctx_switch
	.hidden	zio__ctx_switch
	.type	zio__ctx_switch, %function
	.p2align 4
zio__ctx_switch:
	.cfi_startproc
	BTI_C
	PAC_SIGN
	stp	x29, x30, [sp, #-FRAME]!
	.cfi_def_cfa_offset FRAME
	.cfi_offset x29, -FRAME
	.cfi_offset x30, -FRAME+8
	stp	x19, x20, [sp, #16]
	.cfi_offset x19, -FRAME+16
	.cfi_offset x20, -FRAME+24
	stp	x21, x22, [sp, #32]
	.cfi_offset x21, -FRAME+32
	.cfi_offset x22, -FRAME+40
	stp	x23, x24, [sp, #48]
	.cfi_offset x23, -FRAME+48
	.cfi_offset x24, -FRAME+56
	stp	x25, x26, [sp, #64]
	.cfi_offset x25, -FRAME+64
	.cfi_offset x26, -FRAME+72
	stp	x27, x28, [sp, #80]
	.cfi_offset x27, -FRAME+80
	.cfi_offset x28, -FRAME+88
	stp	d8, d9, [sp, #96]
	.cfi_offset d8, -FRAME+96
	.cfi_offset d9, -FRAME+104
	stp	d10, d11, [sp, #112]
	.cfi_offset d10, -FRAME+112
	.cfi_offset d11, -FRAME+120
	stp	d12, d13, [sp, #128]
	.cfi_offset d12, -FRAME+128
	.cfi_offset d13, -FRAME+136
	stp	d14, d15, [sp, #144]
	.cfi_offset d14, -FRAME+144
	.cfi_offset d15, -FRAME+152
	mrs	x9, fpcr
	str	x9, [sp, #FPCR_AT]
	mov	x10, sp
	str	x10, [x0]
	ldr	x10, [x1]
	/* Now on the incoming context's stack. Its frame has the same layout,
	 * so the CFI above describes it too. */
	mov	sp, x10
	ldr	x11, [sp, #FPCR_AT]
	cmp	x9, x11
	b.eq	1f
	msr	fpcr, x11
1:
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	ldp	x19, x20, [sp, #16]
	ldp	x21, x22, [sp, #32]
	ldp	x23, x24, [sp, #48]
	ldp	x25, x26, [sp, #64]
	ldp	x27, x28, [sp, #80]
	ldp	x29, x30, [sp], #FRAME
	.cfi_def_cfa_offset 0
	.cfi_restore x29
	.cfi_restore x30
	.cfi_restore x19
	.cfi_restore x20
	.cfi_restore x21
	.cfi_restore x22
	.cfi_restore x23
	.cfi_restore x24
	.cfi_restore x25
	.cfi_restore x26
	.cfi_restore x27
	.cfi_restore x28
	.cfi_restore d8
	.cfi_restore d9
	.cfi_restore d10
	.cfi_restore d11
	.cfi_restore d12
	.cfi_restore d13
	.cfi_restore d14
	.cfi_restore d15
	PAC_AUTH
	ret
	.cfi_endproc
	.size	zio__ctx_switch, .-zio__ctx_switch

/*
 * void zio__ctx_make(struct zio__ctx *ctx, void *lo, void *hi,
 *                    void (*entry)(void *), void *arg)
 * Builds a frame just below hi rounded down to 16 that zio__ctx_switch pops
 * into ctx_entry with entry in x19 and arg in x20, x29 = 0 and FPCR = 0
 * (round to nearest, no traps, IEEE behaviour: the Linux default). After the
 * pop sp is hi rounded down to 16, which is the alignment ctx_entry needs.
 */
	.globl	zio__ctx_make
	.hidden	zio__ctx_make
	.type	zio__ctx_make, %function
	.p2align 4
zio__ctx_make:
	.cfi_startproc
	BTI_C
	and	x2, x2, #~15
	sub	x9, x2, #FRAME
	adr	x17, ctx_entry
	mov	x16, x2			/* the sp autiasp will see on resume */
	PAC_SIGN1716
	stp	xzr, x17, [x9, #0]	/* x29 = 0 ends frame-pointer walks */
	stp	x3, x4, [x9, #16]	/* x19 = entry, x20 = arg */
	stp	xzr, xzr, [x9, #32]
	stp	xzr, xzr, [x9, #48]
	stp	xzr, xzr, [x9, #64]
	stp	xzr, xzr, [x9, #80]
	stp	xzr, xzr, [x9, #96]
	stp	xzr, xzr, [x9, #112]
	stp	xzr, xzr, [x9, #128]
	stp	xzr, xzr, [x9, #144]
	stp	xzr, xzr, [x9, #FPCR_AT]
	str	x9, [x0]
	ret
	.cfi_endproc
	.size	zio__ctx_make, .-zio__ctx_make

/*
 * First code a fiber runs, reached by the ret of zio__ctx_switch (which BTI
 * does not check, so no landing pad). x30 is undefined here, which is how
 * DWARF unwinders learn that the walk ends; x29 = 0 ends frame-record walks.
 * If entry ever returns, brk traps at once instead of running off into
 * whatever follows. sp needs no aligning here: zio__ctx_make already rounded
 * hi down to 16, and a misaligned sp could not even have got this far, since
 * Linux makes sp-relative accesses with a misaligned sp fault (SCTLR.SA0).
 */
	.type	ctx_entry, %function
	.p2align 4
ctx_entry:
	.cfi_startproc
	.cfi_undefined x30
	mov	x29, xzr
	mov	x0, x20
	blr	x19
	brk	#0x3e8
	.cfi_endproc
	.size	ctx_entry, .-ctx_entry

#if ZIO_GNU_BTI || ZIO_GNU_PAC
/* GNU_PROPERTY_AARCH64_FEATURE_1_AND: without it the linker would switch
 * BTI/PAC marking off for the whole binary because of this one object. */
	.pushsection .note.gnu.property, "a"
	.p2align 3
	.long	4			/* name size */
	.long	16			/* descriptor size */
	.long	5			/* NT_GNU_PROPERTY_TYPE_0 */
	.asciz	"GNU"
	.long	0xc0000000		/* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
	.long	4
	.long	ZIO_GNU_BTI | ZIO_GNU_PAC
	.long	0
	.popsection
#endif

	.section .note.GNU-stack,"",%progbits
