/* SPDX-License-Identifier: Apache-2.0 */
/* adm: PLACEHOLDER until the admin listener lands. */
#include "ingressd/adm.h"

int adm_start(struct event_base *base, const struct snap *s) { (void)base; (void)s; return 0; }
void adm_set_draining(void) {}
void adm_stop(void) {}
