/* SPDX-License-Identifier: MIT */
/*
 * share.c: ways to move data between a caller and its jobs: pipes,
 * socketpairs and sealed shared memory, all O_CLOEXEC so that only the jobs
 * they are mapped into receive them.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdutil.h"
#include "lib.h"

MPS_API int mps_pipe(int ret_fds[2]) {
        int fds[2];
        if (!ret_fds)
                return -EINVAL;
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        ret_fds[0] = fds[0];
        ret_fds[1] = fds[1];
        return 0;
}

MPS_API int mps_socketpair(int ret_fds[2]) {
        int fds[2];
        if (!ret_fds)
                return -EINVAL;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                return -errno;
        ret_fds[0] = fds[0];
        ret_fds[1] = fds[1];
        return 0;
}

MPS_API int mps_shm_create(size_t size, int *ret_fd, void **ret_addr) {
        if (size == 0 || !ret_fd || !ret_addr)
                return -EINVAL;
        int fd = memfd_create("mpspawn-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        /* Sealed to its size: a job cannot shrink it under the caller (which
         * would turn the caller's accesses into SIGBUS) nor grow it. */
        if (ftruncate(fd, (off_t)size) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
                int r = -errno;
                mps__safe_close(fd);
                return r;
        }
        void *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (addr == MAP_FAILED) {
                int r = -errno;
                mps__safe_close(fd);
                return r;
        }
        *ret_fd = fd;
        *ret_addr = addr;
        return 0;
}

MPS_API int mps_shm_map(int fd, void **ret_addr, size_t *ret_size) {
        struct stat st;
        if (!ret_addr || !ret_size)
                return -EINVAL;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size <= 0)
                return -EINVAL;
        void *addr = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (addr == MAP_FAILED)
                return -errno;
        *ret_addr = addr;
        *ret_size = (size_t)st.st_size;
        return 0;
}
