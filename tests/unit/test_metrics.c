/* SPDX-License-Identifier: Apache-2.0 */
/*
 * met and adm: escaping, the Prometheus page over a hand-built snapshot, and
 * the admin listener's routes over a real loopback socket (port 24990).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingressd/adm.h"
#include "ingressd/arena.h"
#include "ingressd/hc.h"
#include "ingressd/metrics.h"
#include "ingressd/rld.h"
#include "ingressd/route.h"
#include "ingressd/snap.h"
#include "ingressd/wrk.h"

TestSuite(met, .timeout = 20);

static char *render_json(const char *s)
{
    struct met_buf b;
    met_buf_init(&b);
    met_json_str(&b, s);
    return b.p;   /* caller frees */
}

Test(met, json_escapes_quotes_controls_and_bad_utf8)
{
    char *j = render_json("a\"b\\c\n\x01 é \xff");
    cr_assert_str_eq(j, "\"a\\\"b\\\\c\\n\\u0001 é \\ufffd\"");
    free(j);
    struct met_buf b;
    met_buf_init(&b);
    met_json_str(&b, NULL);
    cr_assert_str_eq(b.p, "null");
    met_buf_free(&b);
}

Test(met, label_escapes)
{
    struct met_buf b;
    met_buf_init(&b);
    met_label_str(&b, "x\"y\\z\n");
    cr_assert_str_eq(b.p, "\"x\\\"y\\\\z\\n\"");
    met_buf_free(&b);
}

Test(met, buffer_grows_past_printf_stack)
{
    struct met_buf b;
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    met_buf_init(&b);
    for (int i = 0; i < 10; i++)
        met_printf(&b, "%s", big);
    cr_assert_eq(b.n, 10 * (sizeof(big) - 1));
    cr_assert_eq(strlen(b.p), b.n);
    met_buf_free(&b);
}

/* a snapshot with one backend of two endpoints, one ejected */
static struct snap *fake_snap(void)
{
    struct snap *s = calloc(1, sizeof(*s));
    struct arena *a = arena_new(0);
    s->magic = SNAP_MAGIC;
    atomic_init(&s->refs, 1);
    s->arena = a;
    s->gen = 7;
    s->source = "/etc/ingressd/\"x\".yaml";
    s->cfg.admin = "127.0.0.1:24990";
    s->cfg.nlisteners = 1;
    s->cfg.listeners = arena_calloc(a, 1, sizeof(*s->cfg.listeners));
    s->cfg.listeners[0].address = "127.0.0.1:24991";
    s->nbackends = 1;
    s->backends = arena_calloc(a, 1, sizeof(*s->backends));
    struct snap_backend *be = &s->backends[0];
    be->name = "default/shop:80";
    be->service = "default/shop";
    be->algo = LB_EWMA;
    be->neps = 2;
    be->nready = 2;
    be->eps = arena_calloc(a, 2, sizeof(*be->eps));
    be->eps[0].addr = "127.0.0.2:8080";
    be->eps[0].ready = true;
    be->eps[0].hc = hc_ep_get("127.0.0.2:8080");
    atomic_store(&be->eps[0].hc->requests, 42);
    atomic_store(&be->eps[0].hc->ewma_us, 1500);
    atomic_store(&be->eps[0].hc->ewma_stamp_ms, hc_now_ms());
    be->eps[1].addr = "127.0.0.3:8080";
    be->eps[1].ready = true;
    be->eps[1].hc = hc_ep_get("127.0.0.3:8080");
    atomic_store(&be->eps[1].hc->ejected_until_ms, hc_now_ms() + 60000);
    atomic_store(&be->eps[1].hc->ejections, 3);
    s->nquarantine = 1;
    s->quarantine = arena_calloc(a, 1, sizeof(*s->quarantine));
    s->quarantine[0].object = "Ingress default/broken";
    s->quarantine[0].file = "/etc/ingressd/x.yaml";
    s->quarantine[0].line = 12;
    s->quarantine[0].error = "service \"nope\" not found";
    s->quarantine[0].serving_previous = true;
    struct snap_route *act = arena_calloc(a, 1, sizeof(*act));
    act->backend = be;
    act->ingress = "default/shop";
    struct route_spec *rs = arena_calloc(a, 1, sizeof(*rs));
    rs->host = "shop.test";
    rs->path = "/cart";
    rs->type = ROUTE_PREFIX;
    rs->action = act;
    s->route_specs = rs;
    s->nroute_specs = 1;
    s->nrules = 1;
    return s;
}

/* frees what fake_snap built, whatever its refcount (never through snap_release) */
static void free_fake(struct snap *s)
{
    for (uint32_t i = 0; i < s->nbackends; i++)
        for (uint32_t j = 0; j < s->backends[i].neps; j++)
            hc_ep_put(s->backends[i].eps[j].hc);
    arena_free(s->arena);
    free(s);
}

Test(met, page_has_families_and_bounded_endpoint_series)
{
    struct snap *s = fake_snap();
    struct wrk_stats ws = { .requests = 10, .responses_by_class = { 0, 0, 9, 0, 1, 0 } };
    struct rld_status st = { .gen = 7, .reloads_ok = 3, .reloads_failed = 1, .last_ok = false,
                             .last_time_unix_ms = 1700000000123, .last_duration_us = 2500 };
    struct met_input in = { .wrk = &ws, .rld = &st, .now_ms = hc_now_ms() };
    struct met_buf b;
    met_buf_init(&b);
    met_render(&b, s, &in);
    const char *want[] = {
        "ingressd_requests_total 10\n",
        "ingressd_responses_total{code=\"2xx\"} 9\n",
        "ingressd_responses_total{code=\"4xx\"} 1\n",
        "ingressd_config_generation 7\n",
        "ingressd_reloads_total{result=\"ok\"} 3\n",
        "ingressd_reloads_total{result=\"failed\"} 1\n",
        "ingressd_last_reload_timestamp_seconds 1700000000.123\n",
        "ingressd_last_reload_duration_seconds 0.002500\n",
        "ingressd_last_reload_success 0\n",
        "ingressd_quarantined_objects 1\n",
        "ingressd_backend_endpoints{backend=\"default/shop:80\",state=\"total\"} 2\n",
        "ingressd_backend_endpoints{backend=\"default/shop:80\",state=\"usable\"} 1\n",
        "ingressd_endpoint_series_omitted 0\n",
        "ingressd_endpoint_up{backend=\"default/shop:80\",endpoint=\"127.0.0.2:8080\"} 1\n",
        "ingressd_endpoint_up{backend=\"default/shop:80\",endpoint=\"127.0.0.3:8080\"} 0\n",
        "ingressd_endpoint_requests_total{backend=\"default/shop:80\",endpoint=\"127.0.0.2:8080\"} 42\n",
        "ingressd_endpoint_ejections_total{backend=\"default/shop:80\",endpoint=\"127.0.0.3:8080\"} 3\n",
        "ingressd_endpoint_latency_ewma_seconds{backend=\"default/shop:80\",endpoint=\"127.0.0.2:8080\"} 0.00",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert(strstr(b.p, want[i]), "missing %s in\n%s", want[i], b.p);
    /* each family announced once */
    const char *p = b.p;
    int n = 0;
    while ((p = strstr(p, "# TYPE ingressd_endpoint_up ")))
        n++, p++;
    cr_assert_eq(n, 1);
    met_buf_free(&b);
    free_fake(s);
}

/* ---- the admin listener over a socket ---- */

#include "loop_thread.h"

static struct snap *fail_load(const char *path, const struct snap *prev,
                              const struct snap_load_opts *o, struct cfg_errs *errs)
{
    (void)prev;
    (void)o;
    cfg_errs_add(errs, CFG_ERROR, path, 1, 1, NULL, "not YAML \"at all\"");
    return NULL;
}

/* sends a raw request, returns the whole response (malloc'd) */
static char *http(const char *req)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(24990) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    size_t cap = 1 << 16, n = 0;
    char *out = calloc(1, cap);
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    return out;
}

Test(met, admin_routes)
{
    evthread_use_pthreads();
    base = event_base_new();
    struct snap *s = fake_snap();
    snap_ref(s);   /* never freed by the test: keeps the hand-built snapshot away from snap_release */
    rld_test_set_loader(fail_load);
    cr_assert_eq(adm_start(base, s), 0);
    cr_assert_eq(rld_start(base, "/nonexistent/x.yaml", s), 0);
    pthread_create(&loop_thr, NULL, loop_main, NULL);

    char *r = http("GET /healthz HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, "200 OK") && strstr(r, "\r\n\r\nok\n"), "%s", r);
    free(r);

    r = http("GET /config HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, "application/json"), "%s", r);
    cr_assert(strstr(r, "\"generation\":7"), "%s", r);
    cr_assert(strstr(r, "\"source\":\"/etc/ingressd/\\\"x\\\".yaml\""), "%s", r);
    cr_assert(strstr(r, "\"object\":\"Ingress default/broken\",\"file\":\"/etc/ingressd/x.yaml\","
                        "\"line\":12,\"error\":\"service \\\"nope\\\" not found\","
                        "\"serving_previous\":true"),
              "%s", r);
    cr_assert(strstr(r, "\"routes\":[{\"host\":\"shop.test\",\"path\":\"/cart\",\"type\":\"Prefix\","
                        "\"ingress\":\"default/shop\",\"backend\":\"default/shop:80\"}]"),
              "%s", r);
    free(r);

    r = http("GET /endpoints HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, "\"name\":\"default/shop\",\"port\":\"80\""), "%s", r);
    cr_assert(strstr(r, "\"algorithm\":\"ewma\""), "%s", r);
    cr_assert(strstr(r, "\"address\":\"127.0.0.3:8080\",\"ready\":true,\"terminating\":false,"
                        "\"health\":\"ejected\""),
              "%s", r);
    free(r);

    r = http("GET /endpoints?service=default/other HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, "{\"generation\":7,\"services\":[]}"), "%s", r);
    free(r);
    r = http("GET /endpoints?service=default%2Fshop HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, "\"name\":\"default/shop\""), "%s", r);
    free(r);

    r = http("GET /metrics HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, "text/plain; version=0.0.4"), "%s", r);
    cr_assert(strstr(r, "ingressd_config_generation 7\n"), "%s", r);
    free(r);

    r = http("POST /reload HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    cr_assert(strstr(r, "HTTP/1.0 500") || strstr(r, "HTTP/1.1 500"), "%s", r);
    cr_assert(strstr(r, "not YAML \\\"at all\\\""), "%s", r);
    free(r);

    r = http("GET /metrics HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, "ingressd_reloads_total{result=\"failed\"} 1\n"), "%s", r);
    cr_assert(strstr(r, "ingressd_last_reload_success 0\n"), "%s", r);
    cr_assert(strstr(r, "ingressd_config_generation 7\n"), "%s", r);
    free(r);

    r = http("DELETE /config HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, " 405 ") && strstr(r, "Allow: GET, HEAD"), "%s", r);
    free(r);
    r = http("GET /reload HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, " 405 "), "%s", r);
    free(r);
    r = http("GET /nope HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, " 404 "), "%s", r);
    free(r);

    /* as main does on SIGTERM: its loop ends, then the admin keeps answering */
    loop_stop();
    adm_set_draining();
    r = http("GET /healthz HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, " 503 ") && strstr(r, "draining"), "%s", r);
    free(r);
    r = http("POST /reload HTTP/1.0\r\n\r\n");
    cr_assert(strstr(r, " 409 "), "%s", r);
    free(r);
    rld_stop();
    adm_stop();
    event_base_free(base);
    free_fake(s);
}
