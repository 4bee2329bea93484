/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ydoc: YAML text -> a small node tree with positions.
 *
 * Why a tree and not decoding straight from libyaml events: the Kubernetes
 * decoders need random access (metadata before spec, to name the object in
 * every message; `kind` before anything, to pick the field table) and every
 * diagnostic needs the line:column of the node it is about. So the loader
 * turns the event stream into nodes once (h2o's yoml does the same) and the
 * decoders walk those.
 *
 *   libyaml events --> frame stack (one growable kid vector per open
 *   map/seq) --> on close, the kids are copied into the arena --> doc roots
 *
 * Anchors are remembered per document and an alias becomes a second pointer
 * to the same node (the tree is a DAG; nothing mutates it, so sharing is
 * safe). `<<: *merge` keys are expanded when their map closes, keys written
 * in the map itself winning. Positions are 1-based (libyaml's marks are
 * 0-based). Everything lives in one arena freed by ydoc_free().
 *
 * Invalid YAML yields exactly one error (libyaml stops at the first problem)
 * and NULL: the caller must not apply anything from a half-read stream.
 * Loader thread only.
 */
#include "ingressd/ydoc.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "ingressd/arena.h"
#include "ingressd/cfg.h"

/* ---- tree building ---- */

struct ydoc_frame {
    struct ydoc_node *node;
    struct ydoc_node **kids;           /* malloc'd while open */
    size_t n, cap;
};

struct ydoc_anchor {
    char *name;                        /* malloc'd */
    struct ydoc_node *node;
};

struct ydoc_builder {
    struct ydoc *d;
    unsigned line_base;                /* added to every libyaml line */
    struct ydoc_frame *stack;
    size_t depth, cap;
    struct ydoc_anchor *anchors;
    size_t nanchors, capanchors;
    struct ydoc_node **docs;           /* malloc'd while parsing */
    size_t ndocs, capdocs;
    struct ydoc_node *root;            /* of the current document */
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q)
        abort();
    return q;
}

static void frame_push_kid(struct ydoc_frame *f, struct ydoc_node *kid)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->kids = xrealloc(f->kids, f->cap * sizeof(*f->kids));
    }
    f->kids[f->n++] = kid;
}

static void anchors_reset(struct ydoc_builder *b)
{
    for (size_t i = 0; i < b->nanchors; i++)
        free(b->anchors[i].name);
    b->nanchors = 0;
}

static void anchor_add(struct ydoc_builder *b, const yaml_char_t *name, struct ydoc_node *n)
{
    if (!name)
        return;
    if (b->nanchors == b->capanchors) {
        b->capanchors = b->capanchors ? b->capanchors * 2 : 8;
        b->anchors = xrealloc(b->anchors, b->capanchors * sizeof(*b->anchors));
    }
    b->anchors[b->nanchors].name = strdup((const char *)name);
    if (!b->anchors[b->nanchors].name)
        abort();
    b->anchors[b->nanchors++].node = n;
}

static struct ydoc_node *anchor_find(struct ydoc_builder *b, const yaml_char_t *name)
{
    /* the latest definition wins, as YAML redefinition rules say */
    for (size_t i = b->nanchors; i-- > 0;)
        if (strcmp(b->anchors[i].name, (const char *)name) == 0)
            return b->anchors[i].node;
    return NULL;
}

/* attaches a finished node to its parent (or makes it the document root) */
static void attach(struct ydoc_builder *b, struct ydoc_node *n)
{
    if (b->depth == 0)
        b->root = n;
    else
        frame_push_kid(&b->stack[b->depth - 1], n);
}

static struct ydoc_node *node_new(struct ydoc_builder *b, enum ydoc_type t, const yaml_event_t *ev)
{
    struct ydoc_node *n = arena_calloc(b->d->arena, 1, sizeof(*n));
    n->type = t;
    n->line = (uint32_t)(ev->start_mark.line + 1 + b->line_base);
    n->col = (uint32_t)ev->start_mark.column + 1;
    n->start = ev->start_mark.index;
    n->end = ev->end_mark.index;
    return n;
}

static void open_container(struct ydoc_builder *b, enum ydoc_type t, const yaml_event_t *ev,
                           const yaml_char_t *anchor)
{
    struct ydoc_node *n = node_new(b, t, ev);
    anchor_add(b, anchor, n);
    if (b->depth == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->stack = xrealloc(b->stack, b->cap * sizeof(*b->stack));
    }
    b->stack[b->depth++] = (struct ydoc_frame){ .node = n };
}

static bool is_merge_key(const struct ydoc_node *k)
{
    return k->type == YDOC_SCALAR && !k->quoted && strcmp(k->str, "<<") == 0;
}

static bool frame_has_key(const struct ydoc_frame *f, const char *key)
{
    for (size_t i = 0; i + 1 < f->n; i += 2)
        if (f->kids[i]->type == YDOC_SCALAR && strcmp(f->kids[i]->str, key) == 0)
            return true;
    return false;
}

/* `<<: *base` or `<<: [*a, *b]`: copy pairs not already present */
static void expand_merges(struct ydoc_frame *f)
{
    bool any = false;
    for (size_t i = 0; i + 1 < f->n; i += 2)
        any |= is_merge_key(f->kids[i]);
    if (!any)
        return;
    struct ydoc_frame out = { .node = f->node };
    for (size_t i = 0; i + 1 < f->n; i += 2)
        if (!is_merge_key(f->kids[i])) {
            frame_push_kid(&out, f->kids[i]);
            frame_push_kid(&out, f->kids[i + 1]);
        }
    for (size_t i = 0; i + 1 < f->n; i += 2) {
        if (!is_merge_key(f->kids[i]))
            continue;
        struct ydoc_node *v = f->kids[i + 1];
        struct ydoc_node *one[1] = { v };
        struct ydoc_node **srcs = v->type == YDOC_SEQ ? v->kids : one;
        uint32_t nsrc = v->type == YDOC_SEQ ? v->n : 1;
        for (uint32_t s = 0; s < nsrc; s++) {
            if (srcs[s]->type != YDOC_MAP)
                continue;
            for (uint32_t j = 0; j < srcs[s]->n; j++) {
                struct ydoc_node *k = srcs[s]->kids[2 * j];
                if (k->type == YDOC_SCALAR && frame_has_key(&out, k->str))
                    continue;
                frame_push_kid(&out, k);
                frame_push_kid(&out, srcs[s]->kids[2 * j + 1]);
            }
        }
    }
    free(f->kids);
    *f = out;
}

static void close_container(struct ydoc_builder *b, const yaml_event_t *ev)
{
    struct ydoc_frame *f = &b->stack[--b->depth];
    struct ydoc_node *n = f->node;
    if (n->type == YDOC_MAP)
        expand_merges(f);
    n->n = (uint32_t)(n->type == YDOC_MAP ? f->n / 2 : f->n);
    if (f->n)
        n->kids = arena_memdup(b->d->arena, f->kids, f->n * sizeof(*f->kids));
    n->end = ev->end_mark.index;
    free(f->kids);
    attach(b, n);
}

static void scalar(struct ydoc_builder *b, const yaml_event_t *ev)
{
    struct ydoc_node *n = node_new(b, YDOC_SCALAR, ev);
    n->len = (uint32_t)ev->data.scalar.length;
    n->str = arena_strndup(b->d->arena, (const char *)ev->data.scalar.value, n->len);
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                (ev->data.scalar.tag && strcmp((const char *)ev->data.scalar.tag,
                                               YAML_STR_TAG) == 0);
    anchor_add(b, ev->data.scalar.anchor, n);
    attach(b, n);
}

static void doc_end(struct ydoc_builder *b)
{
    if (b->root && !(b->root->type == YDOC_SCALAR && ydoc_is_null(b->root))) {
        if (b->ndocs == b->capdocs) {
            b->capdocs = b->capdocs ? b->capdocs * 2 : 8;
            b->docs = xrealloc(b->docs, b->capdocs * sizeof(*b->docs));
        }
        b->docs[b->ndocs++] = b->root;
    }
    b->root = NULL;
    anchors_reset(b);
}

/* ---- public ---- */

struct ydoc *ydoc_parse(const char *file, const char *text, size_t len, struct cfg_errs *errs)
{
    return ydoc_parse_at(file, text, len, 0, errs);
}

struct ydoc *ydoc_parse_at(const char *file, const char *text, size_t len, unsigned line_base,
                           struct cfg_errs *errs)
{
    yaml_parser_t p;
    yaml_event_t ev;
    struct ydoc_builder b = { 0 };
    bool ok = true, done = false;

    struct ydoc *d = calloc(1, sizeof(*d));
    if (!d)
        abort();
    d->arena = arena_new(len > 256 * 1024 ? 1024 * 1024 : 0);
    d->file = arena_strdup(d->arena, file);
    d->text = text;
    d->len = len;
    b.d = d;
    b.line_base = line_base;

    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (!done) {
        if (!yaml_parser_parse(&p, &ev)) {
            const char *prob = p.problem ? p.problem : "unknown problem";
            yaml_mark_t m = p.problem_mark;
            unsigned line = (unsigned)m.line + 1 + line_base;
            if (p.context)
                cfg_errs_add(errs, CFG_ERROR, file, line, (unsigned)m.column + 1, NULL,
                             "invalid YAML: %s %s (line %u column %u)", p.context, prob,
                             (unsigned)p.context_mark.line + 1 + line_base,
                             (unsigned)p.context_mark.column + 1);
            else
                cfg_errs_add(errs, CFG_ERROR, file, line, (unsigned)m.column + 1, NULL,
                             "invalid YAML: %s", prob);
            ok = false;
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = true; break;
        case YAML_DOCUMENT_START_EVENT: b.root = NULL; break;
        case YAML_DOCUMENT_END_EVENT: doc_end(&b); break;
        case YAML_MAPPING_START_EVENT:
            open_container(&b, YDOC_MAP, &ev, ev.data.mapping_start.anchor);
            break;
        case YAML_SEQUENCE_START_EVENT:
            open_container(&b, YDOC_SEQ, &ev, ev.data.sequence_start.anchor);
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT: close_container(&b, &ev); break;
        case YAML_SCALAR_EVENT: scalar(&b, &ev); break;
        case YAML_ALIAS_EVENT: {
            struct ydoc_node *n = anchor_find(&b, ev.data.alias.anchor);
            if (!n) {
                /* libyaml's parser leaves undefined aliases to the composer */
                cfg_errs_add(errs, CFG_ERROR, file, (unsigned)ev.start_mark.line + 1 + line_base,
                             (unsigned)ev.start_mark.column + 1, NULL,
                             "invalid YAML: found undefined alias \"%s\"",
                             (const char *)ev.data.alias.anchor);
                ok = false;
                done = true;
                break;
            }
            attach(&b, n);
            break;
        }
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    while (b.depth)
        free(b.stack[--b.depth].kids);
    free(b.stack);
    anchors_reset(&b);
    free(b.anchors);
    if (ok && b.ndocs)
        d->docs = arena_memdup(d->arena, b.docs, b.ndocs * sizeof(*b.docs));
    d->ndocs = b.ndocs;
    free(b.docs);
    if (!ok) {
        ydoc_free(d);
        return NULL;
    }
    return d;
}

void ydoc_free(struct ydoc *d)
{
    if (!d)
        return;
    arena_free(d->arena);
    free(d);
}

const struct ydoc_node *ydoc_get(const struct ydoc_node *m, const char *key)
{
    if (!m || m->type != YDOC_MAP)
        return NULL;
    for (uint32_t i = 0; i < m->n; i++) {
        const struct ydoc_node *k = m->kids[2 * i];
        if (k->type == YDOC_SCALAR && strcmp(k->str, key) == 0)
            return m->kids[2 * i + 1];
    }
    return NULL;
}

bool ydoc_is_null(const struct ydoc_node *n)
{
    if (!n)
        return true;
    if (n->type != YDOC_SCALAR || n->quoted)
        return false;
    return n->len == 0 || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
           !strcmp(n->str, "Null") || !strcmp(n->str, "NULL");
}

static bool looks_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return false;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o') && s[2])
        s += 2;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static bool looks_float(const char *s)
{
    char *end;
    if (!*s)
        return false;
    (void)strtod(s, &end);
    return *end == '\0' && strspn(s, "0123456789.eE+-") == strlen(s);
}

const char *ydoc_type_name(const struct ydoc_node *n)
{
    if (!n)
        return "null";
    if (n->type == YDOC_MAP)
        return "map";
    if (n->type == YDOC_SEQ)
        return "list";
    if (n->quoted)
        return "string";
    if (ydoc_is_null(n))
        return "null";
    if (!strcmp(n->str, "true") || !strcmp(n->str, "false") || !strcmp(n->str, "True") ||
        !strcmp(n->str, "False") || !strcmp(n->str, "TRUE") || !strcmp(n->str, "FALSE"))
        return "boolean";
    if (looks_int(n->str))
        return "integer";
    if (looks_float(n->str))
        return "number";
    return "string";
}

const char *ydoc_scalar(const struct ydoc_node *n)
{
    if (!n || n->type != YDOC_SCALAR || ydoc_is_null(n))
        return NULL;
    return n->str;
}
