/* SPDX-License-Identifier: Apache-2.0 */
/* np: PLACEHOLDER until NetworkPolicy lands: allow everything. */
#include "ingressd/np.h"

#include <stddef.h>

bool np_allow(const struct np_table *t, const struct snap_backend *be, const struct sockaddr *client,
              uint16_t port)
{
    (void)t; (void)be; (void)client; (void)port;
    return true;
}

struct np_table *np_build(struct arena *a, struct k8s_obj *const *pols, uint32_t npol,
                          const struct np_backend_in *in, uint32_t nbe)
{
    (void)a; (void)pols; (void)npol; (void)in; (void)nbe;
    return NULL;
}
