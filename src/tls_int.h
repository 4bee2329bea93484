/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls_int.h: what the tls_*.c files share and nobody else sees.
 *
 *   tls.c         the store: per-Secret SSL_CTXs, SNI map, 421 check (L builds, W reads)
 *   tls_pem.c     PEM parsing, tls_check_pair, the process-wide self-signed default,
 *                 upstream client contexts (L, and main for -t)
 *   tls_ticket.c  the process-wide session ticket key ring (W, rotated lazily)
 *   tls_cache.c   SSL_CTXs reused across reloads, keyed by a digest of their PEMs (L)
 *
 * Cross-file functions use the tls__ prefix (h2o's convention for internals).
 */
#ifndef INGRESSD_TLS_INT_H
#define INGRESSD_TLS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Mozilla "intermediate" (v5.7): what the defaults are when ProxyConfig names none */
#define TLS_MOZ_CIPHERS                                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                             \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                             \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                             \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS_MOZ_CIPHERSUITES \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_DEFAULT_TICKET_ROTATE_MS (3600u * 1000u)

/* a parsed Secret: leaf, intermediates and key; owned by the caller of tls__pem_load */
struct tls_pem {
    X509 *leaf;
    STACK_OF(X509) *chain;              /* intermediates after the leaf; may be empty */
    EVP_PKEY *key;
};

/*
 * Parses crt (leaf first, then intermediates) and key, checks that they belong
 * together. Does not look at validity dates. 0 ok (*out filled), <0 with a
 * message in msg. Clears the thread's OpenSSL error queue either way.
 */
int tls__pem_load(const unsigned char *crt, size_t crtlen, const unsigned char *key,
                  size_t keylen, struct tls_pem *out, char *msg, size_t msglen);
void tls__pem_clear(struct tls_pem *p);
/* the same through a process-wide memo (shared with tls_check_pair): parses once per content */
int tls__pem_load_shared(const unsigned char *crt, size_t crtlen, const unsigned char *key,
                         size_t keylen, struct tls_pem *out, char *msg, size_t msglen);

/* the generated default certificate (EC P-256, CN ingressd-default); made once per process */
int tls__selfsigned(X509 **crt, EVP_PKEY **key);

/* appends the certificate's DNS names (SAN, or the CN when it has no SAN) lowercased */
typedef int (*tls_name_fn)(void *arg, const char *name, size_t len);
int tls__cert_names(X509 *x, tls_name_fn fn, void *arg);

/* installs the process-wide ticket key callback and records the rotation period */
int tls__ticket_setup(SSL_CTX *ctx, uint32_t rotate_ms);

struct tls_store;
struct tls_cert_spec;
struct snap_tls_conf;

/*
 * A server context for one certificate, configured like every other one
 * (versions, ciphers, ALPN, tickets, SNI callback). sni_arg is the store for
 * a store's own base context, NULL for shared (cached) ones. NULL + msg on error.
 */
SSL_CTX *tls__server_ctx_new(struct tls_store *sni_arg, const struct snap_tls_conf *conf,
                             X509 *leaf, STACK_OF(X509) *chain, EVP_PKEY *key, char *msg,
                             size_t msglen);

/* the cache: begin locks and returns this build's generation; end unlocks (and,
 * after a successful build, drops contexts that build did not use) */
uint64_t tls__cache_begin(void);
void tls__cache_end(uint64_t gen, bool sweep);
/* a new reference to the context for sp's PEMs under conf (cached or built); NULL + msg */
SSL_CTX *tls__cache_get(const struct tls_cert_spec *sp, const struct snap_tls_conf *conf,
                        uint64_t gen, char *msg, size_t msglen);

/* "tls.crt: " style error text from the thread's OpenSSL queue (and clears it) */
void tls__ossl_reason(char *buf, size_t len);

#endif
