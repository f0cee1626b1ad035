/*
 * riscv64 (LP64 / LP64D psABI) context switch.
 *
 * zio__ctx_switch(from, to) stores the callee-saved state of the running
 * context on its own stack, puts sp in from->sp, loads to->sp and pops the
 * other context's state. zio__ctx_make() builds a frame of the same shape
 * whose "return address" is ctx_entry, which calls entry(arg).
 *
 * Saved frame, from the saved stack pointer upwards (16-aligned, as the
 * psABI requires of sp):
 *     0  ra
 *     8  s0 .. s11        (s0 is the frame pointer)
 *   104  fs0 .. fs11      } only when the CPU has the D extension
 *   200  fcsr             } (__riscv_flen >= 64)
 *   208  (112 without D)
 *
 * fcsr holds the dynamic rounding mode (frm, bits 7:5) and the accrued
 * exception flags (fflags, bits 4:0). It is stored on every switch and
 * written back only when the incoming context's frm differs from the
 * outgoing one's, as the x86_64 port does with MXCSR: the flags are status,
 * not control, and a difference in them alone is not worth a CSR write.
 * fs0-fs11 are saved whenever the hardware has them, even under the soft-float
 * LP64 ABI, where they are simply unused.
 *
 * The switch resumes with "ret", not an indirect "jr" through another
 * register. A jr through t1 would avoid the return-address-stack pop (which
 * mispredicts, since the RAS predicts the caller of *this* context), but the
 * Zicfilp control-flow-integrity extension requires every target of such a
 * jump to start with a landing pad, and ordinary return sites do not, while
 * a return through ra is exempt. We take the form that stays correct under
 * CFI; there is no RISC-V hardware here to measure the other.
 */

#if defined(__riscv_flen) && __riscv_flen >= 64
#define HAVE_FP	1
#define FRAME	208
#else
#define HAVE_FP	0
#define FRAME	112
#endif
#define FCSR_AT	200

	.text

/* void zio__ctx_switch(struct zio__ctx *from, struct zio__ctx *to) */
	.globl	zio__ctx_switch
	.hidden	zio__ctx_switch
	.type	zio__ctx_switch, @function
	.p2align 2
zio__ctx_switch:
	.cfi_startproc
	addi	sp, sp, -FRAME
	.cfi_def_cfa_offset FRAME
	sd	ra, 0(sp)
	.cfi_offset ra, -FRAME
	sd	s0, 8(sp)
	.cfi_offset s0, -FRAME+8
	sd	s1, 16(sp)
	.cfi_offset s1, -FRAME+16
	sd	s2, 24(sp)
	.cfi_offset s2, -FRAME+24
	sd	s3, 32(sp)
	.cfi_offset s3, -FRAME+32
	sd	s4, 40(sp)
	.cfi_offset s4, -FRAME+40
	sd	s5, 48(sp)
	.cfi_offset s5, -FRAME+48
	sd	s6, 56(sp)
	.cfi_offset s6, -FRAME+56
	sd	s7, 64(sp)
	.cfi_offset s7, -FRAME+64
	sd	s8, 72(sp)
	.cfi_offset s8, -FRAME+72
	sd	s9, 80(sp)
	.cfi_offset s9, -FRAME+80
	sd	s10, 88(sp)
	.cfi_offset s10, -FRAME+88
	sd	s11, 96(sp)
	.cfi_offset s11, -FRAME+96
#if HAVE_FP
	fsd	fs0, 104(sp)
	.cfi_offset fs0, -FRAME+104
	fsd	fs1, 112(sp)
	.cfi_offset fs1, -FRAME+112
	fsd	fs2, 120(sp)
	.cfi_offset fs2, -FRAME+120
	fsd	fs3, 128(sp)
	.cfi_offset fs3, -FRAME+128
	fsd	fs4, 136(sp)
	.cfi_offset fs4, -FRAME+136
	fsd	fs5, 144(sp)
	.cfi_offset fs5, -FRAME+144
	fsd	fs6, 152(sp)
	.cfi_offset fs6, -FRAME+152
	fsd	fs7, 160(sp)
	.cfi_offset fs7, -FRAME+160
	fsd	fs8, 168(sp)
	.cfi_offset fs8, -FRAME+168
	fsd	fs9, 176(sp)
	.cfi_offset fs9, -FRAME+176
	fsd	fs10, 184(sp)
	.cfi_offset fs10, -FRAME+184
	fsd	fs11, 192(sp)
	.cfi_offset fs11, -FRAME+192
	frcsr	t0
	sd	t0, FCSR_AT(sp)
#endif
	sd	sp, 0(a0)
	ld	sp, 0(a1)
	/* Now on the incoming context's stack. Its frame has the same layout,
	 * so the CFI above describes it too. */
#if HAVE_FP
	ld	t1, FCSR_AT(sp)
	xor	t2, t0, t1
	andi	t2, t2, 0xe0		/* frm only */
	beqz	t2, 1f
	fscsr	t1
1:
	fld	fs0, 104(sp)
	fld	fs1, 112(sp)
	fld	fs2, 120(sp)
	fld	fs3, 128(sp)
	fld	fs4, 136(sp)
	fld	fs5, 144(sp)
	fld	fs6, 152(sp)
	fld	fs7, 160(sp)
	fld	fs8, 168(sp)
	fld	fs9, 176(sp)
	fld	fs10, 184(sp)
	fld	fs11, 192(sp)
#endif
	ld	s0, 8(sp)
	ld	s1, 16(sp)
	ld	s2, 24(sp)
	ld	s3, 32(sp)
	ld	s4, 40(sp)
	ld	s5, 48(sp)
	ld	s6, 56(sp)
	ld	s7, 64(sp)
	ld	s8, 72(sp)
	ld	s9, 80(sp)
	ld	s10, 88(sp)
	ld	s11, 96(sp)
	ld	ra, 0(sp)
	addi	sp, sp, FRAME
	.cfi_def_cfa_offset 0
	ret
	.cfi_endproc
	.size	zio__ctx_switch, .-zio__ctx_switch

/*
 * void zio__ctx_make(struct zio__ctx *ctx, void *lo, void *hi,
 *                    void (*entry)(void *), void *arg)
 * Builds a frame just below hi rounded down to 16 that zio__ctx_switch pops
 * into ctx_entry with entry in s1, arg in s2, s0 (fp) = 0 and fcsr = 0
 * (round to nearest even, no flags: the Linux default).
 */
	.globl	zio__ctx_make
	.hidden	zio__ctx_make
	.type	zio__ctx_make, @function
	.p2align 2
zio__ctx_make:
	.cfi_startproc
	andi	a2, a2, -16
	addi	t0, a2, -FRAME
	lla	t1, ctx_entry
	sd	t1, 0(t0)		/* ra */
	sd	zero, 8(t0)		/* s0 = fp = 0 */
	sd	a3, 16(t0)		/* s1 = entry */
	sd	a4, 24(t0)		/* s2 = arg */
	/* Zero s3..s11 and, with D, fs0..fs11 and fcsr: no stale values leak
	 * into the new fiber and its first frame is deterministic. */
	addi	t1, t0, 32
	addi	t2, t0, FRAME
2:
	sd	zero, 0(t1)
	addi	t1, t1, 8
	bltu	t1, t2, 2b
	sd	t0, 0(a0)
	ret
	.cfi_endproc
	.size	zio__ctx_make, .-zio__ctx_make

/*
 * First code a fiber runs. ra is undefined here, which is how DWARF
 * unwinders learn that the walk ends; s0 = 0 ends frame-pointer walks.
 * If entry ever returns, ebreak traps at once.
 */
	.type	ctx_entry, @function
	.p2align 2
ctx_entry:
	.cfi_startproc
	.cfi_undefined ra
	li	s0, 0
	mv	a0, s2
	jalr	s1
	ebreak
	.cfi_endproc
	.size	ctx_entry, .-ctx_entry

	.section .note.GNU-stack,"",@progbits
