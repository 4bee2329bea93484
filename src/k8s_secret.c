/* SPDX-License-Identifier: Apache-2.0 */
/*
 * k8s_secret: v1 Secret. data values are base64 (decoded here with OpenSSL's
 * EVP_DecodeBlock, padding-aware), stringData values are plain and win over
 * data as the API server merges them. A kubernetes.io/tls Secret must carry
 * tls.crt and tls.key that parse and match (tls_check_pair), so a bad
 * certificate is a configuration error of the Secret, found at load time.
 * ca.crt is kept for upstream verification. Loader thread.
 */
#include <string.h>

#include "ingressd/arena.h"
#include "ingressd/tls.h"
#include "k8s-int.h"

#define SEC(m) offsetof(struct k8s_secret, m)

static const struct k8s_field top_fields[] = {
    { .name = "type", .type = KF_STR, .off = SEC(type) },
    { .name = "data", .type = KF_KVS, .off = SEC(data) },
    { .name = "stringData", .type = KF_KVS, .off = SEC(string_data) },
    { .name = "immutable", .type = KF_IGNORE },
    { NULL },
};

/* the decoded value of key k, from stringData or data; false on bad base64 */
static bool secret_value(struct k8s_dctx *c, const char *k, const unsigned char **out,
                         size_t *outlen)
{
    struct k8s_secret *s = &c->o->u.sec;
    const struct k8s_kv *kv = k8s_kv_find(&s->string_data, k);
    *out = NULL;
    *outlen = 0;
    if (kv) {
        *out = (const unsigned char *)kv->v;
        *outlen = strlen(kv->v);
        return true;
    }
    kv = k8s_kv_find(&s->data, k);
    if (!kv)
        return true;
    if (!k8s_base64_decode(c->a, kv->v, strlen(kv->v), out, outlen)) {
        k8s_obj_error(c->o, c->errs, kv->pos, "data.%s: invalid base64", k);
        return false;
    }
    return true;
}

static void sec_check(struct k8s_dctx *c, const struct ydoc_node *n)
{
    struct k8s_secret *s = &c->o->u.sec;
    (void)n;
    if (!s->type)
        s->type = "Opaque";
    /* every data value must be base64, whatever the key */
    for (uint32_t i = 0; i < s->data.n; i++) {
        const unsigned char *v;
        size_t vl;
        if (strcmp(s->data.v[i].k, "tls.crt") && strcmp(s->data.v[i].k, "tls.key") &&
            strcmp(s->data.v[i].k, "ca.crt") &&
            !k8s_base64_decode(c->a, s->data.v[i].v, strlen(s->data.v[i].v), &v, &vl))
            k8s_obj_error(c->o, c->errs, s->data.v[i].pos, "data.%s: invalid base64",
                          s->data.v[i].k);
    }
    bool ok = secret_value(c, "tls.crt", &s->crt, &s->crtlen);
    ok &= secret_value(c, "tls.key", &s->key, &s->keylen);
    secret_value(c, "ca.crt", &s->ca, &s->calen);
    if (strcmp(s->type, "kubernetes.io/tls") != 0 || !ok)
        return;
    if (!s->crt || !s->key) {
        k8s_obj_error(c->o, c->errs, c->o->pos, "data: a kubernetes.io/tls Secret needs %s",
                      !s->crt && !s->key ? "tls.crt and tls.key" : !s->crt ? "tls.crt" : "tls.key");
        return;
    }
    char msg[256] = "";
    if (tls_check_pair(s->crt, s->crtlen, s->key, s->keylen, false, msg, sizeof(msg)) < 0) {
        /* tls.c names the key it is about ("tls.key: ..."): point at that one */
        bool about_key = !strncmp(msg, "tls.key", 7);
        bool named = about_key || !strncmp(msg, "tls.crt", 7);
        const char *k = about_key ? "tls.key" : "tls.crt";
        const struct k8s_kv *kv = k8s_kv_find(&s->string_data, k);
        if (!kv)
            kv = k8s_kv_find(&s->data, k);
        k8s_obj_error(c->o, c->errs, kv ? kv->pos : c->o->pos, "%s%s%s",
                      kv && kv == k8s_kv_find(&s->string_data, k) ? "stringData." : "data.",
                      named ? "" : "tls.crt: ", msg[0] ? msg : "invalid certificate or key");
    }
}

static const char *const v1[] = { "v1", NULL };

const struct k8s_kind_def k8s__secret_def = {
    .kind = K8S_SECRET, .name = "Secret", .api_versions = v1, .top = top_fields,
    .check = sec_check,
};
