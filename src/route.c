/* SPDX-License-Identifier: Apache-2.0 */
/*
 * route: the Kubernetes Ingress router, compiled once per snapshot.
 *
 * Where it sits: the loader thread (snap.c) turns every Ingress rule path into
 * a struct route_spec and calls route_build() inside the snapshot's arena; a
 * worker's px_start() calls route_match(host, path) for each request and gets
 * the struct snap_route to serve, or NULL (the caller then uses the Ingress
 * defaultBackend, else 404). The table is immutable after the build, so any
 * number of workers match concurrently without locks.
 *
 * Structure
 *
 *     route_table
 *       exact map  "foo.com"  --> route_host --+
 *       wild  map  "foo.com"  --> route_host   |   ("*.foo.com" keyed by its suffix)
 *       any                   --> route_host   |   (rules without a host)
 *                                              v
 *       route_host: name, root route_node, regex list (longest pattern first)
 *       route_node: its segment, a sorted array of child nodes, three actions:
 *                   exact (path ends here), exact_slash (ends here + '/'),
 *                   prefix (every path that continues from here)
 *
 *   Host maps are open-addressed (64-bit multiply-xorshift hash, load <= 1/2)
 *   over lowercased names. Paths live in a trie of '/'-separated segments; a
 *   node's children are sorted by (length, first 8 bytes, rest) for binary
 *   search. A lookup walks the request path once, so its cost grows with the
 *   path's length (and the log of a node's fan-out), never with the number of
 *   rules. Regex paths cannot be indexed; they are the only per-rule cost and
 *   only hosts that use them pay it. Lookups are bound by cache misses, not
 *   instructions, so each host is laid out as one block (header, name, then
 *   its trie breadth-first) and a node is 64 bytes.
 *
 * Host precedence
 *
 *   The Host header is lowercased, its port dropped ("foo.com:80", "[::1]:80"
 *   -> "[::1]") and one trailing dot dropped (as nginx does). Candidates are
 *   tried from the most specific: the exact host, then the wildcard whose
 *   suffix follows the first label ("*.foo.com" matches "bar.foo.com", not
 *   "baz.bar.foo.com" nor "foo.com"), then the host-less rules. A level whose
 *   paths do not match the request falls through to the next one, so a
 *   host-less "/" keeps catching what a host rule set leaves unmatched (the
 *   Gateway API's reading of "most specific host first"). Note: ingress-nginx
 *   itself stops at the matched server block and sends unmatched paths to the
 *   default backend; ingressd cascades, by choice, and documents it here.
 *
 * Path precedence (within one host level)
 *
 *   Exact: the whole path, byte for byte and case-sensitive ("/foo/" is not
 *   "/foo"). Prefix: element-wise over '/'-separated segments; the rule's
 *   trailing '/' is ignored ("/foo" and "/foo/" both match "/foo", "/foo/",
 *   "/foo/bar", never "/foobar"; "/" matches everything). Among matches the
 *   longest path wins and Exact beats Prefix at equal length; since an Exact
 *   match is the whole request path it is never shorter than any Prefix match,
 *   so an Exact match always wins. Several Ingresses for one host merge into
 *   one trie; a duplicate (host, type, path) keeps the first definition (Prefix
 *   "/foo" and "/foo/" are the same rule) and warns.
 *
 *   Regex (ImplementationSpecific + use-regex): a PCRE2 pattern compiled with
 *   PCRE2_ANCHORED (it must match at the start of the path, need not reach its
 *   end), JIT-compiled at build, case-sensitive like every Ingress path (write
 *   "(?i)" for ingress-nginx's case-insensitive "~*"). ingress-nginx sorts a
 *   server's regex locations by path length, longest first, and takes the
 *   first match; likewise here the longest rule text wins among the Prefix
 *   candidate and the regexes (Prefix text without its trailing '/', "/" = 1),
 *   a tie goes to the Prefix, and regexes of equal length keep declaration
 *   order. A Prefix match of length L is therefore only challenged by patterns
 *   longer than L, which is where the regex scan stops. Exact still wins,
 *   as nginx's "location =" does. Match limit 1e6 bounds a pathological one.
 *
 * Memory and threads
 *
 *   route_build() runs on the loader thread. Temporary build state (nodes with
 *   sibling lists, a node map keyed by (parent, segment), the host map) lives
 *   in a scratch arena and on the malloc heap, dropped before returning; the
 *   frozen table lives entirely in the caller's arena except the PCRE2 code
 *   objects and the match context, which route_table_free() releases.
 *   route_match() allocates nothing, with one exception: a regex match needs
 *   a pcre2_match_data (room for $0..$9, which route_match_caps() copies out
 *   for rewrite-target), which each thread creates on its first regex match
 *   and keeps (freed at thread exit through a pthread key). The strings of the
 *   specs are copied, the actions are not.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "ingressd/route.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingressd/arena.h"
#include "ingressd/cfg.h"

#define ROUTE_MATCH_LIMIT 1000000u   /* bounds backtracking on a hostile path */
#define ROUTE_REGEX_OPTS PCRE2_ANCHORED
#ifndef ROUTE_PREFETCH_MAX
#define ROUTE_PREFETCH_MAX 16u       /* lines of a host's block fetched at once (1 KiB) */
#endif

/* ---- frozen table (lives in the snapshot arena) ---- */

/*
 * One trie node, one cache line. A node's children are an array of nodes
 * (not pointers), sorted by (len, key, remaining bytes), so the binary search
 * reads the candidates themselves and lands on the child without another hop;
 * `key` holds the segment's first 8 bytes so most comparisons never touch
 * the segment text.
 */
struct route_node {
    const struct route_node *kids;     /* nkids children, sorted (see route_seg_cmp) */
    const char *seg;                   /* this node's segment (not NUL-terminated) */
    uint64_t key;                      /* first min(len, 8) bytes of seg, zero-padded */
    uint32_t len;                      /* segment length */
    uint32_t nkids;
    uint32_t prefix_len;               /* Prefix rule text length, trailing '/' dropped */
    const struct snap_route *exact;    /* Exact rule ending at this node */
    const struct snap_route *exact_slash; /* Exact rule ending at this node plus '/' */
    const struct snap_route *prefix;   /* Prefix rule covering this node and below */
};

struct route_rx {
    pcre2_code *code;                  /* owned by the table's codes[] */
    uint32_t len;                      /* pattern text length: the precedence key */
    bool jit;                          /* pcre2_jit_match() usable */
    const struct snap_route *action;
};

/* A host's block: this header, its name, then its trie breadth-first, adjacent. */
struct route_host {
    const struct route_rx *rx;         /* longest pattern first, then declaration order */
    uint32_t nrx;
    uint32_t len;                      /* of name */
    struct route_node root;            /* the path "/" */
    char name[];                       /* lowercased; a wildcard's suffix after "*." */
};

struct route_slot {
    uint32_t tag;                      /* high half of the host's hash (the low half indexes) */
    uint32_t lines;                    /* 64-byte lines of its contiguous block to prefetch */
    const struct route_host *host;     /* NULL = empty slot */
};

struct route_map {
    struct route_slot *slots;          /* NULL when the map is empty */
    uint32_t mask;
};

struct route_table {
    struct route_map exact;            /* "foo.com" */
    struct route_map wild;             /* "*.foo.com" keyed "foo.com" */
    const struct route_host *any;      /* rules without a host, or NULL */
    size_t nroutes, nhosts;
    pcre2_code **codes;                /* every compiled regex, for route_table_free() */
    size_t ncodes;
    pcre2_match_context *mctx;         /* match limit; shared read-only by all threads */
};

/* ---- shared helpers ---- */

static inline unsigned char route_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/*
 * 8 bytes at a time over already-lowercased bytes (a multiply-xorshift mix).
 * Keys come from the configuration, never from clients, so flooding is moot;
 * speed on 20-40 byte host names is what counts.
 */
static inline uint64_t route_hash_word(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    return h ^ (h >> 32);
}

static inline uint64_t route_hash_final(uint64_t h)
{
    h ^= h >> 29;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 32);
}

/* the tail word is zero-padded, so route_match() may hash as it lowercases */
static inline uint64_t route_hash(const char *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n, w;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = route_hash_word(h, w);
    }
    if (n) {
        w = 0;
        memcpy(&w, p, n);
        h = route_hash_word(h, w);
    }
    return route_hash_final(h);
}

/* ASCII lowercase of 8 bytes at once (bytes >= 0x80 pass through) */
static inline uint64_t route_lower8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL;
    uint64_t x = w & (0x7f * ones);
    uint64_t ge_a = x + (0x80 - 'A') * ones;        /* high bit set when byte >= 'A' */
    uint64_t gt_z = x + (0x80 - 'Z' - 1) * ones;    /* high bit set when byte > 'Z' */
    uint64_t upper = (ge_a ^ gt_z) & ~w & (0x80 * ones);
    return w | (upper >> 2);                       /* 0x80 >> 2 = 0x20 */
}

static inline uint32_t route_slot_of(uint64_t h) { return (uint32_t)h; }

_Static_assert(sizeof(void *) != 8 || sizeof(struct route_node) == 64, "a trie node is 64 bytes");

static inline uint64_t route_seg_key(const char *p, uint32_t n)
{
    uint64_t k = 0;
    memcpy(&k, p, n < 8 ? n : 8);
    return k;
}

/* route_seg_key() when 8 bytes are readable at p: one load and a mask */
static inline uint64_t route_seg_key_fast(const char *p, uint32_t n, const char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (end - p >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        return n >= 8 ? k : k & ((1ULL << (8 * n)) - 1);
    }
#else
    (void)end;
#endif
    return route_seg_key(p, n);
}

/* the trie's sort order: length, then the 8-byte key, then the rest */
static inline int route_seg_cmp(const struct route_node *k, const char *seg, uint32_t len,
                                uint64_t key)
{
    if (k->len != len)
        return k->len < len ? -1 : 1;
    if (k->key != key)
        return k->key < key ? -1 : 1;
    return len <= 8 ? 0 : memcmp(k->seg + 8, seg + 8, len - 8);
}

/* ---- lookup (worker threads) ---- */

static const struct route_host *route_map_get(const struct route_map *m, const char *k,
                                              uint32_t n, uint64_t h)
{
    if (!m->slots)
        return NULL;
    for (uint32_t i = route_slot_of(h) & m->mask;; i = (i + 1) & m->mask) {
        const struct route_slot *s = &m->slots[i];
        if (!s->host)
            return NULL;
        if (s->tag != (uint32_t)(h >> 32))
            continue;
        /*
         * The host's block (header, name, then its trie breadth-first) is
         * contiguous: ask for its lines at once so their misses overlap
         * instead of following one another down the trie.
         */
        for (uint32_t l = 0; l < s->lines; l++)
            __builtin_prefetch((const char *)s->host + 64 * l);
        if (s->host->len == n && memcmp(s->host->name, k, n) == 0)
            return s->host;
    }
}

static const struct route_node *route_node_kid(const struct route_node *nd, const char *seg,
                                               uint32_t len, const char *end)
{
    uint32_t lo = 0, hi = nd->nkids;
    uint64_t key;
    if (!hi)
        return NULL;
    key = route_seg_key_fast(seg, len, end);
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct route_node *k = &nd->kids[mid];
        int c = route_seg_cmp(k, seg, len, key);
        if (c == 0)
            return k;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static pthread_key_t route_md_key;
static pthread_once_t route_md_once = PTHREAD_ONCE_INIT;
static bool route_md_key_ok;
static __thread pcre2_match_data *route_md;

static void route_md_destroy(void *p) { pcre2_match_data_free(p); }

static void route_md_key_init(void)
{
    route_md_key_ok = pthread_key_create(&route_md_key, route_md_destroy) == 0;
}

/* the calling thread's match block: created on first use, freed at thread exit */
static pcre2_match_data *route_md_get(void)
{
    if (route_md)
        return route_md;
    pthread_once(&route_md_once, route_md_key_init);
    /* room for $0..$9 (rewrite-target); rc 0 (more groups than pairs) still matches */
    route_md = pcre2_match_data_create(ROUTE_MAX_CAPS, NULL);
    if (route_md && route_md_key_ok)
        (void)pthread_setspecific(route_md_key, route_md);
    return route_md;
}

static bool route_rx_match(const struct route_table *t, const struct route_rx *rx,
                           const char *path, size_t n, struct route_caps *caps)
{
    pcre2_match_data *md = route_md_get();
    int rc;
    if (!md)
        return false;
    if (rx->jit)
        rc = pcre2_jit_match(rx->code, (PCRE2_SPTR)path, n, 0, 0, md, t->mctx);
    else
        rc = pcre2_match(rx->code, (PCRE2_SPTR)path, n, 0, 0, md, t->mctx);
    if (rc < 0)
        return false; /* errors (match limit, JIT stack) count as no match */
    if (caps) {
        /* only the winner's groups are copied; unset groups become empty */
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        int k = rc == 0 ? ROUTE_MAX_CAPS : rc;
        if (k > ROUTE_MAX_CAPS)
            k = ROUTE_MAX_CAPS;
        for (int i = 0; i < k; i++) {
            bool set = ov[2 * i] != PCRE2_UNSET && ov[2 * i] <= ov[2 * i + 1] && ov[2 * i + 1] <= n;
            caps->ov[2 * i] = set ? ov[2 * i] : 0;
            caps->ov[2 * i + 1] = set ? ov[2 * i + 1] : 0;
        }
        caps->n = k;
    }
    return true;
}

/* the best rule of one host level, or NULL to fall through to the next level */
static const struct snap_route *route_host_match(const struct route_table *t,
                                                 const struct route_host *h, const char *path,
                                                 size_t n, struct route_caps *caps)
{
    const struct route_node *nd = &h->root;
    const struct snap_route *best = NULL, *exact = NULL;
    uint32_t best_len = 0;

    if (n && path[0] == '/') {
        const char *q = path + 1, *end = path + n;
        best = nd->prefix;
        best_len = nd->prefix_len;
        if (q == end) {
            exact = nd->exact;
        } else {
            for (;;) {
                /* segments are short: an inline scan beats a memchr call */
                const char *se = q;
                while (se < end && *se != '/')
                    se++;
                const char *slash = se < end ? se : NULL;
                if ((size_t)(se - q) > UINT32_MAX)
                    break;
                nd = route_node_kid(nd, q, (uint32_t)(se - q), end);
                if (!nd)
                    break;
                if (nd->prefix) {
                    best = nd->prefix; /* deeper is longer: the walk keeps the longest */
                    best_len = nd->prefix_len;
                }
                if (!slash) {
                    exact = nd->exact;
                    break;
                }
                if (slash + 1 == end) {
                    exact = nd->exact_slash;
                    break;
                }
                q = slash + 1;
            }
        }
    }
    if (exact)
        return exact;
    for (uint32_t i = 0; i < h->nrx; i++) {
        const struct route_rx *rx = &h->rx[i];
        if (best && rx->len <= best_len)
            break; /* sorted longest first: nothing left can beat the Prefix */
        if (route_rx_match(t, rx, path, n, caps))
            return rx->action;
    }
    return best;
}

/*
 * Matches a request against the table (see the file header for precedence).
 * Preconditions: t built by route_build() and not freed. Any thread. Returns
 * the winning action or NULL when no rule at any host level matches.
 */
const struct snap_route *route_match(const struct route_table *t, const char *host,
                                     size_t hostlen, const char *path, size_t pathlen)
{
    return route_match_caps(t, host, hostlen, path, pathlen, NULL);
}

/* route_match() that also reports the winning regex's capture groups */
const struct snap_route *route_match_caps(const struct route_table *t, const char *host,
                                          size_t hostlen, const char *path, size_t pathlen,
                                          struct route_caps *caps)
{
    char buf[ROUTE_HOST_MAX + 8];       /* + room for the last whole word */
    size_t hn = 0;
    uint64_t hash = 0;
    bool have_host = false;
    const struct snap_route *r;

    if (caps)
        caps->n = 0;
    if (!t)
        return NULL;
    if (!path || pathlen == 0) {
        path = "/";
        pathlen = 1;
    } else {
        const char *qm = memchr(path, '?', pathlen);
        if (qm)
            pathlen = (size_t)(qm - path);
    }

    if (host && hostlen) {
        size_t hl = hostlen;
        if (host[0] == '[') {
            const char *rb = memchr(host, ']', hostlen);
            hl = rb ? (size_t)(rb - host) + 1 : 0; /* "[::1]:80" -> "[::1]" */
        } else {
            const char *c = memchr(host, ':', hostlen);
            if (c)
                hl = (size_t)(c - host);
        }
        if (hl && host[hl - 1] == '.')
            hl--; /* "foo.com." is "foo.com", as in nginx */
        if (hl && hl <= ROUTE_HOST_MAX) {
            /* lowercase and hash in one pass, a word at a time (route_hash's chunking) */
            uint64_t h = 0x9E3779B97F4A7C15ULL ^ hl, w;
            size_t i = 0;
            for (; i + 8 <= hl; i += 8) {
                memcpy(&w, host + i, 8);
                w = route_lower8(w);
                memcpy(buf + i, &w, 8);
                h = route_hash_word(h, w);
            }
            if (i < hl) {
                w = 0;
                memcpy(&w, host + i, hl - i);
                w = route_lower8(w);
                memcpy(buf + i, &w, 8);
                h = route_hash_word(h, w);
            }
            hash = route_hash_final(h);
            hn = hl;
            have_host = true;
        }
    }

    if (have_host) {
        const struct route_host *h;
        const char *dot;
        h = route_map_get(&t->exact, buf, (uint32_t)hn, hash);
        if (h && (r = route_host_match(t, h, path, pathlen, caps)))
            return r;
        dot = t->wild.slots ? memchr(buf, '.', hn) : NULL;
        /* one non-empty label, then a non-empty suffix */
        if (dot && dot != buf && (size_t)(dot - buf) + 1 < hn) {
            const char *sfx = dot + 1;
            size_t sn = hn - (size_t)(sfx - buf);
            h = route_map_get(&t->wild, sfx, (uint32_t)sn, route_hash(sfx, sn));
            if (h && (r = route_host_match(t, h, path, pathlen, caps)))
                return r;
        }
    }
    if (t->any)
        return route_host_match(t, t->any, path, pathlen, caps);
    return NULL;
}

size_t route_count(const struct route_table *t) { return t ? t->nroutes : 0; }

size_t route_host_count(const struct route_table *t) { return t ? t->nhosts : 0; }

/* ---- build (loader thread) ---- */

enum route_kind { ROUTE_KIND_EXACT = 0, ROUTE_KIND_WILD, ROUTE_KIND_ANY };

struct rb_node {
    struct rb_node *parent;
    struct rb_node *kids, *sibling;    /* children as a list until frozen */
    const char *seg;
    uint64_t key;                      /* route_seg_key(seg, len) */
    uint32_t len, nkids;
    const struct route_spec *exact, *exact_slash, *prefix;
    uint32_t prefix_len;
    struct route_node *out;
};

struct rb_rx {
    struct rb_rx *next;
    const struct route_spec *spec;
    pcre2_code *code;
    bool jit;
    uint32_t len;
    size_t order;                      /* declaration index: the stable tie-break */
};

struct rb_host {
    enum route_kind kind;
    const char *name;                  /* lowercased, scratch arena */
    uint32_t len;
    uint64_t hash;
    struct rb_node *root;
    struct rb_rx *rx_head, *rx_tail;
    uint32_t nrx;
    struct rb_host *next;              /* every host, creation order */
};

/* a growable open-addressing set used only while building */
struct rb_ent {
    uint64_t hash;
    void *item;
};

struct rb_map {
    struct rb_ent *v;
    size_t cap, n;
};

struct rb_ctx {
    struct arena *a;                   /* the snapshot's */
    struct arena *tmp;                 /* scratch, freed at the end of the build */
    struct cfg_errs *errs;
    struct rb_map hosts, nodes;
    struct rb_host *hosts_head, *hosts_tail;
    struct route_table *t;
    size_t nhost[3];
};

struct rb_host_key {
    enum route_kind kind;
    const char *name;
    uint32_t len;
};

struct rb_node_key {
    const struct rb_node *parent;
    const char *seg;
    uint32_t len;
};

static bool rb_host_eq(const void *item, const void *key)
{
    const struct rb_host *h = item;
    const struct rb_host_key *k = key;
    return h->kind == k->kind && h->len == k->len && memcmp(h->name, k->name, k->len) == 0;
}

static bool rb_node_eq(const void *item, const void *key)
{
    const struct rb_node *nd = item;
    const struct rb_node_key *k = key;
    return nd->parent == k->parent && nd->len == k->len && memcmp(nd->seg, k->seg, k->len) == 0;
}

static void rb_map_grow(struct rb_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct rb_ent *v = calloc(cap, sizeof(*v));
    if (!v)
        abort(); /* loader thread, as arena_alloc does */
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->v[i].item)
            continue;
        size_t j = m->v[i].hash & (cap - 1);
        while (v[j].item)
            j = (j + 1) & (cap - 1);
        v[j] = m->v[i];
    }
    free(m->v);
    m->v = v;
    m->cap = cap;
}

/* the entry holding key, or the empty entry where it belongs (caller fills it) */
static struct rb_ent *rb_map_find(struct rb_map *m, uint64_t h,
                                  bool (*eq)(const void *, const void *), const void *key)
{
    if ((m->n + 1) * 2 > m->cap)
        rb_map_grow(m);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct rb_ent *e = &m->v[i];
        if (!e->item || (e->hash == h && eq(e->item, key)))
            return e;
    }
}

static struct rb_node *rb_node_new(struct rb_ctx *c, struct rb_node *parent, const char *seg,
                                   uint32_t len)
{
    struct rb_node *nd = arena_calloc(c->tmp, 1, sizeof(*nd));
    nd->parent = parent;
    nd->seg = seg;
    nd->len = len;
    nd->key = route_seg_key(seg, len);
    return nd;
}

static struct rb_node *rb_node_kid(struct rb_ctx *c, struct rb_node *parent, const char *seg,
                                   uint32_t len)
{
    struct rb_node_key k = { parent, seg, len };
    uint64_t h = route_hash(seg, len) ^ ((uintptr_t)parent * 0x9E3779B97F4A7C15ULL);
    struct rb_ent *e = rb_map_find(&c->nodes, h, rb_node_eq, &k);
    if (e->item)
        return e->item;
    struct rb_node *nd = rb_node_new(c, parent, arena_strndup(c->tmp, seg, len), len);
    nd->sibling = parent->kids;
    parent->kids = nd;
    parent->nkids++;
    e->hash = h;
    e->item = nd;
    c->nodes.n++;
    return nd;
}

static struct rb_host *rb_host_get(struct rb_ctx *c, enum route_kind kind, const char *name)
{
    size_t n = strlen(name);
    char *low = arena_strndup(c->tmp, name, n);
    for (size_t i = 0; i < n; i++)
        low[i] = (char)route_lower((unsigned char)low[i]);
    struct rb_host_key k = { kind, low, (uint32_t)n };
    uint64_t h = route_hash(low, n);
    struct rb_ent *e = rb_map_find(&c->hosts, h ^ (uint64_t)kind, rb_host_eq, &k);
    if (e->item)
        return e->item;
    struct rb_host *hst = arena_calloc(c->tmp, 1, sizeof(*hst));
    hst->kind = kind;
    hst->name = low;
    hst->len = (uint32_t)n;
    hst->hash = h;
    hst->root = rb_node_new(c, NULL, "", 0);
    if (c->hosts_tail)
        c->hosts_tail->next = hst;
    else
        c->hosts_head = hst;
    c->hosts_tail = hst;
    c->nhost[kind]++;
    e->hash = h ^ (uint64_t)kind;
    e->item = hst;
    c->hosts.n++;
    return hst;
}

static const char *rb_type_name(enum route_path_type type)
{
    return type == ROUTE_EXACT ? "Exact" : type == ROUTE_PREFIX ? "Prefix" : "regex";
}

static void rb_err(struct rb_ctx *c, enum cfg_sev sev, const struct route_spec *s,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void rb_err(struct rb_ctx *c, enum cfg_sev sev, const struct route_spec *s,
                   const char *fmt, ...)
{
    va_list ap;
    if (!c->errs)
        return;
    va_start(ap, fmt);
    cfg_errs_vadd(c->errs, sev, s->file, s->line, s->col, s->obj, fmt, ap);
    va_end(ap);
}

/* claims an action slot; false (and a warning) if an earlier spec holds it */
static bool rb_claim(struct rb_ctx *c, const struct route_spec **slot, const struct route_spec *s)
{
    if (*slot) {
        const struct route_spec *first = *slot;
        rb_err(c, CFG_WARNING, s,
               "duplicate %s path \"%s\" for host \"%s\" (already defined by %s); the first "
               "definition wins",
               rb_type_name(s->type), s->path, (s->host && *s->host) ? s->host : "*",
               first->obj ? first->obj : "an earlier rule");
        return false;
    }
    *slot = s;
    return true;
}

static bool rb_add_path(struct rb_ctx *c, struct rb_host *h, const struct route_spec *s)
{
    const char *p = s->path;
    size_t n = strlen(p);
    struct rb_node *nd = h->root;

    if (s->type == ROUTE_PREFIX) {
        while (n > 1 && p[n - 1] == '/')
            n--; /* "/foo/" is the Prefix "/foo"; "/" stays the root */
        const char *q = p + 1, *end = p + n;
        while (q < end) {
            const char *slash = memchr(q, '/', (size_t)(end - q));
            const char *se = slash ? slash : end;
            nd = rb_node_kid(c, nd, q, (uint32_t)(se - q));
            q = slash ? slash + 1 : end;
        }
        if (!rb_claim(c, &nd->prefix, s))
            return false;
        nd->prefix_len = (uint32_t)n;
        return true;
    }

    /* Exact: the same walk route_host_match() does, so every byte counts */
    const char *q = p + 1, *end = p + n;
    if (q == end)
        return rb_claim(c, &nd->exact, s);
    for (;;) {
        const char *slash = memchr(q, '/', (size_t)(end - q));
        const char *se = slash ? slash : end;
        nd = rb_node_kid(c, nd, q, (uint32_t)(se - q));
        if (!slash)
            return rb_claim(c, &nd->exact, s);
        if (slash + 1 == end)
            return rb_claim(c, &nd->exact_slash, s);
        q = slash + 1;
    }
}

static bool rb_add_regex(struct rb_ctx *c, struct rb_host *h, const struct route_spec *s,
                         size_t order)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *code;

    for (struct rb_rx *x = h->rx_head; x; x = x->next) {
        if (strcmp(x->spec->path, s->path) == 0) {
            const struct route_spec *first = x->spec;
            return rb_claim(c, &first, s);
        }
    }
    code = pcre2_compile((PCRE2_SPTR)s->path, PCRE2_ZERO_TERMINATED, ROUTE_REGEX_OPTS, &err, &off,
                         NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(err, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "unknown error");
        rb_err(c, CFG_ERROR, s, "invalid regular expression \"%s\": %s at offset %zu", s->path,
               (const char *)msg, (size_t)off);
        return false;
    }
    struct rb_rx *x = arena_calloc(c->tmp, 1, sizeof(*x));
    x->spec = s;
    x->code = code;
    /* without JIT support (or on a JIT failure) the interpreter still works */
    x->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    x->len = (uint32_t)strlen(s->path);
    x->order = order;
    if (h->rx_tail)
        h->rx_tail->next = x;
    else
        h->rx_head = x;
    h->rx_tail = x;
    h->nrx++;
    c->t->codes[c->t->ncodes++] = code;
    return true;
}

static int rb_rx_cmp(const void *a, const void *b)
{
    const struct rb_rx *x = *(const struct rb_rx *const *)a;
    const struct rb_rx *y = *(const struct rb_rx *const *)b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void rb_map_put(struct route_map *m, const struct route_host *h, uint64_t hash,
                       uint32_t lines)
{
    uint32_t i = route_slot_of(hash) & m->mask;
    while (m->slots[i].host)
        i = (i + 1) & m->mask;
    m->slots[i].tag = (uint32_t)(hash >> 32);
    m->slots[i].lines = lines;
    m->slots[i].host = h;
}

static void rb_map_alloc(struct arena *a, struct route_map *m, size_t n)
{
    size_t cap = 8;
    if (n == 0)
        return;
    while (cap < n * 2)
        cap *= 2;
    m->slots = arena_calloc(a, cap, sizeof(*m->slots));
    m->mask = (uint32_t)(cap - 1);
}

/* a growable array of pointers, scratch for the freeze */
struct rb_vec {
    void **v;
    size_t n, cap;
};

static void rb_vec_push(struct rb_vec *x, void *p)
{
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        void **v = realloc(x->v, cap * sizeof(*v));
        if (!v)
            abort();
        x->v = v;
        x->cap = cap;
    }
    x->v[x->n++] = p;
}

static int rb_node_cmp(const void *a, const void *b)
{
    const struct rb_node *x = *(const struct rb_node *const *)a;
    const struct rb_node *y = *(const struct rb_node *const *)b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->len <= 8 ? 0 : memcmp(x->seg + 8, y->seg + 8, x->len - 8);
}

/*
 * Lays one host's trie out breadth-first right behind its header, so the top
 * levels a lookup always walks sit in adjacent cache lines: each node's
 * sorted child array, then those children's segment bytes.
 */
static void rb_freeze_trie(struct rb_ctx *c, struct rb_node *root, struct route_node *out,
                           struct rb_vec *queue, struct rb_vec *kids, const char **hi)
{
    queue->n = 0;
    root->out = out;
    rb_vec_push(queue, root);
    for (size_t qi = 0; qi < queue->n; qi++) {
        struct rb_node *nd = queue->v[qi];
        struct route_node *o = nd->out;
        o->exact = nd->exact ? nd->exact->action : NULL;
        o->exact_slash = nd->exact_slash ? nd->exact_slash->action : NULL;
        o->prefix = nd->prefix ? nd->prefix->action : NULL;
        o->prefix_len = nd->prefix_len;
        if (!nd->nkids)
            continue;
        kids->n = 0;
        size_t segbytes = 0;
        for (struct rb_node *k = nd->kids; k; k = k->sibling) {
            rb_vec_push(kids, k);
            segbytes += k->len;
        }
        qsort(kids->v, kids->n, sizeof(*kids->v), rb_node_cmp);
        struct route_node *arr = arena_calloc(c->a, kids->n, sizeof(*arr));
        char *segs = arena_alloc(c->a, segbytes ? segbytes : 1);
        if ((const char *)(arr + kids->n) > *hi)
            *hi = (const char *)(arr + kids->n);
        if (segs + segbytes > *hi)
            *hi = segs + segbytes;
        for (size_t i = 0; i < kids->n; i++) {
            struct rb_node *k = kids->v[i];
            memcpy(segs, k->seg, k->len);
            arr[i].seg = segs;
            arr[i].len = k->len;
            arr[i].key = k->key;
            segs += k->len;
            k->out = &arr[i];
            rb_vec_push(queue, k);
        }
        o->kids = arr;
        o->nkids = (uint32_t)kids->n;
    }
}

/* turns the build graph into the read-only table in the snapshot arena */
static void rb_freeze(struct rb_ctx *c)
{
    struct route_table *t = c->t;
    struct rb_vec queue = { 0 }, kids = { 0 }, rxs = { 0 };

    rb_map_alloc(c->a, &t->exact, c->nhost[ROUTE_KIND_EXACT]);
    rb_map_alloc(c->a, &t->wild, c->nhost[ROUTE_KIND_WILD]);
    for (struct rb_host *bh = c->hosts_head; bh; bh = bh->next) {
        struct route_host *h = arena_alloc(c->a, sizeof(*h) + bh->len + 1);
        memset(h, 0, sizeof(*h));
        memcpy(h->name, bh->name, bh->len);
        h->name[bh->len] = '\0';
        h->len = bh->len;
        const char *hi = h->name + bh->len + 1;
        rb_freeze_trie(c, bh->root, &h->root, &queue, &kids, &hi);
        /*
         * Prefetch the block's top (its first ROUTE_PREFETCH_MAX lines). If
         * the arena opened a new chunk midway the span is meaningless: then
         * only the header and name.
         */
        uintptr_t lo = (uintptr_t)h, top = (uintptr_t)hi;
        uint32_t lines = (uint32_t)((sizeof(*h) + bh->len + 64) / 64);
        if (top > lo && top - lo < 65536) {
            lines = (uint32_t)((top - lo + 63) / 64);
            if (lines > ROUTE_PREFETCH_MAX)
                lines = ROUTE_PREFETCH_MAX;
        }
        if (bh->nrx) {
            struct route_rx *rx = arena_calloc(c->a, bh->nrx, sizeof(*rx));
            rxs.n = 0;
            for (struct rb_rx *x = bh->rx_head; x; x = x->next)
                rb_vec_push(&rxs, x);
            qsort(rxs.v, rxs.n, sizeof(*rxs.v), rb_rx_cmp);
            for (size_t i = 0; i < rxs.n; i++) {
                const struct rb_rx *x = rxs.v[i];
                rx[i].code = x->code;
                rx[i].len = x->len;
                rx[i].jit = x->jit;
                rx[i].action = x->spec->action;
            }
            h->rx = rx;
            h->nrx = bh->nrx;
        }
        switch (bh->kind) {
        case ROUTE_KIND_EXACT: rb_map_put(&t->exact, h, bh->hash, lines); break;
        case ROUTE_KIND_WILD: rb_map_put(&t->wild, h, bh->hash, lines); break;
        case ROUTE_KIND_ANY: t->any = h; break;
        }
        t->nhosts++;
    }
    free(queue.v);
    free(kids.v);
    free(rxs.v);
}

/*
 * Builds the table (see route.h). Loader thread. Every diagnostic goes to
 * errs: an invalid spec or regex is an error and is skipped, a duplicate is a
 * warning. Side effects: compiles and JITs regexes (heap; route_table_free()).
 */
struct route_table *route_build(struct arena *a, const struct route_spec *specs, size_t n,
                                struct cfg_errs *errs)
{
    struct rb_ctx c;
    size_t nrx = 0;

    if (!a || (n && !specs))
        return NULL;
    memset(&c, 0, sizeof(c));
    c.a = a;
    c.errs = errs;
    c.tmp = arena_new(0);
    c.t = arena_calloc(a, 1, sizeof(*c.t));
    for (size_t i = 0; i < n; i++)
        if (specs[i].type == ROUTE_REGEX)
            nrx++;
    if (nrx) {
        c.t->codes = arena_calloc(a, nrx, sizeof(*c.t->codes));
        c.t->mctx = pcre2_match_context_create(NULL);
        if (c.t->mctx)
            pcre2_set_match_limit(c.t->mctx, ROUTE_MATCH_LIMIT);
    }

    for (size_t i = 0; i < n; i++) {
        const struct route_spec *s = &specs[i];
        const char *hn = s->host;
        enum route_kind kind;
        bool ok;

        if (!s->action || !s->path) {
            rb_err(&c, CFG_ERROR, s, "route without %s", s->path ? "a backend" : "a path");
            continue;
        }
        if (s->type != ROUTE_EXACT && s->type != ROUTE_PREFIX && s->type != ROUTE_REGEX) {
            rb_err(&c, CFG_ERROR, s, "path \"%s\": unknown path type %d", s->path, (int)s->type);
            continue;
        }
        if (s->type != ROUTE_REGEX && s->path[0] != '/') {
            rb_err(&c, CFG_ERROR, s, "path \"%s\" (%s) must begin with '/'", s->path,
                   rb_type_name(s->type));
            continue;
        }
        /* "*" alone is not a valid Ingress host; read it as "any host" */
        if (!hn || !*hn || strcmp(hn, "*") == 0) {
            kind = ROUTE_KIND_ANY;
            hn = "";
        } else if (hn[0] == '*' && hn[1] == '.' && hn[2]) {
            kind = ROUTE_KIND_WILD;
            hn += 2;
        } else {
            kind = ROUTE_KIND_EXACT;
        }
        if (strlen(hn) > ROUTE_HOST_MAX) {
            rb_err(&c, CFG_ERROR, s, "host \"%s\" is longer than %d bytes", s->host,
                   ROUTE_HOST_MAX);
            continue;
        }
        struct rb_host *h = rb_host_get(&c, kind, hn);
        if (s->type == ROUTE_REGEX)
            ok = rb_add_regex(&c, h, s, i);
        else
            ok = rb_add_path(&c, h, s);
        if (ok)
            c.t->nroutes++;
    }

    rb_freeze(&c);
    free(c.hosts.v);
    free(c.nodes.v);
    arena_free(c.tmp);
    return c.t;
}

/*
 * Frees the PCRE2 code objects and match context of t (route.h). Whoever drops
 * the snapshot calls it once no worker can match on t; idempotent.
 */
void route_table_free(struct route_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ncodes; i++)
        pcre2_code_free(t->codes[i]);
    t->ncodes = 0;
    pcre2_match_context_free(t->mctx);
    t->mctx = NULL;
}

/*
 * Compiles pattern with route_build()'s options and drops it. 0 if valid;
 * -1 with PCRE2's message in msg (if msg && msglen) and the error offset in
 * *offset (if offset) otherwise. Any thread.
 */
int route_check_regex(const char *pattern, char *msg, size_t msglen, size_t *offset)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *code;

    if (!pattern)
        return -1;
    code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, ROUTE_REGEX_OPTS, &err, &off,
                         NULL);
    if (code) {
        pcre2_code_free(code);
        return 0;
    }
    if (msg && msglen) {
        if (pcre2_get_error_message(err, (PCRE2_UCHAR *)msg, msglen) < 0 && msglen > 0)
            msg[msglen - 1] = '\0'; /* truncated (NOMEMORY): keep what fits */
    }
    if (offset)
        *offset = (size_t)off;
    return -1;
}
