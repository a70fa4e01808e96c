// See include/CJobQNet.h. Plain sockets and OpenSSL 3 (Debian's libssl-dev).
#define _GNU_SOURCE
#include "CJobQNet.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct jobq_tls_context {
    SSL_CTX *ctx;
    int has_client_certificate;
};

struct jobq_socket {
    int fd;
    SSL *ssl;
    int has_client_certificate;
    int tls_failure;
    char error[256];
};

static void set_text(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_text(char *buf, size_t len, const char *fmt, ...) {
    if (!buf || len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/// The oldest queued OpenSSL error as text (reason only), and clears the queue.
static void openssl_reason(char *buf, size_t len) {
    unsigned long e = ERR_peek_error();
    if (e == 0) {
        set_text(buf, len, "unknown OpenSSL error");
    } else {
        const char *reason = ERR_reason_error_string(e);
        if (reason) set_text(buf, len, "%s", reason);
        else set_text(buf, len, "OpenSSL error %lu", e);
    }
    ERR_clear_error();
}

// MARK: contexts

jobq_tls_context *jobq_tls_context_new(const char *ca_file, const char *cert_file, const char *key_file, int verify,
                                       char *err, size_t errlen) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        set_text(err, errlen, "cannot create a TLS context (out of memory)");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    // A blocking socket with a timeout: partial writes are reported, buffers may move between retries.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_AUTO_RETRY);
    // A server that closes without close_notify (a restart, a kill) reads as a plain close.
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (ca_file && *ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            char reason[128];
            openssl_reason(reason, sizeof reason);
            set_text(err, errlen, "cannot load the CA file %s: %s", ca_file, reason);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        char reason[128];
        openssl_reason(reason, sizeof reason);
        set_text(err, errlen, "cannot load the system trust store: %s", reason);
        SSL_CTX_free(ctx);
        return NULL;
    }
    int has_cert = 0;
    if ((cert_file && *cert_file) || (key_file && *key_file)) {
        if (!(cert_file && *cert_file) || !(key_file && *key_file)) {
            set_text(err, errlen, "a client certificate needs both certFile and keyFile");
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
            char reason[128];
            openssl_reason(reason, sizeof reason);
            set_text(err, errlen, "cannot load the client certificate %s: %s", cert_file, reason);
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
            if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
                ERR_clear_error();
                set_text(err, errlen, "the client key %s does not match the certificate %s", key_file, cert_file);
                SSL_CTX_free(ctx);
                return NULL;
            }
            char reason[128];
            openssl_reason(reason, sizeof reason);
            set_text(err, errlen, "cannot load the client key %s: %s", key_file, reason);
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            set_text(err, errlen, "the client key %s does not match the certificate %s", key_file, cert_file);
            SSL_CTX_free(ctx);
            return NULL;
        }
        has_cert = 1;
    }
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    jobq_tls_context *c = calloc(1, sizeof *c);
    if (!c) {
        SSL_CTX_free(ctx);
        set_text(err, errlen, "out of memory");
        return NULL;
    }
    c->ctx = ctx;
    c->has_client_certificate = has_cert;
    return c;
}

void jobq_tls_context_free(jobq_tls_context *ctx) {
    if (!ctx) return;
    SSL_CTX_free(ctx->ctx);
    free(ctx);
}

static long long asn1_time_unix(const ASN1_TIME *t) {
    if (!t) return 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return (long long)timegm(&tm);
}

static void subject_text(X509 *cert, char *buf, size_t len) {
    if (!buf || len == 0) return;
    buf[0] = 0;
    X509_NAME *name = X509_get_subject_name(cert);
    if (!name) return;
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio) return;
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
    int n = BIO_read(bio, buf, (int)len - 1);
    buf[n > 0 ? n : 0] = 0;
    BIO_free(bio);
}

int jobq_tls_certificate_file_info(const char *path, long long *not_after, char *subject, size_t subject_len, char *err,
                                   size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        set_text(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!cert) {
        ERR_clear_error();
        set_text(err, errlen, "%s holds no PEM certificate", path);
        return -1;
    }
    if (not_after) *not_after = asn1_time_unix(X509_get0_notAfter(cert));
    subject_text(cert, subject, subject_len);
    X509_free(cert);
    return 0;
}

long long jobq_file_stamp(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (long long)st.st_mtim.tv_sec * 1000000000LL + (long long)st.st_mtim.tv_nsec;
}

// MARK: connecting

static int set_blocking(int fd, int blocking) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    flags = blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK);
    return fcntl(fd, F_SETFL, flags);
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/// Connects `fd` to `addr` within the deadline. 0, or -1 with errno set (ETIMEDOUT on timeout).
static int connect_within(int fd, const struct sockaddr *addr, socklen_t addrlen, long long deadline) {
    if (set_blocking(fd, 0) != 0) return -1;
    if (connect(fd, addr, addrlen) == 0) return set_blocking(fd, 1);
    if (errno != EINPROGRESS && errno != EINTR) return -1;
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) continue;
        int so_error = 0;
        socklen_t l = sizeof so_error;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &l) != 0) return -1;
        if (so_error != 0) {
            errno = so_error;
            return -1;
        }
        return set_blocking(fd, 1);
    }
}

static jobq_socket *wrap(int fd) {
    jobq_socket *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return NULL;
    }
    s->fd = fd;
    return s;
}

jobq_socket *jobq_socket_connect_tcp(const char *host, int port, int timeout_ms, char *err, size_t errlen) {
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(host, service, &hints, &list);
    if (rc != 0) {
        set_text(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return NULL;
    }
    int last_errno = ECONNREFUSED;
    for (struct addrinfo *a = list; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect_within(fd, a->ai_addr, a->ai_addrlen, deadline) != 0) {
            last_errno = errno;
            close(fd);
            if (last_errno == ETIMEDOUT) break;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        int idle = 15, interval = 5, count = 3;
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
        freeaddrinfo(list);
        jobq_socket *s = wrap(fd);
        if (!s) set_text(err, errlen, "out of memory");
        return s;
    }
    freeaddrinfo(list);
    if (last_errno == ETIMEDOUT) set_text(err, errlen, "connect timed out after %d ms", timeout_ms);
    else set_text(err, errlen, "%s", strerror(last_errno));
    return NULL;
}

jobq_socket *jobq_socket_connect_unix(const char *path, int timeout_ms, char *err, size_t errlen) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        set_text(err, errlen, "unix socket path too long (at most %zu bytes)", sizeof addr.sun_path - 1);
        return NULL;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_text(err, errlen, "%s", strerror(errno));
        return NULL;
    }
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    if (connect_within(fd, (struct sockaddr *)&addr, sizeof addr, deadline) != 0) {
        int e = errno;
        close(fd);
        if (e == ETIMEDOUT) set_text(err, errlen, "connect timed out after %d ms", timeout_ms);
        else set_text(err, errlen, "%s", strerror(e));
        return NULL;
    }
    jobq_socket *s = wrap(fd);
    if (!s) set_text(err, errlen, "out of memory");
    return s;
}

int jobq_socket_set_timeout(jobq_socket *s, int timeout_ms) {
    struct timeval tv;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) return -1;
    if (setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) return -1;
    return 0;
}

// MARK: TLS

static int is_ip_address(const char *name) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/// Sorts the queued OpenSSL error (or the verification result) into one of JOBQ_TLS_* with text.
static int classify_tls_error(jobq_socket *s, int ssl_error, int saved_errno, int during_handshake) {
    long verify = s->ssl ? SSL_get_verify_result(s->ssl) : X509_V_OK;
    unsigned long e = ERR_peek_error();
    int reason = e ? ERR_GET_REASON(e) : 0;
    if (e && reason == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK) {
        const char *text = X509_verify_cert_error_string(verify);
        int failure = JOBQ_TLS_OTHER;
        switch (verify) {
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
            failure = JOBQ_TLS_HOSTNAME;
            break;
        case X509_V_ERR_CERT_HAS_EXPIRED:
            failure = JOBQ_TLS_EXPIRED;
            break;
        case X509_V_ERR_CERT_NOT_YET_VALID:
            failure = JOBQ_TLS_NOT_YET_VALID;
            break;
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_CERT_UNTRUSTED:
            failure = JOBQ_TLS_UNKNOWN_CA;
            break;
        default:
            break;
        }
        set_text(s->error, sizeof s->error, "%s", text);
        ERR_clear_error();
        return failure;
    }
    if (e) {
        int failure = JOBQ_TLS_OTHER;
        switch (reason) {
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_PACKET_LENGTH_TOO_LONG:
        case SSL_R_UNKNOWN_PROTOCOL:
        case SSL_R_HTTP_REQUEST:
            failure = JOBQ_TLS_NOT_TLS;
            break;
        case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
            failure = JOBQ_TLS_CLIENT_CERT_REQUIRED;
            break;
        case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
            failure = s->has_client_certificate ? JOBQ_TLS_OTHER : JOBQ_TLS_CLIENT_CERT_REQUIRED;
            break;
        case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
        case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
            failure = s->has_client_certificate ? JOBQ_TLS_CLIENT_CERT_REJECTED : JOBQ_TLS_OTHER;
            break;
        default:
            break;
        }
        openssl_reason(s->error, sizeof s->error);
        return failure;
    }
    if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN || ssl_error == SSL_ERROR_WANT_READ ||
        ssl_error == SSL_ERROR_WANT_WRITE) {
        if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK) {
            set_text(s->error, sizeof s->error, "timed out");
            return JOBQ_TLS_TIMEOUT;
        }
        if (saved_errno != 0 && ssl_error == SSL_ERROR_SYSCALL) {
            set_text(s->error, sizeof s->error, "%s", strerror(saved_errno));
            return during_handshake ? JOBQ_TLS_HANDSHAKE_CLOSED : JOBQ_TLS_OTHER;
        }
        set_text(s->error, sizeof s->error, "the server closed the connection");
        return during_handshake ? JOBQ_TLS_HANDSHAKE_CLOSED : JOBQ_TLS_NONE;
    }
    set_text(s->error, sizeof s->error, "TLS error %d", ssl_error);
    return JOBQ_TLS_OTHER;
}

int jobq_socket_start_tls(jobq_socket *s, jobq_tls_context *ctx, const char *server_name, int timeout_ms) {
    ERR_clear_error();
    s->error[0] = 0;
    s->tls_failure = JOBQ_TLS_NONE;
    s->has_client_certificate = ctx->has_client_certificate;
    SSL *ssl = SSL_new(ctx->ctx);
    if (!ssl) {
        openssl_reason(s->error, sizeof s->error);
        return s->tls_failure = JOBQ_TLS_OTHER;
    }
    s->ssl = ssl;
    if (SSL_set_fd(ssl, s->fd) != 1) {
        openssl_reason(s->error, sizeof s->error);
        return s->tls_failure = JOBQ_TLS_OTHER;
    }
    if (server_name && *server_name) {
        if (is_ip_address(server_name)) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name);
        } else {
            SSL_set_tlsext_host_name(ssl, server_name);
            SSL_set1_host(ssl, server_name);
        }
    }
    jobq_socket_set_timeout(s, timeout_ms > 0 ? timeout_ms : 1);
    int r = SSL_connect(ssl);
    if (r != 1) {
        int saved = errno;
        int ssl_error = SSL_get_error(ssl, r);
        int failure = classify_tls_error(s, ssl_error, saved, 1);
        return s->tls_failure = (failure == JOBQ_TLS_NONE ? JOBQ_TLS_HANDSHAKE_CLOSED : failure);
    }
    return JOBQ_TLS_NONE;
}

// MARK: reading and writing

/// What a failed SSL_read or SSL_write (returning `n`) means, as one of JOBQ_NET_*.
static long tls_io_result(jobq_socket *s, int n) {
    int saved = errno;
    int ssl_error = SSL_get_error(s->ssl, n);
    if (ssl_error == SSL_ERROR_ZERO_RETURN) return JOBQ_NET_CLOSED;
    // A blocking socket wants more only when its timeout passed (or, non-blocking, when nothing
    // is there yet).
    if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE ||
        (ssl_error == SSL_ERROR_SYSCALL && (saved == EAGAIN || saved == EWOULDBLOCK))) {
        ERR_clear_error();
        return JOBQ_NET_TIMEOUT;
    }
    if (ssl_error == SSL_ERROR_SYSCALL && saved != 0) {
        ERR_clear_error();
        set_text(s->error, sizeof s->error, "%s", strerror(saved));
        return JOBQ_NET_ERROR;
    }
    int failure = classify_tls_error(s, ssl_error, saved, 0);
    if (failure == JOBQ_TLS_NONE) return JOBQ_NET_CLOSED;
    s->tls_failure = failure;
    return JOBQ_NET_ERROR;
}

long jobq_socket_read(jobq_socket *s, void *buf, size_t len) {
    if (s->ssl) {
        ERR_clear_error();
        errno = 0;
        int n = SSL_read(s->ssl, buf, (int)(len > 0x7fffffff ? 0x7fffffff : len));
        return n > 0 ? n : tls_io_result(s, n);
    }
    for (;;) {
        ssize_t n = recv(s->fd, buf, len, 0);
        if (n > 0) return (long)n;
        if (n == 0) return JOBQ_NET_CLOSED;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return JOBQ_NET_TIMEOUT;
        set_text(s->error, sizeof s->error, "%s", strerror(errno));
        return JOBQ_NET_ERROR;
    }
}

long jobq_socket_read_available(jobq_socket *s, void *buf, size_t len) {
    if (!s->ssl) {
        for (;;) {
            ssize_t n = recv(s->fd, buf, len, MSG_DONTWAIT);
            if (n > 0) return (long)n;
            if (n == 0) return JOBQ_NET_CLOSED;
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            set_text(s->error, sizeof s->error, "%s", strerror(errno));
            return JOBQ_NET_ERROR;
        }
    }
    int flags = fcntl(s->fd, F_GETFL);
    if (flags >= 0) fcntl(s->fd, F_SETFL, flags | O_NONBLOCK);
    long n = jobq_socket_read(s, buf, len);
    if (flags >= 0) fcntl(s->fd, F_SETFL, flags);
    return n == JOBQ_NET_TIMEOUT ? 0 : n;
}

long jobq_socket_write(jobq_socket *s, const void *buf, size_t len) {
    if (s->ssl) {
        ERR_clear_error();
        errno = 0;
        int n = SSL_write(s->ssl, buf, (int)(len > 0x7fffffff ? 0x7fffffff : len));
        return n > 0 ? n : tls_io_result(s, n);
    }
    for (;;) {
        ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) return (long)n;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return JOBQ_NET_TIMEOUT;
        set_text(s->error, sizeof s->error, "%s", n < 0 ? strerror(errno) : "nothing written");
        return JOBQ_NET_ERROR;
    }
}

long jobq_socket_peek(jobq_socket *s, void *buf, size_t len) {
    if (!s->ssl) {
        for (;;) {
            ssize_t n = recv(s->fd, buf, len, MSG_PEEK | MSG_DONTWAIT);
            if (n > 0) return (long)n;
            if (n == 0) return JOBQ_NET_CLOSED;
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return JOBQ_NET_CLOSED;
        }
    }
    if (SSL_pending(s->ssl) <= 0) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN, .revents = 0};
        int r = poll(&p, 1, 0);
        if (r <= 0) return 0;
    }
    // Something arrived: let OpenSSL look at it without blocking. A session ticket or a key update
    // is consumed and counts as nothing.
    int flags = fcntl(s->fd, F_GETFL);
    if (flags >= 0) fcntl(s->fd, F_SETFL, flags | O_NONBLOCK);
    ERR_clear_error();
    int n = SSL_peek(s->ssl, buf, (int)(len > 0x7fffffff ? 0x7fffffff : len));
    int ssl_error = n > 0 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, n);
    if (flags >= 0) fcntl(s->fd, F_SETFL, flags);
    if (n > 0) return n;
    if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return 0;
    }
    ERR_clear_error();
    return JOBQ_NET_CLOSED;
}

int jobq_socket_wait_readable(jobq_socket *s, int wake_fd, int timeout_ms) {
    if (s && s->ssl && SSL_pending(s->ssl) > 0) return 1;
    struct pollfd p[2];
    int n = 0;
    int fd = s ? s->fd : -1;
    if (fd >= 0) {
        p[n].fd = fd;
        p[n].events = POLLIN;
        p[n].revents = 0;
        n++;
    }
    p[n].fd = wake_fd;
    p[n].events = POLLIN;
    p[n].revents = 0;
    n++;
    int r;
    do {
        r = poll(p, n, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) return r;
    if (fd >= 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) return 1;
    return 2;
}

int jobq_socket_fd(const jobq_socket *s) { return s ? s->fd : -1; }

int jobq_socket_is_tls(const jobq_socket *s) { return s && s->ssl ? 1 : 0; }

const char *jobq_socket_error(const jobq_socket *s) { return s ? s->error : ""; }

int jobq_socket_tls_failure(const jobq_socket *s) { return s ? s->tls_failure : JOBQ_TLS_NONE; }

int jobq_socket_tls_session(const jobq_socket *s, char *version, size_t version_len, char *cipher, size_t cipher_len,
                            char *subject, size_t subject_len, long long *not_after) {
    if (!s || !s->ssl) return -1;
    set_text(version, version_len, "%s", SSL_get_version(s->ssl));
    const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
    set_text(cipher, cipher_len, "%s", c ? SSL_CIPHER_get_name(c) : "");
    if (subject && subject_len) subject[0] = 0;
    if (not_after) *not_after = 0;
    X509 *peer = SSL_get1_peer_certificate(s->ssl);
    if (peer) {
        subject_text(peer, subject, subject_len);
        if (not_after) *not_after = asn1_time_unix(X509_get0_notAfter(peer));
        X509_free(peer);
    }
    return 0;
}

void jobq_socket_close(jobq_socket *s) {
    if (!s) return;
    if (s->ssl) {
        int flags = fcntl(s->fd, F_GETFL);
        if (flags >= 0) fcntl(s->fd, F_SETFL, flags | O_NONBLOCK);
        SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
        ERR_clear_error();
    }
    if (s->fd >= 0) close(s->fd);
    free(s);
}
