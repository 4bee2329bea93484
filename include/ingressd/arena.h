/* SPDX-License-Identifier: Apache-2.0 */
/*
 * arena: bump allocator freed as one (nginx pools). A snapshot and everything
 * it derives live in one arena; a reload builds a new arena beside the old.
 * Not thread-safe: one arena is filled by one thread, then only read.
 */
#ifndef INGRESSD_ARENA_H
#define INGRESSD_ARENA_H

#include <stddef.h>

struct arena;

struct arena *arena_new(size_t chunk_size);          /* 0 = default (64 KiB) */
void arena_free(struct arena *a);                    /* NULL is a no-op */
void *arena_alloc(struct arena *a, size_t n);        /* 16-byte aligned; aborts on OOM */
void *arena_calloc(struct arena *a, size_t nmemb, size_t size);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);  /* NULL -> NULL */
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *arena_memdup(struct arena *a, const void *p, size_t n);
size_t arena_bytes(const struct arena *a);           /* bytes reserved from malloc */

#endif
