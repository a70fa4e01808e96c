// The one place jobq starts child processes, for the `exec` handler and for the private
// redis-server, sentinel and tool processes of the tests, demo and benchmark. In C because what
// it needs from glibc (posix_spawn_file_actions_addclosefrom_np, POSIX_SPAWN_SETSID, pipe2,
// posix_openpt and friends) is declared only under _GNU_SOURCE, which Swift's Glibc module does
// not define.
#ifndef JOBQ_CJOBQSPAWN_H
#define JOBQ_CJOBQSPAWN_H

#include <stddef.h>
#include <sys/types.h>

/// One descriptor of the child: `parent_fd` ≥ 0 duplicates that descriptor of ours as
/// `child_fd`; `parent_fd` < 0 opens `path` with `flags` and `mode` as `child_fd`.
typedef struct {
    int child_fd;
    int parent_fd;
    const char *path;
    int flags;
    unsigned int mode;
} jobq_spawn_fd;

/// The child leads a process group of its own (signals reach its whole tree by -pid).
#define JOBQ_SPAWN_NEW_PROCESS_GROUP 1
/// The child leads a session of its own (for a pseudo-terminal).
#define JOBQ_SPAWN_NEW_SESSION 2

/// Starts `path` with `argv` (NULL-terminated) and `envp` (NULL-terminated; NULL = ours). The
/// child gets exactly the descriptors in `fds`, applied in order: everything from `close_from`
/// up is closed, so no socket, pipe or file of ours crosses. Its signal state is clean: an empty
/// mask and default dispositions for the signals a parent ignores or handles (SIGPIPE, SIGTERM,
/// SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2) — spawned from a thread with signals
/// blocked, a child would otherwise never see SIGTERM, and `yes | head -1` would never end.
/// Returns 0 and the pid, or an errno value.
int jobq_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
               const jobq_spawn_fd *fds, int count, int close_from, int flags);

/// A pipe whose two ends close on exec (the child gets only what `jobq_spawn` hands it).
/// Returns 0, or -1 with errno set.
int jobq_pipe_cloexec(int fds[2]);

/// Opens a pseudo-terminal: returns the primary side's descriptor and writes the secondary
/// side's path into `name`; -1 with errno set on failure.
int jobq_open_pty(char *name, size_t size);

#endif
