/* SPDX-License-Identifier: Apache-2.0 */
/*
 * adm: the admin listener, evhttp on the main thread's event loop (M).
 *
 *   GET  /healthz    200 "ok" while serving, 503 "draining" after SIGTERM
 *   GET  /metrics    Prometheus text (metrics.c)
 *   GET  /config     JSON: generation, source, last reload, listeners,
 *                    counts, quarantined objects, routes (?routes=0: without)
 *   GET  /endpoints  JSON: every backend of the served snapshot and the
 *                    health/counters of its endpoints (?service=NS/NAME: one)
 *   POST /reload     triggers a reload and answers with its outcome:
 *                    200 applied (generation, quarantined count),
 *                    500 rejected (the first error; nothing changed),
 *                    409 when reloads are not possible (draining/stopped),
 *                    504 when the outcome did not come within 30 s
 *   other methods on these paths: 405 with Allow; other paths: 404.
 *
 * Why it never blocks: every page reads the snapshot through rld_current()
 * (a ref taken under a short mutex, never held across I/O), the counters
 * through wrk_pool_stats() and the hc_ep atomics; POST /reload does not wait
 * on a condition variable on M (that would freeze SIGHUP, the watch and the
 * other admin clients) but parks the request and is answered from the
 * rld_request_async() callback, which the loader activates on M.
 *
 * Draining: main leaves its loop on SIGTERM and blocks in wrk_pool_drain();
 * an orchestrator probing /healthz during those seconds should read 503
 * "draining", not a refused connection. So adm_set_draining() starts one
 * helper thread that keeps dispatching the (now idle) main base, which only
 * carries the admin listener and rld's events, until adm_stop() breaks it.
 * One thread runs the base at any time: main's dispatch has returned first.
 *
 * The admin address is bound once at start-up (SO_REUSEADDR); a reload that
 * changes spec.admin does not move it (a warning is logged).
 * Threads: everything here runs on M (or its stand-in while draining).
 */
#include "ingressd/adm.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ingressd/hc.h"
#include "ingressd/log.h"
#include "ingressd/metrics.h"
#include "ingressd/rld.h"
#include "ingressd/route.h"
#include "ingressd/snap.h"
#include "ingressd/wrk.h"

#define ADM_RELOAD_TIMEOUT_S 30

struct adm_reload {                    /* one parked POST /reload */
    struct adm_reload *next;
    struct evhttp_request *req;        /* libevent keeps it alive until we reply */
    struct event *timer;
};

static struct {
    struct event_base *base;
    struct evhttp *http;
    evutil_socket_t fd;
    atomic_bool draining;              /* set by main on SIGTERM (adm_set_draining) */
    struct adm_reload *reloads;        /* parked POST /reload requests */
    pthread_t drain_thr;               /* dispatches the main base while main drains */
    bool drain_thr_running;
    struct event *ev_quit;             /* activated by adm_stop: ends the drain loop */
} adm = { .fd = -1 };

/* ---- replies ---- */

static void adm_reply(struct evhttp_request *req, int code, const char *reason,
                      const char *ctype, const char *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    struct evbuffer *out = evbuffer_new();
    if (out && len)
        evbuffer_add(out, body, len);
    evhttp_send_reply(req, code, reason, out);
    if (out)
        evbuffer_free(out);
}

static void adm_reply_text(struct evhttp_request *req, int code, const char *reason,
                           const char *text)
{
    adm_reply(req, code, reason, "text/plain; charset=utf-8", text, strlen(text));
}

static void adm_reply_buf(struct evhttp_request *req, int code, const char *reason,
                          const char *ctype, struct met_buf *b)
{
    if (b->oom) {
        adm_reply_text(req, 500, "Internal Server Error", "out of memory\n");
        return;
    }
    adm_reply(req, code, reason, ctype, b->p ? b->p : "", b->n);
}

static void adm_json_time(struct met_buf *b, int64_t unix_ms)
{
    char t[64];
    struct tm tm;
    time_t sec = (time_t)(unix_ms / 1000);
    gmtime_r(&sec, &tm);
    size_t n = strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(t + n, sizeof(t) - n, ".%03dZ", (int)(unix_ms % 1000));
    met_json_str(b, t);
}

static void adm_json_bool(struct met_buf *b, bool v) { met_printf(b, "%s", v ? "true" : "false"); }

/* ---- GET /healthz ---- */

static void adm_healthz(struct evhttp_request *req)
{
    if (atomic_load(&adm.draining)) {
        adm_reply_text(req, 503, "Service Unavailable", "draining\n");
        return;
    }
    struct snap *s = rld_current();
    if (!s) {
        adm_reply_text(req, 503, "Service Unavailable", "no configuration\n");
        return;
    }
    snap_release(s);
    adm_reply_text(req, 200, "OK", "ok\n");
}

/* ---- GET /metrics ---- */

static void adm_metrics(struct evhttp_request *req)
{
    struct met_buf b;
    struct wrk_stats ws;
    struct rld_status st;
    struct met_input in = { 0 };

    met_buf_init(&b);
    wrk_pool_stats(&ws);
    rld_status(&st);
    in.wrk = &ws;
    in.rld = &st;
    in.inflight = wrk_pool_inflight();
    in.draining = atomic_load(&adm.draining);
    in.now_ms = hc_now_ms();
    struct snap *s = rld_current();
    met_render(&b, s, &in);
    snap_release(s);
    adm_reply_buf(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", &b);
    met_buf_free(&b);
}

/* ---- GET /config ---- */

static void adm_json_status(struct met_buf *b, const struct rld_status *st)
{
    met_printf(b, "{\"ok\":");
    adm_json_bool(b, st->last_ok);
    met_printf(b, ",\"time\":");
    adm_json_time(b, st->last_time_unix_ms);
    met_printf(b, ",\"time_unix_ms\":%lld,\"duration_ms\":%.3f,\"trigger\":",
               (long long)st->last_time_unix_ms, (double)st->last_duration_us / 1000.0);
    met_json_str(b, st->last_trigger);
    met_printf(b, ",\"errors\":%u,\"quarantined\":%u,\"error\":", st->last_errors,
               st->last_quarantined);
    met_json_str(b, st->last_error[0] ? st->last_error : NULL);
    met_printf(b, ",\"reloads_ok\":%llu,\"reloads_failed\":%llu}",
               (unsigned long long)st->reloads_ok, (unsigned long long)st->reloads_failed);
}

static const char *adm_path_type(enum route_path_type t)
{
    switch (t) {
    case ROUTE_EXACT: return "Exact";
    case ROUTE_PREFIX: return "Prefix";
    case ROUTE_REGEX: return "Regex";
    }
    return "unknown";
}

/* host/path as the Ingress wrote them (spec overrides the action's when given) */
static void adm_json_route(struct met_buf *b, const struct snap_route *r, const char *host,
                           const char *path, const char *type)
{
    met_printf(b, "{\"host\":");
    met_json_str(b, host && *host ? host : NULL);
    met_printf(b, ",\"path\":");
    met_json_str(b, path);
    met_printf(b, ",\"type\":");
    met_json_str(b, type);
    met_printf(b, ",\"ingress\":");
    met_json_str(b, r ? r->ingress : NULL);
    met_printf(b, ",\"backend\":");
    met_json_str(b, r && r->backend ? r->backend->name : NULL);
    if (r && r->rewrite_target) {
        met_printf(b, ",\"rewrite_target\":");
        met_json_str(b, r->rewrite_target);
    }
    met_printf(b, "}");
}

/* copies query parameter `name` into out (empty when absent); false when absent */
static bool adm_query(struct evhttp_request *req, const char *name, char *out, size_t len)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq kv;
    bool found = false;
    out[0] = '\0';
    if (q && evhttp_parse_query_str(q, &kv) == 0) {
        const char *v = evhttp_find_header(&kv, name);
        if (v) {
            snprintf(out, len, "%s", v);
            found = true;
        }
        evhttp_clear_headers(&kv);
    }
    return found;
}

/* GET /config?routes=0 leaves the route list out (pollers of the generation) */
static bool adm_want_routes(struct evhttp_request *req)
{
    char v[8];
    if (!adm_query(req, "routes", v, sizeof(v)))
        return true;
    return !(strcmp(v, "0") == 0 || strcmp(v, "false") == 0);
}

static void adm_config(struct evhttp_request *req)
{
    struct met_buf b;
    struct rld_status st;
    struct wrk_stats ws;

    met_buf_init(&b);
    rld_status(&st);
    wrk_pool_stats(&ws);
    struct snap *s = rld_current();
    met_printf(&b, "{\"generation\":%llu,\"workers_generation_min\":%llu,\"source\":",
               (unsigned long long)(s ? s->gen : st.gen), (unsigned long long)ws.snap_gen_min);
    met_json_str(&b, s && s->source ? s->source : st.source);
    met_printf(&b, ",\"draining\":");
    adm_json_bool(&b, atomic_load(&adm.draining));
    met_printf(&b, ",\"last_reload\":");
    adm_json_status(&b, &st);
    if (s) {
        const struct snap_settings *c = &s->cfg;
        met_printf(&b, ",\"listeners\":[");
        for (uint32_t i = 0; i < c->nlisteners; i++) {
            met_printf(&b, "%s{\"address\":", i ? "," : "");
            met_json_str(&b, c->listeners[i].address);
            met_printf(&b, ",\"tls\":");
            adm_json_bool(&b, c->listeners[i].tls);
            met_printf(&b, "}");
        }
        met_printf(&b, "],\"admin\":");
        met_json_str(&b, c->admin);
        met_printf(&b, ",\"workers\":%u,\"drain_timeout_ms\":%u", c->workers, c->drain_timeout_ms);
        met_printf(&b,
                   ",\"counts\":{\"ingresses\":%u,\"rules\":%u,\"services\":%u,\"backends\":%u,"
                   "\"endpoints\":%u,\"quarantined\":%u}",
                   s->ningresses, s->nrules, s->nservices, s->nbackends, s->nendpoints,
                   s->nquarantine);
        met_printf(&b, ",\"load_ms\":%.3f", (double)s->load_ns / 1e6);
        met_printf(&b, ",\"quarantined\":[");
        for (uint32_t i = 0; i < s->nquarantine; i++) {
            const struct snap_quarantine *q = &s->quarantine[i];
            met_printf(&b, "%s{\"object\":", i ? "," : "");
            met_json_str(&b, q->object);
            met_printf(&b, ",\"file\":");
            met_json_str(&b, q->file);
            met_printf(&b, ",\"line\":%u,\"error\":", q->line);
            met_json_str(&b, q->error);
            met_printf(&b, ",\"serving_previous\":");
            adm_json_bool(&b, q->serving_previous);
            met_printf(&b, "}");
        }
        met_printf(&b, "],\"default_backend\":");
        if (s->default_route)
            adm_json_route(&b, s->default_route, NULL, NULL, "default");
        else
            met_printf(&b, "null");
        /* bounded by configuration: one entry per compiled rule */
        met_printf(&b, ",\"routes\":");
        if (!adm_want_routes(req)) {
            met_printf(&b, "\"omitted\"");
        } else if (s->route_specs || !s->nrules) {
            met_printf(&b, "[");
            for (uint32_t i = 0; i < s->nroute_specs; i++) {
                const struct route_spec *rs = &s->route_specs[i];
                if (i)
                    met_put(&b, ",", 1);
                adm_json_route(&b, rs->action, rs->host, rs->path, adm_path_type(rs->type));
            }
            met_printf(&b, "]");
        } else {
            met_printf(&b, "null");   /* the loader did not keep them */
        }
        met_printf(&b, "}");
    } else {
        met_printf(&b, "}");
    }
    snap_release(s);
    met_put(&b, "\n", 1);
    adm_reply_buf(req, 200, "OK", "application/json", &b);
    met_buf_free(&b);
}

/* ---- GET /endpoints ---- */

/* GET /endpoints[?service=NAMESPACE/NAME] (a big configuration's page is megabytes) */
static void adm_endpoints(struct evhttp_request *req)
{
    struct met_buf b;
    uint64_t now = hc_now_ms();
    char only[256];
    bool filter = adm_query(req, "service", only, sizeof(only));
    bool first = true;

    met_buf_init(&b);
    struct snap *s = rld_current();
    met_printf(&b, "{\"generation\":%llu,\"services\":[", (unsigned long long)(s ? s->gen : 0));
    for (uint32_t i = 0; s && i < s->nbackends; i++) {
        const struct snap_backend *be = &s->backends[i];
        if (filter && (!be->service || strcmp(be->service, only) != 0))
            continue;
        /* the port is what follows the service in "ns/svc:port" */
        const char *colon = be->name ? strrchr(be->name, ':') : NULL;
        met_printf(&b, "%s{\"name\":", first ? "" : ",");
        first = false;
        met_json_str(&b, be->service);
        met_printf(&b, ",\"port\":");
        met_json_str(&b, colon ? colon + 1 : NULL);
        met_printf(&b, ",\"backend\":");
        met_json_str(&b, be->name);
        met_printf(&b, ",\"algorithm\":");
        met_json_str(&b, met_algo_name(be->algo));
        met_printf(&b, ",\"ready\":%u", be->nready);
        if (be->external_name) {
            met_printf(&b, ",\"external_name\":");
            met_json_str(&b, be->external_name);
        }
        met_printf(&b, ",\"endpoints\":[");
        for (uint32_t j = 0; j < be->neps; j++) {
            const struct snap_endpoint *ep = &be->eps[j];
            struct hc_ep_view v;
            hc_ep_snapshot(ep->hc, now, &v);   /* relaxed loads; ewma decayed to now */
            met_printf(&b, "%s{\"address\":", j ? "," : "");
            met_json_str(&b, ep->addr);
            met_printf(&b, ",\"ready\":");
            adm_json_bool(&b, ep->ready);
            met_printf(&b, ",\"terminating\":");
            adm_json_bool(&b, ep->terminating);
            met_printf(&b, ",\"health\":");
            met_json_str(&b, v.state);
            met_printf(&b, ",\"active_check\":");
            met_json_str(&b, v.active_state == HC_UP     ? "up"
                             : v.active_state == HC_DOWN ? "down"
                                                         : "none");
            met_printf(&b, ",\"ejected\":");
            adm_json_bool(&b, v.ejected);
            met_printf(&b,
                       ",\"ejected_for_ms\":%llu,\"ejections\":%u,\"active_connections\":%u,"
                       "\"requests\":%llu,\"failures\":%llu,\"consecutive_failures\":%u,"
                       "\"ewma_ms\":%.3f}",
                       (unsigned long long)v.ejected_remaining_ms, v.ejections, v.active_conns,
                       (unsigned long long)v.requests, (unsigned long long)v.failures,
                       v.consec_failures, (double)v.ewma_us / 1000.0);
        }
        met_printf(&b, "]}");
    }
    met_printf(&b, "]}\n");
    snap_release(s);
    adm_reply_buf(req, 200, "OK", "application/json", &b);
    met_buf_free(&b);
}

/* ---- POST /reload ---- */

static void adm_reload_unpark(struct adm_reload *r)
{
    for (struct adm_reload **pp = &adm.reloads; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    if (r->timer)
        event_free(r->timer);
    free(r);
}

static void adm_reload_done(void *arg, int rc, const struct rld_status *st)
{
    struct adm_reload *r = arg;
    struct met_buf b;

    met_buf_init(&b);
    met_printf(&b, "{\"ok\":");
    adm_json_bool(&b, rc == 0);
    met_printf(&b, ",\"generation\":%llu,\"quarantined\":%u,\"duration_ms\":%.3f,\"error\":",
               (unsigned long long)st->gen, rc == 0 ? st->last_quarantined : 0,
               (double)st->last_duration_us / 1000.0);
    met_json_str(&b, st->last_error[0] ? st->last_error : NULL);
    met_printf(&b, "}\n");
    if (rc == 0)
        adm_reply_buf(r->req, 200, "OK", "application/json", &b);
    else
        adm_reply_buf(r->req, 500, "Internal Server Error", "application/json", &b);
    met_buf_free(&b);
    adm_reload_unpark(r);
}

static void adm_reload_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct adm_reload *r = arg;
    rld_request_cancel(r);
    adm_reply(r->req, 504, "Gateway Timeout", "application/json",
              "{\"ok\":false,\"error\":\"the reload did not finish in time; it still runs\"}\n",
              strlen("{\"ok\":false,\"error\":\"the reload did not finish in time; it still runs\"}\n"));
    adm_reload_unpark(r);
}

static void adm_reload(struct evhttp_request *req)
{
    static const char busy[] = "{\"ok\":false,\"error\":\"draining: reloads are off\"}\n";
    if (atomic_load(&adm.draining)) {
        adm_reply(req, 409, "Conflict", "application/json", busy, sizeof(busy) - 1);
        return;
    }
    struct adm_reload *r = calloc(1, sizeof(*r));
    if (!r) {
        adm_reply_text(req, 500, "Internal Server Error", "out of memory\n");
        return;
    }
    r->req = req;
    r->timer = evtimer_new(adm.base, adm_reload_timeout, r);
    struct timeval tv = { ADM_RELOAD_TIMEOUT_S, 0 };
    if (!r->timer || evtimer_add(r->timer, &tv) < 0 ||
        rld_request_async("POST /reload", adm_reload_done, r) < 0) {
        if (r->timer)
            event_free(r->timer);
        free(r);
        static const char off[] = "{\"ok\":false,\"error\":\"reloads are not running\"}\n";
        adm_reply(req, 409, "Conflict", "application/json", off, sizeof(off) - 1);
        return;
    }
    r->next = adm.reloads;
    adm.reloads = r;
}

/* ---- dispatch ---- */

enum { ADM_GET = EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, ADM_POST = EVHTTP_REQ_POST };

static const struct {
    const char *path;
    int methods;
    const char *allow;
    void (*fn)(struct evhttp_request *);
} adm_routes[] = {
    { "/healthz", ADM_GET, "GET, HEAD", adm_healthz },
    { "/metrics", ADM_GET, "GET, HEAD", adm_metrics },
    { "/config", ADM_GET, "GET, HEAD", adm_config },
    { "/endpoints", ADM_GET, "GET, HEAD", adm_endpoints },
    { "/reload", ADM_POST, "POST", adm_reload },
};

static void adm_dispatch(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path)
        path = "/";
    for (size_t i = 0; i < sizeof(adm_routes) / sizeof(adm_routes[0]); i++) {
        if (strcmp(path, adm_routes[i].path) != 0)
            continue;
        if (!(evhttp_request_get_command(req) & adm_routes[i].methods)) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                              adm_routes[i].allow);
            adm_reply_text(req, 405, "Method Not Allowed", "method not allowed\n");
            return;
        }
        adm_routes[i].fn(req);
        return;
    }
    adm_reply_text(req, 404, "Not Found", "not found\n");
}

/* ---- start / stop ---- */

static evutil_socket_t adm_listen(const struct snap_settings *c)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (c->admin_salen > 0) {
        memcpy(&ss, &c->admin_sa, c->admin_salen);
        sslen = (int)c->admin_salen;
    } else if (evutil_parse_sockaddr_port(c->admin, (struct sockaddr *)&ss, &sslen) < 0) {
        log_err("admin: cannot parse address %s", c->admin);
        return -1;
    }
    evutil_socket_t fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_err("admin: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    /* contract: every listening socket sets SO_REUSEADDR (restarts never wait on TIME_WAIT) */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) < 0 || listen(fd, 128) < 0) {
        log_err("admin: bind %s: %s", c->admin, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Binds spec.admin and serves it on `base` (M). No admin address: nothing,
 * returns 0. <0 when the address cannot be bound (logged).
 */
int adm_start(struct event_base *base, const struct snap *s)
{
    if (!s || !s->cfg.admin || !*s->cfg.admin)
        return 0;
    adm.base = base;
    adm.fd = adm_listen(&s->cfg);
    if (adm.fd < 0)
        return -1;
    adm.http = evhttp_new(base);
    if (!adm.http)
        return -1;
    /* every method reaches adm_dispatch, which answers 405 itself (libevent would say 501) */
    evhttp_set_allowed_methods(adm.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                             EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_timeout(adm.http, ADM_RELOAD_TIMEOUT_S + 5);
    evhttp_set_max_headers_size(adm.http, 16384);
    evhttp_set_max_body_size(adm.http, 65536);
    evhttp_set_gencb(adm.http, adm_dispatch, NULL);
    if (!evhttp_accept_socket_with_handle(adm.http, adm.fd)) {
        log_err("admin: cannot serve %s", s->cfg.admin);
        return -1;
    }
    log_info("admin listening on %s", s->cfg.admin);
    return 0;
}

static void adm_on_quit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void *adm_drain_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);   /* signals stay with main */
    event_base_loop(adm.base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/*
 * M, after its loop returned: /healthz answers 503 and POST /reload 409 from
 * now on, and the admin listener keeps answering while main drains.
 */
void adm_set_draining(void)
{
    atomic_store(&adm.draining, true);
    if (!adm.http || adm.drain_thr_running)
        return;
    adm.ev_quit = event_new(adm.base, -1, 0, adm_on_quit, adm.base);
    if (adm.ev_quit && pthread_create(&adm.drain_thr, NULL, adm_drain_main, NULL) == 0)
        adm.drain_thr_running = true;
}

void adm_stop(void)
{
    if (adm.drain_thr_running) {
        /* an active event, not loopbreak: it also works if the loop has not started yet */
        event_active(adm.ev_quit, EV_READ, 0);
        pthread_join(adm.drain_thr, NULL);
        adm.drain_thr_running = false;
    }
    if (adm.ev_quit) {
        event_free(adm.ev_quit);
        adm.ev_quit = NULL;
    }
    while (adm.reloads) {
        struct adm_reload *r = adm.reloads;
        rld_request_cancel(r);
        adm_reload_unpark(r);   /* the request itself goes with evhttp_free */
    }
    if (adm.http) {
        evhttp_free(adm.http);   /* closes the bound socket it was handed */
        adm.http = NULL;
        adm.fd = -1;
    }
}
