/* mooncake-conductor: the Conductor as an HTTP/JSON service (api.h lists
 * the endpoints) on libmicrohttpd.
 *
 *   mooncake-conductor --profile YAML [--listen HOST:PORT] [--threads N]
 *       [--policy P] [--admission A] [--threshold X] [--ttft-slo S]
 *       [--tbt-slo S] [--decode-time S] [--token-file PATH] [--insecure]
 *       [--max-body BYTES] [--max-conns N] [--max-conns-per-ip N]
 *
 * On start it prints "mooncake-conductor listening on http://HOST:PORT"
 * (port 0 picks a free one) and serves until SIGINT/SIGTERM.
 *
 * Threads: libmicrohttpd's internal epoll loop in a pool of --threads
 * threads (default: the number of online cores, at most 16).  The
 * conductor itself is one mutex (a /schedule decision holds it for a few
 * microseconds); the threads read, parse and answer in parallel around it.
 *
 * Security: with --token-file every request must carry "Authorization:
 * Bearer <token>"; a request without it is answered 401 from its headers,
 * before any body is read, so an unauthenticated client holds no body
 * buffer.  Listening beyond loopback without a token is refused unless
 * --insecure says so.  Bodies are capped (--max-body, default 4 MiB),
 * connections too (--max-conns, default 512; --max-conns-per-ip, default
 * 64, so one address cannot hold every slot; 30 s idle timeout).  A
 * connection that has not sent its headers yet cannot be attributed: many
 * addresses together can still fill the slots until they time out. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"

typedef struct server {
  cs_api api;
  char token[257];
  size_t token_len;
  size_t max_body;
} server;

typedef struct conn {
  char *buf;
  size_t n, cap;
  int too_large, refused;
} conn;

static int token_ok(const server *s, struct MHD_Connection *c) {
  if (!s->token_len)
    return 1;
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h || strncmp(h, "Bearer ", 7))
    return 0;
  h += 7;
  size_t n = strlen(h);
  /* Constant time in the token's content. */
  unsigned char diff = (unsigned char)(n != s->token_len);
  for (size_t i = 0; i < s->token_len; i++)
    diff |= (unsigned char)(s->token[i] ^ (i < n ? h[i] : 0));
  return diff == 0;
}

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, char *body,
                                 const char *ctype) {
  struct MHD_Response *r;
  if (body)
    r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
  else
    r = MHD_create_response_from_buffer(strlen("{\"error\":\"internal error\"}"),
                                        (void *)"{\"error\":\"internal error\"}",
                                        MHD_RESPMEM_PERSISTENT);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", body ? ctype : "application/json");
  if (status == MHD_HTTP_UNAUTHORIZED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"conductor\"");
  enum MHD_Result ret = MHD_queue_response(c, body ? status : 500, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result fixed(struct MHD_Connection *c, unsigned status, const char *msg) {
  size_t n = strlen(msg) + 16;
  char *b = malloc(n);
  if (b)
    snprintf(b, n, "{\"error\":\"%s\"}", msg);
  return send_body(c, status, b, "application/json");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state) {
  server *s = cls;
  conn *k = *state;
  if (!k) {
    k = calloc(1, sizeof *k);
    if (!k)
      return MHD_NO;
    *state = k;
    /* Refused from the headers alone: the answer is queued before any of
     * the body is read, and MHD closes the connection instead of reading
     * it, so such a client holds no buffer and no thread for long. */
    if (!token_ok(s, c)) {
      k->refused = 1;
      return fixed(c, MHD_HTTP_UNAUTHORIZED, "this conductor needs Authorization: Bearer <token>");
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->max_body) {
      k->too_large = 1;
      return fixed(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
    }
    return MHD_YES;
  }
  if (*upload_size) {
    if (!k->refused && !k->too_large) {
      if (k->n + *upload_size > s->max_body) {
        k->too_large = 1;
        free(k->buf);
        k->buf = NULL;
      } else {
        if (k->n + *upload_size + 1 > k->cap) {
          size_t cap = k->cap ? k->cap : 4096;
          while (cap < k->n + *upload_size + 1)
            cap *= 2;
          char *nb = realloc(k->buf, cap);
          if (!nb)
            return MHD_NO;
          k->buf = nb;
          k->cap = cap;
        }
        memcpy(k->buf + k->n, upload, *upload_size);
        k->n += *upload_size;
      }
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (k->refused)
    return fixed(c, MHD_HTTP_UNAUTHORIZED, "this conductor needs Authorization: Bearer <token>");
  if (k->too_large)
    return fixed(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
  const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "blocks");
  char *out = NULL;
  const char *ctype = "application/json";
  int st = cs_api_handle(&s->api, method, url, q, k->buf, k->n, &out, &ctype);
  return send_body(c, (unsigned)st, out, ctype);
}

static void done(void *cls, struct MHD_Connection *c, void **state,
                 enum MHD_RequestTerminationCode why) {
  conn *k = *state;
  if (k) {
    free(k->buf);
    free(k);
    *state = NULL;
  }
}

static void usage(FILE *f) {
  fprintf(f, "usage: mooncake-conductor --profile YAML [--listen HOST:PORT] [--threads N]\n"
             "         [--policy random|load-balance|cache-local|cache-global]\n"
             "         [--admission baseline|early|predicted] [--threshold X]\n"
             "         [--ttft-slo S] [--tbt-slo S] [--decode-time S] [--scope mean|chosen]\n"
             "         [--token-file PATH] [--insecure] [--max-body BYTES] [--max-conns N]\n"
             "         [--max-conns-per-ip N]\n");
}

static double num(const char *opt, const char *v, double lo, double hi) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (end == v || *end || errno || !(d >= lo && d <= hi)) {
    fprintf(stderr, "mooncake-conductor: %s: '%s' is not a number in [%g, %g]\n", opt, v, lo, hi);
    exit(2);
  }
  return d;
}

int main(int argc, char **argv) {
  const char *listen = "127.0.0.1:13333", *profile = NULL, *token_file = NULL;
  mc_cond_opts o;
  mc_cond_opts_init(&o);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned threads = cores < 1 ? 1 : cores > 16 ? 16 : (unsigned)cores;
  unsigned max_conns = 512, per_ip = 64;
  size_t max_body = 4u << 20;
  int insecure = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--insecure")) {
      insecure = 1;
      continue;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    static const char *const valued[] = {"--listen", "--profile", "--threads", "--policy",
                                         "--admission", "--threshold", "--ttft-slo",
                                         "--tbt-slo", "--decode-time", "--token-file",
                                         "--max-body", "--max-conns", "--max-conns-per-ip",
                                         "--scope"};
    int known = 0;
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
      known |= !strcmp(a, valued[k]);
    if (!known) {
      fprintf(stderr, "mooncake-conductor: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
    if (!has) {
      fprintf(stderr, "mooncake-conductor: %s needs a value\n", a);
      usage(stderr);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--listen"))
      listen = v;
    else if (!strcmp(a, "--profile"))
      profile = v;
    else if (!strcmp(a, "--token-file"))
      token_file = v;
    else if (!strcmp(a, "--threads"))
      threads = (unsigned)num(a, v, 1, 256);
    else if (!strcmp(a, "--max-conns"))
      max_conns = (unsigned)num(a, v, 1, 65536);
    else if (!strcmp(a, "--max-conns-per-ip"))
      per_ip = (unsigned)num(a, v, 1, 65536);
    else if (!strcmp(a, "--max-body"))
      max_body = (size_t)num(a, v, 1024, 1 << 30);
    else if (!strcmp(a, "--threshold"))
      o.kvcache_balancing_threshold = num(a, v, 1, 1e9);
    else if (!strcmp(a, "--ttft-slo"))
      o.ttft_slo_s = num(a, v, 1e-6, 1e9);
    else if (!strcmp(a, "--tbt-slo"))
      o.tbt_slo_s = num(a, v, 1e-6, 1e9);
    else if (!strcmp(a, "--decode-time"))
      o.decode_time_s = num(a, v, 1e-6, 1e9);
    else if (!strcmp(a, "--scope")) {
      if (strcmp(v, "mean") && strcmp(v, "chosen")) {
        fprintf(stderr, "mooncake-conductor: --scope: '%s' is not mean or chosen\n", v);
        return 2;
      }
      o.decode_load_scope = !strcmp(v, "chosen") ? MC_COND_SCOPE_CHOSEN : MC_COND_SCOPE_MEAN;
    } else if (!strcmp(a, "--policy") && !(o.prefill = mc_cond_prefill_policy(v))) {
      fprintf(stderr, "mooncake-conductor: unknown policy '%s'\n", v);
      return 2;
    } else if (!strcmp(a, "--admission") && !(o.admit = mc_cond_admit_policy(v))) {
      fprintf(stderr, "mooncake-conductor: unknown admission '%s'\n", v);
      return 2;
    }
  }
  if (!profile) {
    fprintf(stderr, "mooncake-conductor: --profile is needed (the instances' default model)\n");
    usage(stderr);
    return 2;
  }
  static server s;
  s.max_body = max_body;
  char err[512];
  mc_cond_profile prof;
  if (mc_cond_profile_load(profile, &prof, err, sizeof err)) {
    fprintf(stderr, "mooncake-conductor: %s\n", err);
    return 1;
  }
  if (token_file) {
    FILE *f = fopen(token_file, "r");
    if (!f) {
      fprintf(stderr, "mooncake-conductor: %s: %s\n", token_file, strerror(errno));
      return 1;
    }
    size_t n = fread(s.token, 1, sizeof s.token - 1, f);
    fclose(f);
    while (n && (s.token[n - 1] == '\n' || s.token[n - 1] == '\r' || s.token[n - 1] == ' '))
      n--;
    s.token[n] = 0;
    if (n < 16 || n >= sizeof s.token - 1 || strlen(s.token) != n) {
      fprintf(stderr, "mooncake-conductor: %s: the token must be 16..255 bytes of text\n",
              token_file);
      return 1;
    }
    s.token_len = n;
  }
  /* HOST:PORT, IPv4. */
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  const char *colon = strrchr(listen, ':');
  char host[64];
  if (!colon || (size_t)(colon - listen) >= sizeof host) {
    fprintf(stderr, "mooncake-conductor: --listen '%s': expected HOST:PORT\n", listen);
    return 2;
  }
  memcpy(host, listen, (size_t)(colon - listen));
  host[colon - listen] = 0;
  double port = num("--listen port", colon + 1, 0, 65535);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "mooncake-conductor: --listen '%s': HOST must be an IPv4 address\n", listen);
    return 2;
  }
  sa.sin_port = htons((uint16_t)port);
  int loopback = (ntohl(sa.sin_addr.s_addr) >> 24) == 127;
  if (!loopback && !s.token_len && !insecure) {
    fprintf(stderr, "mooncake-conductor: listening on %s without --token-file would let anyone "
                    "schedule and feed the index; give a token or --insecure\n", host);
    return 2;
  }
  if (cs_api_init(&s.api, &o, &prof, err, sizeof err)) {
    fprintf(stderr, "mooncake-conductor: %s\n", err);
    return 1;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* the MHD threads inherit it */
  signal(SIGPIPE, SIG_IGN);
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY | MHD_USE_ERROR_LOG, 0, NULL,
      NULL, handle, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
      MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, max_conns,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
      MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "mooncake-conductor: cannot listen on %s\n", listen);
    cs_api_fini(&s.api);
    return 1;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  printf("mooncake-conductor listening on http://%s:%u\n", host,
         di ? (unsigned)di->port : (unsigned)port);
  fflush(stdout);
  int sig;
  sigwait(&set, &sig);
  MHD_stop_daemon(d);
  cs_api_fini(&s.api);
  return 0;
}
