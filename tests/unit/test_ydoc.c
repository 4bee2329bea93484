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
