/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reload fuzz driver (not built by make): loads each argument in turn as the
 * same configuration path, with the last good snapshot as prev, as reloads
 * do. Build against an ASan library:
 *   cc -g -fsanitize=address,undefined -Iinclude -o /tmp/fuzz_reload tests/conf/fuzz_reload.c \
 *      build-asan/libingressd.a $(pkg-config --libs libevent_openssl libevent_pthreads openssl libpcre2-8 yaml-0.1) -pthread -lm
 */
#include <stdio.h>
#include <stdlib.h>

#include "ingressd/snap.h"

int main(int argc, char **argv)
{
    struct snap_load_opts o = { 0 };
    struct snap *cur = NULL;
    char cmd[1024];
    for (int i = 1; i < argc; i++) {
        snprintf(cmd, sizeof cmd, "cp '%s' /tmp/fuzz-reload-cur.yaml", argv[i]);
        if (system(cmd) != 0)
            return 2;
        struct cfg_errs e;
        cfg_errs_init(&e);
        struct snap *s = snap_load("/tmp/fuzz-reload-cur.yaml", cur, &o, &e);
        if (s) {
            snap_release(cur);
            cur = s;
        }
        cfg_errs_free(&e);
    }
    snap_release(cur);
    return 0;
}
