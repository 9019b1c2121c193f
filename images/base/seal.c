/* ava-seal: the entrypoint of every AVA runtime image (`ava-seal COMMAND [ARG...]`).
 *
 * It installs one more seccomp filter and then execs COMMAND (the image's CMD, the shim).
 * Filters stack: the engine's default profile still applies, and this one is added on top for
 * the job's whole process tree, since a filter is inherited across fork and exec and can never
 * be removed. The engine's default allows ptrace on kernels >= 4.8, so without this a job could
 * trace (read and write the memory of) a process of its own, the shim included.
 *
 * Denied with EPERM: ptrace, process_vm_readv, process_vm_writev; every syscall made through a
 * non-native ABI (32-bit, and x32 on x86_64), so those numbers cannot be a side door around the
 * list. Anything going wrong here exits 126 before COMMAND runs: a job never runs unfiltered. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define SEAL_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SEAL_ARCH AUDIT_ARCH_AARCH64
#else
#error "ava-seal knows the syscall ABI of x86_64 and aarch64 only"
#endif

#define DENY BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
/* if nr == N: deny, else fall through to the next rule */
#define DENY_NR(n) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 1), DENY

static struct sock_filter rules[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SEAL_ARCH, 1, 0),
    DENY,
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
    /* x32 calls share AUDIT_ARCH_X86_64 and differ only by this bit in nr */
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1),
    DENY,
#endif
    DENY_NR(__NR_ptrace),
    DENY_NR(__NR_process_vm_readv),
    DENY_NR(__NR_process_vm_writev),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

static int fail(const char *what) {
    fprintf(stderr, "ava-seal: %s failed (%s); the job is not run without its seccomp filter\n",
            what, strerror(errno));
    return 126;
}

int main(int argc, char **argv) {
    struct sock_fprog prog = {.len = sizeof rules / sizeof rules[0], .filter = rules};
    if (argc < 2) {
        fprintf(stderr, "ava-seal: usage: ava-seal COMMAND [ARG...]\n");
        return 126;
    }
    /* required to install a filter without CAP_SYS_ADMIN; the engine sets it too */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail("prctl(PR_SET_NO_NEW_PRIVS)");
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return fail("prctl(PR_SET_SECCOMP)");
    execvp(argv[1], argv + 1);
    fprintf(stderr, "ava-seal: cannot run %s: %s\n", argv[1], strerror(errno));
    return 126;
}
