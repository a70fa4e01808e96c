// The byte transport under every Redis connection: TCP or unix sockets, optionally wrapped in TLS
// by Debian's OpenSSL. hiredis stays the RESP codec (its reader); this shim only moves bytes.
//
// Every call here blocks on the socket (bounded by the timeouts given) and must run on a
// connection's own thread, never on Swift's cooperative pool.
#ifndef JOBQ_CJOBQNET_H
#define JOBQ_CJOBQNET_H

#include <stddef.h>

/// An OpenSSL client context (trust store, client certificate, TLS 1.2 minimum). Thread-safe to
/// share between connections once made.
typedef struct jobq_tls_context jobq_tls_context;

/// One connected socket, plain or TLS. Confined to one thread.
typedef struct jobq_socket jobq_socket;

/// Results of read, write and peek below 0.
enum {
    JOBQ_NET_CLOSED = -1,   ///< the peer closed the connection
    JOBQ_NET_TIMEOUT = -2,  ///< the socket timeout passed with nothing read or written
    JOBQ_NET_ERROR = -3,    ///< an OS or TLS error; see jobq_socket_error
};

/// Which TLS check failed (jobq_socket_tls_failure).
enum {
    JOBQ_TLS_NONE = 0,
    JOBQ_TLS_UNKNOWN_CA = 1,            ///< the server's certificate does not chain to a trusted CA
    JOBQ_TLS_HOSTNAME = 2,              ///< the certificate is not for the host name (or IP) connected to
    JOBQ_TLS_EXPIRED = 3,               ///< the server's certificate has expired
    JOBQ_TLS_NOT_YET_VALID = 4,         ///< the server's certificate is not valid yet
    JOBQ_TLS_CLIENT_CERT_REQUIRED = 5,  ///< the server asks for a client certificate and none was sent
    JOBQ_TLS_CLIENT_CERT_REJECTED = 6,  ///< the server refused the client certificate sent
    JOBQ_TLS_NOT_TLS = 7,               ///< the server answered in plain text: not a TLS port
    JOBQ_TLS_HANDSHAKE_CLOSED = 8,      ///< the server closed the connection during the handshake
    JOBQ_TLS_TIMEOUT = 9,               ///< the handshake did not finish within the connect timeout
    JOBQ_TLS_OTHER = 10,                ///< anything else OpenSSL reported; see the text
};

/// Makes a client context. `ca_file` NULL: the system trust store. `cert_file`/`key_file` NULL:
/// no client certificate. `verify` 0 turns verification off (insecureSkipVerify). Returns NULL with
/// a one-line reason in `err` when a file cannot be read or the key does not match.
jobq_tls_context *jobq_tls_context_new(const char *ca_file, const char *cert_file, const char *key_file, int verify,
                                       char *err, size_t errlen);
void jobq_tls_context_free(jobq_tls_context *ctx);

/// Reads the first certificate of a PEM file: its notAfter as seconds since 1970 and its subject.
/// Returns 0, or -1 with a reason in `err`.
int jobq_tls_certificate_file_info(const char *path, long long *not_after, char *subject, size_t subject_len, char *err,
                                   size_t errlen);

/// A file's modification time in nanoseconds since 1970, or -1 when it cannot be read (in C:
/// `struct timespec` field types differ across platforms and builds).
long long jobq_file_stamp(const char *path);

/// Connects (TCP_NODELAY, keep-alive, close-on-exec), waiting at most `timeout_ms`. NULL with a
/// reason in `err` on failure.
jobq_socket *jobq_socket_connect_tcp(const char *host, int port, int timeout_ms, char *err, size_t errlen);
jobq_socket *jobq_socket_connect_unix(const char *path, int timeout_ms, char *err, size_t errlen);

/// Sets the receive and send timeouts (0: none). Returns 0 or -1.
int jobq_socket_set_timeout(jobq_socket *s, int timeout_ms);

/// Runs the TLS handshake as a client. `server_name` is sent as SNI (unless it is an IP address)
/// and checked against the certificate (DNS name or IP) when verifying. Returns JOBQ_TLS_NONE or
/// the failed check; the text is in jobq_socket_error.
int jobq_socket_start_tls(jobq_socket *s, jobq_tls_context *ctx, const char *server_name, int timeout_ms);

/// Reads up to `len` bytes: > 0 bytes read, or one of JOBQ_NET_*.
long jobq_socket_read(jobq_socket *s, void *buf, size_t len);

/// Without blocking: > 0 bytes read, 0 nothing to read yet (a TLS record without data counts as
/// nothing), or one of JOBQ_NET_*. For a socket poll(2) called readable.
long jobq_socket_read_available(jobq_socket *s, void *buf, size_t len);

/// Writes up to `len` bytes: > 0 bytes written, or one of JOBQ_NET_*.
long jobq_socket_write(jobq_socket *s, const void *buf, size_t len);

/// Without blocking: > 0 bytes waiting (copied into `buf`, not consumed), 0 nothing to read, or
/// JOBQ_NET_CLOSED when the peer closed (or the connection failed). TLS records that carry no data
/// (session tickets) count as nothing.
long jobq_socket_peek(jobq_socket *s, void *buf, size_t len);

/// Waits until the socket has data (TLS: decrypted bytes already buffered count), or `wake_fd` is
/// readable, or `timeout_ms` passes (-1: no limit). 1 socket readable (or closed), 2 only wake_fd,
/// 0 timeout, -1 error.
int jobq_socket_wait_readable(jobq_socket *s, int wake_fd, int timeout_ms);

/// The file descriptor (for diagnostics), or -1.
int jobq_socket_fd(const jobq_socket *s);

/// True when the connection runs TLS.
int jobq_socket_is_tls(const jobq_socket *s);

/// The last error's text (empty when none) and, after a TLS failure, which check failed.
const char *jobq_socket_error(const jobq_socket *s);
int jobq_socket_tls_failure(const jobq_socket *s);

/// The negotiated TLS version and cipher, and the server certificate's subject and notAfter
/// (seconds since 1970; 0 when unknown). Returns 0, or -1 when the connection is not TLS.
int jobq_socket_tls_session(const jobq_socket *s, char *version, size_t version_len, char *cipher, size_t cipher_len,
                            char *subject, size_t subject_len, long long *not_after);

/// Closes the socket (a TLS close_notify is attempted without blocking) and frees `s`.
void jobq_socket_close(jobq_socket *s);

#endif
