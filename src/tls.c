/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls: TLS termination — which certificate a connection gets, and which Host
 * names it may then ask for.
 *
 * A tls_store is one snapshot's view of certificates. The loader builds it
 * (snap_load -> tls_store_build) from the Ingress spec.tls[] sections and
 * their kubernetes.io/tls Secrets:
 *
 *   specs[i] {secret, hosts[], crt, key} --(dedupe by secret)--> ents[k] {SSL_CTX, names[]}
 *   hosts "a.foo.com"  -> exact map  --\
 *   hosts "*.foo.com"  -> wild map   ---+--> ents[k]      (first spec naming a host wins)
 *   no SNI / no match  -> ents[def]     (spec.defaultCertificate, or the process's
 *                                        self-signed ingressd-default certificate)
 *   every SSL starts on  base           (this store's own context, default certificate)
 *
 * One SSL_CTX per distinct Secret: ten Ingresses sharing a wildcard Secret
 * share one context, and an unchanged Secret keeps its context across
 * reloads (tls_cache.c: building one costs ~2 ms on OpenSSL 3.0). Every
 * context is configured identically (TLS 1.2-1.3, ciphers from ProxyConfig,
 * ALPN http/1.1, no renegotiation, tickets from the process-wide key ring in
 * tls_ticket.c), because OpenSSL reads some settings from the initial
 * context and others from the one SNI switched to. Only base is per store: it
 * carries the servername callback's argument, so shared contexts never point
 * at a store.
 *
 * Handshake (worker thread): tls_new_server_ssl() creates the SSL on base and
 * stores a counted reference to the store in the SSL's ex_data. At
 * ClientHello the servername callback looks the SNI up (exact, then one-label
 * wildcard, then default), SSL_set_SSL_CTX()s to the winner and records the
 * winner's index in a second ex_data slot. tls_ssl_covers_host() later reads
 * both to refuse requests whose Host the presented certificate does not name
 * (421: no domain fronting from one tenant's certificate to another tenant's
 * host). Nothing on that path locks or allocates beyond what OpenSSL itself
 * does (SSL_set_SSL_CTX copies the certificate slot, as it does for nginx).
 *
 * Lifetime (the subtle part): the snapshot owns one reference to its store
 * and drops it in tls_store_free(). Each SSL created from the store owns
 * another, dropped by the ex_data free callback inside SSL_free(). So the
 * store — its maps and name lists — lives until the last connection that
 * handshook against it is gone, even when that is long after a reload, and
 * covers_host never reads freed memory. The SSL_CTXs are refcounted by
 * OpenSSL on top of that (each SSL holds its ctx and its session ctx; the
 * store and the cache hold theirs). Session tickets do not depend on the
 * store at all, so a client resumes across reloads.
 *
 * Threads: built on the loader thread, immutable afterwards; read by all
 * workers; the last reference may drop on any thread.
 */
#include "ingressd/tls.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "ingressd/cfg.h"
#include "ingressd/snap-t.h"
#include "ingressd/str.h"
#include "tls_int.h"

#define TLS_NAME_MAX 255                 /* RFC 1035 name length; longer SNI cannot match */

struct tls_ent {                         /* one Secret, one context */
    SSL_CTX *ctx;                        /* one ref; shared with tls_cache and other stores;
                                          * NULL for the generated default (base serves it) */
    char *secret;                        /* "ns/name", or NULL for the generated default */
    char **names;                        /* lowercase names it answers for (SAN/CN + Ingress hosts) */
    size_t nnames, capnames;
};

struct tls_map_slot {
    const char *key;                     /* lowercase, borrowed from an ent's names (or secret) */
    size_t len;
    size_t ent;
};

struct tls_map {                         /* open addressing, linear probing, power-of-two size */
    struct tls_map_slot *v;
    size_t cap, n;
};

struct tls_store {
    _Atomic unsigned refs;               /* snapshot + every live SSL made from it */
    SSL_CTX *base;                       /* every SSL starts here: default certificate, SNI
                                          * callback pointing at this store; never shared */
    struct tls_ent *ents;
    size_t nents, capents;
    size_t def;                          /* index of the default entry */
    struct tls_map exact;                /* "a.foo.com" -> ent */
    struct tls_map wild;                 /* "foo.com" (from "*.foo.com") -> ent */
};

/* ---- ex_data: what an SSL remembers ---- */

static pthread_once_t tls_ex_once = PTHREAD_ONCE_INIT;
static int tls_ex_store = -1;            /* struct tls_store * (counted ref) */
static int tls_ex_ent = -1;              /* chosen entry index + 1 (0 = not chosen yet) */

static void tls_store_release(struct tls_store *ts);

/* runs inside SSL_free(): the connection's reference on its store goes away */
static void tls_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    if (ptr)
        tls_store_release(ptr);
}

static void tls_ex_init(void)
{
    tls_ex_store = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_ex_free);
    tls_ex_ent = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---- the maps ---- */

static void tls_lower(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
}

/* key must already be lowercase; returns the entry or -1 */
static long tls_map_get(const struct tls_map *m, const char *key, size_t len)
{
    if (m->n == 0)
        return -1;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)str_hash(str_make(key, len)) & mask;; i = (i + 1) & mask) {
        const struct tls_map_slot *s = &m->v[i];
        if (!s->key)
            return -1;
        if (s->len == len && memcmp(s->key, key, len) == 0)
            return (long)s->ent;
    }
}

static int tls_map_grow(struct tls_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct tls_map_slot *v = calloc(cap, sizeof(*v));
    if (!v)
        return -1;
    for (size_t j = 0; j < m->cap; j++) {
        if (!m->v[j].key)
            continue;
        size_t i = (size_t)str_hash(str_make(m->v[j].key, m->v[j].len)) & (cap - 1);
        while (v[i].key)
            i = (i + 1) & (cap - 1);
        v[i] = m->v[j];
    }
    free(m->v);
    m->v = v;
    m->cap = cap;
    return 0;
}

/* first writer wins: returns 1 inserted, 0 already present, -1 no memory */
static int tls_map_put(struct tls_map *m, const char *key, size_t len, size_t ent)
{
    if (tls_map_get(m, key, len) >= 0)
        return 0;
    if ((m->n + 1) * 4 > m->cap * 3 && tls_map_grow(m) < 0)   /* load <= 0.75 */
        return -1;
    size_t mask = m->cap - 1, i = (size_t)str_hash(str_make(key, len)) & mask;
    while (m->v[i].key)
        i = (i + 1) & mask;
    m->v[i] = (struct tls_map_slot){ key, len, ent };
    m->n++;
    return 1;
}

/* SNI / Host (lowercase, no port, no trailing dot) -> entry, exact before one-label wildcard */
static long tls_store_lookup(const struct tls_store *ts, const char *name, size_t len)
{
    long e = tls_map_get(&ts->exact, name, len);
    if (e >= 0)
        return e;
    const char *dot = memchr(name, '.', len);
    if (!dot || dot == name)
        return -1;
    return tls_map_get(&ts->wild, dot + 1, len - (size_t)(dot + 1 - name));
}

/* "*.foo.com" matches "a.foo.com", not "foo.com" nor "a.b.foo.com" (RFC 6125 6.4.3) */
static bool tls_name_match(const char *pat, size_t plen, const char *host, size_t hlen)
{
    if (plen > 2 && pat[0] == '*' && pat[1] == '.') {
        const char *dot = memchr(host, '.', hlen);
        if (!dot || dot == host)
            return false;
        size_t rest = hlen - (size_t)(dot + 1 - host);
        return rest == plen - 2 && memcmp(dot + 1, pat + 2, rest) == 0;
    }
    return plen == hlen && memcmp(pat, host, hlen) == 0;
}

/* ---- entries ---- */

static int tls_ent_add_name(void *arg, const char *name, size_t len)
{
    struct tls_ent *e = arg;
    for (size_t i = 0; i < e->nnames; i++)
        if (strlen(e->names[i]) == len && strncasecmp(e->names[i], name, len) == 0)
            return 0;
    if (e->nnames == e->capnames) {
        size_t cap = e->capnames ? e->capnames * 2 : 4;
        char **v = realloc(e->names, cap * sizeof(*v));
        if (!v)
            return -1;
        e->names = v;
        e->capnames = cap;
    }
    char *s = malloc(len + 1);
    if (!s)
        return -1;
    tls_lower(s, name, len);
    s[len] = '\0';
    e->names[e->nnames++] = s;
    return 0;
}

static void tls_ent_clear(struct tls_ent *e)
{
    SSL_CTX_free(e->ctx);
    free(e->secret);
    for (size_t i = 0; i < e->nnames; i++)
        free(e->names[i]);
    free(e->names);
}

static void tls_store_destroy(struct tls_store *ts)
{
    for (size_t i = 0; i < ts->nents; i++)
        tls_ent_clear(&ts->ents[i]);
    SSL_CTX_free(ts->base);
    free(ts->ents);
    free(ts->exact.v);
    free(ts->wild.v);
    free(ts);
}

static void tls_store_release(struct tls_store *ts)
{
    if (ts && atomic_fetch_sub_explicit(&ts->refs, 1, memory_order_acq_rel) == 1)
        tls_store_destroy(ts);
}

/* ---- contexts ---- */

static const unsigned char tls_alpn_http11[] = "\x08http/1.1";

/* we speak HTTP/1.1 only; a client offering just h2 gets no ALPN rather than an alert */
static int tls_alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *o;
    (void)s; (void)arg;
    if (SSL_select_next_proto(&o, outlen, tls_alpn_http11, sizeof(tls_alpn_http11) - 1, in, inlen)
        != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

static int tls_sni_cb(SSL *ssl, int *al, void *arg)
{
    struct tls_store *ts = SSL_get_ex_data(ssl, tls_ex_store);
    char buf[TLS_NAME_MAX + 1];
    long e = -1;
    (void)al;

    if (!ts) {
        /* an SSL made with SSL_new(tls_store_server_ctx()) instead of tls_new_server_ssl():
         * adopt the store now, valid because the caller still holds its snapshot. Only
         * base contexts carry the argument; shared ones see the store in ex_data. */
        if (!arg)
            return SSL_TLSEXT_ERR_OK;
        ts = arg;
        atomic_fetch_add_explicit(&ts->refs, 1, memory_order_relaxed);
        SSL_set_ex_data(ssl, tls_ex_store, ts);
    }
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (sni) {
        size_t n = strlen(sni);
        if (n > 0 && sni[n - 1] == '.')
            n--;
        if (n > 0 && n <= TLS_NAME_MAX) {
            tls_lower(buf, sni, n);
            e = tls_store_lookup(ts, buf, n);
        }
    }
    if (e < 0)
        e = (long)ts->def;
    SSL_set_ex_data(ssl, tls_ex_ent, (void *)(uintptr_t)(e + 1));
    /* the default certificate is what base already presents */
    SSL_CTX *to = (size_t)e == ts->def ? ts->base : ts->ents[e].ctx;
    if (to != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, to);
    return SSL_TLSEXT_ERR_OK;
}

/*
 * Validates a cipher list (TLS 1.2) and a suite list (TLS 1.3) as ProxyConfig
 * gives them; NULL means the default. 0 ok, -1 with msg naming the bad one.
 */
int tls_check_ciphers(const char *ciphers, const char *suites, char *msg, size_t msglen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int rc = 0;
    if (!ctx) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    if (ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        snprintf(msg, msglen, "no usable TLS 1.2 cipher in \"%s\"", ciphers);
        rc = -1;
    } else if (suites && SSL_CTX_set_ciphersuites(ctx, suites) != 1) {
        snprintf(msg, msglen, "no usable TLS 1.3 cipher suite in \"%s\"", suites);
        rc = -1;
    }
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

/* a server context for one certificate, configured like every other one (tls_int.h) */
SSL_CTX *tls__server_ctx_new(struct tls_store *sni_arg, const struct snap_tls_conf *conf,
                             X509 *leaf, STACK_OF(X509) *chain, EVP_PKEY *key, char *msg,
                             size_t msglen)
{
    char why[160];
    const char *ciphers = conf && conf->ciphers ? conf->ciphers : TLS_MOZ_CIPHERS;
    const char *suites = conf && conf->ciphersuites ? conf->ciphersuites : TLS_MOZ_CIPHERSUITES;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx)
        goto fail;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1
        || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
        goto fail;
    /* a bad list was reported by tls_store_build already; serve the defaults instead */
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1
        && SSL_CTX_set_cipher_list(ctx, TLS_MOZ_CIPHERS) != 1)
        goto fail;
    if (SSL_CTX_set_ciphersuites(ctx, suites) != 1
        && SSL_CTX_set_ciphersuites(ctx, TLS_MOZ_CIPHERSUITES) != 1)
        goto fail;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* ECDHE groups (OpenSSL 3 picks them automatically; name the order we prefer) */
    if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1)
        goto fail;
    SSL_CTX_set_dh_auto(ctx, 1);
    /* resumption is by stateless tickets only: a shared cache would need a lock per
     * handshake and would not survive a reload anyway */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* the same id context everywhere, so SSL_set_SSL_CTX keeps sessions resumable */
    if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ingressd", 8) != 1)
        goto fail;
    SSL_CTX_set_num_tickets(ctx, 1);
    if (tls__ticket_setup(ctx, conf ? conf->ticket_rotate_ms : 0) < 0)
        goto fail;
    /* libevent may hand SSL_write a different buffer on retry; idle keep-alive
     * connections give their 2x16 KiB record buffers back (nginx does the same) */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, NULL);
    SSL_CTX_set_tlsext_servername_callback(ctx, tls_sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, sni_arg);
    if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
        goto fail;
    for (int i = 0; chain && i < sk_X509_num(chain); i++)
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) != 1)
            goto fail;
    if (SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    ERR_clear_error();
    return ctx;
fail:
    tls__ossl_reason(why, sizeof(why));
    snprintf(msg, msglen, "cannot set up TLS context: %s", why);
    SSL_CTX_free(ctx);
    return NULL;
}

static struct tls_ent *tls_ent_new(struct tls_store *ts)
{
    if (ts->nents == ts->capents) {
        size_t cap = ts->capents ? ts->capents * 2 : 8;
        struct tls_ent *v = realloc(ts->ents, cap * sizeof(*v));
        if (!v)
            return NULL;
        ts->ents = v;
        ts->capents = cap;
    }
    struct tls_ent *e = &ts->ents[ts->nents];
    memset(e, 0, sizeof(*e));
    return e;
}

/*
 * Entry for a Secret's PEMs: the one already built for that Secret, or a new
 * one. Returns its index, -1 when the Secret is unusable (reported once; later
 * specs naming the same Secret are skipped silently), -2 on no memory.
 */
static long tls_ent_for(struct tls_store *ts, struct tls_map *bysecret,
                        const struct tls_cert_spec *sp, const struct snap_tls_conf *conf,
                        uint64_t gen, struct cfg_errs *errs)
{
    const char *secret = sp->secret ? sp->secret : "";
    size_t slen = strlen(secret);
    long e = tls_map_get(bysecret, secret, slen);
    if (e >= 0)
        return e == LONG_MAX ? -1 : e; /* LONG_MAX marks "failed before" */

    char msg[256];
    struct tls_ent *ent = tls_ent_new(ts);
    if (!ent)
        return -2;
    if (!(ent->ctx = tls__cache_get(sp, conf, gen, msg, sizeof(msg)))) {
        if (errs) {
            char obj[300];
            snprintf(obj, sizeof(obj), "Secret %s", secret);
            cfg_errs_add(errs, CFG_ERROR, sp->file, sp->line, 0, obj, "%s", msg);
        }
        /* the temporary map may borrow the spec's string: specs outlive the build */
        return tls_map_put(bysecret, secret, slen, (size_t)LONG_MAX) < 0 ? -2 : -1;
    }
    if (!(ent->secret = strdup(secret))
        || tls__cert_names(SSL_CTX_get0_certificate(ent->ctx), tls_ent_add_name, ent) < 0) {
        tls_ent_clear(ent);
        return -2;
    }
    ts->nents++;
    if (tls_map_put(bysecret, ent->secret, slen, ts->nents - 1) < 0)
        return -2;
    return (long)(ts->nents - 1);
}

/* maps one Ingress TLS host ("a.foo.com" or "*.foo.com") to entry e, first spec wins */
static int tls_store_map_host(struct tls_store *ts, size_t e, const char *host)
{
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '.')
        n--;
    if (n == 0 || n > TLS_NAME_MAX)
        return 0;
    /* the host becomes one of the entry's names: the map borrows that lowercase copy */
    struct tls_ent *ent = &ts->ents[e];
    if (tls_ent_add_name(ent, host, n) < 0)
        return -1;
    const char *key = NULL;
    for (size_t i = 0; i < ent->nnames && !key; i++)
        if (strlen(ent->names[i]) == n && strncasecmp(ent->names[i], host, n) == 0)
            key = ent->names[i];
    if (!key)
        return -1; /* cannot happen: tls_ent_add_name just stored it */
    if (n > 2 && key[0] == '*' && key[1] == '.')
        return tls_map_put(&ts->wild, key + 2, n - 2, e) < 0 ? -1 : 0;
    return tls_map_put(&ts->exact, key, n, e) < 0 ? -1 : 0;
}

/*
 * Builds the store for one snapshot (loader thread). specs come from the
 * Ingresses' spec.tls[] in a stable order (the first to claim a host keeps
 * it, as ingress-nginx's oldest-wins); def is spec.defaultCertificate's Secret
 * or NULL for the process's self-signed certificate. A spec whose Secret does
 * not parse or whose key does not match is reported to errs (object "Secret
 * ns/name", at spec->file:line) and left out; its hosts fall to the default.
 * Validity dates are not checked here (tls_check_pair decides, so that
 * allow-expired works). A bad cipher list in conf is reported and the
 * defaults used. Returns NULL only when OpenSSL or memory fails.
 */
struct tls_store *tls_store_build(const struct tls_cert_spec *specs, size_t n,
                                  const struct tls_cert_spec *def,
                                  const struct snap_tls_conf *conf, struct cfg_errs *errs)
{
    struct tls_store *ts = calloc(1, sizeof(*ts));
    struct tls_map bysecret = { 0 };
    char msg[256];
    long *entof = NULL;

    uint64_t gen = tls__cache_begin();

    pthread_once(&tls_ex_once, tls_ex_init);
    if (!ts || tls_ex_store < 0 || tls_ex_ent < 0)
        goto fail;
    atomic_init(&ts->refs, 1);
    /* (a throwaway SSL_CTX costs ~0.4 ms: only when ProxyConfig names lists) */
    if (conf && (conf->ciphers || conf->ciphersuites)
        && tls_check_ciphers(conf->ciphers, conf->ciphersuites, msg, sizeof(msg)) < 0 && errs)
        cfg_errs_add(errs, CFG_ERROR, NULL, 0, 0, "ProxyConfig", "%s (using the defaults)", msg);

    if (n && !(entof = calloc(n, sizeof(*entof))))
        goto fail;
    for (size_t i = 0; i < n; i++)
        if ((entof[i] = tls_ent_for(ts, &bysecret, &specs[i], conf, gen, errs)) == -2)
            goto fail;
    /* explicit hosts first, in spec order; then, for specs without hosts, the names
     * in their certificates (an Ingress tls entry with no hosts serves its cert's names) */
    for (size_t i = 0; i < n; i++)
        for (size_t h = 0; entof[i] >= 0 && h < specs[i].nhosts; h++)
            if (specs[i].hosts[h] && tls_store_map_host(ts, (size_t)entof[i], specs[i].hosts[h]) < 0)
                goto fail;
    for (size_t i = 0; i < n; i++) {
        if (entof[i] < 0 || specs[i].nhosts > 0)
            continue;
        struct tls_ent *ent = &ts->ents[entof[i]];
        for (size_t k = 0, nn = ent->nnames; k < nn; k++) {
            const char *nm = ent->names[k];
            size_t len = strlen(nm);
            int r = len > 2 && nm[0] == '*' && nm[1] == '.'
                        ? tls_map_put(&ts->wild, nm + 2, len - 2, (size_t)entof[i])
                        : tls_map_put(&ts->exact, nm, len, (size_t)entof[i]);
            if (r < 0)
                goto fail;
        }
    }

    long d = -1;
    if (def) {
        d = tls_ent_for(ts, &bysecret, def, conf, gen, errs);
        if (d == -2)
            goto fail;
    }
    X509 *x;
    EVP_PKEY *k;
    STACK_OF(X509) *chain = NULL;
    if (d < 0) {
        /* the generated certificate: an entry with no names and no context of its own */
        if (!tls_ent_new(ts) || tls__selfsigned(&x, &k) < 0)
            goto fail;
        d = (long)ts->nents++;
    } else {
        SSL_CTX *dc = ts->ents[d].ctx;
        x = SSL_CTX_get0_certificate(dc);
        k = SSL_CTX_get0_privatekey(dc);
        SSL_CTX_get0_chain_certs(dc, &chain);
    }
    ts->def = (size_t)d;
    if (!(ts->base = tls__server_ctx_new(ts, conf, x, chain, k, msg, sizeof(msg))))
        goto fail;
    tls__cache_end(gen, true);
    free(entof);
    free(bysecret.v);
    return ts;
fail:
    tls__cache_end(gen, false);
    free(entof);
    free(bysecret.v);
    if (ts)
        tls_store_destroy(ts);
    ERR_clear_error();
    return NULL;
}

/* drops the snapshot's reference; connections still using the store keep it alive */
void tls_store_free(struct tls_store *ts)
{
    tls_store_release(ts);
}

SSL_CTX *tls_store_server_ctx(struct tls_store *ts)
{
    return ts ? ts->base : NULL;
}

/*
 * A server SSL for an accepted connection (worker thread). It holds a
 * reference on ts until SSL_free, so the store may be freed by a reload while
 * the handshake or the connection is still going. NULL on no memory.
 */
SSL *tls_new_server_ssl(struct tls_store *ts)
{
    if (!ts)
        return NULL;
    SSL *ssl = SSL_new(ts->base);
    if (!ssl)
        return NULL;
    atomic_fetch_add_explicit(&ts->refs, 1, memory_order_relaxed);
    if (SSL_set_ex_data(ssl, tls_ex_store, ts) != 1) {
        tls_store_release(ts);
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

/*
 * True when host (a Host header or :authority: optional port, any case) may
 * be served on this connection: the certificate presented names it (SAN DNS,
 * "*.x" matching one label, or a host the Ingress mapped to that Secret). On
 * the default certificate, any host no other certificate claims is fine too:
 * a host without TLS configuration is not another tenant's. Worker thread.
 */
bool tls_ssl_covers_host(SSL *ssl, const char *host, size_t hostlen)
{
    struct tls_store *ts = ssl ? SSL_get_ex_data(ssl, tls_ex_store) : NULL;
    char buf[TLS_NAME_MAX + 1];
    size_t n = hostlen;

    if (!ts || !host)
        return false; /* not our SSL: fail closed */
    if (n > 0 && host[0] == '[') {
        const char *rb = memchr(host, ']', n);
        n = rb ? (size_t)(rb + 1 - host) : n;
    } else {
        const char *colon = memchr(host, ':', n);
        if (colon)
            n = (size_t)(colon - host);
    }
    if (n > 0 && host[n - 1] == '.')
        n--;
    if (n == 0 || n > TLS_NAME_MAX)
        return false;
    tls_lower(buf, host, n);

    uintptr_t chosen = (uintptr_t)SSL_get_ex_data(ssl, tls_ex_ent);
    size_t e = chosen ? (size_t)chosen - 1 : ts->def;
    const struct tls_ent *ent = &ts->ents[e];
    for (size_t i = 0; i < ent->nnames; i++)
        if (tls_name_match(ent->names[i], strlen(ent->names[i]), buf, n))
            return true;
    if (e != ts->def)
        return false;
    long owner = tls_store_lookup(ts, buf, n);
    return owner < 0 || (size_t)owner == ts->def;
}

/* which Secret the connection's certificate came from ("ns/name"), NULL for the generated one */
const char *tls_ssl_secret(SSL *ssl)
{
    struct tls_store *ts = ssl ? SSL_get_ex_data(ssl, tls_ex_store) : NULL;
    if (!ts)
        return NULL;
    uintptr_t chosen = (uintptr_t)SSL_get_ex_data(ssl, tls_ex_ent);
    return ts->ents[chosen ? (size_t)chosen - 1 : ts->def].secret;
}
