/* efa_rma_bw.c - raw libfabric RMA bandwidth (no mooncake code), the role
 * of fabtests' fi_rma_bw, which Debian does not package.  It is the
 * baseline the efa plugin's throughput is compared with: same provider,
 * same fi_getinfo hints as plugins/efa/efa_fabric.c (make_hints).
 *
 * Two processes (fork): the target registers one buffer of SIZE bytes and
 * only progresses its CQ; the initiator keeps N fi_write or fi_read of
 * SIZE bytes in flight against that buffer for a duration.  Endpoint
 * names, MR key and address go over a socketpair.  Prints one line:
 *   rma-bw <prov> <op> size=<B> inflight=<N> GB/s=<x> ops=<n> secs=<t>
 *          cpu-s/GB initiator=<a> target=<b> regions=<r>
 * CPU is getrusage (user+sys) of each process over the measured period.
 *
 *   efa-rma-bw [-p provider] [-d domain] [-s size] [-n inflight]
 *              [-t seconds] [-o read|write] [-w usec] [-r regions]
 * -r: both buffers hold `regions` blocks of SIZE and op k goes to block
 * k % regions on both sides (default 1: every op to the same block, which
 * stays in cache).  -r 16 -n 16 is what mc-transfer-bench does with a
 * batch of 16 (a distinct block per request), the like-for-like baseline.
 * -w: the target sleeps usec between rounds of CQ polls instead of
 * spinning, as the efa plugin's idle shm rail does (its poll_us), to
 * show what a sleeping target costs a provider that progresses the
 * target only when it is polled.
 * Exit 0 done, 77 the provider is not offered (reason printed), 2 a
 * set-up or transfer error (named). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#define MAX_NAME 256

typedef struct opts {
  const char *prov, *domain;
  size_t size;
  unsigned inflight;
  double secs;
  int read;
  long wait_us;
  unsigned regions;
} opts;

typedef struct side {
  struct fid_fabric *fabric;
  struct fid_domain *domain;
  struct fid_av *av;
  struct fid_cq *cq;
  struct fid_ep *ep;
  struct fid_mr *mr;
  void *buf;
} side;

/* What the target tells the initiator. */
typedef struct hello {
  size_t namelen;
  char name[MAX_NAME];
  uint64_t key, addr;
} hello;

/* Where op k lands: block k % regions of the buffers. */
static size_t block_off(const opts *o, uint64_t k) { return (size_t)(k % o->regions) * o->size; }

/* What the target reports at the end: its CPU over the measured period. */
typedef struct bye {
  double cpu_s;
} bye;

static const char *who = "efa-rma-bw";

static void die(const char *what, int fi_rc) {
  fprintf(stderr, "%s: %s: %s\n", who, what, fi_strerror(fi_rc < 0 ? -fi_rc : fi_rc));
  exit(2);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void xfer(int fd, void *p, size_t n, int send_it) {
  char *c = p;
  while (n) {
    ssize_t r = send_it ? write(fd, c, n) : read(fd, c, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      fprintf(stderr, "%s: the other process went away (%s)\n", who,
              r ? strerror(errno) : "end of file");
      exit(2);
    }
    c += r;
    n -= (size_t)r;
  }
}

static size_t parse_size(const char *s) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s)
    return 0;
  switch (*end) {
  case 'k': case 'K': v <<= 10; end++; break;
  case 'm': case 'M': v <<= 20; end++; break;
  case 'g': case 'G': v <<= 30; end++; break;
  default: break;
  }
  return *end ? 0 : (size_t)v;
}

static void usage(void) {
  fprintf(stderr, "usage: %s [-p provider] [-d domain] [-s size[K|M|G]] [-n inflight] "
                  "[-t seconds] [-o read|write] [-w usec] [-r regions]\n", who);
  exit(2);
}

/* A count option's value, 1..4096, or exit 2 naming the option. */
static unsigned count_arg(const char *prog, char opt, const char *text) {
  char *end = NULL;
  long v = strtol(text, &end, 10);
  if (end == text || *end || v < 1 || v > 4096) {
    fprintf(stderr, "%s: -%c %s: want 1..4096\n", prog, opt, text);
    exit(2);
  }
  return (unsigned)v;
}

static void parse(int argc, char **argv, opts *o) {
  *o = (opts){.prov = "shm", .size = 65536, .inflight = 16, .secs = 2.0, .read = 0, .regions = 1};
  int c;
  while ((c = getopt(argc, argv, "p:d:s:n:t:o:w:r:")) != -1) {
    switch (c) {
    case 'p': o->prov = optarg; break;
    case 'd': o->domain = optarg; break;
    case 's':
      if (!(o->size = parse_size(optarg))) {
        fprintf(stderr, "%s: -s %s: not a size\n", who, optarg);
        exit(2);
      }
      break;
    case 'n': o->inflight = count_arg(who, 'n', optarg); break;
    case 't':
      o->secs = strtod(optarg, NULL);
      if (!(o->secs > 0 && o->secs < 3600)) {
        fprintf(stderr, "%s: -t %s: want seconds in (0, 3600)\n", who, optarg);
        exit(2);
      }
      break;
    case 'o':
      if (strcmp(optarg, "read") && strcmp(optarg, "write")) {
        fprintf(stderr, "%s: -o %s: want read or write\n", who, optarg);
        exit(2);
      }
      o->read = !strcmp(optarg, "read");
      break;
    case 'w':
      o->wait_us = strtol(optarg, NULL, 10);
      if (o->wait_us < 0 || o->wait_us > 1000000) {
        fprintf(stderr, "%s: -w %s: want usec in 0..1000000\n", who, optarg);
        exit(2);
      }
      break;
    case 'r': o->regions = count_arg(who, 'r', optarg); break;
    default: usage();
    }
  }
  if (optind != argc)
    usage();
  if (o->size > (size_t)8 << 30 || o->size * o->regions > (size_t)8 << 30) {
    fprintf(stderr, "%s: -s x -r: at most 8 GiB of buffer\n", who);
    exit(2);
  }
}

/* The efa plugin's hints (plugins/efa/efa_fabric.c, make_hints): with
 * FI_DELIVERY_COMPLETE first, then with FI_ORDER_SAW, as the plugin. */
static struct fi_info *get_info(const opts *o) {
  int rc = -FI_ENODATA;
  for (int delivery = 1; delivery >= 0; delivery--) {
    struct fi_info *h = fi_allocinfo(), *info = NULL;
    if (!h)
      die("fi_allocinfo", -FI_ENOMEM);
    h->ep_attr->type = FI_EP_RDM;
    h->caps = FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE | FI_MSG | FI_SEND |
              FI_RECV;
    h->mode = FI_CONTEXT | FI_CONTEXT2;
    h->domain_attr->mr_mode =
        FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
    h->domain_attr->threading = FI_THREAD_SAFE;
    h->domain_attr->av_type = FI_AV_TABLE;
    if (delivery)
      h->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
    else
      h->tx_attr->msg_order = FI_ORDER_SAW;
    h->fabric_attr->prov_name = strdup(o->prov);
    if (o->domain)
      h->domain_attr->name = strdup(o->domain);
    rc = fi_getinfo(FI_VERSION(1, 9), NULL, NULL, 0, h, &info);
    fi_freeinfo(h);
    if (rc == 0)
      return info;
  }
  printf("SKIP: provider %s%s%s not offered here (RDM, RMA, the efa plugin's hints): %s\n",
         o->prov, o->domain ? " domain " : "", o->domain ? o->domain : "", fi_strerror(-rc));
  exit(77);
}

static void open_side(side *s, struct fi_info *info, size_t size, uint64_t access) {
  memset(s, 0, sizeof *s);
  int rc = fi_fabric(info->fabric_attr, &s->fabric, NULL);
  if (rc)
    die("fi_fabric", rc);
  if ((rc = fi_domain(s->fabric, info, &s->domain, NULL)))
    die("fi_domain", rc);
  struct fi_av_attr ava = {.type = FI_AV_TABLE};
  if ((rc = fi_av_open(s->domain, &ava, &s->av, NULL)))
    die("fi_av_open", rc);
  struct fi_cq_attr cqa = {.format = FI_CQ_FORMAT_DATA, .wait_obj = FI_WAIT_NONE};
  if ((rc = fi_cq_open(s->domain, &cqa, &s->cq, NULL)))
    die("fi_cq_open", rc);
  if ((rc = fi_endpoint(s->domain, info, &s->ep, NULL)))
    die("fi_endpoint", rc);
  if ((rc = fi_ep_bind(s->ep, &s->av->fid, 0)) ||
      (rc = fi_ep_bind(s->ep, &s->cq->fid, FI_TRANSMIT | FI_RECV)) || (rc = fi_enable(s->ep)))
    die("endpoint set-up", rc);
  if (posix_memalign(&s->buf, 4096, size))
    die("the buffer", -FI_ENOMEM);
  memset(s->buf, 0x5a, size); /* touched: no page faults in the measurement */
  if ((rc = fi_mr_reg(s->domain, s->buf, size, access, 0, 0, 0, &s->mr, NULL)))
    die("fi_mr_reg", rc);
  if (info->domain_attr->mr_mode & FI_MR_ENDPOINT) {
    if ((rc = fi_mr_bind(s->mr, &s->ep->fid, 0)) || (rc = fi_mr_enable(s->mr)))
      die("fi_mr_bind/enable", rc);
  }
}

static void close_side(side *s) {
  fi_close(&s->ep->fid);
  fi_close(&s->mr->fid);
  fi_close(&s->cq->fid);
  fi_close(&s->av->fid);
  fi_close(&s->domain->fid);
  fi_close(&s->fabric->fid);
  free(s->buf);
}

/* Target: serve (progress the CQ) until the initiator says stop; CPU is
 * counted between its "start" and "stop" bytes. */
static int target(int fd, struct fi_info *info, const opts *o) {
  who = "efa-rma-bw (target)";
  side s;
  open_side(&s, info, o->size * o->regions, FI_REMOTE_READ | FI_REMOTE_WRITE);
  hello h = {.namelen = MAX_NAME, .key = fi_mr_key(s.mr)};
  h.addr = (info->domain_attr->mr_mode & FI_MR_VIRT_ADDR) ? (uint64_t)(uintptr_t)s.buf : 0;
  int rc = fi_getname(&s.ep->fid, h.name, &h.namelen);
  if (rc)
    die("fi_getname", rc);
  xfer(fd, &h, sizeof h, 1);
  /* The initiator's name in this AV too (as fi_rma_bw does): shm maps a
   * peer's region from its AV entry when the peer's first request comes. */
  hello ih;
  xfer(fd, &ih, sizeof ih, 0);
  fi_addr_t peer = FI_ADDR_NOTAVAIL;
  if (ih.namelen > MAX_NAME || fi_av_insert(s.av, ih.name, 1, &peer, 0, NULL) != 1)
    die("fi_av_insert (the initiator)", -FI_EINVAL);
  double c0 = 0;
  for (;;) {
    struct fi_cq_data_entry e[16];
    for (int i = 0; i < (o->wait_us ? 1 : 256); i++)
      (void)fi_cq_read(s.cq, e, 16);
    if (o->wait_us) {
      struct timespec ts = {o->wait_us / 1000000, (o->wait_us % 1000000) * 1000};
      nanosleep(&ts, NULL);
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) > 0) {
      char c;
      xfer(fd, &c, 1, 0);
      if (c == 'S') {
        c0 = cpu_s();
      } else {
        bye b = {.cpu_s = cpu_s() - c0};
        xfer(fd, &b, sizeof b, 1);
        break;
      }
    }
  }
  /* Wait for the initiator to close its side before tearing ours down. */
  char c;
  (void)read(fd, &c, 1);
  close_side(&s);
  return 0;
}

/* Reaps completions; returns how many finished.  An error entry is fatal. */
static unsigned reap(side *s) {
  struct fi_cq_data_entry e[16];
  ssize_t n = fi_cq_read(s->cq, e, 16);
  if (n > 0)
    return (unsigned)n;
  if (n == -FI_EAVAIL) {
    struct fi_cq_err_entry ee;
    memset(&ee, 0, sizeof ee);
    if (fi_cq_readerr(s->cq, &ee, 0) == 1) {
      fprintf(stderr, "%s: an RMA failed: %s (prov_errno %d)\n", who,
              fi_strerror(ee.err), ee.prov_errno);
      exit(2);
    }
  } else if (n < 0 && n != -FI_EAGAIN) {
    die("fi_cq_read", (int)n);
  }
  return 0;
}

static ssize_t post(side *s, fi_addr_t to, const hello *h, const opts *o, uint64_t k) {
  void *desc = fi_mr_desc(s->mr);
  size_t off = block_off(o, k);
  char *lb = (char *)s->buf + off;
  return o->read ? fi_read(s->ep, lb, o->size, desc, to, h->addr + off, h->key, NULL)
                 : fi_write(s->ep, lb, o->size, desc, to, h->addr + off, h->key, NULL);
}

static int initiator(int fd, struct fi_info *info, const opts *o) {
  who = "efa-rma-bw (initiator)";
  side s;
  open_side(&s, info, o->size * o->regions, FI_READ | FI_WRITE);
  hello h;
  xfer(fd, &h, sizeof h, 0);
  if (h.namelen > MAX_NAME)
    die("the target's endpoint name", -FI_EINVAL);
  fi_addr_t to = FI_ADDR_NOTAVAIL;
  if (fi_av_insert(s.av, h.name, 1, &to, 0, NULL) != 1)
    die("fi_av_insert", -FI_EINVAL);
  hello mine = {.namelen = MAX_NAME};
  int rc = fi_getname(&s.ep->fid, mine.name, &mine.namelen);
  if (rc)
    die("fi_getname", rc);
  xfer(fd, &mine, sizeof mine, 1);

  /* Warm-up (connection set-up for rxm, first-touch paths), not timed. */
  unsigned in = 0, done_warm = 0;
  uint64_t posted = 0;
  while (done_warm < 2 * o->inflight) {
    while (in < o->inflight) {
      ssize_t r = post(&s, to, &h, o, posted);
      if (r == -FI_EAGAIN)
        break;
      if (r)
        die(o->read ? "fi_read" : "fi_write", (int)r);
      in++;
      posted++;
    }
    unsigned n = reap(&s);
    in -= n;
    done_warm += n;
  }
  while (in)
    in -= reap(&s);

  char c = 'S';
  xfer(fd, &c, 1, 1);
  double t0 = now_s(), c0 = cpu_s(), end = t0 + o->secs;
  uint64_t ops = 0;
  double t1;
  for (;;) {
    int stop = now_s() >= end;
    while (!stop && in < o->inflight) {
      ssize_t r = post(&s, to, &h, o, posted);
      if (r == -FI_EAGAIN)
        break;
      if (r)
        die(o->read ? "fi_read" : "fi_write", (int)r);
      in++;
      posted++;
    }
    unsigned n = reap(&s);
    in -= n;
    ops += n;
    if (stop && !in)
      break;
  }
  t1 = now_s();
  double my_cpu = cpu_s() - c0;
  c = 'E';
  xfer(fd, &c, 1, 1);
  bye b;
  xfer(fd, &b, sizeof b, 0);
  double gb = (double)ops * (double)o->size / 1e9, secs = t1 - t0;
  printf("rma-bw %s %s size=%zu inflight=%u GB/s=%.3f ops=%" PRIu64 " secs=%.2f "
         "cpu-s/GB initiator=%.3f target=%.3f regions=%u%s\n",
         info->fabric_attr->prov_name, o->read ? "read" : "write", o->size, o->inflight,
         gb / secs, ops, secs, gb > 0 ? my_cpu / gb : 0.0, gb > 0 ? b.cpu_s / gb : 0.0,
         o->regions, o->wait_us ? " (target sleeps between polls)" : "");
  fflush(stdout);
  close_side(&s);
  return ops > 0 ? 0 : 2;
}

int main(int argc, char **argv) {
  opts o;
  parse(argc, argv, &o);
  struct fi_info *info = get_info(&o);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
    perror("socketpair");
    return 2;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 2;
  }
  if (pid == 0) {
    close(sv[0]);
    /* Its own fi_info: shm puts a name derived from the caller's pid in
     * src_addr, and two endpoints with the parent's name would share one
     * shm region (the initiator then spins in fi_write). */
    fi_freeinfo(info);
    info = get_info(&o);
    int rc = target(sv[1], info, &o);
    fi_freeinfo(info);
    _exit(rc);
  }
  close(sv[1]);
  /* A bound run: a wedged provider is a failure, not a hang. */
  alarm((unsigned)o.secs + 60);
  int rc = initiator(sv[0], info, &o);
  close(sv[0]); /* the target tears down after this */
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  fi_freeinfo(info);
  if (!WIFEXITED(st) || WEXITSTATUS(st)) {
    fprintf(stderr, "%s: the target process failed (status 0x%x)\n", who, (unsigned)st);
    return 2;
  }
  return rc;
}
