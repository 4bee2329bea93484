/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ydoc: a YAML stream read into a small tree of scalar/map/seq nodes, each
 * remembering where it was written (file, 1-based line and column, byte range),
 * so every later diagnostic can point at the exact spot (h2o yoml, twemproxy
 * nc_conf). Built with libyaml's event API; anchors and aliases are resolved
 * into shared nodes; one tree root per document.
 *
 * Owned by the caller, freed with ydoc_free(); loader thread only.
 */
#ifndef INGRESSD_YDOC_H
#define INGRESSD_YDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct cfg_errs;

enum ydoc_type { YDOC_SCALAR = 0, YDOC_MAP, YDOC_SEQ };

struct ydoc_node {
    enum ydoc_type type;
    uint32_t line, col;                /* 1-based, where the node starts */
    bool quoted;                       /* scalar written quoted or as a block: always a string */
    const char *str;                   /* scalar value, NUL-terminated (never NULL for scalars) */
    uint32_t len;                      /* scalar length */
    struct ydoc_node **kids;           /* map: 2*n (key, value, key, value...); seq: n items */
    uint32_t n;                        /* map: pairs; seq: items */
    size_t start, end;                 /* byte offsets of the node in the source text */
};

struct ydoc {
    struct arena *arena;               /* owns every node and string */
    const char *file;                  /* as given by the caller */
    const char *text;                  /* the source, not owned (caller keeps it alive) */
    size_t len;
    struct ydoc_node **docs;           /* one root per document; empty documents left out */
    size_t ndocs;
};

/*
 * Parses a whole YAML stream. On invalid YAML reports exactly one error
 * (file:line:col and libyaml's problem text) to errs and returns NULL.
 * text must outlive the result (nodes keep byte offsets into it).
 */
struct ydoc *ydoc_parse(const char *file, const char *text, size_t len, struct cfg_errs *errs);
/* the same for a piece of a file that starts at line line_base + 1 (positions stay file-absolute) */
struct ydoc *ydoc_parse_at(const char *file, const char *text, size_t len, unsigned line_base,
                           struct cfg_errs *errs);
void ydoc_free(struct ydoc *d);                      /* NULL is a no-op */

/* map lookup by key (first match), NULL when absent or m is not a map */
const struct ydoc_node *ydoc_get(const struct ydoc_node *m, const char *key);
/* true for a plain scalar `~`, `null`, `Null`, `NULL` or empty */
bool ydoc_is_null(const struct ydoc_node *n);
/* "string", "integer", "boolean", "null", "map", "list" as YAML would type it */
const char *ydoc_type_name(const struct ydoc_node *n);
/* scalar convenience: the value if n is a non-null scalar, else NULL */
const char *ydoc_scalar(const struct ydoc_node *n);

#endif
