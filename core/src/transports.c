/* Calls into a loaded transport that several modules share (transports.h). */
#include <string.h>

#include "transports.h"

const char *mc_transport_param(const mc_transport *t, const char *key) {
  if (!t->cfg)
    return NULL;
  for (size_t i = 0; i < t->cfg->nparams; i++)
    if (strcmp(t->cfg->params[i].key, key) == 0)
      return t->cfg->params[i].value;
  return NULL;
}

int mc_transport_submit(mc_transport *t, void *ep, const mc_slice *sl,
                        uint32_t n, uint32_t *accepted) {
  int mt = (t->ops->caps & MC_CAP_MT_SUBMIT) != 0;
  *accepted = 0;
  if (!mt)
    pthread_mutex_lock(&t->submit_lock);
  int rc = t->ops->submit(t->ctx, ep, sl, n, accepted);
  if (!mt)
    pthread_mutex_unlock(&t->submit_lock);
  if (*accepted > n) /* a plugin bug must not corrupt our counts */
    *accepted = n;
  return rc;
}
