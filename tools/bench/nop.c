/*
 * nop.c - a task that does nothing: exit_group(0) from _start, with no C
 * library. spawn.py runs it beside /bin/true: a dynamically linked program
 * spends most of its life in the loader and libc's start-up (on a VM whose
 * CPUID traps to the hypervisor, glibc's cache probing alone costs a few
 * hundred microseconds an exec), which a supervisor's spawn rate cannot
 * change; this one measures what the supervisor itself can answer.
 */

void _start(void) __attribute__((noreturn, used));

void
_start(void)
{
#if defined(__x86_64__)
	__asm__ volatile("mov $231, %%eax\n\t" /* exit_group */
	                 "xor %%edi, %%edi\n\t"
	                 "syscall" ::
	                         : "rax", "rdi", "rcx", "r11", "memory");
#elif defined(__aarch64__)
	__asm__ volatile("mov x8, #94\n\t" /* exit_group */
	                 "mov x0, #0\n\t"
	                 "svc #0" ::
	                         : "x0", "x8", "memory");
#else
#error "nop.c: no exit_group for this architecture"
#endif
	__builtin_unreachable();
}
