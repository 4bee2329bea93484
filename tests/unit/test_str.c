/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>

#include "ingressd/str.h"

TestSuite(str);

Test(str, durations_follow_go_and_bare_seconds)
{
    unsigned long long ms;
    cr_assert(str_parse_duration_ms("500ms", &ms) && ms == 500);
    cr_assert(str_parse_duration_ms("2s", &ms) && ms == 2000);
    cr_assert(str_parse_duration_ms("1m30s", &ms) && ms == 90000);
    cr_assert(str_parse_duration_ms("1h", &ms) && ms == 3600000);
    cr_assert(str_parse_duration_ms("5", &ms) && ms == 5000);
    cr_assert(str_parse_duration_ms("1.5s", &ms) && ms == 1500);
    cr_assert_not(str_parse_duration_ms("", &ms));
    cr_assert_not(str_parse_duration_ms("5x", &ms));
    cr_assert_not(str_parse_duration_ms("s", &ms));
    cr_assert_not(str_parse_duration_ms("-1s", &ms));
}

Test(str, sizes_follow_nginx)
{
    unsigned long long b;
    cr_assert(str_parse_size("512", &b) && b == 512);
    cr_assert(str_parse_size("8k", &b) && b == 8192);
    cr_assert(str_parse_size("1M", &b) && b == 1048576);
    cr_assert(str_parse_size("1g", &b) && b == 1073741824ULL);
    cr_assert(str_parse_size("2kb", &b) && b == 2048);
    cr_assert_not(str_parse_size("k", &b));
    cr_assert_not(str_parse_size("1t", &b));
    cr_assert_not(str_parse_size("99999999999999999999", &b));
}

Test(str, tokens_and_case)
{
    struct str s = STR_LIT("a, b ,c");
    cr_assert(str_eq(str_trim(str_next_token(&s, ',')), STR_LIT("a")));
    cr_assert(str_eq(str_trim(str_next_token(&s, ',')), STR_LIT("b")));
    cr_assert(str_eq(str_trim(str_next_token(&s, ',')), STR_LIT("c")));
    cr_assert_eq(s.n, 0);
    cr_assert(str_ieq(STR_LIT("Content-Length"), STR_LIT("content-length")));
    cr_assert_eq(str_ihash(STR_LIT("Foo.COM")), str_ihash(STR_LIT("foo.com")));
    unsigned long long v;
    cr_assert(str_to_u64(STR_LIT("123"), 1000, &v) && v == 123);
    cr_assert_not(str_to_u64(STR_LIT("1001"), 1000, &v));
    cr_assert_not(str_to_u64(STR_LIT("12a"), 1000, &v));
}
