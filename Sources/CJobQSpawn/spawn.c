#define _GNU_SOURCE
#include "CJobQSpawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <unistd.h>

extern char **environ;

int jobq_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
               const jobq_spawn_fd *fds, int count, int close_from, int flags) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attributes);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    for (int i = 0; i < count && rc == 0; i++) {
        if (fds[i].parent_fd >= 0) {
            rc = posix_spawn_file_actions_adddup2(&actions, fds[i].parent_fd, fds[i].child_fd);
        } else {
            rc = posix_spawn_file_actions_addopen(&actions, fds[i].child_fd, fds[i].path, fds[i].flags, (mode_t)fds[i].mode);
        }
    }
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, close_from);

    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    const int reset[] = {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) sigaddset(&defaults, reset[i]);
    short spawnFlags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attributes, &empty);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attributes, &defaults);
    if (rc == 0 && (flags & JOBQ_SPAWN_NEW_PROCESS_GROUP)) {
        rc = posix_spawnattr_setpgroup(&attributes, 0);
        spawnFlags |= POSIX_SPAWN_SETPGROUP;
    }
    if (flags & JOBQ_SPAWN_NEW_SESSION) spawnFlags |= POSIX_SPAWN_SETSID;
    if (rc == 0) rc = posix_spawnattr_setflags(&attributes, spawnFlags);
    if (rc == 0) rc = posix_spawn(pid, path, &actions, &attributes, argv, envp ? envp : environ);

    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int jobq_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int jobq_open_pty(char *name, size_t size) {
    int primary = posix_openpt(O_RDWR | O_NOCTTY);
    if (primary < 0) return -1;
    if (grantpt(primary) != 0 || unlockpt(primary) != 0 || ptsname_r(primary, name, size) != 0) {
        int saved = errno;
        close(primary);
        errno = saved;
        return -1;
    }
    return primary;
}
