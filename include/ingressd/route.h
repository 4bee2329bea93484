/* SPDX-License-Identifier: Apache-2.0 */
/*
 * route: Kubernetes Ingress host/path matching, compiled at load time.
 *
 * Hosts go through hash tables (exact names, then "*.suffix" wildcards that
 * match exactly one label, then host-less rules); paths per host through a
 * trie of '/'-separated segments, so lookup cost grows with the path's length,
 * not with the number of rules. Regex paths (use-regex) are PCRE2, JIT,
 * anchored at the start; among Prefix and regex candidates the longest rule
 * text wins (Exact always wins). src/route.c's header has the full rules.
 *
 * Built on the loader thread inside the snapshot arena; read-only afterwards,
 * route_match() is safe from any number of threads without locks.
 * Ownership: the table lives in the caller's arena; the PCRE2 code objects it
 * holds live on the heap and are freed by route_table_free().
 */
#ifndef INGRESSD_ROUTE_H
#define INGRESSD_ROUTE_H

#include <stddef.h>

struct arena;
struct cfg_errs;
struct route_table;
struct snap_route;

enum route_path_type { ROUTE_EXACT = 0, ROUTE_PREFIX, ROUTE_REGEX };

/* Longest Host (after the port is stripped) that can match a host rule. */
#define ROUTE_HOST_MAX 255

struct route_spec {
    const char *host;                  /* NULL or "" = any host; "*.foo.com" = wildcard */
    const char *path;                  /* "/foo"; must begin with '/' (regex: any pattern) */
    enum route_path_type type;
    const struct snap_route *action;   /* must not be NULL */
    /* for diagnostics of bad regexes */
    const char *file;
    unsigned line, col;
    const char *obj;                   /* "Ingress ns/name" */
};

/*
 * Compiles `n` specs. On a duplicate (same host, type and path) the first one
 * wins (earlier objects first, as ingress-nginx merges by creation order) and
 * a warning naming both is added to errs. Invalid regexes are reported to errs
 * (with PCRE2's message and offset) and skipped; returns NULL only on an
 * unusable input (NULL arena, or NULL specs with n > 0). errs may be NULL.
 * The strings in specs are copied; the actions are pointed to.
 */
struct route_table *route_build(struct arena *a, const struct route_spec *specs, size_t n,
                                struct cfg_errs *errs);

/*
 * Frees the PCRE2 objects held by a table (the arena memory itself is freed
 * with the arena). The snapshot's last release calls it before arena_free().
 * NULL is a no-op; calling it twice is harmless. No route_match() may run on
 * the table any more.
 */
void route_table_free(struct route_table *t);

/*
 * Matches a request. host: the Host header value (port stripped here,
 * case-insensitive; NULL/0 = no Host, only host-less rules apply). path: the
 * normalised path; a '?' query is cut defensively. Returns the action or NULL
 * (caller falls back to the default backend, else 404). Allocates nothing,
 * except a PCRE2 match block once per thread on its first regex match.
 */
const struct snap_route *route_match(const struct route_table *t, const char *host,
                                     size_t hostlen, const char *path, size_t pathlen);

/*
 * Capture groups of a regex rule's match, for rewrite-target ($0..$9).
 * ov[2i], ov[2i+1]: start and end offset of group i in the path given to
 * route_match_caps(); a group that did not take part is empty (0, 0).
 */
#define ROUTE_MAX_CAPS 10
struct route_caps {
    int n;                             /* pairs filled; 0 when the winner is not a regex */
    size_t ov[2 * ROUTE_MAX_CAPS];
};

/*
 * route_match(), plus: when the winning rule is a regex, its capture groups
 * are stored in *caps (caps->n = 0 otherwise, and for NULL results). caps
 * may be NULL. Allocates nothing beyond what route_match() does.
 */
const struct snap_route *route_match_caps(const struct route_table *t, const char *host,
                                          size_t hostlen, const char *path, size_t pathlen,
                                          struct route_caps *caps);

/* number of routes kept (duplicates and bad regexes excluded) */
size_t route_count(const struct route_table *t);

/* number of distinct host entries (exact + wildcard + the host-less set) */
size_t route_host_count(const struct route_table *t);

/*
 * Checks that a regex compiles as route_build would compile it (for -t
 * without building). 0 ok; <0 with PCRE2's message in msg and the offset of
 * the error in *offset (msg/offset may be NULL).
 */
int route_check_regex(const char *pattern, char *msg, size_t msglen, size_t *offset);

#endif
