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

/* ---- the fast path: block-style YAML without libyaml ---- */

/*
 * Why: libyaml (scanner, token queue, per-token mallocs, an event per node)
 * was 70% of a large reload: 1,000 changed Ingresses cost ~270M
 * instructions in it. Configurations as kubectl and generators write them
 * use a small part of YAML: block maps and lists, one-line plain or simply
 * quoted scalars, comments. This reader handles exactly that part and builds
 * the same tree libyaml's events would (same nodes, values, quoting,
 * 1-based positions: a map at its first key, a list at its first '-', an
 * empty value just after its ':'). On anything else (flow collections,
 * anchors, aliases, tags, block or multi-line scalars, escapes, tabs, CR,
 * non-ASCII, every kind of mistake) it gives up without a word and the
 * caller parses the text with libyaml, which then is the one that decides
 * and reports. So the fast path can only be faster, never different: a
 * unit test compares both on every configuration under tests/.
 */

enum { FP_EOF, FP_LINE, FP_DOC, FP_BAIL };

struct fp {
    struct ydoc *d;
    const char *t;
    size_t len;
    unsigned line_base;
    size_t pos;                        /* start of the next line not yet consumed */
    unsigned lineno;                   /* 0-based line of pos */
    int kind;                          /* FP_* of the peeked line, -1 = not peeked */
    size_t ls, le;                     /* peeked line: start, end (its '\n' or len) */
    uint32_t ind;                      /* peeked line: leading spaces */
    unsigned depth;
    struct ydoc_node **stk;            /* kids of the open containers */
    size_t n, cap;
};

#define FP_MAX_DEPTH 64

/*
 * The first byte at or after i that is not printable ASCII (the line's '\n',
 * or a byte the fast path does not take), or len: eight bytes at a time,
 * finding the end of line and checking the line in one pass.
 */
static size_t fp_line_end(const char *t, size_t i, size_t len)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, t + i, 8);
        /* a byte < 0x20, a byte >= 0x80, or a 0x7f byte */
        uint64_t del = w ^ (0x7f * ones);
        if (((w - 0x20 * ones) | w | (del - ones)) & high) {
            uint64_t bad = ((w - 0x20 * ones) & ~w) | w | ((del - ones) & ~del);
            if (bad & high)
                break;
        }
    }
    for (; i < len; i++)
        if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] >= 0x7f)
            return i;
    return len;
}

static int fp_peek(struct fp *p)
{
    if (p->kind >= 0)
        return p->kind;
    for (;;) {
        if (p->pos >= p->len)
            return p->kind = FP_EOF;
        const char *t = p->t;
        size_t e = fp_line_end(t, p->pos, p->len);
        if (e < p->len && t[e] != '\n')
            return p->kind = FP_BAIL; /* tab, CR, control, non-ASCII */
        size_t c = p->pos;
        while (c < e && t[c] == ' ')
            c++;
        if (c == e || t[c] == '#') {    /* blank or comment line */
            p->pos = e + 1;
            p->lineno++;
            continue;
        }
        p->ls = p->pos;
        p->le = e;
        p->ind = (uint32_t)(c - p->pos);
        if (c == p->pos && e - c >= 3 && !memcmp(t + c, "---", 3)) {
            size_t r = c + 3;
            if (r < e && t[r] != ' ')
                return p->kind = FP_BAIL;
            while (r < e && t[r] == ' ')
                r++;
            return p->kind = (r == e || t[r] == '#') ? FP_DOC : FP_BAIL;
        }
        if (c == p->pos && (t[c] == '%' || (e - c >= 3 && !memcmp(t + c, "...", 3))))
            return p->kind = FP_BAIL;
        return p->kind = FP_LINE;
    }
}

static void fp_consume(struct fp *p)
{
    p->pos = p->le + 1;
    p->lineno++;
    p->kind = -1;
}

static void fp_push(struct fp *p, struct ydoc_node *n)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->stk = xrealloc(p->stk, p->cap * sizeof(*p->stk));
    }
    p->stk[p->n++] = n;
}

static struct ydoc_node *fp_node(struct fp *p, enum ydoc_type t, size_t off)
{
    struct ydoc_node *n = arena_calloc(p->d->arena, 1, sizeof(*n));
    n->type = t;
    n->line = p->lineno + 1 + p->line_base;
    n->col = (uint32_t)(off - p->ls) + 1;
    n->start = off;
    return n;
}

static void fp_close(struct fp *p, struct ydoc_node *n, size_t base)
{
    size_t k = p->n - base;
    n->n = (uint32_t)(n->type == YDOC_MAP ? k / 2 : k);
    if (k)
        n->kids = arena_memdup(p->d->arena, p->stk + base, k * sizeof(*p->stk));
    p->n = base;
    n->end = p->pos < p->len ? p->pos : p->len;
}

static bool fp_is_dash(const struct fp *p, size_t o)
{
    return p->t[o] == '-' && (o + 1 == p->le || p->t[o + 1] == ' ');
}

static bool fp_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '/' || c == '-';
}

/* length of a simple key at o followed by ':' and a blank or the end of line; 0 = none */
static size_t fp_key_len(const struct fp *p, size_t o)
{
    size_t k = o;
    if (p->t[k] == '-' || !fp_key_char(p->t[k]))
        return 0;
    while (k < p->le && fp_key_char(p->t[k]))
        k++;
    if (k == p->le || p->t[k] != ':' || (k + 1 < p->le && p->t[k + 1] != ' ') || k - o > 1000)
        return 0;
    return k - o;
}

/* what may follow a scalar on its line: blanks, then nothing or a comment */
static bool fp_rest_ok(const struct fp *p, size_t r)
{
    size_t r0 = r;
    while (r < p->le && p->t[r] == ' ')
        r++;
    return r == p->le || (p->t[r] == '#' && r > r0);
}

static struct ydoc_node *fp_flow(struct fp *p, size_t o);

/* a one-line scalar at o, the rest of the current line; NULL = not for the fast path */
static struct ydoc_node *fp_scalar(struct fp *p, size_t o)
{
    const char *t = p->t;
    size_t e = p->le, vs, ve, end;
    bool quoted = false;
    char c = t[o];
    if (c == '[' || c == '{')
        return fp_flow(p, o);
    if (c == '"' || c == '\'') {
        const char *q = memchr(t + o + 1, c, e - o - 1);
        if (!q)
            return NULL;
        vs = o + 1;
        ve = (size_t)(q - t);
        if (c == '"' && memchr(t + vs, '\\', ve - vs))
            return NULL;
        if (c == '\'' && ve + 1 < e && t[ve + 1] == '\'')
            return NULL;
        end = ve + 1;
        if (!fp_rest_ok(p, end))
            return NULL;
        quoted = true;
    } else {
        if (strchr("-?:,[]{}#&*!|>%@`", c) && !(c == '-' && o + 1 < e && t[o + 1] != ' '))
            return NULL;
        vs = o;
        ve = o;
        for (size_t i = o; i < e; i++) {
            if (t[i] == '#' && t[i - 1] == ' ')
                break;
            if (t[i] == ':' && (i + 1 == e || t[i + 1] == ' '))
                return NULL; /* a key, or a mistake: libyaml decides */
            if (t[i] != ' ')
                ve = i + 1;
        }
        end = ve;
    }
    struct ydoc_node *n = fp_node(p, YDOC_SCALAR, o);
    n->quoted = quoted;
    n->len = (uint32_t)(ve - vs);
    n->str = arena_strndup(p->d->arena, t + vs, ve - vs);
    n->end = end;
    return n;
}

/*
 * A one-line flow list of scalars ("[a, \"b\"]", "[]") or an empty flow map
 * ("{}"): hand-written EndpointSlices say `addresses: ["10.0.0.1"]`.
 */
static struct ydoc_node *fp_flow(struct fp *p, size_t o)
{
    const char *t = p->t;
    size_t e = p->le, i = o + 1;
    if (t[o] == '{') {
        while (i < e && t[i] == ' ')
            i++;
        if (i == e || t[i] != '}' || !fp_rest_ok(p, i + 1))
            return NULL;
        struct ydoc_node *m = fp_node(p, YDOC_MAP, o);
        m->end = i + 1;
        return m;
    }
    struct ydoc_node *s = fp_node(p, YDOC_SEQ, o);
    size_t base = p->n;
    for (bool first = true;; first = false) {
        while (i < e && t[i] == ' ')
            i++;
        if (i == e)
            return NULL;
        if (t[i] == ']' && first)
            break;
        size_t vs = i, ve, next;
        bool quoted = t[i] == '"' || t[i] == '\'';
        if (quoted) {
            const char *q = memchr(t + i + 1, t[i], e - i - 1);
            if (!q || (t[i] == '"' && memchr(t + i + 1, '\\', (size_t)(q - t) - i - 1)) ||
                (t[i] == '\'' && (size_t)(q - t) + 1 < e && q[1] == '\''))
                return NULL;
            vs = i + 1;
            ve = (size_t)(q - t);
            next = ve + 1;
        } else {
            if (strchr("-?:,[]{}#&*!|>%@`", t[i]))
                return NULL;
            ve = i;
            for (next = i; next < e && !strchr(",[]{}:#", t[next]); next++)
                if (t[next] != ' ')
                    ve = next + 1;
            if (next < e && (t[next] == ':' || t[next] == '#' || t[next] == '[' ||
                             t[next] == '{' || t[next] == '}'))
                return NULL;
        }
        struct ydoc_node *n = fp_node(p, YDOC_SCALAR, i);
        n->quoted = quoted;
        n->len = (uint32_t)(ve - vs);
        n->str = arena_strndup(p->d->arena, t + vs, ve - vs);
        n->end = quoted ? next : ve;
        fp_push(p, n);
        i = next;
        while (i < e && t[i] == ' ')
            i++;
        if (i < e && t[i] == ']')
            break;
        if (i == e || t[i] != ',')
            return NULL;
        i++;
    }
    if (!fp_rest_ok(p, i + 1))
        return NULL;
    fp_close(p, s, base);
    s->end = i + 1;
    return s;
}

static struct ydoc_node *fp_block(struct fp *p);
static struct ydoc_node *fp_seq(struct fp *p, uint32_t sind);

/* a block map whose first key is at o on the current line */
static struct ydoc_node *fp_map(struct fp *p, size_t o)
{
    uint32_t mind = (uint32_t)(o - p->ls);
    struct ydoc_node *m = fp_node(p, YDOC_MAP, o);
    size_t base = p->n;
    for (;;) {
        size_t kl = fp_key_len(p, o);
        if (!kl)
            return NULL;
        struct ydoc_node *k = fp_node(p, YDOC_SCALAR, o);
        k->len = (uint32_t)kl;
        k->str = arena_strndup(p->d->arena, p->t + o, kl);
        k->end = o + kl;
        fp_push(p, k);
        size_t colon = o + kl, r = colon + 1;
        while (r < p->le && p->t[r] == ' ')
            r++;
        struct ydoc_node *v;
        if (r == p->le || p->t[r] == '#') {
            /* the value is on the next lines, or empty (just after the ':') */
            struct ydoc_node *empty = fp_node(p, YDOC_SCALAR, colon + 1);
            empty->str = "";
            empty->end = colon + 1;
            fp_consume(p);
            int kind = fp_peek(p);
            if (kind == FP_BAIL)
                return NULL;
            if (kind == FP_LINE && p->ind > mind)
                v = fp_block(p);
            else if (kind == FP_LINE && p->ind == mind && fp_is_dash(p, p->ls + p->ind))
                v = fp_seq(p, mind); /* an indentless list */
            else
                v = empty;
        } else {
            v = fp_scalar(p, r);
            if (v)
                fp_consume(p);
        }
        if (!v)
            return NULL;
        fp_push(p, v);
        int kind = fp_peek(p);
        if (kind == FP_BAIL)
            return NULL;
        if (kind != FP_LINE || p->ind < mind)
            break;
        if (p->ind > mind || fp_is_dash(p, p->ls + p->ind))
            return NULL;
        o = p->ls + p->ind;
    }
    fp_close(p, m, base);
    return m;
}

/* a block list whose first '-' is at column sind of the current line */
static struct ydoc_node *fp_seq(struct fp *p, uint32_t sind)
{
    struct ydoc_node *s = fp_node(p, YDOC_SEQ, p->ls + sind);
    size_t base = p->n;
    for (;;) {
        size_t o = p->ls + sind, r = o + 1;
        while (r < p->le && p->t[r] == ' ')
            r++;
        struct ydoc_node *v;
        if (r == p->le || p->t[r] == '#') {
            fp_consume(p);
            if (fp_peek(p) != FP_LINE || p->ind <= sind)
                return NULL; /* an empty entry */
            v = fp_block(p);
        } else if (fp_is_dash(p, r)) {
            return NULL;     /* "- - x" */
        } else if (fp_key_len(p, r)) {
            v = fp_map(p, r);
        } else {
            v = fp_scalar(p, r);
            if (v)
                fp_consume(p);
        }
        if (!v)
            return NULL;
        fp_push(p, v);
        int kind = fp_peek(p);
        if (kind == FP_BAIL || (kind == FP_LINE && p->ind > sind))
            return NULL;
        if (kind != FP_LINE || p->ind < sind || !fp_is_dash(p, p->ls + p->ind))
            break;
    }
    fp_close(p, s, base);
    return s;
}

/* the map or list starting on the current (peeked) line */
static struct ydoc_node *fp_block(struct fp *p)
{
    if (++p->depth > FP_MAX_DEPTH)
        return NULL;
    size_t o = p->ls + p->ind;
    struct ydoc_node *n = fp_is_dash(p, o) ? fp_seq(p, p->ind) : fp_key_len(p, o) ? fp_map(p, o) : NULL;
    p->depth--;
    return n;
}

/*
 * The fast path of ydoc_parse_at(): NULL when the text is not plain block
 * YAML (nothing reported then; the caller uses libyaml).
 */
static struct ydoc *fp_parse(const char *file, const char *text, size_t len, unsigned line_base)
{
    struct ydoc *d = calloc(1, sizeof(*d));
    if (!d)
        abort();
    d->arena = arena_new(len > 256 * 1024 ? 1024 * 1024 : 0);
    d->file = arena_strdup(d->arena, file);
    d->text = text;
    d->len = len;
    struct fp p = { .d = d, .t = text, .len = len, .line_base = line_base, .kind = -1 };
    struct ydoc_node **docs = NULL, *root = NULL;
    size_t ndocs = 0, capdocs = 0;
    bool ok = true;
    for (;;) {
        int kind = fp_peek(&p);
        if (kind == FP_LINE && !root) {
            root = fp_block(&p);
            if (!root) {
                ok = false;
                break;
            }
            continue;
        }
        if (kind == FP_LINE || kind == FP_BAIL) {
            ok = false;
            break;
        }
        if (root) {
            if (ndocs == capdocs) {
                capdocs = capdocs ? capdocs * 2 : 8;
                docs = xrealloc(docs, capdocs * sizeof(*docs));
            }
            docs[ndocs++] = root;
            root = NULL;
        }
        if (kind == FP_EOF)
            break;
        fp_consume(&p); /* "---" */
    }
    free(p.stk);
    if (ok && ndocs)
        d->docs = arena_memdup(d->arena, docs, ndocs * sizeof(*docs));
    d->ndocs = ok ? ndocs : 0;
    free(docs);
    if (!ok) {
        ydoc_free(d);
        return NULL;
    }
    return d;
}

/* ---- public ---- */

struct ydoc *ydoc_parse(const char *file, const char *text, size_t len, struct cfg_errs *errs)
{
    return ydoc_parse_at(file, text, len, 0, errs);
}

struct ydoc *ydoc_parse_at(const char *file, const char *text, size_t len, unsigned line_base,
                           struct cfg_errs *errs)
{
    struct ydoc *d = fp_parse(file, text, len, line_base);
    return d ? d : ydoc_parse_libyaml_at(file, text, len, line_base, errs);
}

struct ydoc *ydoc_parse_fast_at(const char *file, const char *text, size_t len, unsigned line_base)
{
    return fp_parse(file, text, len, line_base);
}

struct ydoc *ydoc_parse_libyaml_at(const char *file, const char *text, size_t len,
                                   unsigned line_base, struct cfg_errs *errs)
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
