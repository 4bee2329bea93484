/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap-int.h: what snap.c (load, quarantine, document reuse, release) and
 * snap_build.c (references, resolution, the snapshot's contents) share. Not
 * a public API. Loader thread only.
 */
#ifndef INGRESSD_SNAP_INT_H
#define INGRESSD_SNAP_INT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingressd/k8s.h"
#include "ingressd/np.h"
#include "ingressd/route.h"
#include "ingressd/snap.h"
#include "ingressd/str.h"

/* ---- a small string-keyed hash map (open addressing, grows at 50%) ---- */

struct smap_ent {
    const char *k;                     /* not owned */
    uint64_t h;
    uint32_t tag;                      /* kind, so one map can hold several */
    void *v;
};

struct smap {
    struct smap_ent *e;
    uint32_t cap, n;
};

/*
 * Eight bytes at a time (keys are "ns/name", addresses, document keys: a
 * byte-at-a-time FNV was 8% of a slice-only reload); only has to spread
 * keys over the table, never to resist chosen input.
 */
static inline uint64_t smap_hash(uint32_t tag, const char *k)
{
    size_t n = strlen(k), i = 0;
    uint64_t h = 0x243f6a8885a308d3ull ^ n ^ ((uint64_t)tag * 0x9e3779b97f4a7c15ull);
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, k + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, k + i, n - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static inline void smap_init(struct smap *m, uint32_t hint)
{
    uint32_t cap = 16;
    while (cap < hint * 2)
        cap <<= 1;
    m->e = calloc(cap, sizeof(*m->e));
    if (!m->e)
        abort();
    m->cap = cap;
    m->n = 0;
}

static inline void smap_free(struct smap *m)
{
    free(m->e);
    memset(m, 0, sizeof(*m));
}

static inline struct smap_ent *smap_slot(const struct smap *m, uint32_t tag, const char *k, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct smap_ent *e = &m->e[i];
        if (!e->k || (e->h == h && e->tag == tag && !strcmp(e->k, k)))
            return e;
    }
}

static inline void *smap_get(const struct smap *m, uint32_t tag, const char *k)
{
    if (!m->cap)
        return NULL;
    return smap_slot(m, tag, k, smap_hash(tag, k))->v;
}

/* sets k -> v; returns the previous value (NULL if new) */
static inline void *smap_set(struct smap *m, uint32_t tag, const char *k, void *v)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct smap old = *m;
        smap_init(m, old.cap);
        for (uint32_t i = 0; i < old.cap; i++)
            if (old.e[i].k) {
                *smap_slot(m, old.e[i].tag, old.e[i].k, old.e[i].h) = old.e[i];
                m->n++;
            }
        free(old.e);
    }
    uint64_t h = smap_hash(tag, k);
    struct smap_ent *e = smap_slot(m, tag, k, h);
    void *prev = e->v;
    if (!e->k) {
        m->n++;
        *e = (struct smap_ent){ k, h, tag, v };
    } else {
        e->v = v;
    }
    return prev;
}


struct src_file {
    char *path;
    char *text;
    size_t len;
};


struct chain {                         /* EndpointSlices of one Service */
    struct k8s_obj *o;
    struct chain *next;
};

struct seg {                           /* one YAML document of one file */
    const char *file;
    const char *text;
    size_t len;
    unsigned line0;                    /* lines before it in its file */
    unsigned decoded_line0;            /* cached: line0 when its objects were decoded */
    uint64_t hash;
    uint32_t first, n;                 /* its objects: objs.v[first .. first+n) */
    bool cached;                       /* objects reused from prev (not decoded now) */
    bool cacheable;                    /* decoded now without any diagnostic */
    char *key;
};

struct route_rec {
    struct snap_route *act;
    int be;                            /* backend index or -1 */
};

struct build {
    struct snap *s;
    struct arena *a;                   /* the snapshot's */
    struct arena *tmp;                 /* scratch, freed after the build */
    struct cfg_errs *errs;
    const struct snap *prev;
    struct k8s_objs live;              /* what the snapshot is built from (refs) */
    struct k8s_obj *pc;
    struct smap by_kind;               /* (kind, key) -> live obj */
    struct smap seen;                  /* (kind, key) -> first decoded obj (reference checks) */
    struct smap slices;                /* "ns/service" -> struct chain */
    struct snap_quarantine *q;
    uint32_t nq, capq;
    /* backends under construction */
    struct snap_backend *bes;
    struct np_backend_in *npin;
    uint32_t nbes, capbes;
    struct smap be_idx;                /* name -> (index + 1) */
    struct route_spec *specs;
    struct route_rec *recs;
    uint32_t nspecs, capspecs;
    struct route_rec defrec;
    struct snap_endpoint *eps;         /* scratch vector for one backend */
    uint32_t neps, capeps;
    bool any_tls_listener;
    struct src_file *files;
    size_t nfiles;
    struct seg *segs;
    uint32_t nsegs, capsegs;
    struct smap cur_eps;               /* key -> struct snap_epset of this build */
    struct snap_epset **epsets;        /* refs, moved to the objset at the end */
    uint32_t nepsets, capepsets;
    bool dry;                          /* reference checks only count problems */
    uint32_t dry_hits;
};

/*
 * The endpoints of one Service port, shared by every snapshot whose inputs
 * for it are the same objects (the Service and its EndpointSlices or
 * Endpoints, compared by identity: reused documents keep their objects), so
 * a reload where most Services' pods did not change rebuilds only the sets
 * that did, and releasing a snapshot puts only what no newer one shares.
 * Holds one health-table ref per endpoint. Immutable; refcounted.
 */
struct snap_epset {
    _Atomic unsigned refs;
    char *key;                         /* "ns/svc:port" (in this block) */
    const struct k8s_obj *svc;         /* inputs, by identity (the snapshots hold the refs) */
    uint32_t port_index;
    const struct k8s_obj **srcs;       /* EndpointSlices in order, or the Endpoints */
    uint32_t nsrcs;
    struct snap_endpoint *eps;
    uint32_t neps, nready;
    uint32_t pod_port;                 /* resolved pod port (0 = several / unknown) */
};

void snap__epset_put(struct snap_epset *e);

/*
 * A document that decoded without any diagnostic, remembered by the hash of
 * its bytes: the next load reuses its objects when the same bytes come again
 * (same file) instead of parsing them, so an EndpointSlice-only change
 * re-parses only the slices that changed. Positions inside reused objects
 * are those of decode time (line_shift maps them); a reused object that
 * needs a diagnostic is re-decoded from the current text first.
 */
struct snap_doc {
    char *key;                         /* "HASH/LEN/FILE" (malloc) */
    struct k8s_obj **objs;             /* refs */
    uint32_t nobjs;
    unsigned line0;                    /* where the document began when its objects were decoded */
};

struct snap_objset {
    struct snap_epset **epsets;        /* refs: the endpoint sets of this snapshot */
    uint32_t nepsets;
    struct smap epidx;                 /* key -> epset (for the next load) */
    struct k8s_objs objs;              /* refs, file order */
    struct smap idx;                   /* (kind, key) -> obj */
    struct snap_doc *docs;
    uint32_t ndocs;
    struct smap docidx;                /* key -> struct snap_doc */
};

/* snap_build.c */
struct k8s_obj *snap__find(struct build *b, enum k8s_kind k, const char *key);
void snap__check_ingress(struct build *b, struct k8s_obj *o);
void snap__check_service(struct build *b, struct k8s_obj *o);
void snap__check_proxycfg(struct build *b, struct k8s_obj *o);
/* builds the snapshot from b->live (after quarantine); never NULL */
struct snap *snap__build(struct build *b, const char *path);

#endif
