/* SPDX-License-Identifier: Apache-2.0 */
/* hc: PLACEHOLDER until health checks land (entries are not shared yet). */
#include "ingressd/hc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hc_ep *hc_ep_get(const char *addr)
{
    struct hc_ep *ep = calloc(1, sizeof(*ep));
    if (!ep)
        abort();
    strncpy(ep->key, addr, sizeof(ep->key) - 1);
    atomic_store(&ep->refs, 1);
    return ep;
}
void hc_ep_put(struct hc_ep *ep)
{
    if (ep && atomic_fetch_sub(&ep->refs, 1) == 1)
        free(ep);
}
uint64_t hc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
bool hc_ep_is_usable(const struct hc_ep *ep, uint64_t now_ms) { (void)ep; (void)now_ms; return true; }
void hc_report_success(struct hc_ep *ep, uint64_t latency_us) { (void)ep; (void)latency_us; }
bool hc_report_failure(struct hc_ep *ep, const struct snap_outlier_conf *oc, uint32_t n, uint32_t e)
{
    (void)ep; (void)oc; (void)n; (void)e;
    return false;
}
int hc_start(void) { return 0; }
void hc_apply(struct snap *s) { (void)s; }
void hc_stop(void) {}
