/* SPDX-License-Identifier: Apache-2.0 */
/* ydoc: positions, multi-document streams, anchors/aliases, merge keys, errors. */
#include <criterion/criterion.h>
#include <string.h>

#include "ingressd/cfg.h"
#include "ingressd/ydoc.h"

TestSuite(ydoc);

static struct ydoc *parse(const char *text, struct cfg_errs *errs)
{
    return ydoc_parse("t.yaml", text, strlen(text), errs);
}

Test(ydoc, positions_are_one_based_line_and_column)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct ydoc *d = parse("a: 1\nb:\n  c: \"x\"\n  d: [1, 2]\n", &errs);
    cr_assert_not_null(d);
    cr_assert_eq(d->ndocs, 1);
    const struct ydoc_node *root = d->docs[0];
    cr_assert_eq(root->type, YDOC_MAP);
    cr_assert_eq(root->n, 2);
    const struct ydoc_node *c = ydoc_get(ydoc_get(root, "b"), "c");
    cr_assert_not_null(c);
    cr_assert_eq(c->line, 3);
    cr_assert_eq(c->col, 6);
    cr_assert(c->quoted);
    cr_assert_str_eq(c->str, "x");
    const struct ydoc_node *dd = ydoc_get(ydoc_get(root, "b"), "d");
    cr_assert_eq(dd->type, YDOC_SEQ);
    cr_assert_eq(dd->n, 2);
    cr_assert_eq(dd->kids[1]->line, 4);
    cr_assert_eq(dd->kids[1]->col, 10);
    cr_assert_not(ydoc_get(root, "a")->quoted);
    cr_assert_str_eq(ydoc_type_name(ydoc_get(root, "a")), "integer");
    cr_assert_str_eq(ydoc_type_name(c), "string");
    ydoc_free(d);
    cfg_errs_free(&errs);
}

Test(ydoc, multi_document_stream_skips_empty_documents)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct ydoc *d = parse("---\na: 1\n---\n---\nb: 2\n...\n", &errs);
    cr_assert_not_null(d);
    cr_assert_eq(d->ndocs, 2);
    cr_assert_eq(d->docs[1]->line, 5);
    ydoc_free(d);
    cfg_errs_free(&errs);
}

Test(ydoc, anchors_aliases_and_merge_keys)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct ydoc *d = parse("base: &b {x: 1, y: 2}\nref: *b\nmerged:\n  <<: *b\n  y: 3\n", &errs);
    cr_assert_not_null(d);
    const struct ydoc_node *r = d->docs[0];
    cr_assert_eq(ydoc_get(r, "ref"), ydoc_get(r, "base"));
    const struct ydoc_node *m = ydoc_get(r, "merged");
    cr_assert_eq(m->n, 2);
    cr_assert_str_eq(ydoc_get(m, "y")->str, "3");
    cr_assert_str_eq(ydoc_get(m, "x")->str, "1");
    ydoc_free(d);
    cfg_errs_free(&errs);
}

Test(ydoc, invalid_yaml_gives_one_error_with_position)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct ydoc *d = parse("a: 1\nb: [1, 2\nc: 3\n", &errs);
    cr_assert_null(d);
    cr_assert_eq(errs.nerrors, 1);
    cr_assert_str_eq(errs.v[0].file, "t.yaml");
    cr_assert(errs.v[0].line >= 2);
    cr_assert(errs.v[0].col >= 1);
    cr_assert_not_null(strstr(errs.v[0].msg, "invalid YAML"));
    cfg_errs_free(&errs);
}

Test(ydoc, undefined_alias_is_an_error)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    cr_assert_null(parse("a: *nope\n", &errs));
    cr_assert_eq(errs.nerrors, 1);
    cr_assert_eq(errs.v[0].line, 1);
    cr_assert_eq(errs.v[0].col, 4);
    cfg_errs_free(&errs);
}

Test(ydoc, nulls_and_block_scalars)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct ydoc *d = parse("a: ~\nb:\nc: null\nd: |\n  text\n  more\ne: ''\n", &errs);
    cr_assert_not_null(d);
    const struct ydoc_node *r = d->docs[0];
    cr_assert(ydoc_is_null(ydoc_get(r, "a")));
    cr_assert(ydoc_is_null(ydoc_get(r, "b")));
    cr_assert(ydoc_is_null(ydoc_get(r, "c")));
    cr_assert_str_eq(ydoc_get(r, "d")->str, "text\nmore\n");
    cr_assert(ydoc_get(r, "d")->quoted);
    cr_assert_not(ydoc_is_null(ydoc_get(r, "e")));
    cr_assert_null(ydoc_scalar(ydoc_get(r, "a")));
    ydoc_free(d);
    cfg_errs_free(&errs);
}

/* ---- the fast reader must build exactly libyaml's tree, or step aside ---- */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

static int same_tree(const struct ydoc_node *a, const struct ydoc_node *b, char *why, size_t cap)
{
    if (a->type != b->type || a->line != b->line || a->col != b->col) {
        snprintf(why, cap, "node at %u:%u (type %d) vs %u:%u (type %d)", a->line, a->col, a->type,
                 b->line, b->col, b->type);
        return 0;
    }
    if (a->type == YDOC_SCALAR) {
        if (a->quoted != b->quoted || a->len != b->len || strcmp(a->str, b->str) != 0 ||
            a->start != b->start) {
            snprintf(why, cap, "scalar at %u:%u: \"%s\"/%d vs \"%s\"/%d", a->line, a->col, a->str,
                     a->quoted, b->str, b->quoted);
            return 0;
        }
        return 1;
    }
    if (a->n != b->n || a->start != b->start) {
        snprintf(why, cap, "container at %u:%u: %u vs %u kids", a->line, a->col, a->n, b->n);
        return 0;
    }
    uint32_t k = a->type == YDOC_MAP ? 2 * a->n : a->n;
    for (uint32_t i = 0; i < k; i++)
        if (!same_tree(a->kids[i], b->kids[i], why, cap))
            return 0;
    return 1;
}

/* 1: the fast reader answered and agreed; 0: it stepped aside; fails on disagreement */
static int compare(const char *name, const char *text, size_t len, unsigned base)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct ydoc *f = ydoc_parse_fast_at(name, text, len, base);
    struct ydoc *s = ydoc_parse_libyaml_at(name, text, len, base, &errs);
    int r = 0;
    if (f) {
        char why[512] = "";
        cr_assert_not_null(s, "%s: fast reader accepted what libyaml rejects", name);
        cr_assert_eq(f->ndocs, s->ndocs, "%s: %zu vs %zu documents", name, f->ndocs, s->ndocs);
        for (size_t i = 0; i < f->ndocs; i++)
            cr_assert(same_tree(f->docs[i], s->docs[i], why, sizeof(why)), "%s: %s", name, why);
        r = 1;
    }
    ydoc_free(f);
    ydoc_free(s);
    cfg_errs_free(&errs);
    return r;
}

Test(ydoc, fast_reader_matches_libyaml_on_cases)
{
    static const char *const yes[] = {
        "a: 1\nb:\n  c: \"x\"\n  d: 'y z'\n",
        "---\na: 1\n---\n---\nb: 2\n",
        "# c\n\n---   # c\nkind: Service\nmetadata:\n  name: x # trailing\n  labels:\n    a.b/c-d: v\n",
        "spec:\n  rules:\n    - host: a.b\n      http:\n        paths:\n          - path: /p\n            backend: {}\n",
        "ports:\n- name: http\n  port: 80\n- 81\nnext: x\n",
        "a:\nb:   # c\nc: ~\nd: ''\ne: \"\"\n",
        "list:\n  -\n    a: 1\n  - b\n",
        "k: -1\nurl: http://x:80/y\nv: a b  c   \nq: \"a # b\"   # c\n",
        "  indented: 1\n  root: 2\n",
        "- a\n- b: 1\n  c: 2\n",
        "a:\n  b:\n    c:\n  d: 1\n",
        "x: 1",
        "",
        "# only a comment\n",
        "a: [1, \"b c\", 'd' ]\nb: []\nc: {}\nd: [ x y ]  # c\ne:\n- [a]\n",
    };
    static const char *const no[] = {
        "a: [1, [2]]\n", "a: {x: 1}\n", "a: [1, ]\n", "a: [1\n", "a: [a:b]\n", "a: [1]]\n",
        "a: &x 1\nb: *x\n", "a: |\n  t\n", "a: \"x\\ty\"\n", "a: 'it''s'\n",
        "a: b\n  c\n", "a:\tb\n", "a: b\r\n", "\"k\": v\n", "a: b: c\n", "- - a\n", "a: !!str 1\n",
        "<<: x\n", "a: 1\n...\n", "%YAML 1.2\n---\na: 1\n", "a: b:\n", "a:\n  - x\n  b: 1\n",
        "a: 1\n b: 2\n", "-\n", "foo\n", "a: \"x\n", "a: \xc3\xa9\n", "a: @x\n", "? a\n: b\n",
    };
    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
        cr_assert_eq(compare(yes[i], yes[i], strlen(yes[i]), 3), 1, "fast reader declined: %s", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
        cr_assert_eq(compare(no[i], no[i], strlen(no[i]), 0), 0, "fast reader took: %s", no[i]);
}

static void compare_dir(const char *dir, unsigned *files, unsigned *fast)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        char path[1024];
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (de->d_type == DT_DIR) {
            compare_dir(path, files, fast);
            continue;
        }
        if (!(l > 5 && !strcmp(de->d_name + l - 5, ".yaml")))
            continue;
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        char *buf = malloc(1 << 20);
        size_t n = fread(buf, 1, (1 << 20) - 1, f);
        fclose(f);
        buf[n] = '\0';
        (*files)++;
        *fast += (unsigned)compare(path, buf, n, 0);
        free(buf);
    }
    closedir(d);
}

Test(ydoc, fast_reader_matches_libyaml_on_every_config_in_the_tree)
{
    unsigned files = 0, fast = 0;
    compare_dir("tests", &files, &fast);
    compare_dir("conf", &files, &fast);
    cr_log_info("%u YAML files, %u read by the fast reader", files, fast);
    cr_assert(files == 0 || fast > 0, "the fast reader took none of %u files", files);
}
