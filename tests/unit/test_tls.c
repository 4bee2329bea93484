/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tls: the certificate store through its header. Certificates come from
 * the openssl CLI in a per-test temp dir (what an operator would do), except
 * the out-of-date ones, which the CLI cannot backdate on OpenSSL 3.0: those
 * are made here with X509_gmtime_adj. Handshakes run in memory over BIO pairs,
 * client and server stepped alternately, bounded.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ingressd/cfg.h"
#include "ingressd/snap-t.h"
#include "ingressd/tls.h"

static char dir[64];
static void *owned[64];   /* test buffers, freed in teardown (keeps ASan's leak check quiet) */
static size_t nowned;

static void *own(void *p)
{
    cr_assert_lt(nowned, sizeof(owned) / sizeof(owned[0]));
    return owned[nowned++] = p;
}

struct blob {
    unsigned char *p;
    size_t n;
};

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "command failed: %s", cmd);
}

/* self-signed EC P-256 certificate for cn with SAN san (e.g. "DNS:a.example.com") */
static void gen(const char *name, const char *cn, const char *san)
{
    sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout %s.key -out %s.crt -days 30 -subj '/CN=%s' -addext 'subjectAltName=%s' 2>/dev/null",
       dir, name, name, cn, san);
}

static struct blob slurp(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    struct blob b = { own(malloc(65536)), 0 };
    b.n = fread(b.p, 1, 65536, f);
    fclose(f);
    return b;
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ingressd-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    gen("a", "a.example.com", "DNS:a.example.com");
    gen("w", "wild.example.com", "DNS:*.example.com");
    gen("d", "default.example.net", "DNS:default.example.net");
    gen("b", "b.example.org", "DNS:b.example.org,DNS:www.b.example.org");
    /* a CA and a leaf it signed, for chains and upstream verification */
    sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
       "-out ca.crt -days 30 -subj '/CN=test CA' 2>/dev/null && "
       "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key "
       "-out leaf.csr -subj '/CN=up.example.com' 2>/dev/null && "
       "printf 'subjectAltName=DNS:up.example.com\\n' > ext.cnf && "
       "openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 "
       "-extfile ext.cnf -out leaf.crt 2>/dev/null && cat leaf.crt ca.crt > chain.crt && cp leaf.key chain.key", dir);
}

static void teardown(void)
{
    while (nowned)
        free(owned[--nowned]);
    if (dir[0])
        sh("rm -rf %s", dir);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 30);

/* a certificate made in C, valid from now+nb_days to now+na_days (both may be negative) */
static void gen_dated(long nb_days, long na_days, struct blob *crt, struct blob *key)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    cr_assert(k && x);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"old.example.com", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), nb_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), na_days * 86400);
    X509_set_pubkey(x, k);
    cr_assert(X509_sign(x, k, EVP_sha256()) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    crt->p = own(malloc((size_t)n));
    memcpy(crt->p, p, (size_t)n);
    crt->n = (size_t)n;
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    n = BIO_get_mem_data(b, &p);
    key->p = own(malloc((size_t)n));
    memcpy(key->p, p, (size_t)n);
    key->n = (size_t)n;
    BIO_free(b);
    X509_free(x);
    EVP_PKEY_free(k);
}

/* ---- tls_check_pair ---- */

Test(tls, check_pair_accepts_matching_pair_and_chain)
{
    char msg[256];
    struct blob c = slurp("a.crt"), k = slurp("a.key");
    cr_assert_eq(tls_check_pair(c.p, c.n, k.p, k.n, false, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_str_empty(msg);
    struct blob cc = slurp("chain.crt"), lk = slurp("leaf.key");
    cr_assert_eq(tls_check_pair(cc.p, cc.n, lk.p, lk.n, false, msg, sizeof(msg)), 0, "%s", msg);
}

Test(tls, check_pair_rejects_mismatch_garbage_and_missing)
{
    char msg[256];
    struct blob c = slurp("a.crt"), k = slurp("b.key");
    cr_assert_lt(tls_check_pair(c.p, c.n, k.p, k.n, false, msg, sizeof(msg)), 0);
    cr_assert_str_eq(msg, "tls.key does not match tls.crt");

    const unsigned char junk[] = "hello, I am not a certificate";
    cr_assert_lt(tls_check_pair(junk, sizeof(junk) - 1, k.p, k.n, false, msg, sizeof(msg)), 0);
    cr_assert_str_eq(msg, "tls.crt: no PEM certificate found");

    /* a PEM header around garbage */
    const unsigned char broken[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    cr_assert_lt(tls_check_pair(broken, sizeof(broken) - 1, k.p, k.n, false, msg, sizeof(msg)), 0);
    cr_assert(strncmp(msg, "tls.crt: ", 9) == 0, "%s", msg);

    cr_assert_lt(tls_check_pair(c.p, c.n, junk, sizeof(junk) - 1, false, msg, sizeof(msg)), 0);
    cr_assert_str_eq(msg, "tls.key: no PEM private key found");
    cr_assert_lt(tls_check_pair(c.p, c.n, NULL, 0, false, msg, sizeof(msg)), 0);
    cr_assert_lt(tls_check_pair(NULL, 0, k.p, k.n, false, msg, sizeof(msg)), 0);
    /* nothing left on the error queue for the next caller */
    cr_assert_eq(ERR_peek_error(), 0);
}

Test(tls, check_pair_expired_is_error_unless_allowed)
{
    char msg[256];
    struct blob c, k;
    gen_dated(-10, -1, &c, &k);
    cr_assert_lt(tls_check_pair(c.p, c.n, k.p, k.n, false, msg, sizeof(msg)), 0);
    cr_assert(strncmp(msg, "tls.crt: certificate expired on ", 32) == 0, "%s", msg);
    cr_assert_eq(strlen(msg), 32 + 20, "%s", msg); /* 2024-01-01T00:00:00Z */
    cr_assert_eq(msg[32 + 19], 'Z');
    cr_assert_eq(tls_check_pair(c.p, c.n, k.p, k.n, true, msg, sizeof(msg)), 0);
    cr_assert(strncmp(msg, "tls.crt: certificate expired on ", 32) == 0, "warning text kept: %s", msg);

    gen_dated(2, 10, &c, &k);
    cr_assert_lt(tls_check_pair(c.p, c.n, k.p, k.n, false, msg, sizeof(msg)), 0);
    cr_assert(strncmp(msg, "tls.crt: certificate is not valid before ", 41) == 0, "%s", msg);
}

Test(tls, check_ciphers)
{
    char msg[256];
    cr_assert_eq(tls_check_ciphers(NULL, NULL, msg, sizeof(msg)), 0);
    cr_assert_eq(tls_check_ciphers("ECDHE-RSA-AES128-GCM-SHA256", "TLS_AES_128_GCM_SHA256", msg,
                                   sizeof(msg)), 0);
    cr_assert_lt(tls_check_ciphers("NOPE-CIPHER", NULL, msg, sizeof(msg)), 0);
    cr_assert(strstr(msg, "NOPE-CIPHER"), "%s", msg);
    cr_assert_lt(tls_check_ciphers(NULL, "TLS_NOPE", msg, sizeof(msg)), 0);
}

/* ---- store helpers ---- */

struct fixture {
    struct blob crt[8], key[8];
    const char *hosts[8][4];
    struct tls_cert_spec specs[8];
    struct tls_cert_spec def;
    size_t n;
};

static void add_spec(struct fixture *f, const char *secret, const char *file, const char *h0,
                     const char *h1)
{
    size_t i = f->n++;
    char name[64];
    snprintf(name, sizeof(name), "%s.crt", file);
    f->crt[i] = slurp(name);
    snprintf(name, sizeof(name), "%s.key", file);
    f->key[i] = slurp(name);
    f->hosts[i][0] = h0;
    f->hosts[i][1] = h1;
    f->specs[i] = (struct tls_cert_spec){ .secret = secret, .hosts = f->hosts[i],
                                          .nhosts = h1 ? 2 : h0 ? 1 : 0,
                                          .crt = f->crt[i].p, .crtlen = f->crt[i].n,
                                          .key = f->key[i].p, .keylen = f->key[i].n,
                                          .file = "test.yaml", .line = (unsigned)(10 + i) };
}

static struct tls_store *build(struct fixture *f, bool with_def)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct snap_tls_conf conf = { .ticket_rotate_ms = 3600000 };
    if (with_def) {
        struct blob c = slurp("d.crt"), k = slurp("d.key");
        f->def = (struct tls_cert_spec){ .secret = "default/default-tls", .crt = c.p,
                                         .crtlen = c.n, .key = k.p, .keylen = k.n };
    }
    struct tls_store *ts = tls_store_build(f->specs, f->n, with_def ? &f->def : NULL, &conf, &errs);
    cr_assert_not_null(ts);
    cr_assert_eq(errs.nerrors, 0);
    cfg_errs_free(&errs);
    return ts;
}

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(c);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    return c;
}

/* steps both ends until both finished or one fails; true when the handshake completed */
static bool handshake(SSL *c, SSL *s)
{
    BIO *cb, *sb;
    cr_assert_eq(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    bool cdone = false, sdone = false;
    for (int i = 0; i < 50 && !(cdone && sdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(c);
            if (r == 1)
                cdone = true;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ
                     && SSL_get_error(c, r) != SSL_ERROR_WANT_WRITE)
                return false;
        }
        if (!sdone) {
            int r = SSL_do_handshake(s);
            if (r == 1)
                sdone = true;
            else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ
                     && SSL_get_error(s, r) != SSL_ERROR_WANT_WRITE)
                return false;
        }
    }
    if (!(cdone && sdone))
        return false;
    /* TLS 1.3 tickets arrive after the handshake: move a byte so the client reads them */
    char buf[4];
    cr_assert_eq(SSL_write(s, "x", 1), 1);
    cr_assert_eq(SSL_read(c, buf, sizeof(buf)), 1);
    return true;
}

static void peer_cn(SSL *c, char *buf, size_t len)
{
    X509 *x = SSL_get0_peer_certificate(c);
    cr_assert_not_null(x);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)len);
}

/* handshake with sni (NULL: none); returns server SSL, writes the presented CN */
static SSL *connect_sni(struct tls_store *ts, SSL_CTX *cctx, const char *sni, char *cn, size_t cnlen,
                        SSL **client_out)
{
    SSL *s = tls_new_server_ssl(ts);
    SSL *c = SSL_new(cctx);
    cr_assert(s && c);
    if (sni)
        SSL_set_tlsext_host_name(c, sni);
    cr_assert(handshake(c, s), "handshake for %s", sni ? sni : "(no sni)");
    peer_cn(c, cn, cnlen);
    if (client_out)
        *client_out = c;
    else
        SSL_free(c);
    return s;
}

/* ---- SNI and names ---- */

Test(tls, sni_exact_then_wildcard_then_default)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    add_spec(&f, "shop/wild-tls", "w", "*.example.com", NULL);
    add_spec(&f, "org/b-tls", "b", "b.example.org", "www.b.example.org");
    struct tls_store *ts = build(&f, true);
    SSL_CTX *cctx = client_ctx();
    char cn[128];
    SSL *s;

    s = connect_sni(ts, cctx, "a.example.com", cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "a.example.com");
    cr_assert_str_eq(tls_ssl_secret(s), "shop/a-tls");
    SSL_free(s);
    s = connect_sni(ts, cctx, "A.Example.COM.", cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "a.example.com", "SNI is case-insensitive, trailing dot ignored");
    SSL_free(s);
    s = connect_sni(ts, cctx, "x.example.com", cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "wild.example.com");
    SSL_free(s);
    s = connect_sni(ts, cctx, "x.y.example.com", cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "default.example.net", "wildcard covers one label only");
    SSL_free(s);
    s = connect_sni(ts, cctx, "example.com", cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "default.example.net");
    SSL_free(s);
    s = connect_sni(ts, cctx, "www.b.example.org", cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "b.example.org");
    SSL_free(s);
    s = connect_sni(ts, cctx, NULL, cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "default.example.net");
    cr_assert_str_eq(tls_ssl_secret(s), "default/default-tls");
    SSL_free(s);
    SSL_CTX_free(cctx);
    tls_store_free(ts);
}

Test(tls, one_context_per_secret_and_spec_without_hosts_uses_cert_names)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    add_spec(&f, "shop/a-tls", "a", "alias.example.com", NULL);   /* same Secret, another Ingress */
    add_spec(&f, "org/b-tls", "b", NULL, NULL);                    /* no hosts: SANs */
    struct tls_store *ts = build(&f, false);
    SSL_CTX *cctx = client_ctx();
    char cn[128];
    SSL *s1 = connect_sni(ts, cctx, "a.example.com", cn, sizeof(cn), NULL);
    SSL *s2 = connect_sni(ts, cctx, "alias.example.com", cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "a.example.com");
    cr_assert_eq(SSL_get_SSL_CTX(s1), SSL_get_SSL_CTX(s2), "shared SSL_CTX");
    cr_assert(tls_ssl_covers_host(s2, "a.example.com", 13));
    cr_assert(tls_ssl_covers_host(s2, "alias.example.com", 17), "Ingress host counts as the cert's");
    SSL *s3 = connect_sni(ts, cctx, "www.b.example.org", cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "b.example.org");
    SSL_free(s1);
    SSL_free(s2);
    SSL_free(s3);
    SSL_CTX_free(cctx);
    tls_store_free(ts);
}

Test(tls, covers_host_refuses_cross_tenant_hosts)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    add_spec(&f, "shop/wild-tls", "w", "*.example.com", NULL);
    add_spec(&f, "org/b-tls", "b", "b.example.org", NULL);
    struct tls_store *ts = build(&f, false);
    SSL_CTX *cctx = client_ctx();
    char cn[128];

    SSL *s = connect_sni(ts, cctx, "a.example.com", cn, sizeof(cn), NULL);
    cr_assert(tls_ssl_covers_host(s, "a.example.com", 13));
    cr_assert(tls_ssl_covers_host(s, "A.EXAMPLE.com:8443", 18), "port stripped, any case");
    cr_assert_not(tls_ssl_covers_host(s, "b.example.org", 13));
    cr_assert_not(tls_ssl_covers_host(s, "x.example.com", 13), "a's cert does not name x");
    cr_assert_not(tls_ssl_covers_host(s, "", 0));
    SSL_free(s);

    s = connect_sni(ts, cctx, "x.example.com", cn, sizeof(cn), NULL);
    cr_assert(tls_ssl_covers_host(s, "x.example.com", 13));
    cr_assert(tls_ssl_covers_host(s, "y.example.com:443", 17));
    cr_assert_not(tls_ssl_covers_host(s, "y.z.example.com", 15), "one label");
    cr_assert_not(tls_ssl_covers_host(s, "example.com", 11));
    cr_assert_not(tls_ssl_covers_host(s, "b.example.org", 13));
    SSL_free(s);

    /* the default certificate: hosts without TLS are fine, other tenants' are not */
    s = connect_sni(ts, cctx, NULL, cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "ingressd-default");
    cr_assert(tls_ssl_covers_host(s, "127.0.0.1:25443", 15));
    cr_assert(tls_ssl_covers_host(s, "plain.example.net", 17));
    cr_assert(tls_ssl_covers_host(s, "[::1]:443", 9));
    cr_assert_not(tls_ssl_covers_host(s, "b.example.org", 13));
    cr_assert_not(tls_ssl_covers_host(s, "q.example.com", 13));
    SSL_free(s);
    SSL_CTX_free(cctx);
    tls_store_free(ts);
}

static void der_of_default(struct tls_store *ts, unsigned char **der, int *len)
{
    SSL_CTX *cctx = client_ctx();
    char cn[128];
    SSL *c;
    SSL *s = connect_sni(ts, cctx, "nothing.invalid", cn, sizeof(cn), &c);
    cr_assert_str_eq(cn, "ingressd-default");
    *der = NULL;
    *len = i2d_X509(SSL_get0_peer_certificate(c), der);
    cr_assert_gt(*len, 0);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
}

Test(tls, self_signed_default_is_generated_once)
{
    struct fixture f = { 0 };
    struct tls_store *t1 = build(&f, false);
    struct tls_store *t2 = build(&f, false);
    unsigned char *d1, *d2;
    int n1, n2;
    der_of_default(t1, &d1, &n1);
    der_of_default(t2, &d2, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(d1, d2, (size_t)n1), 0, "same certificate across rebuilds");
    const unsigned char *p = d1;
    X509 *x = d2i_X509(NULL, &p, n1);
    EVP_PKEY *k = X509_get0_pubkey(x);
    cr_assert_str_eq(EVP_PKEY_get0_type_name(k), "EC");
    char grp[32];
    size_t gl;
    cr_assert(EVP_PKEY_get_utf8_string_param(k, "group", grp, sizeof(grp), &gl));
    cr_assert_str_eq(grp, "prime256v1");
    X509_free(x);
    OPENSSL_free(d1);
    OPENSSL_free(d2);
    tls_store_free(t1);
    tls_store_free(t2);
}

Test(tls, bad_secret_reported_and_its_hosts_fall_to_default)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    add_spec(&f, "shop/broken", "b", "broken.example.com", NULL);
    f.specs[1].key = f.key[0].p;                 /* a's key with b's certificate */
    f.specs[1].keylen = f.key[0].n;
    add_spec(&f, "shop/broken", "b", "again.example.com", NULL);
    f.specs[2].key = f.key[0].p;
    f.specs[2].keylen = f.key[0].n;
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct tls_store *ts = tls_store_build(f.specs, f.n, NULL, NULL, &errs);
    cr_assert_not_null(ts);
    cr_assert_eq(errs.nerrors, 1, "reported once per Secret");
    cr_assert_str_eq(errs.v[0].obj, "Secret shop/broken");
    cr_assert_str_eq(errs.v[0].msg, "tls.key does not match tls.crt");
    cr_assert_eq(errs.v[0].line, 11);
    SSL_CTX *cctx = client_ctx();
    char cn[128];
    SSL *s = connect_sni(ts, cctx, "broken.example.com", cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "ingressd-default");
    SSL_free(s);
    SSL_CTX_free(cctx);
    tls_store_free(ts);
    cfg_errs_free(&errs);
}

Test(tls, bad_cipher_list_is_reported)
{
    struct fixture f = { 0 };
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct snap_tls_conf conf = { .ciphers = "NOPE" };
    struct tls_store *ts = tls_store_build(f.specs, 0, NULL, &conf, &errs);
    cr_assert_not_null(ts, "still serves, with the defaults");
    cr_assert_eq(errs.nerrors, 1);
    cr_assert(strstr(errs.v[0].msg, "NOPE"));
    tls_store_free(ts);
    cfg_errs_free(&errs);
}

/* ---- protocol ---- */

Test(tls, alpn_http11_and_versions)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    struct tls_store *ts = build(&f, false);
    SSL_CTX *cctx = client_ctx();
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_CTX_set_alpn_protos(cctx, alpn, sizeof(alpn) - 1);
    SSL *s = tls_new_server_ssl(ts), *c = SSL_new(cctx);
    SSL_set_tlsext_host_name(c, "a.example.com");
    cr_assert(handshake(c, s));
    const unsigned char *sel;
    unsigned sellen;
    SSL_get0_alpn_selected(c, &sel, &sellen);
    cr_assert_eq(sellen, 8);
    cr_assert_eq(memcmp(sel, "http/1.1", 8), 0);
    cr_assert_eq(SSL_version(c), TLS1_3_VERSION);
    SSL_free(s);
    SSL_free(c);

    /* h2 only: no ALPN rather than a failed handshake */
    static const unsigned char h2[] = "\x02h2";
    SSL_CTX_set_alpn_protos(cctx, h2, sizeof(h2) - 1);
    s = tls_new_server_ssl(ts);
    c = SSL_new(cctx);
    cr_assert(handshake(c, s));
    SSL_get0_alpn_selected(c, &sel, &sellen);
    cr_assert_eq(sellen, 0);
    SSL_free(s);
    SSL_free(c);

    /* TLS 1.2 works */
    SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
    s = tls_new_server_ssl(ts);
    c = SSL_new(cctx);
    cr_assert(handshake(c, s));
    cr_assert_eq(SSL_version(c), TLS1_2_VERSION);
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(cctx);
    tls_store_free(ts);
}

Test(tls, tls11_and_tls10_refused)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    struct tls_store *ts = build(&f, false);
    int vers[] = { TLS1_1_VERSION, TLS1_VERSION };
    for (size_t i = 0; i < 2; i++) {
        SSL_CTX *cctx = client_ctx();
        /* OpenSSL 3 clients need security level 0 to even offer TLS 1.0/1.1 */
        SSL_CTX_set_cipher_list(cctx, "DEFAULT:@SECLEVEL=0");
        SSL_CTX_set_min_proto_version(cctx, vers[i]);
        SSL_CTX_set_max_proto_version(cctx, vers[i]);
        SSL *s = tls_new_server_ssl(ts), *c = SSL_new(cctx);
        SSL_set_tlsext_host_name(c, "a.example.com");
        cr_assert_not(handshake(c, s), "version %x must be refused", vers[i]);
        unsigned long e = ERR_peek_last_error();
        cr_assert_eq(ERR_GET_REASON(e), SSL_R_UNSUPPORTED_PROTOCOL, "%s", ERR_reason_error_string(e));
        ERR_clear_error();
        SSL_free(s);
        SSL_free(c);
        SSL_CTX_free(cctx);
    }
    tls_store_free(ts);
}

/* full handshake, then a resumed one on `second` (a rebuilt store) with the session */
static void resume_across(int version, struct fixture *f, bool rotate_between, bool expect)
{
    struct tls_store *t1 = build(f, false);
    SSL_CTX *cctx = client_ctx();
    SSL_CTX_set_min_proto_version(cctx, version);
    SSL_CTX_set_max_proto_version(cctx, version);
    SSL *s = tls_new_server_ssl(t1), *c = SSL_new(cctx);
    SSL_set_tlsext_host_name(c, "a.example.com");
    cr_assert(handshake(c, s));
    cr_assert_not(SSL_session_reused(c));
    SSL_SESSION *sess = SSL_get1_session(c);
    cr_assert_not_null(sess);
    cr_assert(SSL_SESSION_is_resumable(sess), "a ticket was issued");
    SSL_shutdown(c); /* an unclean close marks the client's session not resumable */
    SSL_free(s);
    SSL_free(c);
    tls_store_free(t1);   /* the reload: old store gone */

    if (rotate_between)
        tls_ticket_keys_rotate();
    struct tls_store *t2 = build(f, false);
    s = tls_new_server_ssl(t2);
    c = SSL_new(cctx);
    SSL_set_tlsext_host_name(c, "a.example.com");
    SSL_set_session(c, sess);
    cr_assert(handshake(c, s));
    cr_assert_eq(SSL_session_reused(c), expect, "resumed (version %x)", version);
    char cn[128];
    peer_cn(c, cn, sizeof(cn));
    cr_assert_str_eq(cn, "a.example.com");
    cr_assert(tls_ssl_covers_host(s, "a.example.com", 13));
    SSL_SESSION_free(sess);
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(cctx);
    tls_store_free(t2);
}

Test(tls, resumption_with_ticket_survives_rebuild)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    add_spec(&f, "shop/wild-tls", "w", "*.example.com", NULL);
    resume_across(TLS1_2_VERSION, &f, false, true);
    resume_across(TLS1_3_VERSION, &f, false, true);
}

Test(tls, resumption_survives_one_rotation_not_two)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    resume_across(TLS1_3_VERSION, &f, true, true);
    /* two rotations: the ticket's key is gone */
    struct tls_store *t1 = build(&f, false);
    SSL_CTX *cctx = client_ctx();
    SSL *s = tls_new_server_ssl(t1), *c = SSL_new(cctx);
    cr_assert(handshake(c, s));
    SSL_SESSION *sess = SSL_get1_session(c);
    SSL_shutdown(c);
    SSL_free(s);
    SSL_free(c);
    tls_ticket_keys_rotate();
    tls_ticket_keys_rotate();
    s = tls_new_server_ssl(t1);
    c = SSL_new(cctx);
    SSL_set_session(c, sess);
    cr_assert(handshake(c, s));
    cr_assert_not(SSL_session_reused(c));
    SSL_SESSION_free(sess);
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(cctx);
    tls_store_free(t1);
}

Test(tls, connection_outlives_its_store)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    struct tls_store *ts = build(&f, false);
    SSL_CTX *cctx = client_ctx();
    SSL *c;
    char cn[128];
    SSL *s = connect_sni(ts, cctx, "a.example.com", cn, sizeof(cn), &c);
    tls_store_free(ts);   /* reload frees the snapshot while the connection lives */
    cr_assert(tls_ssl_covers_host(s, "a.example.com", 13));
    cr_assert_str_eq(tls_ssl_secret(s), "shop/a-tls");
    char buf[8];
    cr_assert_eq(SSL_write(c, "ping", 4), 4);
    cr_assert_eq(SSL_read(s, buf, sizeof(buf)), 4);
    SSL_free(s);   /* last reference: store destroyed here (ASan checks) */
    SSL_free(c);
    SSL_CTX_free(cctx);
}

Test(tls, ssl_new_on_server_ctx_adopts_store)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    struct tls_store *ts = build(&f, false);
    SSL_CTX *cctx = client_ctx();
    SSL *s = SSL_new(tls_store_server_ctx(ts)), *c = SSL_new(cctx);
    SSL_set_accept_state(s);
    SSL_set_tlsext_host_name(c, "a.example.com");
    cr_assert(handshake(c, s));
    tls_store_free(ts);
    cr_assert(tls_ssl_covers_host(s, "a.example.com", 13));
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(cctx);
}

/* ---- upstream ---- */

Test(tls, client_ctx_verifies_with_ca)
{
    struct fixture f = { 0 };
    add_spec(&f, "up/tls", "chain", "up.example.com", NULL);
    f.key[0] = slurp("leaf.key");
    f.specs[0].key = f.key[0].p;
    f.specs[0].keylen = f.key[0].n;
    struct tls_store *ts = build(&f, false);
    struct blob ca = slurp("ca.crt"), other = slurp("a.crt");
    char msg[256];

    SSL_CTX *cctx = tls_client_ctx_new(ca.p, ca.n, true, msg, sizeof(msg));
    cr_assert_not_null(cctx, "%s", msg);
    SSL_CTX *again = tls_client_ctx_new(ca.p, ca.n, true, msg, sizeof(msg));
    cr_assert_eq(again, cctx, "same trust, shared context");
    SSL_CTX_free(again);
    SSL_CTX *noverify = tls_client_ctx_new(ca.p, ca.n, false, msg, sizeof(msg));
    cr_assert_neq(noverify, cctx, "verify is part of the key");
    SSL_CTX_free(noverify);
    SSL *c = tls_new_client_ssl(cctx, "up.example.com", true), *s = tls_new_server_ssl(ts);
    cr_assert(handshake(c, s), "chain verifies against ca.crt");
    cr_assert_eq(SSL_get_verify_result(c), X509_V_OK);
    SSL_free(c);
    SSL_free(s);

    c = tls_new_client_ssl(cctx, "other.example.com", true);
    s = tls_new_server_ssl(ts);
    cr_assert_not(handshake(c, s), "wrong name refused");
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);

    cctx = tls_client_ctx_new(other.p, other.n, true, msg, sizeof(msg));
    c = tls_new_client_ssl(cctx, "up.example.com", true);
    s = tls_new_server_ssl(ts);
    cr_assert_not(handshake(c, s), "unknown CA refused");
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);

    cctx = tls_client_ctx_new(NULL, 0, false, msg, sizeof(msg));
    c = tls_new_client_ssl(cctx, "127.0.0.1", false);
    s = tls_new_server_ssl(ts);
    cr_assert(handshake(c, s), "no verification");
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);

    const unsigned char junk[] = "nope";
    cr_assert_null(tls_client_ctx_new(junk, 4, true, msg, sizeof(msg)));
    cr_assert_str_eq(msg, "ca.crt: no PEM certificate found");
    tls_store_free(ts);
}

/* ---- threads ---- */

struct race {
    pthread_mutex_t mu;              /* stands in for the snapshot ref a worker holds */
    struct tls_store *cur;
    atomic_int stop;
    atomic_int handshakes, resumed, failures;
};

static void *race_worker(void *arg)
{
    struct race *r = arg;
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    SSL_SESSION *sess = NULL;
    for (int i = 0; i < 60; i++) {
        pthread_mutex_lock(&r->mu);
        SSL *s = tls_new_server_ssl(r->cur);
        pthread_mutex_unlock(&r->mu);
        SSL *c = SSL_new(cctx);
        const char *host = i % 2 ? "a.example.com" : "x.example.com";
        SSL_set_tlsext_host_name(c, host);
        if (sess)
            SSL_set_session(c, sess);
        BIO *cb, *sb;
        BIO_new_bio_pair(&cb, 0, &sb, 0);
        SSL_set_bio(c, cb, cb);
        SSL_set_bio(s, sb, sb);
        SSL_set_connect_state(c);
        int cd = 0, sd = 0;
        for (int k = 0; k < 50 && !(cd && sd); k++) {
            if (!cd && SSL_do_handshake(c) == 1)
                cd = 1;
            if (!sd && SSL_do_handshake(s) == 1)
                sd = 1;
        }
        char buf[4];
        if (cd && sd && SSL_write(s, "x", 1) == 1 && SSL_read(c, buf, 1) == 1
            && tls_ssl_covers_host(s, host, 13)) {
            atomic_fetch_add(&r->handshakes, 1);
            if (SSL_session_reused(c))
                atomic_fetch_add(&r->resumed, 1);
            SSL_SESSION_free(sess);
            sess = SSL_get1_session(c);
            SSL_shutdown(c);
        } else {
            atomic_fetch_add(&r->failures, 1);
            ERR_clear_error();
        }
        SSL_free(c);
        SSL_free(s);
    }
    SSL_SESSION_free(sess);
    SSL_CTX_free(cctx);
    return NULL;
}

Test(tls, concurrent_handshakes_while_reloading_and_rotating)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    add_spec(&f, "shop/wild-tls", "w", "*.example.com", NULL);
    struct race r = { .mu = PTHREAD_MUTEX_INITIALIZER, .cur = build(&f, false) };
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, race_worker, &r);
    for (int i = 0; i < 10; i++) {
        struct tls_store *n = build(&f, false), *old;
        pthread_mutex_lock(&r.mu);
        old = r.cur;
        r.cur = n;
        pthread_mutex_unlock(&r.mu);
        tls_store_free(old);
        if (i % 3 == 0)
            tls_ticket_keys_rotate();
        usleep(2000);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    tls_store_free(r.cur);
    cr_assert_eq(atomic_load(&r.failures), 0);
    cr_assert_eq(atomic_load(&r.handshakes), 240);
    cr_assert_gt(atomic_load(&r.resumed), 100, "resumed %d", atomic_load(&r.resumed));
}

/* ---- reuse across reloads ---- */

Test(tls, unchanged_secrets_reuse_their_context_across_builds)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    add_spec(&f, "org/b-tls", "b", "b.example.org", NULL);
    struct tls_store *t1 = build(&f, false);
    SSL_CTX *cctx = client_ctx();
    char cn[128];
    SSL *s1 = connect_sni(t1, cctx, "a.example.com", cn, sizeof(cn), NULL);
    struct tls_store *t2 = build(&f, false);
    SSL *c2;
    SSL *s2 = connect_sni(t2, cctx, "a.example.com", cn, sizeof(cn), &c2);
    cr_assert_eq(SSL_get_SSL_CTX(s1), SSL_get_SSL_CTX(s2), "same PEMs, same context");
    cr_assert_neq(tls_store_server_ctx(t1), tls_store_server_ctx(t2), "base contexts are per store");
    tls_store_free(t1);
    SSL_free(s1);

    /* a changed certificate gets a new context; the old one lives while its SSLs do */
    struct fixture g = { 0 };
    add_spec(&g, "shop/a-tls", "w", "a.example.com", NULL);
    struct tls_store *t3 = build(&g, false);
    SSL *s3 = connect_sni(t3, cctx, "a.example.com", cn, sizeof(cn), NULL);
    cr_assert_str_eq(cn, "wild.example.com");
    cr_assert_neq(SSL_get_SSL_CTX(s2), SSL_get_SSL_CTX(s3));
    tls_store_free(t2);
    char buf[4];
    cr_assert_eq(SSL_write(s2, "x", 1), 1, "a connection on an evicted context still works");
    cr_assert_eq(SSL_read(c2, buf, sizeof(buf)), 1);
    SSL_free(s2);
    SSL_free(c2);
    SSL_free(s3);
    tls_store_free(t3);
    SSL_CTX_free(cctx);
}

Test(tls, check_pair_results_are_remembered_but_dates_rechecked)
{
    char msg[256];
    struct blob c = slurp("a.crt"), k = slurp("a.key"), k2 = slurp("b.key");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tls_check_pair(c.p, c.n, k.p, k.n, false, msg, sizeof(msg)), 0);
        cr_assert_str_empty(msg);
        cr_assert_lt(tls_check_pair(c.p, c.n, k2.p, k2.n, false, msg, sizeof(msg)), 0);
        cr_assert_str_eq(msg, "tls.key does not match tls.crt");
    }
    struct blob oc, ok;
    gen_dated(-10, -1, &oc, &ok);
    for (int i = 0; i < 2; i++) {
        cr_assert_lt(tls_check_pair(oc.p, oc.n, ok.p, ok.n, false, msg, sizeof(msg)), 0);
        cr_assert(strstr(msg, "expired on"), "%s", msg);
        cr_assert_eq(tls_check_pair(oc.p, oc.n, ok.p, ok.n, true, msg, sizeof(msg)), 0);
        cr_assert(strstr(msg, "expired on"), "%s", msg);
    }
}

static int client_hellos;

static void count_client_hellos(int write_p, int version, int content_type, const void *buf,
                                size_t len, SSL *ssl, void *arg)
{
    (void)version; (void)ssl; (void)arg;
    if (write_p && content_type == SSL3_RT_HANDSHAKE && len > 0
        && ((const unsigned char *)buf)[0] == SSL3_MT_CLIENT_HELLO)
        client_hellos++;
}

Test(tls, hello_retry_request_keeps_the_sni_choice)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    struct tls_store *ts = build(&f, false);
    SSL_CTX *cctx = client_ctx();
    /* the client's first key share is for a group we do not take: the server asks
     * again (HRR), and the second ClientHello goes through the callback once more on
     * the context SNI already switched to */
    cr_assert_eq(SSL_CTX_set1_groups_list(cctx, "P-521:X25519"), 1);
    SSL_CTX_set_msg_callback(cctx, count_client_hellos);
    char cn[128];
    SSL *s = connect_sni(ts, cctx, "a.example.com", cn, sizeof(cn), NULL);
    cr_assert_eq(client_hellos, 2, "a HelloRetryRequest happened");
    cr_assert_str_eq(cn, "a.example.com");
    cr_assert(tls_ssl_covers_host(s, "a.example.com", 13));
    cr_assert_str_eq(tls_ssl_secret(s), "shop/a-tls");
    SSL_free(s);
    SSL_CTX_free(cctx);
    tls_store_free(ts);
}

/* one TLS 1.3 session from store ts (full handshake), for resumption checks */
static SSL_SESSION *fresh_session(struct tls_store *ts, SSL_CTX *cctx)
{
    SSL *s = tls_new_server_ssl(ts), *c = SSL_new(cctx);
    cr_assert(handshake(c, s));
    SSL_SESSION *sess = SSL_get1_session(c);
    SSL_shutdown(c);
    SSL_free(s);
    SSL_free(c);
    return sess;
}

static bool resumes(struct tls_store *ts, SSL_CTX *cctx, SSL_SESSION *sess)
{
    SSL *s = tls_new_server_ssl(ts), *c = SSL_new(cctx);
    SSL_set_session(c, sess);
    cr_assert(handshake(c, s));
    bool r = SSL_session_reused(c);
    SSL_shutdown(c);
    SSL_free(s);
    SSL_free(c);
    return r;
}

Test(tls, ticket_keys_rotate_by_time)
{
    struct fixture f = { 0 };
    add_spec(&f, "shop/a-tls", "a", "a.example.com", NULL);
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct snap_tls_conf conf = { .ticket_rotate_ms = 1500 };
    struct tls_store *ts = tls_store_build(f.specs, f.n, NULL, &conf, &errs);
    cr_assert_not_null(ts);
    SSL_CTX *cctx = client_ctx();

    SSL_SESSION *sess = fresh_session(ts, cctx);
    cr_assert(resumes(ts, cctx, sess), "fresh ticket");
    usleep(1700 * 1000);  /* one period: its key is now the previous one, still accepted */
    cr_assert(resumes(ts, cctx, sess), "ticket from the previous key");
    SSL_SESSION_free(sess);

    sess = fresh_session(ts, cctx);
    usleep(3200 * 1000);  /* two idle periods: both keys replaced at once */
    cr_assert_not(resumes(ts, cctx, sess), "ticket older than two periods");
    SSL_SESSION_free(sess);
    SSL_CTX_free(cctx);
    tls_store_free(ts);
    cfg_errs_free(&errs);
}
