/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls_cache: SSL_CTXs reused from one reload to the next.
 *
 * Why: on OpenSSL 3.0 a Secret costs about 2 ms to turn into a context
 * (the PEM decoders and SSL_CTX_new dominate), so a configuration with a
 * thousand Secrets would spend two seconds of every reload rebuilding
 * contexts for certificates that did not change. Instead each built context
 * is remembered under the SHA-256 of what it was made from (cipher lists,
 * tls.crt, tls.key); the next build takes another reference on it when the
 * digest matches. The Secret's name is not part of the key: two Secrets with
 * the same content may share a context, and renaming a Secret costs nothing.
 *
 * A cached context is shared by several stores, so it must not point at any
 * one of them: its servername callback argument is NULL (the store comes
 * from the SSL's ex_data, see tls.c), and per-store state lives in the
 * store's own base context, which is never cached.
 *
 * Eviction: after each successful build, entries that build did not use are
 * dropped (their contexts live on in older stores for as long as those do).
 * So the cache holds exactly the live configuration's contexts.
 *
 * Threads: builds (loader thread, or main for -t) are serialised by
 * tls_cache_mu, held for a whole tls_store_build. Workers never touch it.
 */
#include "ingressd/tls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ingressd/snap-t.h"
#include "ingressd/str.h"
#include "tls_int.h"

struct tls_cache_ent {
    unsigned char digest[32];           /* SHA-256 of ciphers, suites, crt, key */
    SSL_CTX *ctx;                       /* one ref held by the cache */
    uint64_t gen;                       /* last build that used it */
};

static pthread_mutex_t tls_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_cache_ent **tls_cache;  /* unordered; entries malloc'd so pointers stay put */
static size_t tls_cache_n, tls_cache_cap;
static size_t *tls_cache_idx;           /* open addressing over tls_cache, by digest */
static size_t tls_cache_idx_cap;        /* power of two, 0 = none */
static uint64_t tls_cache_gen;

#define TLS_CACHE_EMPTY ((size_t)-1)

static size_t tls_cache_slot0(const unsigned char *d)
{
    size_t h;
    memcpy(&h, d, sizeof(h)); /* a SHA-256 is already uniformly spread */
    return h & (tls_cache_idx_cap - 1);
}

static void tls_cache_reindex(void)
{
    size_t cap = 16;
    while (cap < tls_cache_n * 2 + 2)
        cap *= 2;
    size_t *idx = malloc(cap * sizeof(*idx));
    if (!idx)
        return; /* keep the old index: lookups still work, only slower to grow */
    for (size_t i = 0; i < cap; i++)
        idx[i] = TLS_CACHE_EMPTY;
    free(tls_cache_idx);
    tls_cache_idx = idx;
    tls_cache_idx_cap = cap;
    for (size_t i = 0; i < tls_cache_n; i++) {
        size_t s = tls_cache_slot0(tls_cache[i]->digest);
        while (tls_cache_idx[s] != TLS_CACHE_EMPTY)
            s = (s + 1) & (cap - 1);
        tls_cache_idx[s] = i;
    }
}

static struct tls_cache_ent *tls_cache_find(const unsigned char *d)
{
    if (!tls_cache_idx_cap)
        return NULL;
    for (size_t s = tls_cache_slot0(d);; s = (s + 1) & (tls_cache_idx_cap - 1)) {
        size_t i = tls_cache_idx[s];
        if (i == TLS_CACHE_EMPTY)
            return NULL;
        if (memcmp(tls_cache[i]->digest, d, sizeof(tls_cache[i]->digest)) == 0)
            return tls_cache[i];
    }
}

static int tls_cache_add(const unsigned char *d, SSL_CTX *ctx, uint64_t gen)
{
    struct tls_cache_ent *e = malloc(sizeof(*e));
    if (!e)
        return -1;
    if (tls_cache_n == tls_cache_cap) {
        size_t cap = tls_cache_cap ? tls_cache_cap * 2 : 16;
        struct tls_cache_ent **v = realloc(tls_cache, cap * sizeof(*v));
        if (!v) {
            free(e);
            return -1;
        }
        tls_cache = v;
        tls_cache_cap = cap;
    }
    memcpy(e->digest, d, sizeof(e->digest));
    e->ctx = ctx;
    e->gen = gen;
    tls_cache[tls_cache_n++] = e;
    if (tls_cache_n * 2 + 2 > tls_cache_idx_cap)
        tls_cache_reindex();
    else {
        size_t s = tls_cache_slot0(d);
        while (tls_cache_idx[s] != TLS_CACHE_EMPTY)
            s = (s + 1) & (tls_cache_idx_cap - 1);
        tls_cache_idx[s] = tls_cache_n - 1;
    }
    return 0;
}

uint64_t tls__cache_begin(void)
{
    pthread_mutex_lock(&tls_cache_mu);
    return ++tls_cache_gen;
}

void tls__cache_end(uint64_t gen, bool sweep)
{
    if (sweep) {
        size_t k = 0;
        for (size_t i = 0; i < tls_cache_n; i++) {
            if (tls_cache[i]->gen == gen) {
                tls_cache[k++] = tls_cache[i];
            } else {
                SSL_CTX_free(tls_cache[i]->ctx);
                free(tls_cache[i]);
            }
        }
        if (k != tls_cache_n) {
            tls_cache_n = k;
            tls_cache_reindex();
        }
    }
    pthread_mutex_unlock(&tls_cache_mu);
}

static void tls_digest_str(EVP_MD_CTX *md, const char *s)
{
    /* length-prefixed so that ("ab","c") and ("a","bc") differ */
    uint64_t n = s ? strlen(s) + 1 : 0;
    EVP_DigestUpdate(md, &n, sizeof(n));
    if (s)
        EVP_DigestUpdate(md, s, n);
}

/*
 * The context for one Secret's PEMs under conf: from the cache, or built (and
 * cached). Returns a new reference, or NULL with msg set. Caller holds the
 * cache (between tls__cache_begin and tls__cache_end).
 */
SSL_CTX *tls__cache_get(const struct tls_cert_spec *sp, const struct snap_tls_conf *conf,
                        uint64_t gen, char *msg, size_t msglen)
{
    unsigned char d[32];
    unsigned int dlen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    if (ok) {
        tls_digest_str(md, conf ? conf->ciphers : NULL);
        tls_digest_str(md, conf ? conf->ciphersuites : NULL);
        uint64_t n = sp->crtlen;
        EVP_DigestUpdate(md, &n, sizeof(n));
        EVP_DigestUpdate(md, sp->crt, sp->crtlen);
        n = sp->keylen;
        EVP_DigestUpdate(md, &n, sizeof(n));
        EVP_DigestUpdate(md, sp->key, sp->keylen);
        ok = EVP_DigestFinal_ex(md, d, &dlen) == 1 && dlen == sizeof(d);
    }
    EVP_MD_CTX_free(md);

    struct tls_cache_ent *e = ok ? tls_cache_find(d) : NULL;
    if (e) {
        e->gen = gen;
        SSL_CTX_up_ref(e->ctx);
        return e->ctx;
    }
    struct tls_pem p = { 0 };
    if (tls__pem_load_shared(sp->crt, sp->crtlen, sp->key, sp->keylen, &p, msg, msglen) < 0)
        return NULL;
    SSL_CTX *ctx = tls__server_ctx_new(NULL, conf, p.leaf, p.chain, p.key, msg, msglen);
    tls__pem_clear(&p);
    if (ctx && ok && tls_cache_add(d, ctx, gen) == 0)
        SSL_CTX_up_ref(ctx); /* one for the cache, one for the caller */
    return ctx;
}
