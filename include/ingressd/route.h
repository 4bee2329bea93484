/* SPDX-License-Identifier: Apache-2.0 */
/*
 * route: Kubernetes Ingress host/path matching, compiled at load time.
 *
 * Hosts go through a hash table (exact names, then "*.suffix" wildcards that
 * match exactly one label, then host-less rules); paths per host through a
 * trie of '/'-separated segments, so lookup cost grows with the path's length,
 * not with the number of rules. Regex paths (use-regex) are PCRE2, JIT,
 * anchored at the start, tried in declaration order after exact/prefix.
 *
 * Built on the loader thread inside the snapshot arena; read-only afterwards,
 * route_match() is safe from any number of threads.
 */
#ifndef INGRESSD_ROUTE_H
#define INGRESSD_ROUTE_H

#include <stddef.h>

struct arena;
struct cfg_errs;
struct route_table;
struct snap_route;

enum route_path_type { ROUTE_EXACT = 0, ROUTE_PREFIX, ROUTE_REGEX };

struct route_spec {
    const char *host;                  /* NULL or "" = any host; "*.foo.com" = wildcard */
    const char *path;                  /* "/foo"; must begin with '/' (regex: any pattern) */
    enum route_path_type type;
    const struct snap_route *action;
    /* for diagnostics of bad regexes */
    const char *file;
    unsigned line, col;
    const char *obj;                   /* "Ingress ns/name" */
};

/*
 * Compiles `n` specs. On a duplicate (same host, type and path) the first one
 * wins (earlier objects first, as ingress-nginx merges by creation order).
 * Invalid regexes are reported to errs (with PCRE2's message and offset) and
 * skipped; returns NULL only on an unusable input.
 */
struct route_table *route_build(struct arena *a, const struct route_spec *specs, size_t n,
                                struct cfg_errs *errs);

/*
 * Matches a request. host: the Host header value (port stripped here,
 * case-insensitive). path: the normalised path without query.
 * Returns the action or NULL (caller falls back to the default backend).
 */
const struct snap_route *route_match(const struct route_table *t, const char *host,
                                     size_t hostlen, const char *path, size_t pathlen);

size_t route_count(const struct route_table *t);

/* checks a regex compiles (for -t without building); 0 ok, <0 and msg filled */
int route_check_regex(const char *pattern, char *msg, size_t msglen, size_t *offset);

#endif
