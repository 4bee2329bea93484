/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Router tests: the Kubernetes documentation's path-matching table row by row
 * (https://kubernetes.io/docs/concepts/services-networking/ingress/#examples),
 * then hosts, merging, regexes, precedence and scale.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ingressd/arena.h"
#include "ingressd/cfg.h"
#include "ingressd/route.h"
#include "ingressd/snap-t.h"

TestSuite(route);

#define RT_MAX 64

struct rt {
    struct arena *a;
    struct route_table *t;
    struct cfg_errs errs;
    struct snap_route acts[RT_MAX];
    struct route_spec specs[RT_MAX];
    char names[RT_MAX][96];
    size_t n;
};

static void rt_init(struct rt *r)
{
    memset(r, 0, sizeof(*r));
    r->a = arena_new(0);
    cfg_errs_init(&r->errs);
}

/* adds a rule whose action is named `name` (default: "<Type> <path>") */
static void rt_add(struct rt *r, const char *host, enum route_path_type type, const char *path,
                   const char *name)
{
    size_t i = r->n++;
    cr_assert(i < RT_MAX);
    if (!name) {
        snprintf(r->names[i], sizeof(r->names[i]), "%s %s",
                 type == ROUTE_EXACT ? "Exact" : type == ROUTE_PREFIX ? "Prefix" : "Regex", path);
        name = r->names[i];
    }
    r->acts[i].ingress = name;
    r->acts[i].host = host;
    r->acts[i].path = path;
    r->specs[i] = (struct route_spec){ .host = host, .path = path, .type = type,
                                       .action = &r->acts[i], .file = "routes.yaml",
                                       .line = (unsigned)(10 + i), .col = 15,
                                       .obj = "Ingress default/web" };
}

static void rt_build(struct rt *r)
{
    r->t = route_build(r->a, r->specs, r->n, &r->errs);
    cr_assert_not_null(r->t);
}

/* the name of the winning rule, or "none" */
static const char *rt_get(const struct rt *r, const char *host, const char *path)
{
    const struct snap_route *m =
        route_match(r->t, host, host ? strlen(host) : 0, path, strlen(path));
    return m ? m->ingress : "none";
}

static void rt_done(struct rt *r)
{
    route_table_free(r->t);
    arena_free(r->a);
    cfg_errs_free(&r->errs);
}

#define EXPECT(r, host, path, want) \
    cr_expect_str_eq(rt_get((r), (host), (path)), (want), "host %s path %s", \
                     (host) ? (host) : "(none)", (path))

/* ---- the Kubernetes documentation's examples table, one test per row ---- */

Test(route, k8s_prefix_root_matches_all_paths)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/", "Prefix /");
    EXPECT(&r, NULL, "/foo", "Prefix /");
    EXPECT(&r, NULL, "/foo/", "Prefix /");
    EXPECT(&r, NULL, "/aaa/bbb/ccc", "Prefix /");
    EXPECT(&r, NULL, "/foobar", "Prefix /");
    EXPECT(&r, "any.example.com", "/x", "Prefix /");
    rt_done(&r);
}

Test(route, k8s_exact_foo_matches_foo)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_EXACT, "/foo", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/foo", "Exact /foo");
    rt_done(&r);
}

Test(route, k8s_exact_foo_not_bar)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_EXACT, "/foo", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/bar", "none");
    rt_done(&r);
}

Test(route, k8s_exact_foo_not_foo_slash)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_EXACT, "/foo", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/foo/", "none");
    rt_done(&r);
}

Test(route, k8s_exact_foo_slash_not_foo)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_EXACT, "/foo/", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/foo", "none");
    EXPECT(&r, NULL, "/foo/", "Exact /foo/"); /* and it does match itself */
    rt_done(&r);
}

Test(route, k8s_prefix_foo_matches_foo_and_foo_slash)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/foo", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/foo", "Prefix /foo");
    EXPECT(&r, NULL, "/foo/", "Prefix /foo");
    rt_done(&r);
}

Test(route, k8s_prefix_foo_slash_matches_foo_and_foo_slash)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/foo/", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/foo", "Prefix /foo/");
    EXPECT(&r, NULL, "/foo/", "Prefix /foo/");
    rt_done(&r);
}

Test(route, k8s_prefix_aaa_bb_not_aaa_bbb)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa/bb", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/aaa/bbb", "none");
    rt_done(&r);
}

Test(route, k8s_prefix_aaa_bbb_matches_aaa_bbb)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa/bbb", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/aaa/bbb", "Prefix /aaa/bbb");
    rt_done(&r);
}

Test(route, k8s_prefix_ignores_rule_trailing_slash)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa/bbb/", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/aaa/bbb", "Prefix /aaa/bbb/");
    rt_done(&r);
}

Test(route, k8s_prefix_matches_request_trailing_slash)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa/bbb", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/aaa/bbb/", "Prefix /aaa/bbb");
    rt_done(&r);
}

Test(route, k8s_prefix_matches_subpath)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa/bbb", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/aaa/bbb/ccc", "Prefix /aaa/bbb");
    rt_done(&r);
}

Test(route, k8s_prefix_does_not_match_string_prefix)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa/bbb", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/aaa/bbbxyz", "none");
    rt_done(&r);
}

Test(route, k8s_prefix_root_and_aaa_matches_aaa)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/", NULL);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/aaa/ccc", "Prefix /aaa");
    rt_done(&r);
}

Test(route, k8s_prefix_three_matches_aaa_bbb)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/", NULL);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa", NULL);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa/bbb", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/aaa/bbb", "Prefix /aaa/bbb");
    rt_done(&r);
}

Test(route, k8s_prefix_three_matches_root_for_ccc)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/", NULL);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa", NULL);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa/bbb", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/ccc", "Prefix /");
    rt_done(&r);
}

Test(route, k8s_prefix_aaa_not_ccc_uses_default_backend)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/aaa", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/ccc", "none"); /* NULL: the caller serves defaultBackend */
    rt_done(&r);
}

Test(route, k8s_mixed_prefers_exact)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/foo", NULL);
    rt_add(&r, NULL, ROUTE_EXACT, "/foo", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/foo", "Exact /foo");
    EXPECT(&r, NULL, "/foo/", "Prefix /foo");
    rt_done(&r);
    /* declaration order does not matter */
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_EXACT, "/foo", NULL);
    rt_add(&r, NULL, ROUTE_PREFIX, "/foo", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/foo", "Exact /foo");
    rt_done(&r);
}

/* ---- more paths ---- */

Test(route, paths_are_case_sensitive)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_EXACT, "/Foo", NULL);
    rt_add(&r, NULL, ROUTE_PREFIX, "/bar", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/Foo", "Exact /Foo");
    EXPECT(&r, NULL, "/foo", "none");
    EXPECT(&r, NULL, "/BAR/x", "none");
    rt_done(&r);
}

Test(route, exact_root_and_deep_exact)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_EXACT, "/", NULL);
    rt_add(&r, NULL, ROUTE_EXACT, "/a/b/c", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/", "Exact /");
    EXPECT(&r, NULL, "/a", "none");
    EXPECT(&r, NULL, "/a/b", "none");
    EXPECT(&r, NULL, "/a/b/c", "Exact /a/b/c");
    EXPECT(&r, NULL, "/a/b/c/", "none");
    EXPECT(&r, NULL, "/a/b/cd", "none");
    rt_done(&r);
}

Test(route, longest_match_wins_exact_beats_prefix_at_equal_length)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "/a", NULL);
    rt_add(&r, NULL, ROUTE_PREFIX, "/a/b/c", NULL);
    rt_add(&r, NULL, ROUTE_EXACT, "/a/b", NULL);
    rt_add(&r, NULL, ROUTE_PREFIX, "/a/b", NULL);
    rt_add(&r, NULL, ROUTE_EXACT, "/a", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/a", "Exact /a");
    EXPECT(&r, NULL, "/a/", "Prefix /a");
    EXPECT(&r, NULL, "/a/b", "Exact /a/b");
    EXPECT(&r, NULL, "/a/b/", "Prefix /a/b");
    EXPECT(&r, NULL, "/a/b/c", "Prefix /a/b/c");
    EXPECT(&r, NULL, "/a/b/c/d/e", "Prefix /a/b/c");
    EXPECT(&r, NULL, "/a/b/x", "Prefix /a/b");
    EXPECT(&r, NULL, "/a/x", "Prefix /a");
    EXPECT(&r, NULL, "/ax", "none");
    /* a longer Prefix beats a shorter Exact that does not match anyway */
    EXPECT(&r, NULL, "/a/b/cc", "Prefix /a/b");
    rt_done(&r);
}

Test(route, query_is_cut_defensively)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_EXACT, "/foo", NULL);
    rt_add(&r, NULL, ROUTE_PREFIX, "/bar", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/foo?x=1", "Exact /foo");
    EXPECT(&r, NULL, "/bar/?a=/foo", "Prefix /bar");
    EXPECT(&r, NULL, "/foo/?x", "none");
    rt_done(&r);
}

Test(route, empty_and_non_origin_paths)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_EXACT, "/", NULL);
    rt_build(&r);
    cr_expect_str_eq(route_match(r.t, NULL, 0, "", 0)->ingress, "Exact /");
    EXPECT(&r, NULL, "*", "none");
    rt_done(&r);
}

/* ---- hosts ---- */

static void rt_hosts(struct rt *r)
{
    rt_init(r);
    rt_add(r, "foo.bar.com", ROUTE_PREFIX, "/bar", "exact-host");
    rt_add(r, "*.bar.com", ROUTE_PREFIX, "/foo", "wild-foo");
    rt_add(r, "*.bar.com", ROUTE_EXACT, "/bar/only", "wild-exact");
    rt_add(r, NULL, ROUTE_PREFIX, "/", "no-host");
    rt_build(r);
}

Test(route, exact_host_beats_wildcard_beats_none)
{
    struct rt r;
    rt_hosts(&r);
    EXPECT(&r, "foo.bar.com", "/bar", "exact-host");
    EXPECT(&r, "foo.bar.com", "/bar/x", "exact-host");
    EXPECT(&r, "baz.bar.com", "/foo", "wild-foo");
    EXPECT(&r, "baz.bar.com", "/bar/only", "wild-exact");
    EXPECT(&r, "baz.bar.com", "/bar", "no-host");
    EXPECT(&r, "other.com", "/bar", "no-host");
    EXPECT(&r, NULL, "/bar", "no-host");
    rt_done(&r);
}

Test(route, unmatched_path_falls_back_to_less_specific_hosts)
{
    struct rt r;
    rt_hosts(&r);
    /* foo.bar.com has no /foo: the wildcard's rule set is next, then the host-less one */
    EXPECT(&r, "foo.bar.com", "/foo/x", "wild-foo");
    EXPECT(&r, "foo.bar.com", "/bar/only", "exact-host"); /* exact host's Prefix /bar first */
    EXPECT(&r, "foo.bar.com", "/zzz", "no-host");
    rt_done(&r);
    /* without host-less rules the miss is a miss (default backend / 404) */
    rt_init(&r);
    rt_add(&r, "foo.bar.com", ROUTE_PREFIX, "/bar", "exact-host");
    rt_build(&r);
    EXPECT(&r, "foo.bar.com", "/zzz", "none");
    EXPECT(&r, "nope.com", "/bar", "none");
    rt_done(&r);
}

Test(route, hosts_are_case_insensitive)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, "Foo.Bar.COM", ROUTE_PREFIX, "/", "exact-host");
    rt_add(&r, "*.Example.org", ROUTE_PREFIX, "/", "wild");
    rt_build(&r);
    EXPECT(&r, "foo.bar.com", "/", "exact-host");
    EXPECT(&r, "FOO.BAR.COM", "/x", "exact-host");
    EXPECT(&r, "WWW.EXAMPLE.ORG", "/", "wild");
    rt_done(&r);
}

Test(route, host_ports_are_stripped)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, "foo.bar.com", ROUTE_PREFIX, "/", "exact-host");
    rt_add(&r, "*.bar.com", ROUTE_PREFIX, "/", "wild");
    rt_add(&r, "[::1]", ROUTE_PREFIX, "/", "v6");
    rt_add(&r, "127.0.0.1", ROUTE_PREFIX, "/", "v4");
    rt_build(&r);
    EXPECT(&r, "foo.bar.com:8080", "/", "exact-host");
    EXPECT(&r, "foo.bar.com:", "/", "exact-host");
    EXPECT(&r, "Foo.Bar.Com:443", "/a", "exact-host");
    EXPECT(&r, "x.bar.com:80", "/", "wild");
    EXPECT(&r, "[::1]:80", "/", "v6");
    EXPECT(&r, "[::1]", "/", "v6");
    EXPECT(&r, "127.0.0.1:18080", "/", "v4");
    EXPECT(&r, "foo.bar.com.", "/", "exact-host"); /* FQDN form, as nginx */
    EXPECT(&r, "[::1", "/", "none");
    rt_done(&r);
}

Test(route, wildcard_matches_exactly_one_label)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, "*.foo.com", ROUTE_PREFIX, "/", "wild");
    rt_build(&r);
    EXPECT(&r, "bar.foo.com", "/", "wild");
    EXPECT(&r, "baz.bar.foo.com", "/", "none");
    EXPECT(&r, "foo.com", "/", "none");
    EXPECT(&r, ".foo.com", "/", "none");
    EXPECT(&r, "barfoo.com", "/", "none");
    EXPECT(&r, "bar.foo.com.evil", "/", "none");
    rt_done(&r);
}

Test(route, host_without_port_or_host_header_uses_hostless_rules)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, "a.com", ROUTE_PREFIX, "/", "a");
    rt_add(&r, "", ROUTE_PREFIX, "/x", "empty-host");
    rt_build(&r);
    EXPECT(&r, NULL, "/x", "empty-host");
    EXPECT(&r, "", "/x", "empty-host");
    EXPECT(&r, "a.com", "/x", "a");
    EXPECT(&r, NULL, "/", "none");
    cr_expect_eq(route_host_count(r.t), 2);
    rt_done(&r);
}

/* ---- merging ---- */

Test(route, ingresses_for_one_host_merge_first_duplicate_wins)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, "shop.com", ROUTE_PREFIX, "/cart", "ing-a:/cart");
    rt_add(&r, "shop.com", ROUTE_PREFIX, "/", "ing-a:/");
    rt_add(&r, "SHOP.com", ROUTE_PREFIX, "/api", "ing-b:/api");
    rt_add(&r, "shop.com", ROUTE_PREFIX, "/cart/", "ing-b:/cart/"); /* same rule as /cart */
    rt_add(&r, "shop.com", ROUTE_EXACT, "/cart", "ing-b:exact/cart"); /* different type: kept */
    rt_add(&r, "shop.com", ROUTE_PREFIX, "/", "ing-c:/");
    rt_build(&r);
    EXPECT(&r, "shop.com", "/cart/1", "ing-a:/cart");
    EXPECT(&r, "shop.com", "/cart", "ing-b:exact/cart");
    EXPECT(&r, "shop.com", "/api/v1", "ing-b:/api");
    EXPECT(&r, "shop.com", "/other", "ing-a:/");
    cr_expect_eq(route_count(r.t), 4);
    cr_expect_eq(route_host_count(r.t), 1);
    cr_expect_eq(r.errs.nerrors, 0);
    cr_expect_eq(r.errs.nwarnings, 2);
    cr_expect(strstr(r.errs.v[0].msg, "duplicate Prefix path \"/cart/\"") != NULL, "%s",
              r.errs.v[0].msg);
    cr_expect(strstr(r.errs.v[0].msg, "first definition wins") != NULL);
    rt_done(&r);
}

Test(route, same_path_on_different_hosts_is_not_a_duplicate)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, "a.com", ROUTE_PREFIX, "/x", "a");
    rt_add(&r, "b.com", ROUTE_PREFIX, "/x", "b");
    rt_add(&r, "*.a.com", ROUTE_PREFIX, "/x", "wa");
    rt_add(&r, NULL, ROUTE_PREFIX, "/x", "any");
    rt_build(&r);
    EXPECT(&r, "a.com", "/x", "a");
    EXPECT(&r, "b.com", "/x", "b");
    EXPECT(&r, "z.a.com", "/x", "wa");
    EXPECT(&r, "c.com", "/x", "any");
    cr_expect_eq(r.errs.n, 0);
    cr_expect_eq(route_count(r.t), 4);
    rt_done(&r);
}

/* ---- regex (use-regex) ---- */

Test(route, regex_is_anchored_at_the_start_only)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_REGEX, "/api/v[0-9]+", NULL);
    rt_add(&r, NULL, ROUTE_REGEX, "/exact-ish$", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/api/v2", "Regex /api/v[0-9]+");
    EXPECT(&r, NULL, "/api/v12/users", "Regex /api/v[0-9]+");
    EXPECT(&r, NULL, "/x/api/v2", "none");
    EXPECT(&r, NULL, "/api/vx", "none");
    EXPECT(&r, NULL, "/API/v2", "none"); /* case-sensitive like every Ingress path */
    EXPECT(&r, NULL, "/exact-ish", "Regex /exact-ish$");
    EXPECT(&r, NULL, "/exact-ish/more", "none");
    EXPECT(&r, NULL, "/exact-ish?q=1", "Regex /exact-ish$");
    rt_done(&r);
}

Test(route, regex_case_insensitive_opt_in)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_REGEX, "(?i)/img/.*\\.png", NULL);
    rt_build(&r);
    EXPECT(&r, NULL, "/IMG/a/B.PNG", "Regex (?i)/img/.*\\.png");
    rt_done(&r);
}

Test(route, regex_longest_rule_text_wins_against_prefix_and_regex)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, "h.com", ROUTE_PREFIX, "/api", NULL);                /* len 4 */
    rt_add(&r, "h.com", ROUTE_REGEX, "/api/v[0-9]+", NULL);         /* len 12 */
    rt_add(&r, "h.com", ROUTE_PREFIX, "/api/v1/users/list", NULL);  /* len 18 */
    rt_add(&r, "h.com", ROUTE_REGEX, "/a.*", NULL);                 /* len 4: ties /api */
    rt_add(&r, "h.com", ROUTE_REGEX, "/api/v[0-9]+/admin", NULL);   /* len 18 */
    rt_add(&r, "h.com", ROUTE_EXACT, "/api/v1", NULL);
    rt_build(&r);
    EXPECT(&r, "h.com", "/api/v1/x", "Regex /api/v[0-9]+");
    EXPECT(&r, "h.com", "/api/v2/admin/z", "Regex /api/v[0-9]+/admin");
    EXPECT(&r, "h.com", "/api/v1/users/list/7", "Prefix /api/v1/users/list");
    EXPECT(&r, "h.com", "/api/other", "Prefix /api");     /* tie at 4: Prefix wins */
    EXPECT(&r, "h.com", "/abc", "Regex /a.*");            /* no Prefix: the regex */
    EXPECT(&r, "h.com", "/api/v1", "Exact /api/v1");      /* Exact always wins */
    EXPECT(&r, "h.com", "/zzz", "none");
    rt_done(&r);
}

Test(route, regex_equal_length_keeps_declaration_order)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_REGEX, "/x/[a-z]+", "first");
    rt_add(&r, NULL, ROUTE_REGEX, "/x/[a-c]+", "second");
    rt_add(&r, NULL, ROUTE_REGEX, "/x/[a-z]+", "dup");
    rt_build(&r);
    EXPECT(&r, NULL, "/x/abc", "first");
    cr_expect_eq(route_count(r.t), 2);
    cr_expect_eq(r.errs.nwarnings, 1);
    rt_done(&r);
}

Test(route, regex_falls_through_host_levels)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, "h.com", ROUTE_REGEX, "/only/[0-9]+", "host-rx");
    rt_add(&r, NULL, ROUTE_PREFIX, "/", "no-host");
    rt_build(&r);
    EXPECT(&r, "h.com", "/only/42", "host-rx");
    EXPECT(&r, "h.com", "/only/x", "no-host");
    rt_done(&r);
}

Test(route, invalid_regex_is_reported_with_message_and_offset)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, "h.com", ROUTE_REGEX, "/ok/.*", NULL);
    rt_add(&r, "h.com", ROUTE_REGEX, "/bad/(abc", NULL);
    rt_add(&r, "h.com", ROUTE_REGEX, "/worse[", NULL);
    rt_build(&r);
    cr_assert_eq(r.errs.nerrors, 2);
    const struct cfg_err *e = &r.errs.v[0];
    cr_expect_str_eq(e->file, "routes.yaml");
    cr_expect_eq(e->line, 11);
    cr_expect_eq(e->col, 15);
    cr_expect_str_eq(e->obj, "Ingress default/web");
    cr_expect(strstr(e->msg, "invalid regular expression \"/bad/(abc\"") != NULL, "%s", e->msg);
    cr_expect(strstr(e->msg, "missing closing parenthesis") != NULL, "%s", e->msg);
    cr_expect(strstr(e->msg, "at offset 9") != NULL, "%s", e->msg);
    cr_expect(strstr(r.errs.v[1].msg, "missing terminating ]") != NULL, "%s", r.errs.v[1].msg);
    cr_expect(strstr(r.errs.v[1].msg, "at offset 7") != NULL, "%s", r.errs.v[1].msg);
    char buf[512];
    cfg_err_format(e, buf, sizeof(buf));
    cr_expect(strncmp(buf, "routes.yaml:11:15: error: Ingress default/web: ", 47) == 0, "%s", buf);
    /* the good ones still serve */
    cr_expect_eq(route_count(r.t), 1);
    EXPECT(&r, "h.com", "/ok/1", "Regex /ok/.*");
    EXPECT(&r, "h.com", "/bad/(abc", "none");
    rt_done(&r);
}

Test(route, check_regex_reports_like_build)
{
    char msg[128];
    size_t off = 0;
    cr_expect_eq(route_check_regex("/api/v[0-9]+", msg, sizeof(msg), &off), 0);
    cr_expect_lt(route_check_regex("/a(b", msg, sizeof(msg), &off), 0);
    cr_expect(strstr(msg, "missing closing parenthesis") != NULL, "%s", msg);
    cr_expect_eq(off, 4);
    cr_expect_lt(route_check_regex("x{2,1}", NULL, 0, NULL), 0);
}

struct rx_thread {
    const struct rt *r;
    int bad;
};

static void *rx_worker(void *arg)
{
    struct rx_thread *w = arg;
    char path[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(path, sizeof(path), "/u/%d/p", i);
        const char *want = (i % 2) ? "odd" : "even";
        if (strcmp(rt_get(w->r, "h.com", path), want) != 0)
            w->bad++;
    }
    return NULL;
}

Test(route, concurrent_regex_matching_needs_no_locks)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, "h.com", ROUTE_REGEX, "/u/[0-9]*[13579]/", "odd");
    rt_add(&r, "h.com", ROUTE_REGEX, "/u/[0-9]*[02468]/", "even");
    rt_build(&r);
    pthread_t th[4];
    struct rx_thread w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct rx_thread){ &r, 0 };
        cr_assert_eq(pthread_create(&th[i], NULL, rx_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(w[i].bad, 0);
    }
    rt_done(&r);
}

/* ---- inputs, lifetime, scale ---- */

Test(route, bad_specs_are_errors_and_skipped)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_PREFIX, "foo", NULL);
    rt_add(&r, NULL, ROUTE_EXACT, "", NULL);
    rt_add(&r, NULL, ROUTE_PREFIX, "/ok", NULL);
    r.specs[r.n] = (struct route_spec){ .path = "/noaction", .type = ROUTE_PREFIX };
    r.n++;
    rt_build(&r);
    cr_expect_eq(r.errs.nerrors, 3);
    cr_expect(strstr(r.errs.v[0].msg, "must begin with '/'") != NULL, "%s", r.errs.v[0].msg);
    cr_expect_eq(route_count(r.t), 1);
    EXPECT(&r, NULL, "/ok", "Prefix /ok");
    EXPECT(&r, NULL, "/noaction", "none");
    rt_done(&r);
}

Test(route, empty_and_null_inputs)
{
    struct arena *a = arena_new(0);
    struct route_table *t = route_build(a, NULL, 0, NULL);
    cr_assert_not_null(t);
    cr_expect_null(route_match(t, "a.com", 5, "/", 1));
    cr_expect_eq(route_count(t), 0);
    cr_expect_null(route_match(NULL, "a.com", 5, "/", 1));
    cr_expect_null(route_build(NULL, NULL, 0, NULL));
    cr_expect_null(route_build(a, NULL, 3, NULL));
    route_table_free(t);
    route_table_free(t); /* idempotent */
    route_table_free(NULL);
    arena_free(a);
}

Test(route, ten_thousand_hosts)
{
    enum { NH = 10000 };
    struct arena *a = arena_new(0);
    struct route_spec *specs = calloc(NH * 3 + 2, sizeof(*specs));
    struct snap_route *acts = calloc(NH * 3 + 2, sizeof(*acts));
    char (*hosts)[32] = calloc(NH, sizeof(*hosts));
    char (*wild)[32] = calloc(NH, sizeof(*wild));
    size_t n = 0;
    cr_assert(specs && acts && hosts && wild);
    for (int i = 0; i < NH; i++) {
        snprintf(hosts[i], sizeof(hosts[i]), "svc%d.example.com", i);
        snprintf(wild[i], sizeof(wild[i]), "*.t%d.example.net", i);
        specs[n] = (struct route_spec){ hosts[i], "/", ROUTE_PREFIX, &acts[n], NULL, 0, 0, NULL };
        n++;
        specs[n] = (struct route_spec){ hosts[i], "/api", ROUTE_EXACT, &acts[n], NULL, 0, 0, NULL };
        n++;
        specs[n] = (struct route_spec){ wild[i], "/w", ROUTE_PREFIX, &acts[n], NULL, 0, 0, NULL };
        n++;
    }
    specs[n] = (struct route_spec){ NULL, "/fallback", ROUTE_PREFIX, &acts[n], NULL, 0, 0, NULL };
    n++;
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct route_table *t = route_build(a, specs, n, &errs);
    cr_assert_not_null(t);
    cr_expect_eq(errs.n, 0);
    cr_expect_eq(route_count(t), n);
    cr_expect_eq(route_host_count(t), 2 * NH + 1);
    char host[64];
    int bad = 0;
    for (int i = 0; i < NH; i++) {
        int hl = snprintf(host, sizeof(host), "SVC%d.example.com:80", i);
        if (route_match(t, host, (size_t)hl, "/x/y", 4) != &acts[3 * i])
            bad++;
        if (route_match(t, host, (size_t)hl, "/api", 4) != &acts[3 * i + 1])
            bad++;
        hl = snprintf(host, sizeof(host), "pod.t%d.example.net", i);
        if (route_match(t, host, (size_t)hl, "/w/1", 4) != &acts[3 * i + 2])
            bad++;
        if (route_match(t, host, (size_t)hl, "/fallback", 9) != &acts[n - 1])
            bad++;
        if (route_match(t, host, (size_t)hl, "/zz", 3) != NULL)
            bad++;
    }
    cr_expect_eq(bad, 0);
    cr_expect_null(route_match(t, "svc10000.example.com", 20, "/api", 4));
    route_table_free(t);
    arena_free(a);
    cfg_errs_free(&errs);
    free(specs);
    free(acts);
    free(hosts);
    free(wild);
}

Test(route, many_paths_on_one_host_and_deep_paths)
{
    enum { NP = 5000 };
    struct arena *a = arena_new(0);
    struct route_spec *specs = calloc(NP, sizeof(*specs));
    struct snap_route *acts = calloc(NP, sizeof(*acts));
    char (*paths)[48] = calloc(NP, sizeof(*paths));
    for (int i = 0; i < NP; i++) {
        snprintf(paths[i], sizeof(paths[i]), "/s%d/deep/%d", i % 97, i);
        specs[i] = (struct route_spec){ "one.com", paths[i], (i % 2) ? ROUTE_EXACT : ROUTE_PREFIX,
                                        &acts[i], NULL, 0, 0, NULL };
    }
    struct route_table *t = route_build(a, specs, NP, NULL);
    cr_assert_not_null(t);
    int bad = 0;
    char p[64];
    for (int i = 0; i < NP; i++) {
        int pl = snprintf(p, sizeof(p), "%s", paths[i]);
        if (route_match(t, "one.com", 7, p, (size_t)pl) != &acts[i])
            bad++;
        pl = snprintf(p, sizeof(p), "%s/sub", paths[i]);
        if (route_match(t, "one.com", 7, p, (size_t)pl) != ((i % 2) ? NULL : &acts[i]))
            bad++;
    }
    cr_expect_eq(bad, 0);
    route_table_free(t);
    arena_free(a);
    free(specs);
    free(acts);
    free(paths);
}

Test(route, host_case_folding_is_ascii_only_and_exact_at_word_edges)
{
    struct rt r;
    rt_init(&r);
    /* '@' '[' '`' '{' sit right beside 'A'..'Z' and 'a'..'z': they must not fold */
    rt_add(&r, "@[`{.example.com", ROUTE_PREFIX, "/", "edge");
    rt_add(&r, "a-very-long-host-name-0123456789.example.com", ROUTE_PREFIX, "/", "long");
    rt_add(&r, "caf\xc3\xa9.com", ROUTE_PREFIX, "/", "utf8");
    rt_build(&r);
    EXPECT(&r, "@[`{.EXAMPLE.com", "/", "edge");
    EXPECT(&r, "`{@[.example.com", "/", "none");
    EXPECT(&r, "A-VERY-LONG-HOST-NAME-0123456789.EXAMPLE.COM:8443", "/", "long");
    EXPECT(&r, "a-very-long-host-name-0123456789.example.co", "/", "none");
    EXPECT(&r, "CAF\xc3\xa9.com", "/", "utf8");
    EXPECT(&r, "caf\xc3\x89.com", "/", "none"); /* no Unicode folding */
    char big[400];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    const char *bigp = big;
    EXPECT(&r, bigp, "/", "none"); /* longer than any host: no crash, no match */
    rt_done(&r);
}

/* ---- capture groups for rewrite-target (route_match_caps) ---- */

Test(route, caps_of_the_winning_regex)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, "rw.example.com", ROUTE_REGEX, "/something(/|$)(.*)", "rx");
    rt_add(&r, "rw.example.com", ROUTE_PREFIX, "/plain", "plain");
    rt_add(&r, "rw.example.com", ROUTE_REGEX, "/opt(/x)?(/y)?", "opt");
    rt_build(&r);
    struct route_caps c;
    const char *p = "/something/new/path";
    const struct snap_route *m = route_match_caps(r.t, "rw.example.com", 14, p, strlen(p), &c);
    cr_assert_not_null(m);
    cr_expect_str_eq(m->ingress, "rx");
    cr_assert_eq(c.n, 3);
    cr_expect_eq(c.ov[0], 0);
    cr_expect_eq(c.ov[1], strlen(p));
    cr_expect_eq(c.ov[2], 10); /* "/" */
    cr_expect_eq(c.ov[3], 11);
    cr_expect_eq(c.ov[4], 11); /* "new/path" */
    cr_expect_eq(c.ov[5], strlen(p));

    /* "/something" alone: $1 matches the end, $2 is empty */
    p = "/something?q=1";
    m = route_match_caps(r.t, "rw.example.com", 14, p, strlen(p), &c);
    cr_assert_not_null(m);
    cr_assert_eq(c.n, 3);
    cr_expect_eq(c.ov[2], c.ov[3]);
    cr_expect_eq(c.ov[4], c.ov[5]);

    /* an unset middle group reads as empty; a later one is still reported */
    p = "/opt/y";
    m = route_match_caps(r.t, "rw.example.com", 14, p, strlen(p), &c);
    cr_assert_not_null(m);
    cr_expect_str_eq(m->ingress, "opt");
    cr_assert_eq(c.n, 3);
    cr_expect_eq(c.ov[2], 0);
    cr_expect_eq(c.ov[3], 0);
    cr_expect_eq(c.ov[4], 4);
    cr_expect_eq(c.ov[5], 6);

    /* a Prefix winner and no match at all report no groups */
    p = "/plain/x";
    m = route_match_caps(r.t, "rw.example.com", 14, p, strlen(p), &c);
    cr_assert_not_null(m);
    cr_expect_str_eq(m->ingress, "plain");
    cr_expect_eq(c.n, 0);
    p = "/nothing";
    cr_expect_null(route_match_caps(r.t, "rw.example.com", 14, p, strlen(p), &c));
    cr_expect_eq(c.n, 0);
    /* NULL caps behaves as route_match */
    cr_expect_not_null(route_match_caps(r.t, "rw.example.com", 14, "/something/a", 12, NULL));
    rt_done(&r);
}

Test(route, caps_more_groups_than_pairs)
{
    struct rt r;
    rt_init(&r);
    rt_add(&r, NULL, ROUTE_REGEX, "/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)", "many");
    rt_build(&r);
    struct route_caps c;
    const char *p = "/abcdefghijk";
    cr_assert_not_null(route_match_caps(r.t, NULL, 0, p, strlen(p), &c));
    cr_assert_eq(c.n, ROUTE_MAX_CAPS);
    cr_expect_eq(c.ov[18], 9); /* $9 = "i" */
    cr_expect_eq(c.ov[19], 10);
    rt_done(&r);
}
