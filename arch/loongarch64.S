/*
 * loongarch64 (LP64D) context switch.
 *
 * zio__ctx_switch(from, to) stores the callee-saved state of the running
 * context on its own stack, puts sp in from->sp, loads to->sp and pops the
 * other context's state. zio__ctx_make() builds a frame of the same shape
 * whose "return address" is ctx_entry, which calls entry(arg).
 *
 * Saved frame, from the saved stack pointer upwards (160 bytes, keeping sp
 * 16-aligned as the psABI requires):
 *     0  ra
 *     8  fp ($r22)
 *    16  s0 .. s8 ($r23 .. $r31)
 *    88  fs0 .. fs7 ($f24 .. $f31)  only the low 64 bits are callee-saved;
 *                                  the LSX/LASX upper halves are not
 *   152  fcsr0
 *
 * fcsr0 holds the exception enables (bits 4:0), the rounding mode (9:8) and
 * the flag and cause status fields. It is stored on every switch and written
 * back only when the incoming context's enables or rounding mode differ from
 * the outgoing one's, as the x86_64 port does with MXCSR: the status fields
 * alone are not worth a CSR write.
 *
 * The switch resumes with "jr $ra" (the return idiom). LoongArch has no
 * landing-pad CFI, but there is also no hardware here to show that an
 * indirect jump through another register predicts better, so we keep the
 * conventional form.
 *
 * CFI uses DWARF register numbers (ra = 1, fp = 22, s0-s8 = 23-31,
 * fs0-fs7 = 56-63) because assemblers differ in which names they accept.
 * The FP part is left out for a soft-float build (__loongarch_frlen == 0),
 * whose CPU may have no FPU at all.
 */

#if !defined(__loongarch_frlen) || __loongarch_frlen >= 64
#define HAVE_FP	1
#else
#define HAVE_FP	0
#endif
#define FRAME	160
#define FCSR_AT	152

	.text

/* void zio__ctx_switch(struct zio__ctx *from, struct zio__ctx *to) */
	.globl	zio__ctx_switch
	.hidden	zio__ctx_switch
	.type	zio__ctx_switch, @function
	.p2align 4
zio__ctx_switch:
	.cfi_startproc
	addi.d	$sp, $sp, -FRAME
	.cfi_def_cfa_offset FRAME
	st.d	$ra, $sp, 0
	.cfi_offset 1, -FRAME
	st.d	$fp, $sp, 8
	.cfi_offset 22, -FRAME+8
	st.d	$s0, $sp, 16
	.cfi_offset 23, -FRAME+16
	st.d	$s1, $sp, 24
	.cfi_offset 24, -FRAME+24
	st.d	$s2, $sp, 32
	.cfi_offset 25, -FRAME+32
	st.d	$s3, $sp, 40
	.cfi_offset 26, -FRAME+40
	st.d	$s4, $sp, 48
	.cfi_offset 27, -FRAME+48
	st.d	$s5, $sp, 56
	.cfi_offset 28, -FRAME+56
	st.d	$s6, $sp, 64
	.cfi_offset 29, -FRAME+64
	st.d	$s7, $sp, 72
	.cfi_offset 30, -FRAME+72
	st.d	$s8, $sp, 80
	.cfi_offset 31, -FRAME+80
#if HAVE_FP
	fst.d	$fs0, $sp, 88
	.cfi_offset 56, -FRAME+88
	fst.d	$fs1, $sp, 96
	.cfi_offset 57, -FRAME+96
	fst.d	$fs2, $sp, 104
	.cfi_offset 58, -FRAME+104
	fst.d	$fs3, $sp, 112
	.cfi_offset 59, -FRAME+112
	fst.d	$fs4, $sp, 120
	.cfi_offset 60, -FRAME+120
	fst.d	$fs5, $sp, 128
	.cfi_offset 61, -FRAME+128
	fst.d	$fs6, $sp, 136
	.cfi_offset 62, -FRAME+136
	fst.d	$fs7, $sp, 144
	.cfi_offset 63, -FRAME+144
	movfcsr2gr	$t0, $fcsr0
	st.d	$t0, $sp, FCSR_AT
#endif
	st.d	$sp, $a0, 0
	ld.d	$sp, $a1, 0
	/* Now on the incoming context's stack. Its frame has the same layout,
	 * so the CFI above describes it too. */
#if HAVE_FP
	ld.d	$t1, $sp, FCSR_AT
	xor	$t2, $t0, $t1
	andi	$t2, $t2, 0x31f		/* enables and rounding mode only */
	beqz	$t2, 1f
	movgr2fcsr	$fcsr0, $t1
1:
	fld.d	$fs0, $sp, 88
	fld.d	$fs1, $sp, 96
	fld.d	$fs2, $sp, 104
	fld.d	$fs3, $sp, 112
	fld.d	$fs4, $sp, 120
	fld.d	$fs5, $sp, 128
	fld.d	$fs6, $sp, 136
	fld.d	$fs7, $sp, 144
#endif
	ld.d	$fp, $sp, 8
	ld.d	$s0, $sp, 16
	ld.d	$s1, $sp, 24
	ld.d	$s2, $sp, 32
	ld.d	$s3, $sp, 40
	ld.d	$s4, $sp, 48
	ld.d	$s5, $sp, 56
	ld.d	$s6, $sp, 64
	ld.d	$s7, $sp, 72
	ld.d	$s8, $sp, 80
	ld.d	$ra, $sp, 0
	addi.d	$sp, $sp, FRAME
	.cfi_def_cfa_offset 0
	jr	$ra
	.cfi_endproc
	.size	zio__ctx_switch, .-zio__ctx_switch

/*
 * void zio__ctx_make(struct zio__ctx *ctx, void *lo, void *hi,
 *                    void (*entry)(void *), void *arg)
 * Builds a frame just below hi rounded down to 16 that zio__ctx_switch pops
 * into ctx_entry with entry in s0, arg in s1, fp = 0 and fcsr0 = 0 (round to
 * nearest even, no traps: the Linux default).
 */
	.globl	zio__ctx_make
	.hidden	zio__ctx_make
	.type	zio__ctx_make, @function
	.p2align 4
zio__ctx_make:
	.cfi_startproc
	bstrins.d	$a2, $zero, 3, 0	/* hi &= ~15 */
	addi.d	$t0, $a2, -FRAME
	la.local	$t1, ctx_entry
	st.d	$t1, $t0, 0		/* ra */
	st.d	$zero, $t0, 8		/* fp = 0 */
	st.d	$a3, $t0, 16		/* s0 = entry */
	st.d	$a4, $t0, 24		/* s1 = arg */
	/* Zero s2..s8, fs0..fs7 and fcsr0: no stale values leak into the new
	 * fiber and its first frame is deterministic. */
	addi.d	$t1, $t0, 32
2:
	st.d	$zero, $t1, 0
	addi.d	$t1, $t1, 8
	bltu	$t1, $a2, 2b
	st.d	$t0, $a0, 0
	jr	$ra
	.cfi_endproc
	.size	zio__ctx_make, .-zio__ctx_make

/*
 * First code a fiber runs. ra is undefined here, which is how DWARF
 * unwinders learn that the walk ends; fp = 0 ends frame-pointer walks.
 * If entry ever returns, break traps at once.
 */
	.type	ctx_entry, @function
	.p2align 4
ctx_entry:
	.cfi_startproc
	.cfi_undefined 1
	move	$fp, $zero
	move	$a0, $s1
	jirl	$ra, $s0, 0
	break	0
	.cfi_endproc
	.size	ctx_entry, .-ctx_entry

	.section .note.GNU-stack,"",@progbits
