/* SPDX-License-Identifier: Apache-2.0 */
/*
 * adm: the admin listener (GET /healthz, /metrics, /config, /endpoints,
 * POST /reload), served on the main thread's event loop with evhttp.
 */
#ifndef INGRESSD_ADM_H
#define INGRESSD_ADM_H

struct event_base;
struct snap;

int adm_start(struct event_base *base, const struct snap *s);   /* no-op without spec.admin */
void adm_set_draining(void);            /* /healthz answers 503 from now on */
void adm_stop(void);

#endif
