/*
 * x86_64 (System V) context switch.
 *
 * Saved frame, from the saved stack pointer upwards:
 *   0  r15, r14, r13, r12, rbx, rbp
 *  48  return address
 *
 * The switch ends with pop + indirect jmp rather than ret: a ret here would
 * always mispredict, because the return-stack buffer expects to return into
 * the caller of *this* context, and measured on this machine that doubles the
 * cost. MXCSR and the x87 control word are not touched here (see arch.h:
 * reading MXCSR alone costs more than this whole routine); the scheduler
 * keeps them for the tasks that asked for their own FP environment.
 */
	.text

	.globl	zio__ctx_switch
	.hidden	zio__ctx_switch
	.type	zio__ctx_switch, @function
	.p2align 4
zio__ctx_switch:
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
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
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp		/* now on the incoming context's stack */
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
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	popq	%rcx
	.cfi_adjust_cfa_offset -8
	.cfi_register %rip, %rcx
	jmp	*%rcx
	.cfi_endproc
	.size	zio__ctx_switch, .-zio__ctx_switch

/*
 * void zio__ctx_make(struct zio__ctx *ctx, void *lo, void *hi,
 *                    void (*entry)(void *), void *arg)
 * Builds a frame that zio__ctx_switch "returns" from into ctx_entry, with
 * entry in r12 and arg in r13. After the frame is popped rsp is hi rounded
 * down to 16, so the call in ctx_entry gives entry the ABI's alignment.
 */
	.globl	zio__ctx_make
	.hidden	zio__ctx_make
	.type	zio__ctx_make, @function
	.p2align 4
zio__ctx_make:
	.cfi_startproc
	andq	$-16, %rdx
	leaq	-56(%rdx), %rax
	movq	$0, (%rax)		/* r15 */
	movq	$0, 8(%rax)		/* r14 */
	movq	%r8, 16(%rax)		/* r13 = arg */
	movq	%rcx, 24(%rax)		/* r12 = entry */
	movq	$0, 32(%rax)		/* rbx */
	movq	$0, 40(%rax)		/* rbp */
	leaq	ctx_entry(%rip), %rcx
	movq	%rcx, 48(%rax)
	movq	%rax, (%rdi)
	ret
	.cfi_endproc
	.size	zio__ctx_make, .-zio__ctx_make

/* First code a fiber runs. rip is undefined here so unwinders stop. */
	.type	ctx_entry, @function
	.p2align 4
ctx_entry:
	.cfi_startproc
	.cfi_undefined %rip
	xorl	%ebp, %ebp
	movq	%r13, %rdi
	call	*%r12
	ud2
	.cfi_endproc
	.size	ctx_entry, .-ctx_entry

	.section .note.GNU-stack,"",@progbits
