/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls_pem: certificates and keys as they come out of kubernetes.io/tls Secrets.
 *
 * Everything that can be wrong with a Secret is found here, on the loader
 * thread (or main, for -t), so that a bad certificate is a configuration error
 * naming the Secret and never a failed handshake on a worker:
 *
 *   tls.crt  -> leaf + intermediates (PEM, leaf first, as cert-manager writes it)
 *   tls.key  -> private key (PEM, any type OpenSSL reads; encrypted keys refused
 *               rather than letting OpenSSL prompt on a terminal)
 *   then     -> X509_check_private_key, validity dates (tls_check_pair only)
 *
 * Parsing is slow on OpenSSL 3.0 (~0.6 ms a pair) and the loader sees every
 * Secret again on every reload, so parsed pairs are memoised by content
 * digest and shared by tls_check_pair and the store build (tls_cache.c).
 *
 * Also here: the self-signed default certificate, generated once per process
 * the first time a store needs it (EC P-256 keygen is ~1 ms, but reusing it
 * keeps the default certificate stable across reloads, which clients that pin
 * or cache it notice), and upstream client contexts (shared by trust).
 *
 * Threads: loader (and main for -t). tls__pem_load touches only its arguments
 * and the calling thread's OpenSSL error queue; the memo and the client
 * context list have their own mutexes (never taken on a worker). The
 * self-signed pair is created under pthread_once and immutable afterwards;
 * X509/EVP_PKEY are refcounted, every SSL_CTX using them takes its own
 * reference, so the memo may drop its own at any time.
 */
#include "ingressd/tls.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tls_int.h"

/* ---- errors ---- */

void tls__ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, len, "%s", r ? r : "unknown OpenSSL error");
    ERR_clear_error();
}

/* never let OpenSSL ask a terminal for a pass phrase: the loader has no tty */
static int tls_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf; (void)size; (void)rwflag; (void)u;
    return -1;
}

/* ---- parsing ---- */

void tls__pem_clear(struct tls_pem *p)
{
    X509_free(p->leaf);
    sk_X509_pop_free(p->chain, X509_free);
    EVP_PKEY_free(p->key);
    memset(p, 0, sizeof(*p));
}

static bool tls_has_pem_marker(const unsigned char *b, size_t n, const char *what)
{
    /* memmem: Secret data is bytes, not necessarily NUL-terminated */
    return b && memmem(b, n, what, strlen(what)) != NULL;
}

int tls__pem_load(const unsigned char *crt, size_t crtlen, const unsigned char *key,
                  size_t keylen, struct tls_pem *out, char *msg, size_t msglen)
{
    struct tls_pem p = { 0 };
    char why[160];
    BIO *bio = NULL;
    int rc = -1;

    ERR_clear_error();
    if (!crt || crtlen == 0 || !tls_has_pem_marker(crt, crtlen, "-----BEGIN CERTIFICATE-----")) {
        snprintf(msg, msglen, "tls.crt: no PEM certificate found");
        goto out;
    }
    bio = BIO_new_mem_buf(crt, (int)crtlen);
    if (!bio || !(p.chain = sk_X509_new_null())) {
        snprintf(msg, msglen, "tls.crt: out of memory");
        goto out;
    }
    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, tls_no_password, NULL);
        if (!x)
            break;
        if (!p.leaf)
            p.leaf = x;
        else if (!sk_X509_push(p.chain, x)) {
            X509_free(x);
            snprintf(msg, msglen, "tls.crt: out of memory");
            goto out;
        }
    }
    /* the loop ends on "no start line" at EOF; anything else is a broken block */
    {
        unsigned long e = ERR_peek_last_error();
        if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
            tls__ossl_reason(why, sizeof(why));
            snprintf(msg, msglen, "tls.crt: %s certificate is not valid PEM/DER (%s)",
                     p.leaf ? "an intermediate" : "the", why);
            goto out;
        }
        ERR_clear_error();
    }
    if (!p.leaf) {
        snprintf(msg, msglen, "tls.crt: no PEM certificate found");
        goto out;
    }
    BIO_free(bio);
    bio = NULL;

    if (!key || keylen == 0 || !tls_has_pem_marker(key, keylen, "PRIVATE KEY-----")) {
        snprintf(msg, msglen, "tls.key: no PEM private key found");
        goto out;
    }
    if (tls_has_pem_marker(key, keylen, "-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || tls_has_pem_marker(key, keylen, "Proc-Type: 4,ENCRYPTED")) {
        snprintf(msg, msglen, "tls.key: encrypted private keys are not supported");
        goto out;
    }
    bio = BIO_new_mem_buf(key, (int)keylen);
    if (!bio) {
        snprintf(msg, msglen, "tls.key: out of memory");
        goto out;
    }
    p.key = PEM_read_bio_PrivateKey(bio, NULL, tls_no_password, NULL);
    if (!p.key) {
        tls__ossl_reason(why, sizeof(why));
        snprintf(msg, msglen, "tls.key: cannot parse private key (%s)", why);
        goto out;
    }
    if (X509_check_private_key(p.leaf, p.key) != 1) {
        snprintf(msg, msglen, "tls.key does not match tls.crt");
        goto out;
    }
    *out = p;
    memset(&p, 0, sizeof(p));
    rc = 0;
out:
    BIO_free(bio);
    tls__pem_clear(&p);
    ERR_clear_error();
    return rc;
}

static void tls_fmt_time(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "(unreadable date)");
}

/* ---- tls_check_pair and its memo ---- */

/*
 * The configuration loader re-decodes every Secret on every reload, and on
 * OpenSSL 3.0 parsing a pair costs ~0.6 ms (the PEM decoders), so a thousand
 * unchanged Secrets would add most of a second to each reload, and a new
 * Secret would be parsed twice (tls_check_pair, then tls_store_build). Parsed
 * pairs are remembered by SHA-256 of (crt, key): the objects themselves
 * (refcounted; handed out with a new reference) or the parse error, plus the
 * validity dates, compared with the clock on every call. A set-associative
 * table overwritten round-robin: a miss only costs a parse.
 */
#define TLS_MEMO_SETS 1024
#define TLS_MEMO_WAYS 4

struct tls_memo {
    unsigned char digest[32];
    bool used;
    bool parsed;                        /* false: msg holds the parse/match error */
    struct tls_pem pem;                 /* owned refs when parsed */
    time_t not_before, not_after;
    char nb_txt[24], na_txt[24];        /* as printed in messages */
    char msg[160];
};

static pthread_mutex_t tls_memo_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_memo *tls_memo;       /* TLS_MEMO_SETS * TLS_MEMO_WAYS, allocated on first use */
static unsigned tls_memo_next[TLS_MEMO_SETS];

static bool tls_asn1_time(const ASN1_TIME *t, time_t *out)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return false;
    *out = timegm(&tm);
    return true;
}

static void tls_memo_fill(struct tls_memo *m, const unsigned char *crt, size_t crtlen,
                          const unsigned char *key, size_t keylen)
{
    m->parsed = tls__pem_load(crt, crtlen, key, keylen, &m->pem, m->msg, sizeof(m->msg)) == 0;
    if (!m->parsed)
        return;
    const ASN1_TIME *nb = X509_get0_notBefore(m->pem.leaf), *na = X509_get0_notAfter(m->pem.leaf);
    tls_fmt_time(nb, m->nb_txt, sizeof(m->nb_txt));
    tls_fmt_time(na, m->na_txt, sizeof(m->na_txt));
    if (!tls_asn1_time(nb, &m->not_before))
        m->not_before = 0;
    if (!tls_asn1_time(na, &m->not_after))
        m->not_after = 0; /* unreadable: treated as expired, as X509_cmp_current_time would */
}

static bool tls_pair_digest(const unsigned char *crt, size_t crtlen, const unsigned char *key,
                            size_t keylen, unsigned char d[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int dl = 0;
    uint64_t n1 = crtlen, n2 = keylen;
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1
              && EVP_DigestUpdate(md, &n1, sizeof(n1)) == 1
              && (!crtlen || EVP_DigestUpdate(md, crt, crtlen) == 1)
              && EVP_DigestUpdate(md, &n2, sizeof(n2)) == 1
              && (!keylen || EVP_DigestUpdate(md, key, keylen) == 1)
              && EVP_DigestFinal_ex(md, d, &dl) == 1 && dl == 32;
    EVP_MD_CTX_free(md);
    return ok;
}

/* the memo entry for a pair, parsing on a miss; NULL when there is no memo. Lock held. */
static struct tls_memo *tls_memo_get(const unsigned char *crt, size_t crtlen,
                                     const unsigned char *key, size_t keylen)
{
    unsigned char d[32];
    if (!tls_pair_digest(crt, crtlen, key, keylen, d))
        return NULL;
    if (!tls_memo && !(tls_memo = calloc(TLS_MEMO_SETS * TLS_MEMO_WAYS, sizeof(*tls_memo))))
        return NULL;
    size_t set;
    memcpy(&set, d, sizeof(set));
    set %= TLS_MEMO_SETS;
    struct tls_memo *ways = &tls_memo[set * TLS_MEMO_WAYS];
    for (int i = 0; i < TLS_MEMO_WAYS; i++)
        if (ways[i].used && memcmp(ways[i].digest, d, sizeof(d)) == 0)
            return &ways[i];
    struct tls_memo *m = &ways[tls_memo_next[set]++ % TLS_MEMO_WAYS];
    tls__pem_clear(&m->pem);
    memset(m, 0, sizeof(*m));
    tls_memo_fill(m, crt, crtlen, key, keylen);
    memcpy(m->digest, d, sizeof(d));
    m->used = true;
    return m;
}

/* out gets new references to p's objects */
static int tls_pem_copy(const struct tls_pem *p, struct tls_pem *out)
{
    memset(out, 0, sizeof(*out));
    if (!(out->chain = sk_X509_new_null()))
        return -1;
    for (int i = 0; i < sk_X509_num(p->chain); i++) {
        X509 *x = sk_X509_value(p->chain, i);
        if (!sk_X509_push(out->chain, x)) {
            tls__pem_clear(out);
            return -1;
        }
        X509_up_ref(x);
    }
    X509_up_ref(p->leaf);
    out->leaf = p->leaf;
    EVP_PKEY_up_ref(p->key);
    out->key = p->key;
    return 0;
}

/*
 * tls__pem_load through the memo: the second caller for the same bytes (the
 * store build after tls_check_pair, or the next reload) gets the parsed
 * objects without parsing. Same contract as tls__pem_load.
 */
int tls__pem_load_shared(const unsigned char *crt, size_t crtlen, const unsigned char *key,
                         size_t keylen, struct tls_pem *out, char *msg, size_t msglen)
{
    int rc;
    pthread_mutex_lock(&tls_memo_mu);
    struct tls_memo *m = tls_memo_get(crt, crtlen, key, keylen);
    if (!m)
        rc = tls__pem_load(crt, crtlen, key, keylen, out, msg, msglen);
    else if (!m->parsed) {
        snprintf(msg, msglen, "%s", m->msg);
        rc = -1;
    } else if (tls_pem_copy(&m->pem, out) < 0) {
        snprintf(msg, msglen, "out of memory");
        rc = -1;
    } else {
        rc = 0;
    }
    pthread_mutex_unlock(&tls_memo_mu);
    return rc;
}

/*
 * Validates one Secret's pair. Returns 0 when it may be served: msg is then
 * empty, or, when allow_expired let an out-of-date certificate through, holds
 * the warning text the caller should log. Returns -1 with msg set otherwise.
 * Messages are relative to the Secret ("tls.crt: ..."): the caller prefixes the
 * Secret's name and location. Loader thread or main (-t); serialised inside.
 */
int tls_check_pair(const unsigned char *crt, size_t crtlen, const unsigned char *key,
                   size_t keylen, bool allow_expired, char *msg, size_t msglen)
{
    struct tls_memo local = { 0 };
    int rc = 0;

    if (msglen)
        msg[0] = '\0';
    pthread_mutex_lock(&tls_memo_mu);
    struct tls_memo *m = tls_memo_get(crt, crtlen, key, keylen);
    if (!m) {
        m = &local;
        tls_memo_fill(m, crt, crtlen, key, keylen);
    }
    time_t now = time(NULL);
    if (!m->parsed) {
        snprintf(msg, msglen, "%s", m->msg);
        rc = -1;
    } else if (m->not_after <= now) {
        snprintf(msg, msglen, "tls.crt: certificate expired on %s", m->na_txt);
        rc = allow_expired ? 0 : -1;
    } else if (m->not_before > now) {
        snprintf(msg, msglen, "tls.crt: certificate is not valid before %s", m->nb_txt);
        rc = allow_expired ? 0 : -1;
    }
    pthread_mutex_unlock(&tls_memo_mu);
    tls__pem_clear(&local.pem);
    return rc;
}

/* ---- names ---- */

int tls__cert_names(X509 *x, tls_name_fn fn, void *arg)
{
    GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int ndns = 0, rc = 0;
    char buf[256];

    for (int i = 0; san && i < sk_GENERAL_NAME_num(san); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
        int n = ASN1_STRING_length(g->d.dNSName);
        if (n <= 0 || (size_t)n >= sizeof(buf))
            continue;
        ndns++;
        for (int j = 0; j < n; j++)
            buf[j] = (char)(d[j] >= 'A' && d[j] <= 'Z' ? d[j] + 32 : d[j]);
        buf[n] = '\0';
        if ((rc = fn(arg, buf, (size_t)n)) < 0)
            break;
    }
    GENERAL_NAMES_free(san);
    if (rc < 0 || ndns > 0)
        return rc;
    /* legacy certificates name their host only in the subject CN (RFC 6125 fallback) */
    X509_NAME *subj = X509_get_subject_name(x);
    int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (idx < 0)
        return 0;
    ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
    const unsigned char *d = ASN1_STRING_get0_data(cn);
    int n = ASN1_STRING_length(cn);
    if (n <= 0 || (size_t)n >= sizeof(buf) || memchr(d, '.', (size_t)n) == NULL)
        return 0; /* "ingressd-default" and friends are not host names */
    for (int j = 0; j < n; j++)
        buf[j] = (char)(d[j] >= 'A' && d[j] <= 'Z' ? d[j] + 32 : d[j]);
    buf[n] = '\0';
    return fn(arg, buf, (size_t)n);
}

/* ---- the self-signed default ---- */

static pthread_once_t tls_ss_once = PTHREAD_ONCE_INIT;
static X509 *tls_ss_crt;
static EVP_PKEY *tls_ss_key;

static void tls_ss_make(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_NAME *n = NULL;
    unsigned char serial[16];
    BIGNUM *bn = NULL;

    if (!k || !x || RAND_bytes(serial, sizeof(serial)) != 1)
        goto fail;
    serial[0] &= 0x7f; /* positive */
    if (!(bn = BN_bin2bn(serial, sizeof(serial), NULL)) || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        goto fail;
    n = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1
        || !X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"ingressd", -1, -1, 0)
        || !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                                       (const unsigned char *)"ingressd-default", -1, -1, 0)
        || X509_set_issuer_name(x, n) != 1
        /* an hour of slack for clients whose clocks run behind */
        || !X509_gmtime_adj(X509_getm_notBefore(x), -3600)
        || !X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600)
        || X509_set_pubkey(x, k) != 1 || X509_sign(x, k, EVP_sha256()) <= 0)
        goto fail;
    BN_free(bn);
    tls_ss_crt = x;
    tls_ss_key = k;
    return;
fail:
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(k);
    ERR_clear_error();
}

int tls__selfsigned(X509 **crt, EVP_PKEY **key)
{
    pthread_once(&tls_ss_once, tls_ss_make);
    if (!tls_ss_crt)
        return -1;
    *crt = tls_ss_crt;
    *key = tls_ss_key;
    return 0;
}

/* ---- upstream client contexts ---- */

static const unsigned char tls_alpn_http11[] = "\x08http/1.1";

/*
 * Client context for backend-protocol HTTPS. TLS 1.2+, ALPN http/1.1. With
 * verify, peers are checked against the PEM bundle ca (a Secret's ca.crt), or
 * the system store when ca is NULL; the host name check is per connection
 * (tls_new_client_ssl).
 */
static SSL_CTX *tls_client_ctx_make(const unsigned char *ca, size_t calen, bool verify,
                                    char *msg, size_t msglen)
{
    char why[160];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    BIO *bio = NULL;
    int nca = 0;

    ERR_clear_error();
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1
        || SSL_CTX_set_alpn_protos(ctx, tls_alpn_http11, sizeof(tls_alpn_http11) - 1) != 0) {
        tls__ossl_reason(why, sizeof(why));
        snprintf(msg, msglen, "cannot create upstream TLS context: %s", why);
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    /* the upstream module keeps sessions itself (per endpoint); no internal cache */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (!verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (!ca || calen == 0) {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            tls__ossl_reason(why, sizeof(why));
            snprintf(msg, msglen, "cannot load the system CA store: %s", why);
            goto fail;
        }
        return ctx;
    }
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    if (!(bio = BIO_new_mem_buf(ca, (int)calen)))
        goto oom;
    for (X509 *x; (x = PEM_read_bio_X509(bio, NULL, tls_no_password, NULL)) != NULL; X509_free(x)) {
        if (X509_STORE_add_cert(st, x) != 1) {
            X509_free(x);
            goto oom;
        }
        nca++;
    }
    ERR_clear_error();
    BIO_free(bio);
    if (nca == 0) {
        snprintf(msg, msglen, "ca.crt: no PEM certificate found");
        goto fail;
    }
    return ctx;
oom:
    BIO_free(bio);
    snprintf(msg, msglen, "ca.crt: out of memory");
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

/*
 * Contexts are immutable once made, so backends with the same trust share one:
 * a reload with a hundred HTTPS Services would otherwise pay SSL_CTX_new
 * (~0.4 ms on 3.0) a hundred times. Remembered by (verify, SHA-256 of ca);
 * a handful of distinct CA bundles is the norm, the list is capped anyway.
 */
#define TLS_CLIENT_CACHE_MAX 64

struct tls_client_memo {
    unsigned char digest[32];
    bool verify;
    SSL_CTX *ctx;                       /* one ref held here */
};

static pthread_mutex_t tls_client_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_client_memo tls_client_memo[TLS_CLIENT_CACHE_MAX];
static unsigned tls_client_n, tls_client_next;

/*
 * Client context for backend-protocol HTTPS: TLS 1.2+, ALPN http/1.1; with
 * verify, peers are checked against the PEM bundle ca (a Secret's ca.crt) or
 * the system store when ca is NULL. Returns a reference the caller releases
 * with SSL_CTX_free (it may be shared with other callers: do not change its
 * settings), or NULL with msg set. Loader thread.
 */
SSL_CTX *tls_client_ctx_new(const unsigned char *ca, size_t calen, bool verify, char *msg,
                            size_t msglen)
{
    unsigned char d[32];
    bool keyed = tls_pair_digest(ca, ca ? calen : 0, NULL, 0, d);
    SSL_CTX *ctx = NULL;

    pthread_mutex_lock(&tls_client_mu);
    for (unsigned i = 0; keyed && i < tls_client_n && !ctx; i++)
        if (tls_client_memo[i].verify == verify && memcmp(tls_client_memo[i].digest, d, 32) == 0)
            ctx = tls_client_memo[i].ctx;
    if (ctx) {
        SSL_CTX_up_ref(ctx);
    } else if ((ctx = tls_client_ctx_make(ca, calen, verify, msg, msglen)) && keyed) {
        struct tls_client_memo *m;
        if (tls_client_n < TLS_CLIENT_CACHE_MAX) {
            m = &tls_client_memo[tls_client_n++];
        } else {
            m = &tls_client_memo[tls_client_next++ % TLS_CLIENT_CACHE_MAX];
            SSL_CTX_free(m->ctx);
        }
        memcpy(m->digest, d, 32);
        m->verify = verify;
        m->ctx = ctx;
        SSL_CTX_up_ref(ctx);
    }
    pthread_mutex_unlock(&tls_client_mu);
    return ctx;
}

/*
 * An SSL for one upstream connection: SNI set to sni (unless NULL or an IP
 * literal, which RFC 6066 forbids in SNI), and, when verify_host, the peer
 * certificate must name sni. Returns NULL on allocation failure. Any thread.
 */
SSL *tls_new_client_ssl(SSL_CTX *ctx, const char *sni, bool verify_host)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    if (sni && *sni) {
        unsigned char tmp[16];
        bool ip = inet_pton(AF_INET, sni, tmp) == 1 || inet_pton(AF_INET6, sni, tmp) == 1;
        if (!ip && SSL_set_tlsext_host_name(ssl, sni) != 1)
            goto fail;
        if (verify_host && (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni)
                               : SSL_set1_host(ssl, sni)) != 1)
            goto fail;
    }
    return ssl;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}
