/* SPDX-License-Identifier: Apache-2.0 */
/* str: non-owning byte slices (HAProxy ist, h2o_iovec_t). Any thread. */
#ifndef INGRESSD_STR_H
#define INGRESSD_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct str {
    const char *p;  /* not NUL-terminated in general */
    size_t n;
};

#define STR_LIT(s) ((struct str){ (s), sizeof(s) - 1 })
#define STR_NULL   ((struct str){ NULL, 0 })

static inline struct str str_make(const char *p, size_t n) { return (struct str){ p, n }; }
static inline struct str str_cstr(const char *s) { return (struct str){ s, s ? strlen(s) : 0 }; }

bool str_eq(struct str a, struct str b);
bool str_ieq(struct str a, struct str b);            /* ASCII case-insensitive */
bool str_ieq_cstr(struct str a, const char *b);
bool str_has_prefix(struct str s, struct str prefix);
struct str str_trim(struct str s);                   /* strips SP and HTAB both ends */
/* splits at the first `sep`: returns the part before, advances *s past sep (or to end) */
struct str str_next_token(struct str *s, char sep);
/* parses a non-negative decimal; false on empty, non-digit or overflow of max */
bool str_to_u64(struct str s, unsigned long long max, unsigned long long *out);
/* FNV-1a 64, case-insensitive variant for host names */
unsigned long long str_hash(struct str s);
unsigned long long str_ihash(struct str s);

/* "500ms", "2s", "1m30s", "1h"; a bare number means seconds. false on garbage. */
bool str_parse_duration_ms(const char *s, unsigned long long *ms);
/* "512", "8k", "1m", "1g" (case-insensitive, optional trailing b). false on garbage. */
bool str_parse_size(const char *s, unsigned long long *bytes);

#endif
