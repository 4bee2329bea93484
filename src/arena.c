/* SPDX-License-Identifier: Apache-2.0 */
/*
 * arena: a list of malloc'd chunks bump-allocated from the newest; large
 * requests get a chunk of their own. Freed only as a whole (nginx ngx_pool_t),
 * which is what makes a snapshot cheap to drop after a reload.
 */
#include "ingressd/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_CHUNK (64 * 1024)

struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct arena {
    struct arena_chunk *head;
    size_t chunk_size;
    size_t bytes;
};

static struct arena_chunk *chunk_new(struct arena *a, size_t size)
{
    struct arena_chunk *c = malloc(sizeof(*c) + size);
    if (!c)
        abort(); /* config-time allocation; nothing sensible to do without memory */
    c->size = size;
    c->used = 0;
    a->bytes += sizeof(*c) + size;
    return c;
}

struct arena *arena_new(size_t chunk_size)
{
    struct arena *a = calloc(1, sizeof(*a));
    if (!a)
        abort();
    a->chunk_size = chunk_size ? chunk_size : ARENA_DEFAULT_CHUNK;
    return a;
}

void arena_free(struct arena *a)
{
    if (!a)
        return;
    for (struct arena_chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(a);
}

void *arena_alloc(struct arena *a, size_t n)
{
    struct arena_chunk *c = a->head;
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (n == 0)
        n = ARENA_ALIGN;
    if (!c || c->size - c->used < n) {
        if (n > a->chunk_size / 4) {
            /* big block: own chunk, linked behind head so the head keeps its free space */
            struct arena_chunk *big = chunk_new(a, n);
            big->used = n;
            if (c) {
                big->next = c->next;
                c->next = big;
            } else {
                big->next = NULL;
                a->head = big;
            }
            return big->data;
        }
        c = chunk_new(a, a->chunk_size);
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void *arena_calloc(struct arena *a, size_t nmemb, size_t size)
{
    if (size && nmemb > SIZE_MAX / size)
        abort();
    void *p = arena_alloc(a, nmemb * size);
    memset(p, 0, nmemb * size);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *arena_strdup(struct arena *a, const char *s) { return s ? arena_strndup(a, s, strlen(s)) : NULL; }

void *arena_memdup(struct arena *a, const void *p, size_t n)
{
    void *d = arena_alloc(a, n);
    memcpy(d, p, n);
    return d;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *d = arena_alloc(a, (size_t)n + 1);
    vsnprintf(d, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return d;
}

size_t arena_bytes(const struct arena *a) { return a->bytes; }
