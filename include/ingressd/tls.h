/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls: TLS termination contexts built from kubernetes.io/tls Secrets.
 *
 * A tls_store is built by the loader inside a snapshot (every PEM parse and
 * key/cert check happens there, so failures are config errors), and freed with
 * it; SSL_CTXs are refcounted by OpenSSL, so a live connection may outlive its
 * snapshot. Workers only look things up (SNI callback, 421 check).
 *
 * Lifetime: tls_store_free drops the snapshot's reference; every SSL from
 * tls_new_server_ssl holds its own until SSL_free, so tls_ssl_covers_host and
 * tls_ssl_secret stay valid for the connection's whole life, across reloads.
 * Session ticket keys are process-wide (resumption survives reloads) and
 * rotate every ProxyConfig spec.tls.sessionTicketRotation (default 1 h).
 */
#ifndef INGRESSD_TLS_H
#define INGRESSD_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct arena;
struct cfg_errs;
struct snap_tls_conf;
struct tls_store;
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

struct tls_cert_spec {
    const char *secret;                /* "ns/name" */
    const char *const *hosts;          /* from Ingress spec.tls[].hosts (may include "*.foo.com") */
    size_t nhosts;
    const unsigned char *crt, *key;    /* PEM */
    size_t crtlen, keylen;
    const char *file;                  /* where the Secret is, for diagnostics */
    unsigned line;
};

/*
 * Checks a PEM certificate chain and key: parsable, key matches, not expired.
 * Returns 0 if valid, else <0 with a message in msg. Loader thread or -t.
 * Messages are relative to the Secret ("tls.crt: certificate expired on
 * 2024-01-01T00:00:00Z", "tls.key does not match tls.crt"); prefix the Secret.
 * With allow_expired an out-of-date certificate returns 0 but leaves the
 * warning text in msg (msg[0] != '\0'): log it as a warning.
 */
int tls_check_pair(const unsigned char *crt, size_t crtlen, const unsigned char *key,
                   size_t keylen, bool allow_expired, char *msg, size_t msglen);

/*
 * Builds contexts for every spec plus the default (def, or a self-signed
 * certificate generated once per process when def is NULL). Reports problems
 * to errs and leaves bad specs out. Returns NULL only on OpenSSL failure.
 */
struct tls_store *tls_store_build(const struct tls_cert_spec *specs, size_t n,
                                  const struct tls_cert_spec *def,
                                  const struct snap_tls_conf *conf, struct cfg_errs *errs);
void tls_store_free(struct tls_store *ts);   /* NULL is a no-op; any thread */

/* the context a TLS listener hands to new connections (SNI callback installed) */
SSL_CTX *tls_store_server_ctx(struct tls_store *ts);
/* creates the SSL for an accepted connection; it keeps a ref on what it uses */
SSL *tls_new_server_ssl(struct tls_store *ts);
/* true when host is covered by the certificate the connection presented (421 otherwise) */
bool tls_ssl_covers_host(SSL *ssl, const char *host, size_t hostlen);

/* upstream (backend-protocol HTTPS) client context; ca may be NULL (no verify).
 * Returns a reference (release with SSL_CTX_free); contexts with the same
 * (verify, ca) are shared, so do not change its settings. */
SSL_CTX *tls_client_ctx_new(const unsigned char *ca, size_t calen, bool verify, char *msg,
                            size_t msglen);

/* ---- additions (tls owner) ---- */

/*
 * An upstream SSL on ctx (from tls_client_ctx_new): SNI = sni unless NULL or an
 * IP literal; with verify_host the peer certificate must name sni. Caller
 * frees (or hands to bufferevent_openssl with BEV_OPT_CLOSE_ON_FREE). Any thread.
 */
SSL *tls_new_client_ssl(SSL_CTX *ctx, const char *sni, bool verify_host);
/* validates ProxyConfig's cipher lists (NULL = default); 0 ok, <0 with msg. Loader / -t */
int tls_check_ciphers(const char *ciphers, const char *ciphersuites, char *msg, size_t msglen);
/* the Secret ("ns/name") whose certificate the connection got; NULL = generated default */
const char *tls_ssl_secret(SSL *ssl);
/* starts a new session ticket key now (the previous one still decrypts). Any thread. */
void tls_ticket_keys_rotate(void);

#endif
