/* SPDX-License-Identifier: Apache-2.0 */
/*
 * adm: the admin listener (GET /healthz, /metrics, /config, /endpoints,
 * POST /reload), served on the main thread's event loop with evhttp. Pages
 * read the snapshot through rld_current(); POST /reload is answered from
 * rld's async callback, so the loop never blocks. Main thread only.
 */
#ifndef INGRESSD_ADM_H
#define INGRESSD_ADM_H

struct event_base;
struct snap;

/* binds s->cfg.admin (SO_REUSEADDR) on base; 0 without spec.admin, <0 bind error (logged) */
int adm_start(struct event_base *base, const struct snap *s);
/* after main's loop returned on SIGTERM: /healthz answers 503 "draining", POST /reload
 * 409, and a helper thread keeps the listener answering until adm_stop() */
void adm_set_draining(void);
void adm_stop(void);                    /* joins that thread, closes the listener */

#endif
