/* efa_fabric.c - finding the provider's devices (fi_getinfo) and opening
 * one fabric/domain/AV/CQ/endpoint per device: the rails.  Also the rail's
 * topology facts (NUMA node, PCI address) from fi_info's nic attributes,
 * or sysfs for a network interface without them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "efa_ctx.h"

#define EFA_FI_VERSION FI_VERSION(1, 9)

/* FI_MR_* bits this plugin can honour; the provider answers with the ones
 * it requires (FI_MR_RAW is not offered: keys must fit in 64 bits). */
#define EFA_MR_MODE                                                            \
  (FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY |          \
   FI_MR_ENDPOINT)

static struct fi_info *make_hints(const efa_ctx *ctx, int hmem, int delivery, int rma_event) {
  struct fi_info *h = fi_allocinfo();
  if (!h)
    return NULL;
  h->ep_attr->type = FI_EP_RDM;
  h->caps = FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE | FI_MSG |
            FI_SEND | FI_RECV | (hmem ? FI_HMEM : 0) | (rma_event ? FI_RMA_EVENT : 0);
  h->mode = FI_CONTEXT | FI_CONTEXT2;
  h->domain_attr->mr_mode = EFA_MR_MODE | (hmem ? FI_MR_HMEM : 0);
  h->domain_attr->threading = FI_THREAD_SAFE;
  h->domain_attr->av_type = FI_AV_TABLE;
  /* A write completes once the data is placed at the target, so a
   * notification sent after it is seen after the data. */
  if (delivery)
    h->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
  else /* without it, a send must at least not overtake earlier writes */
    h->tx_attr->msg_order = FI_ORDER_SAW;
  if (ctx->cfg.provider[0]) {
    h->fabric_attr->prov_name = strdup(ctx->cfg.provider);
    if (!h->fabric_attr->prov_name) {
      fi_freeinfo(h);
      return NULL;
    }
  }
  return h;
}

/* "what fi_info lists": every provider offering RDM endpoints, for the
 * error message of a host without the configured one. */
static void list_providers(char *out, size_t n) {
  struct fi_info *h = fi_allocinfo(), *info = NULL;
  out[0] = '\0';
  if (!h)
    return;
  h->ep_attr->type = FI_EP_RDM;
  if (fi_getinfo(EFA_FI_VERSION, NULL, NULL, 0, h, &info) == 0) {
    size_t used = 0;
    for (struct fi_info *i = info; i; i = i->next) {
      const char *p = i->fabric_attr->prov_name;
      char pat[140];
      snprintf(pat, sizeof pat, " %s,", p);
      char hay[1100];
      snprintf(hay, sizeof hay, " %s", out);
      if (strstr(hay, pat))
        continue;
      int k = snprintf(out + used, n - used, "%s%s,", used ? " " : "", p);
      if (k < 0 || (size_t)k >= n - used)
        break;
      used += (size_t)k;
    }
    if (used && out[used - 1] == ',')
      out[used - 1] = '\0';
    fi_freeinfo(info);
  }
  fi_freeinfo(h);
  if (!out[0])
    snprintf(out, n, "none");
}

/* Is domain name `d` in the comma-separated list `list`? */
static int in_list(const char *list, const char *d) {
  size_t dl = strlen(d);
  for (const char *p = list; *p;) {
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == dl && !memcmp(p, d, l))
      return 1;
    p += l + (e ? 1 : 0);
  }
  return 0;
}

static int already(struct fi_info **pick, uint32_t n, const char *dom) {
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(pick[i]->domain_attr->name, dom))
      return 1;
  return 0;
}

static long read_sysfs_long(const char *path) {
  FILE *f = fopen(path, "re");
  long v = -1;
  if (f) {
    if (fscanf(f, "%ld", &v) != 1)
      v = -1;
    fclose(f);
  }
  return v;
}

/* NUMA node, PCI address and speed of a rail: fi_info's nic attributes
 * when the provider fills them (efa, verbs), else the network interface
 * of that name in sysfs (tcp's domains are interface names). */
static void rail_topology(efa_rail *r) {
  struct fi_info *i = r->info;
  mc_rail_info *ri = &r->ri;
  memset(ri, 0, sizeof *ri);
  snprintf(ri->name, sizeof ri->name, "%s", i->domain_attr->name);
  ri->numa_node = -1;
  char path[512];
  if (i->nic && i->nic->bus_attr && i->nic->bus_attr->bus_type == FI_BUS_PCI) {
    const struct fi_pci_attr *p = &i->nic->bus_attr->attr.pci;
    ri->pci_bus_id = ((uint32_t)p->domain_id << 16) | ((uint32_t)p->bus_id << 8) |
                     ((uint32_t)(p->device_id & 0x1f) << 3) | (p->function_id & 7u);
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%04x:%02x:%02x.%x/numa_node",
             p->domain_id, p->bus_id, p->device_id, p->function_id);
    ri->numa_node = (int32_t)read_sysfs_long(path);
  } else if (!strchr(i->domain_attr->name, '/')) {
    snprintf(path, sizeof path, "/sys/class/net/%s/device/numa_node", i->domain_attr->name);
    ri->numa_node = (int32_t)read_sysfs_long(path);
  }
  if (ri->numa_node < -1)
    ri->numa_node = -1;
  if (i->nic && i->nic->link_attr && i->nic->link_attr->speed)
    ri->bandwidth_mbps = (uint64_t)(i->nic->link_attr->speed / 1000000u);
}

/* A counter of the RMA peers complete into this endpoint (FI_RMA_EVENT).
 * Without a CQ wait object the provider serves peers' RMA only while this
 * rail polls, and that leaves no CQ entry here: the counter is what shows
 * the worker that peers are active, so it keeps polling for them instead
 * of napping (efa_xfer.c, worker).  Optional: without it the rail naps
 * poll_us when it has nothing of its own. */
static void remote_counter(efa_ctx *ctx, efa_rail *r) {
  struct fi_cntr_attr ca = {.events = FI_CNTR_EVENTS_COMP, .wait_obj = FI_WAIT_NONE};
  int rc = fi_cntr_open(r->domain, &ca, &r->rcntr, NULL);
  if (!rc)
    rc = fi_ep_bind(r->ep, &r->rcntr->fid, FI_REMOTE_READ | FI_REMOTE_WRITE);
  if (rc) {
    EFA_LOG(ctx, MC_LOG_DEBUG, "rail %s: no remote-access counter (%s): polls peers every "
            "poll_us", r->info->domain_attr->name, fi_strerror(-rc));
    if (r->rcntr)
      fi_close(&r->rcntr->fid);
    r->rcntr = NULL;
  }
}

static int rail_open(efa_ctx *ctx, efa_rail *r) {
  struct fi_info *i = r->info;
  int rc = fi_fabric(i->fabric_attr, &r->fabric, NULL);
  if (!rc)
    rc = fi_domain(r->fabric, i, &r->domain, NULL);
  struct fi_av_attr ava = {.type = FI_AV_TABLE};
  if (!rc)
    rc = fi_av_open(r->domain, &ava, &r->av, NULL);
  if (!rc) {
    /* A wait object lets the worker sleep in fi_cq_sread until the
     * provider has something (no core spun away); without one it polls
     * with a backoff (efa_xfer.c).  shm's wait object is not woken by
     * peers' requests arriving in its queue (libfabric 1.17), and shm
     * serves incoming RMA only when polled: poll it. */
    int no_wait = efa_prov_polled(i->fabric_attr->prov_name);
    struct fi_cq_attr cqa = {.format = FI_CQ_FORMAT_DATA,
                             .wait_obj = no_wait ? FI_WAIT_NONE : FI_WAIT_UNSPEC,
                             .size = ctx->cfg.max_inflight + EFA_RECV_SLOTS + EFA_SEND_SLOTS};
    rc = fi_cq_open(r->domain, &cqa, &r->cq, NULL);
    r->cq_wait = rc == 0 && cqa.wait_obj != FI_WAIT_NONE;
    if (rc) {
      cqa.wait_obj = FI_WAIT_NONE;
      rc = fi_cq_open(r->domain, &cqa, &r->cq, NULL);
    }
  }
  if (!rc)
    rc = fi_endpoint(r->domain, i, &r->ep, NULL);
  if (!rc)
    rc = fi_ep_bind(r->ep, &r->av->fid, 0);
  if (!rc)
    rc = fi_ep_bind(r->ep, &r->cq->fid, FI_TRANSMIT | FI_RECV);
  if (!rc && !r->cq_wait && (i->caps & FI_RMA_EVENT))
    remote_counter(ctx, r);
  if (!rc)
    rc = fi_enable(r->ep);
  if (!rc) {
    r->addr_len = sizeof r->addr;
    rc = fi_getname(&r->ep->fid, r->addr, &r->addr_len);
    if (rc == -FI_ETOOSMALL)
      EFA_LOG(ctx, MC_LOG_ERROR, "rail %s: endpoint name longer than %u bytes",
              i->domain_attr->name, EFAB_MAX_ADDR);
  }
  if (rc) {
    EFA_LOG(ctx, MC_LOG_ERROR, "rail %s (provider %s): cannot open: %s",
            i->domain_attr->name, i->fabric_attr->prov_name, fi_strerror(-rc));
    return rc == -FI_ENOMEM ? MC_ENOMEM : MC_ENODEV;
  }
  rail_topology(r);
  return 0;
}

/* The endpoints first: an endpoint with operations still out refers to
 * their MRs, so registrations are closed only after this. */
void efa_fabric_close_eps(efa_ctx *ctx) {
  for (uint32_t k = 0; k < ctx->nrails; k++) {
    efa_rail *r = &ctx->rails[k];
    if (r->ep)
      fi_close(&r->ep->fid);
    r->ep = NULL;
  }
}

static void rail_close(efa_rail *r) {
  if (r->ep)
    fi_close(&r->ep->fid);
  if (r->rcntr)
    fi_close(&r->rcntr->fid);
  r->rcntr = NULL;
  if (r->note_mr)
    fi_close(&r->note_mr->fid);
  if (r->av)
    fi_close(&r->av->fid);
  if (r->cq)
    fi_close(&r->cq->fid);
  if (r->domain)
    fi_close(&r->domain->fid);
  if (r->fabric)
    fi_close(&r->fabric->fid);
  if (r->info)
    fi_freeinfo(r->info);
  r->note_mr = NULL;
  r->ep = NULL;
  r->av = NULL;
  r->cq = NULL;
  r->domain = NULL;
  r->fabric = NULL;
  r->info = NULL;
}

int efa_prov_polled(const char *prov) { return !strcmp(prov, "shm"); }

/* fi_getinfo with the strongest hints first: FI_HMEM (when configured)
 * and delivery-complete writes, then without what the provider refuses.
 * A provider the workers poll (no CQ wait object) is asked for
 * FI_RMA_EVENT too, first: its remote-access counter tells a rail that
 * peers are moving data through it (efa_xfer.c, worker). */
static int get_info(efa_ctx *ctx, struct fi_info **info, int *hmem) {
  int rc = -FI_ENODATA;
  int polled = efa_prov_polled(ctx->cfg.provider);
  for (int attempt = 0; attempt < 8; attempt++) {
    int want_hmem = !(attempt & 1) && ctx->cfg.hmem;
    int delivery = !(attempt & 2);
    int rma_event = !(attempt & 4);
    if ((attempt & 1) && !ctx->cfg.hmem)
      continue;
    if (rma_event && !polled)
      continue;
    struct fi_info *h = make_hints(ctx, want_hmem, delivery, rma_event);
    if (!h)
      return -FI_ENOMEM;
    rc = fi_getinfo(EFA_FI_VERSION, NULL, NULL, 0, h, info);
    fi_freeinfo(h);
    if (rc == 0) {
      *hmem = want_hmem;
      if (!delivery)
        EFA_LOG(ctx, MC_LOG_INFO,
                "provider %s: no FI_DELIVERY_COMPLETE; notifications rely on "
                "FI_ORDER_SAW", ctx->cfg.provider);
      return 0;
    }
  }
  return rc;
}

int efa_fabric_open(efa_ctx *ctx) {
  struct fi_info *info = NULL;
  int hmem = 0;
  int rc = get_info(ctx, &info, &hmem);
  if (rc) {
    char listed[1024];
    list_providers(listed, sizeof listed);
    EFA_LOG(ctx, MC_LOG_ERROR,
            "libfabric provider '%s' offers no RDM endpoint with RMA here (%s); "
            "fi_info lists RDM providers: %s",
            ctx->cfg.provider, fi_strerror(-rc), listed);
    return rc == -FI_ENOMEM ? MC_ENOMEM : MC_ENODEV;
  }
  /* One rail per device (domain name), first entry of each: fi_getinfo
   * orders a device's entries by preference.  Without an explicit list,
   * loopback-only domains ("lo") are left out when real devices exist:
   * a peer on another host could not reach them. */
  struct fi_info *pick[EFAB_MAX_RAILS];
  uint32_t n = 0;
  int have_real = 0;
  for (struct fi_info *i = info; i; i = i->next)
    if (strcmp(i->domain_attr->name, "lo"))
      have_real = 1;
  for (struct fi_info *i = info; i && n < ctx->cfg.rails; i = i->next) {
    const char *dom = i->domain_attr->name;
    if (ctx->cfg.domains[0] ? !in_list(ctx->cfg.domains, dom)
                            : (have_real && !strcmp(dom, "lo")))
      continue;
    if (i->domain_attr->mr_mode & FI_MR_RAW)
      continue;
    if (!already(pick, n, dom))
      pick[n++] = i;
  }
  if (n == 0) {
    EFA_LOG(ctx, MC_LOG_ERROR, "libfabric provider '%s': no device matches domain '%s'",
            ctx->cfg.provider, ctx->cfg.domains);
    fi_freeinfo(info);
    return MC_ENODEV;
  }
  ctx->mr_mode = (uint64_t)pick[0]->domain_attr->mr_mode;
  ctx->key_size = pick[0]->domain_attr->mr_key_size;
  ctx->hmem = hmem && (pick[0]->caps & FI_HMEM);
  ctx->drain_on_close = !strcmp(pick[0]->fabric_attr->prov_name, "shm");
  rc = 0;
  for (uint32_t k = 0; k < n && !rc; k++) {
    efa_rail *r = &ctx->rails[k];
    r->ctx = ctx;
    r->idx = k;
    r->info = fi_dupinfo(pick[k]);
    if (!r->info) {
      rc = MC_ENOMEM;
      break;
    }
    ctx->nrails = k + 1;
    /* Every rail must agree with the first: one key format in the blob. */
    if ((uint64_t)r->info->domain_attr->mr_mode != ctx->mr_mode ||
        r->info->addr_format != pick[0]->addr_format) {
      EFA_LOG(ctx, MC_LOG_ERROR, "device %s differs from %s in MR mode or address format",
              r->info->domain_attr->name, pick[0]->domain_attr->name);
      rc = MC_ENODEV;
      break;
    }
    rc = rail_open(ctx, r);
  }
  fi_freeinfo(info);
  if (rc)
    efa_fabric_close(ctx);
  return rc;
}

void efa_fabric_close(efa_ctx *ctx) {
  for (uint32_t k = 0; k < ctx->nrails; k++)
    rail_close(&ctx->rails[k]);
  ctx->nrails = 0;
}
