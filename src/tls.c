/* SPDX-License-Identifier: Apache-2.0 */
/* tls: PLACEHOLDER until TLS termination lands. */
#include "ingressd/tls.h"

int tls_check_pair(const unsigned char *crt, size_t crtlen, const unsigned char *key, size_t keylen,
                   bool allow_expired, char *msg, size_t msglen)
{
    (void)crt; (void)crtlen; (void)key; (void)keylen; (void)allow_expired; (void)msg; (void)msglen;
    return 0;
}
struct tls_store *tls_store_build(const struct tls_cert_spec *specs, size_t n,
                                  const struct tls_cert_spec *def, const struct snap_tls_conf *conf,
                                  struct cfg_errs *errs)
{
    (void)specs; (void)n; (void)def; (void)conf; (void)errs;
    return NULL;
}
void tls_store_free(struct tls_store *ts) { (void)ts; }
SSL_CTX *tls_store_server_ctx(struct tls_store *ts) { (void)ts; return NULL; }
SSL *tls_new_server_ssl(struct tls_store *ts) { (void)ts; return NULL; }
bool tls_ssl_covers_host(SSL *ssl, const char *host, size_t hostlen)
{
    (void)ssl; (void)host; (void)hostlen;
    return true;
}
SSL_CTX *tls_client_ctx_new(const unsigned char *ca, size_t calen, bool verify, char *msg,
                            size_t msglen)
{
    (void)ca; (void)calen; (void)verify; (void)msg; (void)msglen;
    return NULL;
}
