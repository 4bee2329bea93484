/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls_ticket: the process-wide session ticket key ring.
 *
 * Why process-wide: a reload builds new SSL_CTXs, and a client that resumes
 * with a ticket issued before the reload must still be resumed (a reload must
 * not cost every client a full handshake). So the keys live here, outside any
 * snapshot, and every server SSL_CTX gets the same callback.
 *
 * Why rotate: a ticket key that never changes turns forward secrecy off for
 * every resumed session. The current key encrypts new tickets; the previous one
 * still decrypts (and asks the client to take a fresh ticket), so a ticket
 * stays usable for between one and two rotation periods.
 *
 * Threads: the callback runs on workers during handshakes, concurrently. No
 * lock on that path: keys sit in a small array of slots, the current one is
 * `gen % TLS_TK_SLOTS` and the previous one the slot before. A rotation writes
 * the slot *after* the current one, then publishes gen+1 (release). Readers
 * copy the two slots they need and re-check gen; only when it moved by two or
 * more (the slot they copied may have been rewritten) do they copy again.
 * Slots are arrays of atomic words written with release and read with acquire
 * (plain moves on x86), so the check is sound without fences and the race
 * detector has nothing to report: a reader that sees a rewritten word also
 * sees the gen that made it retry.
 * Rotation happens lazily on the handshake path when the current key is older
 * than the period; an atomic_flag lets one thread do it while the others keep
 * using the current key rather than wait.
 */
#include "ingressd/tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tls_int.h"

#define TLS_TK_SLOTS 4

struct tls_tkey {                       /* 80 bytes: a whole number of words */
    unsigned char name[16];             /* sent in the ticket, picks the key on decrypt */
    unsigned char aes[32];              /* AES-256-CBC */
    unsigned char hmac[32];             /* HMAC-SHA256 */
};

#define TLS_TK_WORDS (sizeof(struct tls_tkey) / sizeof(uint64_t))
_Static_assert(sizeof(struct tls_tkey) % sizeof(uint64_t) == 0, "tls_tkey must be whole words");

struct tls_tk_slot {
    _Atomic uint64_t w[TLS_TK_WORDS];  /* a struct tls_tkey, word by word */
};

static struct tls_tk_slot tls_tk_slot[TLS_TK_SLOTS];
static _Atomic uint64_t tls_tk_gen;          /* current = slot[gen % SLOTS] */
static _Atomic uint64_t tls_tk_born_ms;      /* when the current key was made (monotonic) */
static _Atomic uint32_t tls_tk_rotate_ms = TLS_DEFAULT_TICKET_ROTATE_MS;
static atomic_flag tls_tk_writer = ATOMIC_FLAG_INIT;
static pthread_once_t tls_tk_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *tls_tk_aes;               /* fetched once: implicit fetches are slow in 3.0 */
static bool tls_tk_ok;

static uint64_t tls_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int tls_tk_fill(struct tls_tkey *k)
{
    return RAND_bytes(k->name, sizeof(k->name)) == 1 && RAND_bytes(k->aes, sizeof(k->aes)) == 1
                   && RAND_bytes(k->hmac, sizeof(k->hmac)) == 1
               ? 0
               : -1;
}

static void tls_tk_store(struct tls_tk_slot *slot, const struct tls_tkey *k)
{
    uint64_t w[TLS_TK_WORDS];
    memcpy(w, k, sizeof(w));
    for (size_t i = 0; i < TLS_TK_WORDS; i++)
        atomic_store_explicit(&slot->w[i], w[i], memory_order_release);
    OPENSSL_cleanse(w, sizeof(w));
}

static void tls_tk_load(struct tls_tk_slot *slot, struct tls_tkey *k)
{
    uint64_t w[TLS_TK_WORDS];
    for (size_t i = 0; i < TLS_TK_WORDS; i++)
        w[i] = atomic_load_explicit(&slot->w[i], memory_order_acquire);
    memcpy(k, w, sizeof(w));
    OPENSSL_cleanse(w, sizeof(w));
}

static void tls_tk_init(void)
{
    tls_tk_aes = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    /* slot 0 is gen 0's key; the previous slot stays zero and is never matched (see lookup) */
    struct tls_tkey k;
    tls_tk_ok = tls_tk_aes && tls_tk_fill(&k) == 0;
    tls_tk_store(&tls_tk_slot[0], &k);
    OPENSSL_cleanse(&k, sizeof(k));
    atomic_store(&tls_tk_born_ms, tls_now_ms());
}

/* makes a new current key; the old current becomes previous. Any thread; never blocks. */
static void tls_tk_rotate(void)
{
    if (atomic_flag_test_and_set_explicit(&tls_tk_writer, memory_order_acquire))
        return; /* someone else is rotating right now: theirs will do */
    uint64_t g = atomic_load_explicit(&tls_tk_gen, memory_order_relaxed);
    struct tls_tkey k;
    if (tls_tk_fill(&k) == 0) {
        tls_tk_store(&tls_tk_slot[(g + 1) % TLS_TK_SLOTS], &k);
        atomic_store_explicit(&tls_tk_born_ms, tls_now_ms(), memory_order_relaxed);
        atomic_store_explicit(&tls_tk_gen, g + 1, memory_order_release);
    }
    OPENSSL_cleanse(&k, sizeof(k));
    atomic_flag_clear_explicit(&tls_tk_writer, memory_order_release);
}

void tls_ticket_keys_rotate(void)
{
    pthread_once(&tls_tk_once, tls_tk_init);
    tls_tk_rotate();
}

/* copies the current and previous keys; *has_prev is false before the first rotation */
static void tls_tk_read(struct tls_tkey *cur, struct tls_tkey *prev, bool *has_prev)
{
    for (;;) {
        uint64_t g1 = atomic_load_explicit(&tls_tk_gen, memory_order_acquire);
        tls_tk_load(&tls_tk_slot[g1 % TLS_TK_SLOTS], cur);
        *has_prev = g1 > 0;
        if (*has_prev)
            tls_tk_load(&tls_tk_slot[(g1 - 1) % TLS_TK_SLOTS], prev);
        uint64_t g2 = atomic_load_explicit(&tls_tk_gen, memory_order_relaxed);
        if (g2 - g1 < 2)
            return; /* the writer only ever touches slot g2+1, which is neither of ours */
    }
}

static int tls_tk_keys(const struct tls_tkey *k, unsigned char *iv, EVP_CIPHER_CTX *ectx,
                       EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac,
                                                  sizeof(k->hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    if (enc ? EVP_EncryptInit_ex(ectx, tls_tk_aes, NULL, k->aes, iv) != 1
            : EVP_DecryptInit_ex(ectx, tls_tk_aes, NULL, k->aes, iv) != 1)
        return -1;
    return 0;
}

/*
 * OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb).
 * enc=1: pick the current key, write its name and a fresh IV; returns 1.
 * enc=0: find the key by name: 1 = current, 2 = previous (valid, but the client
 * gets a new ticket under the current key), 0 = unknown (full handshake).
 */
static int tls_tk_cb(SSL *s, unsigned char key_name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
    struct tls_tkey cur, prev;
    bool has_prev;
    int rc = -1;
    (void)s;

    if (!tls_tk_ok)
        return enc ? -1 : 0;
    uint64_t age = tls_now_ms() - atomic_load_explicit(&tls_tk_born_ms, memory_order_relaxed);
    uint64_t period = atomic_load_explicit(&tls_tk_rotate_ms, memory_order_relaxed);
    if (age >= period) {
        tls_tk_rotate();
        /* idle for two periods or more: the old current key is too old to be kept as previous */
        if (age >= 2 * period)
            tls_tk_rotate();
    }
    tls_tk_read(&cur, &prev, &has_prev);
    if (enc) {
        int ivlen = EVP_CIPHER_get_iv_length(tls_tk_aes);
        memcpy(key_name, cur.name, sizeof(cur.name));
        if (RAND_bytes(iv, ivlen) == 1 && tls_tk_keys(&cur, iv, ectx, hctx, 1) == 0)
            rc = 1;
    } else if (memcmp(key_name, cur.name, sizeof(cur.name)) == 0) {
        rc = tls_tk_keys(&cur, iv, ectx, hctx, 0) == 0 ? 1 : -1;
    } else if (has_prev && memcmp(key_name, prev.name, sizeof(prev.name)) == 0) {
        rc = tls_tk_keys(&prev, iv, ectx, hctx, 0) == 0 ? 2 : -1;
    } else {
        rc = 0;
    }
    OPENSSL_cleanse(&cur, sizeof(cur));
    OPENSSL_cleanse(&prev, sizeof(prev));
    return rc;
}

int tls__ticket_setup(SSL_CTX *ctx, uint32_t rotate_ms)
{
    pthread_once(&tls_tk_once, tls_tk_init);
    if (!tls_tk_ok)
        return -1;
    if (rotate_ms == 0)
        rotate_ms = TLS_DEFAULT_TICKET_ROTATE_MS;
    /* process-wide: the last loaded configuration sets the period for every store */
    atomic_store_explicit(&tls_tk_rotate_ms, rotate_ms, memory_order_relaxed);
    if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_tk_cb) != 1)
        return -1;
    /* a ticket decrypts for up to two periods; its session must not expire sooner */
    long life = (long)(2ull * rotate_ms / 1000u);
    SSL_CTX_set_timeout(ctx, life < 60 ? 60 : life);
    return 0;
}
