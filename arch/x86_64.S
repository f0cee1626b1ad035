/*
 * x86_64 (System V) context switch, out-of-line version.
 *
 * The scheduler switches with zio__ctx_switch_inline() (arch.h), which saves
 * only a resume address and rbp and lets the compiler spill whatever else is
 * live. This function is the same protocol for callers that want an
 * ordinary call (tests, code that is not hot). Both leave the same two words
 * at the saved stack pointer, so either can resume the other's contexts:
 *
 *   sp -> [resume address][rbp] ... whatever the resume code pops itself
 *
 * Here the resume code is .Lresume, which pops the callee-saved registers
 * pushed below it and returns to our caller:
 *
 *   0 .Lresume   8 rbp   16 r15   24 r14   32 r13   40 r12   48 rbx   56 return address
 *
 * A context is entered by popping its resume address and jumping to it: an
 * indirect jump the branch predictor learns per call site, with no call or
 * ret to unbalance the return-stack buffer. MXCSR and the x87 control word
 * are not touched (see arch.h): reading MXCSR alone costs more than this.
 */
	.text

	.globl	zio__ctx_switch
	.hidden	zio__ctx_switch
	.type	zio__ctx_switch, @function
	.p2align 4
zio__ctx_switch:
	.cfi_startproc
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbx, 0
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r12, 0
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r13, 0
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r14, 0
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r15, 0
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	leaq	.Lresume(%rip), %rax
	pushq	%rax
	.cfi_adjust_cfa_offset 8
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp		/* now on the incoming context's stack */
	popq	%rax
	jmp	*%rax
.Lresume:
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	popq	%r14
	.cfi_adjust_cfa_offset -8
	popq	%r13
	.cfi_adjust_cfa_offset -8
	popq	%r12
	.cfi_adjust_cfa_offset -8
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size	zio__ctx_switch, .-zio__ctx_switch

/* Where zio__ctx_frame() learns that a context was saved by the function
 * above, whose caller's return address sits 56 bytes up. */
	.globl	zio__ctx_switch_resume
	.hidden	zio__ctx_switch_resume
	.set	zio__ctx_switch_resume, .Lresume

/*
 * void zio__ctx_make(struct zio__ctx *ctx, void *lo, void *hi,
 *                    void (*entry)(void *), void *arg)
 * Builds [ctx_entry][0 (rbp)][arg][entry] below hi (rounded down to 16).
 */
	.globl	zio__ctx_make
	.hidden	zio__ctx_make
	.type	zio__ctx_make, @function
	.p2align 4
zio__ctx_make:
	.cfi_startproc
	andq	$-16, %rdx
	leaq	-32(%rdx), %rax
	leaq	ctx_entry(%rip), %r9
	movq	%r9, (%rax)
	movq	$0, 8(%rax)		/* rbp: ends frame-pointer walks */
	movq	%r8, 16(%rax)		/* arg */
	movq	%rcx, 24(%rax)		/* entry */
	movq	%rax, (%rdi)
	ret
	.cfi_endproc
	.size	zio__ctx_make, .-zio__ctx_make

/* First code a fiber runs, entered with rsp just above its resume address.
 * rip is undefined here so unwinders stop. After the three pops rsp is hi,
 * 16-aligned, so the call gives entry the ABI's alignment. */
	.type	ctx_entry, @function
	.p2align 4
ctx_entry:
	.cfi_startproc
	.cfi_undefined %rip
	popq	%rbp
	popq	%rdi
	popq	%rax
	call	*%rax
	ud2
	.cfi_endproc
	.size	ctx_entry, .-ctx_entry

	.section .note.GNU-stack,"",@progbits
