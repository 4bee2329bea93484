/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mem: the allocator libevent gets (event_set_mem_functions). A per-thread
 * cache of freed blocks in power-of-two classes in front of malloc.
 */
#ifndef INGRESSD_MEM_H
#define INGRESSD_MEM_H

#include <stddef.h>

/* freed bytes kept per class and thread (a loop turn's chains at wrk -c 1000);
 * the rest goes back to malloc */
#define MEM_CLASS_BYTES (1024 * 1024)

/* installs mem_* as libevent's allocator; must run before anything of
 * libevent's allocates. Without effect in sanitizer builds (ASan must see
 * every malloc and free). */
void mem_install(void);

void *mem_malloc(size_t n);
void *mem_realloc(void *p, size_t n);
void mem_free(void *p);

#endif
