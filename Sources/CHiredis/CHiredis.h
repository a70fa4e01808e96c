// The whole C boundary of jobq: hiredis 0.14 plus the few helpers Swift cannot express.
//
// Only API shared by hiredis 0.14 and 1.x is used. Swift never touches `struct timeval` (its field
// types differ across platforms) nor the fixed-size `errstr` array directly: the helpers below do.
#ifndef JOBQ_CHIREDIS_H
#define JOBQ_CHIREDIS_H

#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <poll.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <pthread.h>
#include <time.h>

/// Connects over TCP with a connect timeout in milliseconds. Never returns NULL unless out of memory;
/// check `c->err`.
static inline redisContext *CHiredis_connectTCP(const char *host, int port, long timeoutMs) {
    struct timeval tv;
    tv.tv_sec = timeoutMs / 1000;
    tv.tv_usec = (timeoutMs % 1000) * 1000;
    return redisConnectWithTimeout(host, port, tv);
}

/// Connects to a unix socket with a connect timeout in milliseconds.
static inline redisContext *CHiredis_connectUnix(const char *path, long timeoutMs) {
    struct timeval tv;
    tv.tv_sec = timeoutMs / 1000;
    tv.tv_usec = (timeoutMs % 1000) * 1000;
    return redisConnectUnixWithTimeout(path, tv);
}

/// Sets the socket send/receive timeout (0 = none). Returns REDIS_OK or REDIS_ERR.
/// hiredis' reconnect drops it, so it is applied after every connect.
static inline int CHiredis_setTimeout(redisContext *c, long timeoutMs) {
    struct timeval tv;
    tv.tv_sec = timeoutMs / 1000;
    tv.tv_usec = (timeoutMs % 1000) * 1000;
    return redisSetTimeout(c, tv);
}

/// The context's error text (a fixed-size C array Swift imports as a tuple).
static inline const char *CHiredis_errstr(const redisContext *c) {
    return c->errstr;
}

/// The reader's error text, after redisReaderGetReply returned REDIS_ERR.
static inline const char *CHiredis_readerErrstr(const redisReader *r) {
    return r->errstr;
}

/// True when the socket of an idle connection has something to read (normally: the peer closed
/// it, or sent an unsolicited error before closing). Used before sending on a connection that has
/// been idle, so that a command is not written into a socket the server already closed.
static inline int CHiredis_idleSocketIsReadable(const redisContext *c) {
    struct pollfd p;
    p.fd = c->fd;
    p.events = POLLIN;
    p.revents = 0;
    int r = poll(&p, 1, 0);
    return r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

/// Waits until `fd` or `wakeFd` is readable, or `timeoutMs` passes (-1: no limit).
/// Returns 1 if `fd` is readable (or closed), 2 if only `wakeFd` is, 0 on timeout, -1 on error.
static inline int CHiredis_waitReadable(int fd, int wakeFd, int timeoutMs) {
    struct pollfd p[2];
    p[0].fd = fd; p[0].events = POLLIN; p[0].revents = 0;
    p[1].fd = wakeFd; p[1].events = POLLIN; p[1].revents = 0;
    int n = (fd >= 0) ? 2 : 1;
    struct pollfd *first = (fd >= 0) ? &p[0] : &p[1];
    int r;
    do { r = poll(first, n, timeoutMs); } while (r < 0 && errno == EINTR);
    if (r <= 0) return r;
    if (fd >= 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) return 1;
    return 2;
}

/// Bytes appended but not yet written to the socket.
static inline size_t CHiredis_pendingOutput(const redisContext *c) {
    return c->obuf ? sdslen(c->obuf) : 0;
}

/// Copies (without consuming) up to `len - 1` bytes the server sent but nobody read yet, NUL-
/// terminated; returns how many. After a failed write this may hold the server's parting words
/// (`-ERR max number of clients reached`), which hiredis will no longer read.
static inline long CHiredis_peekUnread(const redisContext *c, char *buf, size_t len) {
    if (c->fd < 0 || len < 2) return 0;
    ssize_t n = recv(c->fd, buf, len - 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0) n = 0;
    buf[n] = 0;
    return (long)n;
}

/// Marks the connection's socket close-on-exec (hiredis does not), so a child process spawned
/// by any thread never inherits a Redis connection, its credentials included.
static inline int CHiredis_setCloseOnExec(const redisContext *c) {
    if (c->fd < 0) return -1;
    int flags = fcntl(c->fd, F_GETFD);
    if (flags < 0) return -1;
    return fcntl(c->fd, F_SETFD, flags | FD_CLOEXEC);
}

/// Names the calling thread (at most 15 bytes are kept), so `top -H`, `perf` and gdb show which
/// connection a thread serves.
static inline void CHiredis_nameThread(const char *name) {
    prctl(PR_SET_NAME, name, 0, 0, 0);
}

/// Creates a non-blocking, close-on-exec pipe for waking a thread blocked in poll(2).
/// Returns 0, or -1 with errno set.
static inline int CHiredis_makeWakePipe(int fds[2]) {
    if (pipe(fds) != 0) return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

/// Waits on `cond` (with `mutex` held) until signalled or `nanos` pass on the monotonic clock
/// (the condition variable must use CLOCK_MONOTONIC). In C because `struct timespec` field types
/// differ across platforms and Swift sees them through different modules in different builds.
static inline int CHiredis_condWaitFor(pthread_cond_t *cond, pthread_mutex_t *mutex, long long nanos) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (nanos < 0) nanos = 0;
    long long total = (long long)deadline.tv_nsec + nanos % 1000000000LL;
    deadline.tv_sec += (time_t)(nanos / 1000000000LL + total / 1000000000LL);
    deadline.tv_nsec = (long)(total % 1000000000LL);
    return pthread_cond_timedwait(cond, mutex, &deadline);
}

#endif
