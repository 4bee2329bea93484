/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mem: libevent's allocator. Every proxied request makes libevent allocate
 * and free four evbuffer chains (a read from each side, the rewritten head,
 * the response head), and evbuffer rounds chains up to powers of two above
 * glibc's per-thread cache (1 KiB), so each was a trip through glibc's bins
 * (_int_malloc, unlink_chunk, consolidation): ~4% of the proxy's CPU at 1,000
 * connections. Here a freed block goes to a per-thread list for its class
 * and the next allocation of that class pops it (Redis/jemalloc's tcache, in
 * thirty lines): no lock, no sharing, as the worker model wants.
 *
 * Only exact powers of two from 512 bytes to 128 KiB are cached: those are
 * the sizes evbuffer gives its chains. Everything else (bufferevents, events,
 * evbuffer heads) is passed to malloc as it is, so objects that live as long
 * as a connection are not rounded up (that cost ~1.2 KB per idle connection).
 *
 * A block is a 16-byte header (its class) and then 2^class bytes. Freeing
 * on another thread is fine: the block joins that thread's lists. Each
 * list keeps at most MEM_CLASS_BYTES, the rest goes back to malloc; a
 * thread's lists are released when it exits.
 */
#include "ingressd/mem.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MEM_MIN_SHIFT   9                  /* 512 bytes: evbuffer's smallest chain */
#define MEM_MAX_SHIFT   17                 /* 128 KiB: a 64 KiB read's chain */
#define MEM_NCLASS      (MEM_MAX_SHIFT - MEM_MIN_SHIFT + 1)
#define MEM_CLASS_MAXN  1024
#define MEM_LARGE       0xffu              /* past the classes: plain malloc */

struct mem_hdr {
    uint32_t cls;
    uint32_t pad;
    size_t size;                           /* requested size (realloc copies it) */
};
_Static_assert(sizeof(struct mem_hdr) == 16, "keeps malloc's 16-byte alignment");

struct mem_free_block {
    struct mem_free_block *next;
};

struct mem_cache {
    struct mem_free_block *head[MEM_NCLASS];
    uint32_t n[MEM_NCLASS];
    bool registered;                       /* thread-exit destructor set */
};

static _Thread_local struct mem_cache tc;
static pthread_key_t mem_key;
static pthread_once_t mem_once = PTHREAD_ONCE_INIT;

static void cache_release(void *arg)
{
    struct mem_cache *c = arg;
    for (unsigned i = 0; i < MEM_NCLASS; i++) {
        struct mem_free_block *b;
        while ((b = c->head[i])) {
            c->head[i] = b->next;
            free((struct mem_hdr *)b - 1);
        }
        c->n[i] = 0;
    }
}

static void key_init(void)
{
    pthread_key_create(&mem_key, cache_release);
}

static unsigned class_of(size_t n)
{
    if (n < ((size_t)1 << MEM_MIN_SHIFT) || n > ((size_t)1 << MEM_MAX_SHIFT) || (n & (n - 1)))
        return MEM_LARGE;
    return (unsigned)__builtin_ctzll((unsigned long long)n) - MEM_MIN_SHIFT;
}

static inline size_t class_size(unsigned cls)
{
    return (size_t)1 << (cls + MEM_MIN_SHIFT);
}

void *mem_malloc(size_t n)
{
    unsigned cls = class_of(n);
    struct mem_hdr *h;
    if (cls != MEM_LARGE && tc.head[cls]) {
        struct mem_free_block *b = tc.head[cls];
        tc.head[cls] = b->next;
        tc.n[cls]--;
        h = (struct mem_hdr *)b - 1;
    } else {
        h = malloc(sizeof(*h) + (cls == MEM_LARGE ? n : class_size(cls)));
        if (!h)
            return NULL;
    }
    h->cls = cls;
    h->size = n;
    return h + 1;
}

void mem_free(void *p)
{
    if (!p)
        return;
    struct mem_hdr *h = (struct mem_hdr *)p - 1;
    unsigned cls = h->cls;
    if (cls == MEM_LARGE || tc.n[cls] >= MEM_CLASS_MAXN ||
        (size_t)(tc.n[cls] + 1) * class_size(cls) > MEM_CLASS_BYTES) {
        free(h);
        return;
    }
    if (!tc.registered) {
        pthread_once(&mem_once, key_init);
        pthread_setspecific(mem_key, &tc);
        tc.registered = true;
    }
    struct mem_free_block *b = p;
    b->next = tc.head[cls];
    tc.head[cls] = b;
    tc.n[cls]++;
}

void *mem_realloc(void *p, size_t n)
{
    if (!p)
        return mem_malloc(n);
    struct mem_hdr *h = (struct mem_hdr *)p - 1;
    unsigned cls = class_of(n);
    if (cls == MEM_LARGE && h->cls == MEM_LARGE) {
        struct mem_hdr *nh = realloc(h, sizeof(*nh) + n);
        if (!nh)
            return NULL;
        nh->size = n;
        return nh + 1;
    }
    if (cls != MEM_LARGE && cls == h->cls) {
        h->size = n;
        return p;
    }
    void *q = mem_malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, h->size < n ? h->size : n);
    mem_free(p);
    return q;
}

void mem_install(void)
{
#if !defined(__SANITIZE_ADDRESS__)
    event_set_mem_functions(mem_malloc, mem_realloc, mem_free);
#endif
}
