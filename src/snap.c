/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap: configuration file -> immutable snapshot. The one path used by
 * start-up, every reload and `ingressd -t` (nginx's ngx_init_cycle with
 * ngx_test_config), so what -t accepts is exactly what a reload serves.
 *
 *   read file(s) --> ydoc trees --> k8s objects (field tables, k8s_*.c)
 *        |                               |
 *   invalid YAML: NULL            per object: errors? --> quarantine:
 *   (nothing changes)             last good version from prev->objects,
 *                                 or left out when new
 *                                        |
 *        cross-object checks (Service/port/Secret references) --> quarantine
 *                                        |
 *        resolution: Ingress backend -> Service port -> targetPort ->
 *        EndpointSlice/Endpoints port (by the Service port's name, as the
 *        EndpointSlice controller writes them) -> endpoints + readiness
 *                                        |
 *        snapshot arena: settings, backends (policy from annotations),
 *        routes (route_build), TLS store, NetworkPolicy table
 *
 * Why objects are refcounted and kept by the snapshot: quarantine must keep
 * serving the *last good version* of an object that is now broken. Each
 * decoded object owns a small arena (k8s.h); the snapshot holds a ref on
 * every object it was built from (snap->objects) and points into them for
 * names and paths instead of copying, so a reload that keeps an object pays
 * nothing to keep it. Everything derived (backends, endpoints, routes) is in
 * the snapshot's own arena and dies with it.
 *
 * Reloads mostly change a few documents (pods come and go): each document's
 * bytes are hashed, and a document identical to one of the previous load
 * reuses its decoded objects without being parsed again (struct snap_doc);
 * the documents that must be decoded are split between this thread and one
 * helper when there are many. A Service port whose inputs are the very same
 * objects keeps its endpoint set (struct snap_epset, shared between
 * snapshots with its health refs), which is what makes an
 * EndpointSlice-only change cost a fraction of a full build.
 *
 * This file does reading, decoding, duplicates, quarantine and document
 * reuse; snap_build.c does references, resolution and the snapshot itself.
 *
 * Lookups while building are hash maps keyed by "ns/name" (Services,
 * Secrets, Endpoints), by "ns/service" (EndpointSlices, chained) and by
 * backend name, so a load is linear in the number of objects, paths and
 * endpoints. Loader thread (or main for -t); snap_release() from any thread.
 */
#include "ingressd/snap.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ingressd/arena.h"
#include "ingressd/hc.h"
#include "ingressd/k8s.h"
#include "ingressd/route.h"
#include "ingressd/str.h"
#include "ingressd/tls.h"
#include "ingressd/ydoc.h"

#include "snap-int.h"

/* ---- the object set a snapshot keeps (refs + index for the next load) ---- */

/* the last ref of a snapshot's object set: objects, endpoint sets, documents */
static void objset_free(struct snap_objset *os)
{
    if (!os)
        return;
    k8s_objs_free(&os->objs);
    smap_free(&os->idx);
    for (uint32_t i = 0; i < os->nepsets; i++)
        snap__epset_put(os->epsets[i]);
    free(os->epsets);
    smap_free(&os->epidx);
    for (uint32_t i = 0; i < os->ndocs; i++) {
        for (uint32_t j = 0; j < os->docs[i].nobjs; j++)
            k8s_obj_put(os->docs[i].objs[j]);
        free(os->docs[i].objs);
        free(os->docs[i].key);
    }
    free(os->docs);
    smap_free(&os->docidx);
    free(os);
}

static struct k8s_obj *prev_version(const struct snap *prev, const struct k8s_obj *o)
{
    const struct snap_objset *os = prev ? prev->objects : NULL;
    return os ? smap_get(&os->idx, o->kind, o->key) : NULL;
}

/* ---- reading the configuration ---- */


static int read_file(const char *path, struct src_file *f, struct cfg_errs *errs)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        cfg_errs_add(errs, CFG_ERROR, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    /* sized from fstat: a 6 MB file read into a doubling buffer paid ~8 MB of copies */
    struct stat st;
    size_t cap = fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) ? (size_t)st.st_size + 1
                                                                     : 64 * 1024,
           len = 0;
    char *buf = malloc(cap);
    if (!buf)
        abort();
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
        size_t r = fread(buf + len, 1, cap - len, fp);
        len += r;
        if (r == 0)
            break;
    }
    bool err = ferror(fp);
    fclose(fp);
    if (err) {
        cfg_errs_add(errs, CFG_ERROR, path, 0, 0, NULL, "cannot read: %s", strerror(errno));
        free(buf);
        return -1;
    }
    f->path = strdup(path);
    f->text = buf;
    f->len = len;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* path: a file, or a directory whose *.yaml / *.yml files are read in name order */
static int read_config(const char *path, struct src_file **out, size_t *nout,
                       struct cfg_errs *errs)
{
    struct stat st;
    *out = NULL;
    *nout = 0;
    if (stat(path, &st) < 0) {
        cfg_errs_add(errs, CFG_ERROR, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        *out = calloc(1, sizeof(**out));
        if (!*out)
            abort();
        if (read_file(path, *out, errs) < 0)
            return -1;
        *nout = 1;
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) {
        cfg_errs_add(errs, CFG_ERROR, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' ||
            !((l > 5 && !strcmp(de->d_name + l - 5, ".yaml")) ||
              (l > 4 && !strcmp(de->d_name + l - 4, ".yml"))))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = realloc(names, cap * sizeof(*names));
            if (!names)
                abort();
        }
        if (asprintf(&names[n], "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
                     de->d_name) < 0)
            abort();
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    *out = calloc(n ? n : 1, sizeof(**out));
    if (!*out)
        abort();
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && read_file(names[i], &(*out)[*nout], errs) == 0)
            (*nout)++;
        else
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

static void free_files(struct src_file *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].path);
        free(f[i].text);
    }
    free(f);
}

static void quarantine(struct build *b, const struct k8s_obj *bad, bool serving_previous)
{
    if (b->nq == b->capq) {
        b->capq = b->capq ? b->capq * 2 : 8;
        b->q = realloc(b->q, b->capq * sizeof(*b->q));
        if (!b->q)
            abort();
    }
    b->q[b->nq++] = (struct snap_quarantine){
        .object = arena_strdup(b->tmp, bad->id),
        .file = arena_strdup(b->tmp, bad->file),
        .line = bad->first_error_pos.line ? bad->first_error_pos.line : bad->pos.line,
        .error = arena_strdup(b->tmp, bad->first_error ? bad->first_error : "rejected"),
        .serving_previous = serving_previous,
    };
}

/*
 * Replaces live[i] (broken) by its previous good version, or removes it.
 * Returns the object now at that place (NULL when removed).
 */
static struct k8s_obj *reject(struct build *b, uint32_t i)
{
    struct k8s_obj *bad = b->live.v[i];
    struct k8s_obj *pv = prev_version(b->prev, bad);
    quarantine(b, bad, pv != NULL);
    b->live.v[i] = pv ? k8s_obj_ref(pv) : NULL;
    k8s_obj_put(bad);
    return b->live.v[i];
}

/* ---- public ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void build_free(struct build *b)
{
    for (uint32_t i = 0; i < b->nsegs; i++)
        free(b->segs[i].key);
    free(b->segs);
    free_files(b->files, b->nfiles);
    k8s_objs_free(&b->live);
    smap_free(&b->by_kind);
    smap_free(&b->seen);
    smap_free(&b->slices);
    smap_free(&b->be_idx);
    smap_free(&b->cur_eps);
    for (uint32_t i = 0; i < b->nepsets; i++)
        snap__epset_put(b->epsets[i]); /* only left on failure: snap_load moves them */
    free(b->epsets);
    arena_free(b->tmp);
    free(b->q);
    free(b->bes);
    free(b->npin);
    free(b->specs);
    free(b->recs);
    free(b->eps);
}

/*
 * Diagnostics come from several passes (decode, references, build); print
 * them in the order of the file so a reader can walk the file top-down.
 * Stable: same position keeps pass order. Files keep their first-seen order.
 */
static size_t file_rank(const char **files, const struct cfg_err *e)
{
    size_t r = 0;
    while (strcmp(files[r], e->file ? e->file : "") != 0)
        r++;
    return r;
}

static void sort_diags(struct cfg_errs *errs, size_t from)
{
    size_t n = errs->n - from;
    if (n < 2)
        return;
    struct cfg_err *v = errs->v + from;
    const char **files = calloc(n, sizeof(*files));
    size_t nfiles = 0;
    if (!files)
        abort();
    for (size_t i = 0; i < n; i++) {
        size_t f = 0;
        while (f < nfiles && strcmp(files[f], v[i].file ? v[i].file : "") != 0)
            f++;
        if (f == nfiles)
            files[nfiles++] = v[i].file ? v[i].file : "";
    }
    /* insertion sort by (file rank, line, col): stable, and the input is nearly sorted */
    for (size_t i = 1; i < n; i++) {
        struct cfg_err x = v[i];
        size_t rx = file_rank(files, &x), j = i;
        while (j > 0) {
            struct cfg_err *y = &v[j - 1];
            size_t ry = file_rank(files, y);
            if (ry < rx || (ry == rx && (y->line < x.line || (y->line == x.line && y->col <= x.col))))
                break;
            v[j] = *y;
            j--;
        }
        v[j] = x;
    }
    free(files);
}

/* ---- documents: split, hash, reuse or decode ---- */


static uint64_t seg_hash(const char *p, size_t n)
{
    /* word-at-a-time multiply-xorshift: only has to tell documents apart */
    uint64_t h = 0x243f6a8885a308d3ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h ^ (h >> 32);
}

/* "HASH/LEN/FILE": the document-reuse key (printf-free: one per document) */
static char *seg_key(uint64_t hash, size_t len, const char *file)
{
    char num[40], *q = num + sizeof(num);
    size_t fl = strlen(file);
    *--q = '/';
    do
        *--q = (char)('0' + len % 10);
    while ((len /= 10) != 0);
    *--q = '/';
    for (int i = 0; i < 16; i++, hash >>= 4)
        *--q = "0123456789abcdef"[hash & 15];
    size_t nl = (size_t)(num + sizeof(num) - q);
    char *k = malloc(nl + fl + 1);
    if (!k)
        abort();
    memcpy(k, q, nl);
    memcpy(k + nl, file, fl + 1);
    return k;
}

/*
 * Splits at document markers: a line starting with "---" followed by a blank
 * or the end of line. YAML forbids such a line inside any scalar, so this
 * split is exact. A stream starting with a directive (%YAML) stays whole.
 */
/*
 * Splits at document markers: a line starting with "---" followed by a blank
 * or the end of line. YAML forbids such a line inside any scalar, so this
 * split is exact. A stream starting with a directive (%YAML) stays whole.
 */
static void split_docs(const char *file, const char *text, size_t len, struct seg **v,
                       uint32_t *n, uint32_t *cap)
{
    size_t start = 0;
    unsigned line = 0, start_line = 0;
    bool whole = len && text[0] == '%';
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t next = nl ? (size_t)(nl - text) + 1 : len;
        if (!whole && pos > start && next - pos >= 3 && !memcmp(text + pos, "---", 3) &&
            (pos + 3 == len || text[pos + 3] == ' ' || text[pos + 3] == '\t' ||
             text[pos + 3] == '\n' || text[pos + 3] == '\r')) {
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 64;
                *v = realloc(*v, *cap * sizeof(**v));
                if (!*v)
                    abort();
            }
            (*v)[(*n)++] = (struct seg){ .file = file, .text = text + start, .len = pos - start,
                                         .line0 = start_line };
            start = pos;
            start_line = line;
        }
        pos = next;
        line++;
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = realloc(*v, *cap * sizeof(**v));
        if (!*v)
            abort();
    }
    (*v)[(*n)++] = (struct seg){ .file = file, .text = text + start, .len = len - start,
                                 .line0 = start_line };
}

static bool seg_decode(struct seg *g, struct k8s_objs *objs, struct cfg_errs *errs)
{
    size_t before = errs->n;
    struct ydoc *d = ydoc_parse_at(g->file, g->text, g->len, g->line0, errs);
    if (!d)
        return false;
    uint32_t first = objs->n;
    k8s_decode_stream(d, objs, errs);
    ydoc_free(d);
    g->first = first;
    g->n = objs->n - first;
    g->cacheable = errs->n == before;
    return true;
}

/* one document to decode (possibly on the helper thread) */
struct seg_job {
    struct seg *g;
    struct k8s_objs objs;              /* its objects, in order */
    struct cfg_errs errs;              /* its diagnostics */
    bool ok;                           /* false: not valid YAML */
};

struct seg_batch {
    struct seg_job *jobs;
    uint32_t from, to;
};

static void *decode_batch(void *arg)
{
    struct seg_batch *bt = arg;
    for (uint32_t i = bt->from; i < bt->to; i++) {
        struct seg_job *j = &bt->jobs[i];
        j->ok = seg_decode(j->g, &j->objs, &j->errs);
        if (!j->ok)
            break; /* the load fails anyway: the rest of this batch is not needed */
    }
    return NULL;
}

/* below this many bytes to decode a second thread costs more than it saves */
#define SNAP_PARALLEL_BYTES (256 * 1024)

/* drops every diagnostic after the first n (an invalid-YAML load reports only that) */
static void errs_truncate(struct cfg_errs *e, size_t n)
{
    while (e->n > n) {
        struct cfg_err *x = &e->v[--e->n];
        if (x->sev == CFG_ERROR)
            e->nerrors--;
        else
            e->nwarnings--;
        free(x->file);
        free(x->obj);
        free(x->msg);
    }
}

/*
 * Reads and decodes the configuration into objs (file order), reusing the
 * objects of byte-identical documents from prev. Documents that must be
 * decoded are independent (each has its own arenas and diagnostics), so a
 * large batch is split between this thread and one helper; results are
 * merged back in document order, so the outcome does not depend on it.
 * false on unreadable input or invalid YAML: then errs holds only that one
 * problem and nothing may apply.
 */
static bool decode_all(struct build *b, const char *path, struct k8s_objs *objs)
{
    size_t diag0 = b->errs->n;
    bool ok = read_config(path, &b->files, &b->nfiles, b->errs) == 0;
    const struct snap_objset *pos = b->prev ? b->prev->objects : NULL;
    struct smap used = { 0 };
    for (size_t f = 0; ok && f < b->nfiles; f++)
        split_docs(b->files[f].path, b->files[f].text, b->files[f].len, &b->segs, &b->nsegs,
                   &b->capsegs);
    if (!ok)
        return false;
    if (pos)
        smap_init(&used, b->nsegs);

    /* reuse what can be reused; queue the rest */
    const struct snap_doc **docs = calloc(b->nsegs ? b->nsegs : 1, sizeof(*docs));
    struct seg_job *jobs = calloc(b->nsegs ? b->nsegs : 1, sizeof(*jobs));
    uint32_t njobs = 0;
    size_t bytes = 0;
    if (!docs || !jobs)
        abort();
    for (uint32_t i = 0; i < b->nsegs; i++) {
        struct seg *g = &b->segs[i];
        g->hash = seg_hash(g->text, g->len);
        g->key = seg_key(g->hash, g->len, g->file);
        const struct snap_doc *doc = pos ? smap_get(&pos->docidx, 0, g->key) : NULL;
        /* a document written twice must not yield the same object twice */
        if (doc && !smap_set(&used, 0, g->key, (void *)doc)) {
            docs[i] = doc;
            continue;
        }
        jobs[njobs].g = g;
        cfg_errs_init(&jobs[njobs].errs);
        njobs++;
        bytes += g->len;
    }
    smap_free(&used);

    /* decode: the second half (by bytes) on a helper thread when it pays */
    uint32_t split = njobs;
    if (bytes >= SNAP_PARALLEL_BYTES && njobs > 1) {
        size_t half = 0;
        split = 0;
        while (split < njobs && half < bytes / 2)
            half += jobs[split++].g->len;
    }
    struct seg_batch mine = { jobs, 0, split }, theirs = { jobs, split, njobs };
    pthread_t helper;
    bool threaded = split < njobs && pthread_create(&helper, NULL, decode_batch, &theirs) == 0;
    if (!threaded)
        mine.to = njobs;
    decode_batch(&mine);
    if (threaded)
        pthread_join(helper, NULL);

    /* merge in document order */
    uint32_t j = 0;
    for (uint32_t i = 0; i < b->nsegs && ok; i++) {
        struct seg *g = &b->segs[i];
        if (docs[i]) {
            const struct snap_doc *doc = docs[i];
            g->first = objs->n;
            g->n = doc->nobjs;
            g->cached = true;
            g->decoded_line0 = doc->line0;
            /*
             * Positions inside the reused objects are those of decode time;
             * line_shift maps them to this file. Only the loader reads it
             * (workers never look at positions), so setting it on a shared
             * object is safe.
             */
            for (uint32_t k = 0; k < doc->nobjs; k++) {
                doc->objs[k]->line_shift = (int32_t)g->line0 - (int32_t)doc->line0;
                k8s_objs_push(objs, k8s_obj_ref(doc->objs[k]));
            }
            continue;
        }
        struct seg_job *jb = &jobs[j++];
        if (!jb->ok) {
            /* invalid YAML: that one error, nothing else */
            errs_truncate(b->errs, diag0);
            for (size_t e = 0; e < jb->errs.n; e++) {
                const struct cfg_err *x = &jb->errs.v[e];
                cfg_errs_add(b->errs, x->sev, x->file, x->line, x->col, x->obj, "%s", x->msg);
            }
            ok = false;
            break;
        }
        g->first = objs->n;
        g->cacheable = jb->errs.n == 0;
        for (uint32_t k = 0; k < jb->objs.n; k++) {
            jb->objs.v[k]->seq = objs->n;
            k8s_objs_push(objs, jb->objs.v[k]);
            jb->objs.v[k] = NULL;
        }
        for (size_t e = 0; e < jb->errs.n; e++) {
            const struct cfg_err *x = &jb->errs.v[e];
            cfg_errs_add(b->errs, x->sev, x->file, x->line, x->col, x->obj, "%s", x->msg);
        }
    }
    for (uint32_t k = 0; k < njobs; k++) {
        k8s_objs_free(&jobs[k].objs);
        cfg_errs_free(&jobs[k].errs);
    }
    free(jobs);
    free(docs);
    return ok;
}

/* the segment object i came from */
static struct seg *seg_of(struct build *b, uint32_t i)
{
    uint32_t lo = 0, hi = b->nsegs;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (b->segs[mid].first <= i)
            lo = mid;
        else
            hi = mid;
    }
    /* empty segments share `first` with the next one: step to the one that holds i */
    while (lo + 1 < b->nsegs && b->segs[lo].first + b->segs[lo].n <= i)
        lo++;
    return &b->segs[lo];
}

/*
 * Makes objs->v[i] a freshly decoded object (re-decoding its document from
 * the current text when it was reused), so it may be given diagnostics with
 * exact positions without touching the shared previous version.
 */
static struct k8s_obj *materialize(struct build *b, struct k8s_objs *objs, uint32_t i)
{
    struct seg *g = seg_of(b, i);
    if (!g->cached)
        return objs->v[i];
    struct k8s_objs fresh = { 0 };
    struct seg tmp = *g;
    if (!seg_decode(&tmp, &fresh, b->errs) || fresh.n != g->n) {
        k8s_objs_free(&fresh);
        return objs->v[i]; /* cannot happen: same bytes decoded cleanly before */
    }
    for (uint32_t j = 0; j < g->n; j++) {
        struct k8s_obj *old = objs->v[g->first + j];
        if (!old)
            continue;
        if (smap_get(&b->seen, old->kind, old->key) == old)
            smap_set(&b->seen, old->kind, old->key, fresh.v[j]);
        objs->v[g->first + j] = fresh.v[j];
        fresh.v[j] = NULL;
        k8s_obj_put(old);
    }
    k8s_objs_free(&fresh);
    g->cached = false;
    g->cacheable = true;
    return objs->v[i];
}

/*
 * true when every object a reference can point at (Services, Secrets) is the
 * very object the previous snapshot had, none more, none less: then a reused
 * object, which was checked clean against exactly these, needs no dry check
 * (10,000 backend references per slice-only reload otherwise). A broken
 * target is never reused (its document is decoded anew), so it makes this
 * false and the checks run.
 */
static bool refs_unchanged(const struct snap *prev, const struct k8s_objs *objs)
{
    const struct snap_objset *pos = prev ? prev->objects : NULL;
    uint32_t nprev = 0, nsame = 0;
    if (!pos)
        return false;
    for (uint32_t i = 0; i < pos->objs.n; i++)
        nprev += pos->objs.v[i]->kind == K8S_SERVICE || pos->objs.v[i]->kind == K8S_SECRET;
    for (uint32_t i = 0; i < objs->n; i++) {
        const struct k8s_obj *o = objs->v[i];
        if (!o || (o->kind != K8S_SERVICE && o->kind != K8S_SECRET))
            continue;
        if (smap_get(&pos->idx, o->kind, o->key) != o)
            return false;
        nsame++;
    }
    return nsame == nprev;
}

/*
 * Reads path (file or directory), decodes, checks and builds a snapshot; see
 * snap.h. prev (may be NULL) lends the last good version of objects that are
 * now broken, its decoded documents and its health entries; it is only read,
 * and the caller keeps its ref for the whole call. Returns NULL (and changes
 * nothing) when the input cannot be read or is not valid YAML, when no
 * ProxyConfig survives, or with opts->strict on any error. Diagnostics are
 * appended to errs, sorted by position. Loader thread or main.
 */
struct snap *snap_load(const char *path, const struct snap *prev, const struct snap_load_opts *opts,
                       struct cfg_errs *errs)
{
    uint64_t t0 = now_ns();
    struct build b = { .errs = errs, .prev = prev };
    struct k8s_objs objs = { 0 };
    size_t errs0 = errs->nerrors;

    size_t diag0 = errs->n;
    if (!decode_all(&b, path, &objs)) {
        k8s_objs_free(&objs);
        build_free(&b);
        return NULL;
    }
    b.tmp = arena_new(64 * 1024);
    smap_init(&b.by_kind, objs.n);

    /* 1. duplicates (same kind/ns/name): the first definition wins */
    smap_init(&b.seen, objs.n);
    struct k8s_obj *first_pc = NULL;
    for (uint32_t i = 0; i < objs.n; i++) {
        struct k8s_obj *o = objs.v[i];
        bool named = o->meta.name || o->kind == K8S_PROXYCONFIG;
        struct k8s_obj *first = named ? smap_get(&b.seen, o->kind, o->key) : NULL;
        if (!first && o->kind == K8S_PROXYCONFIG)
            first = first_pc;
        if (first) {
            o = materialize(&b, &objs, i);
            k8s_obj_error(o, errs, o->pos, "%s is already defined at %s:%u:%u",
                          o->kind == K8S_PROXYCONFIG ? "a ProxyConfig" : "this object", first->file,
                          (unsigned)((int32_t)first->pos.line + first->line_shift),
                          first->pos.col);
            quarantine(&b, o, false);
            k8s_obj_put(o);
            objs.v[i] = NULL;
            continue;
        }
        if (named)
            smap_set(&b.seen, o->kind, o->key, o);
        if (o->kind == K8S_PROXYCONFIG)
            first_pc = o;
    }

    /*
     * 2. references, checked against every decoded object: a reference to an
     * object that is itself broken is not a second mistake (only the broken
     * object is reported, and resolution below uses whatever version of it
     * ends up live). A reused object is checked dry first and re-decoded
     * only when it has something to report.
     */
    bool refs_same = refs_unchanged(prev, &objs);
    for (uint32_t i = 0; i < objs.n; i++) {
        struct k8s_obj *o = objs.v[i];
        if (!o || (o->kind != K8S_SERVICE && o->kind != K8S_PROXYCONFIG && o->kind != K8S_INGRESS))
            continue;
        if (refs_same && seg_of(&b, i)->cached)
            continue; /* checked clean against these very targets before */
        for (int round = 0; round < 2; round++) {
            b.dry = round == 0 && seg_of(&b, i)->cached;
            b.dry_hits = 0;
            if (o->kind == K8S_SERVICE)
                snap__check_service(&b, o);
            else if (o->kind == K8S_PROXYCONFIG)
                snap__check_proxycfg(&b, o);
            else
                snap__check_ingress(&b, o);
            if (!b.dry || !b.dry_hits)
                break;
            o = materialize(&b, &objs, i);
        }
        b.dry = false;
    }

    /* what the next load may reuse: documents whose objects all stayed clean */
    struct k8s_obj **segobjs = malloc((objs.n ? objs.n : 1) * sizeof(*segobjs));
    if (!segobjs)
        abort();
    if (objs.n)
        memcpy(segobjs, objs.v, objs.n * sizeof(*segobjs));

    /* 3. quarantine: broken objects give way to their last good version, or drop out */
    for (uint32_t i = 0; i < objs.n; i++) {
        struct k8s_obj *o = objs.v[i];
        if (!o)
            continue;
        k8s_objs_push(&b.live, o);
        if (o->nerrors)
            segobjs[i] = NULL; /* reject() drops it */
        if (o->nerrors && !(o = reject(&b, b.live.n - 1)))
            continue;
        smap_set(&b.by_kind, o->kind, o->key, o);
        if (o->kind == K8S_PROXYCONFIG)
            b.pc = o;
    }
    free(objs.v);

    sort_diags(errs, diag0);
    if (!b.pc) {
        if (errs->nerrors == errs0)
            cfg_errs_add(errs, CFG_ERROR, path, 0, 0, NULL,
                         "no ProxyConfig (apiVersion: ingressd/v1, kind: ProxyConfig) to serve");
        free(segobjs);
        build_free(&b);
        return NULL;
    }
    if (opts && opts->strict && errs->nerrors > errs0) {
        free(segobjs);
        build_free(&b);
        return NULL;
    }

    struct snap *s = snap__build(&b, path);
    /* quarantine records and the object set for the next load */
    s->nquarantine = b.nq;
    s->quarantine = b.nq ? arena_memdup(b.a, b.q, b.nq * sizeof(*b.q)) : NULL;
    for (uint32_t i = 0; i < b.nq; i++) {
        s->quarantine[i].object = arena_strdup(b.a, b.q[i].object);
        s->quarantine[i].file = arena_strdup(b.a, b.q[i].file);
        s->quarantine[i].error = arena_strdup(b.a, b.q[i].error);
    }
    struct snap_objset *os = calloc(1, sizeof(*os));
    if (!os)
        abort();
    smap_init(&os->idx, b.live.n);
    for (uint32_t i = 0; i < b.live.n; i++) {
        struct k8s_obj *o = b.live.v[i];
        if (!o)
            continue;
        k8s_objs_push(&os->objs, k8s_obj_ref(o));
        smap_set(&os->idx, o->kind, o->key, o);
    }
    for (uint32_t i = 0; i < b.nsegs; i++) {
        struct seg *g = &b.segs[i];
        bool clean = g->cached || g->cacheable;
        for (uint32_t j = 0; clean && j < g->n; j++)
            clean = segobjs[g->first + j] && segobjs[g->first + j]->nerrors == 0;
        if (!clean || !g->n)
            continue;
        if (os->ndocs % 64 == 0) {
            os->docs = realloc(os->docs, (os->ndocs + 64) * sizeof(*os->docs));
            if (!os->docs)
                abort();
        }
        struct snap_doc *doc = &os->docs[os->ndocs++];
        doc->line0 = g->cached ? g->decoded_line0 : g->line0;
        doc->key = g->key;
        g->key = NULL;
        doc->nobjs = g->n;
        doc->objs = malloc(g->n * sizeof(*doc->objs));
        if (!doc->objs)
            abort();
        for (uint32_t j = 0; j < g->n; j++)
            doc->objs[j] = k8s_obj_ref(segobjs[g->first + j]);
    }
    os->epsets = b.epsets;
    os->nepsets = b.nepsets;
    b.epsets = NULL;
    b.nepsets = 0;
    smap_init(&os->epidx, os->nepsets);
    for (uint32_t i = 0; i < os->nepsets; i++)
        smap_set(&os->epidx, 0, os->epsets[i]->key, os->epsets[i]);
    smap_init(&os->docidx, os->ndocs);
    for (uint32_t i = 0; i < os->ndocs; i++)
        smap_set(&os->docidx, 0, os->docs[i].key, &os->docs[i]);
    free(segobjs);
    s->objects = os;
    build_free(&b);
    s->load_ns = now_ns() - t0;
    return s;
}

/*
 * Drops one ref; the last one puts its endpoint sets (and through them the
 * health entries no other snapshot shares), frees the upstream SSL_CTXs, the TLS store, the route table's PCRE2 codes, the object set and
 * the arena. Any thread (workers drop the last ref of an old snapshot).
 */
void snap_release(struct snap *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t i = 0; i < s->nbackends; i++)
        if (s->backends[i].upstream_ssl_ctx)
            SSL_CTX_free(s->backends[i].upstream_ssl_ctx);
    tls_store_free(s->tls);
    route_table_free((struct route_table *)s->routes); /* its PCRE2 codes; memory is the arena's */
    objset_free(s->objects);
    arena_free(s->arena);
    s->magic = 0;
    free(s);
}

/* linear: for the admin listener and tests, never the request path */
const struct snap_backend *snap_find_backend(const struct snap *s, const char *name)
{
    for (uint32_t i = 0; s && i < s->nbackends; i++)
        if (!strcmp(s->backends[i].name, name))
            return &s->backends[i];
    return NULL;
}
