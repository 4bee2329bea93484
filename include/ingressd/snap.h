/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap: build, reference and release immutable configuration snapshots.
 * snap_load() is the single path used by startup, reload and -t.
 */
#ifndef INGRESSD_SNAP_H
#define INGRESSD_SNAP_H

#include "ingressd/cfg.h"
#include "ingressd/snap-t.h"

struct snap_load_opts {
    bool check_only;       /* -t: never bind, connect or start anything */
    bool strict;           /* -t: any error -> NULL (no quarantine) */
};

/*
 * Reads the configuration at `path` (a file or a directory of *.yaml), decodes
 * and validates every object, and builds a new snapshot. `prev` (may be NULL)
 * supplies the last good version of objects that are now broken (quarantine).
 * Every diagnostic is appended to `errs`. Returns NULL when nothing can be
 * served (unreadable file, invalid YAML, no valid ProxyConfig), keeping `prev`.
 * Loader thread or main; never a worker.
 */
struct snap *snap_load(const char *path, const struct snap *prev,
                       const struct snap_load_opts *opts, struct cfg_errs *errs);

static inline struct snap *snap_ref(struct snap *s)
{
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

/* drops one ref; the last one frees the snapshot (any thread) */
void snap_release(struct snap *s);

/* finds a backend by "ns/svc:port" name, NULL if absent */
const struct snap_backend *snap_find_backend(const struct snap *s, const char *name);

#endif
