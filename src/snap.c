/* SPDX-License-Identifier: Apache-2.0 */
/* snap: PLACEHOLDER until the config loader lands. */
#include "ingressd/snap.h"

#include <stdlib.h>

#include "ingressd/arena.h"

struct snap *snap_load(const char *path, const struct snap *prev, const struct snap_load_opts *opts,
                       struct cfg_errs *errs)
{
    (void)prev;
    (void)opts;
    cfg_errs_add(errs, CFG_ERROR, path, 0, 0, NULL, "configuration loader not implemented");
    return NULL;
}

void snap_release(struct snap *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        arena_free(s->arena);
        free(s);
    }
}

const struct snap_backend *snap_find_backend(const struct snap *s, const char *name)
{
    (void)s;
    (void)name;
    return NULL;
}
