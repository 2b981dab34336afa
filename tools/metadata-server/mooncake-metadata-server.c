/* mooncake-metadata-server: the HTTP metadata server for the "http://"
 * metadata backend.  Keys live in memory (lost on restart; engines
 * republish theirs within one refresh period).  Protocol: see
 * core/metadata/http/http_proto.h.
 *
 *   mooncake-metadata-server [--listen HOST:PORT | --port N] [--path /metadata]
 *                            [--max-value-size BYTES] [--max-total-size BYTES]
 *                            [--max-connections N] [--max-per-ip N]
 *                            [--connection-timeout SECONDS]
 *                            [--threads N] [--token-file PATH]
 *
 * Connections are bounded (issue 12): at most --max-connections at once
 * (default 4096; the open-file limit is raised to fit, or the limit
 * lowered to it), at most --max-per-ip from one client address (default
 * 64: a host's engines share its address), and one idle for
 * --connection-timeout seconds (default 10) is closed; libmicrohttpd
 * enforces the three, refusing what is over a limit at accept.  So idle or slow clients from a few addresses cannot take the
 * connections authorized engines need.  The warnings about refused
 * connections are rate-limited (one line per 5 s with the count).
 *
 * Memory is bounded: a PUT whose value is over --max-value-size (default
 * 4 MiB; --max-body is the older name) or that would take the keys and
 * values held past --max-total-size (default 256 MiB) answers 507.  A
 * Content-Length over the limit is refused before the body is read; a
 * chunked body is dropped as it arrives once past it.  Keys (and the other
 * query arguments) are checked as decoded, so "%00" in one answers 400.
 *
 * With --token-file every request must carry "Authorization: Bearer <the
 * cluster token>" (the engines' cluster_token_file); others get 401 and
 * their bodies are not read.
 *
 * Prints "mooncake-metadata-server listening on http://HOST:PORT/PATH" on
 * stdout once serving (PORT 0 picks a free port), and stops cleanly on
 * SIGTERM or SIGINT. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "config_value.h"
#include "http/http_proto.h"
#include "mds_store.h"
#include "mooncake/errors.h"
#include "net.h"
#include "token.h"

/* kv values take at most MC_KV_VALUE_MAX (1 MiB); a segment descriptor
 * grows with its engine's registered buffers (tens of thousands of them
 * need --max-value-size raised; descriptor.h: MC_DESC_JSON_MAX). */
#define DEFAULT_MAX_VALUE ((size_t)4 << 20)
#define DEFAULT_MAX_TOTAL ((size_t)256 << 20)
#define MAX_VALUE_LIMIT ((size_t)1 << 32)
#define DEFAULT_MAX_CONNS 4096u
#define DEFAULT_PER_IP 64u
#define DEFAULT_CONN_TIMEOUT 10u
#define FD_RESERVE 64u  /* fds kept for the listener, logs, epoll, threads */
#define LOG_EVERY_S 5   /* libmicrohttpd's messages: one line per 5 s */
#define UNAUTHORIZED_TEXT \
  "this server needs the cluster token: Authorization: Bearer <token>\n"

typedef struct server {
  mds_store *store;
  char path[256];
  size_t max_value, max_total;
  char token[MC_TOKEN_MAX + 1]; /* "" = anyone may read and write */
  _Atomic uint64_t refused;      /* requests refused for the token */
} server;

typedef struct upload {
  char *p;
  size_t n, cap;
  int too_large;   /* a PUT's body went past max_value: dropped */
  int not_allowed; /* a body on another method: dropped */
} upload;

/* rev > 0 adds the MC_HTTP_REV_HEADER header. */
static enum MHD_Result reply_rev(struct MHD_Connection *c, unsigned status,
                                 const char *body, size_t len, const char *type,
                                 int64_t rev) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, "Content-Type", type);
  if (rev > 0) {
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)rev);
    MHD_add_response_header(r, MC_HTTP_REV_HEADER, v);
  }
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *body, size_t len, const char *type) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, "Content-Type", type);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status,
                                  const char *msg) {
  return reply(c, status, msg, strlen(msg), "text/plain");
}

static int authorized(const server *srv, struct MHD_Connection *c) {
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_AUTHORIZATION);
  static const char bearer[] = "Bearer ";
  if (!h || strncmp(h, bearer, sizeof bearer - 1) != 0)
    return 0;
  h += sizeof bearer - 1;
  return mc_token_equal(srv->token, h, strlen(h));
}

static enum MHD_Result refuse(server *srv, struct MHD_Connection *c) {
  /* The first refusal, then every 1000th, so a scan cannot flood stderr. */
  uint64_t n = atomic_fetch_add(&srv->refused, 1);
  if (n % 1000 == 0) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[64] = "?";
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
      inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr,
                addr, sizeof addr);
    fprintf(stderr,
            "mooncake-metadata-server: refused a request from %s without the "
            "cluster token (%llu refused so far)\n",
            addr, (unsigned long long)n + 1);
  }
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(UNAUTHORIZED_TEXT), (void *)UNAUTHORIZED_TEXT, MHD_RESPMEM_PERSISTENT);
  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "text/plain");
  MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                          "Bearer realm=\"mooncake\"");
  enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_UNAUTHORIZED, r);
  MHD_destroy_response(r);
  return ret;
}

/* Query argument name as decoded: 1 with *out set (NULL for "?name"
 * without '='), 0 when absent, -1 when the decoded value holds a NUL
 * ("%00"): C strings would see less than the client sent, so "key=a%00b"
 * would act on "a". */
static int query_arg(struct MHD_Connection *c, const char *name, const char **out) {
  const char *v = NULL;
  size_t n = 0;
  *out = NULL;
  if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v,
                                    &n) != MHD_YES)
    return 0;
  if (v && (memchr(v, 0, n) || strlen(v) != n))
    return -1;
  *out = v;
  return 1;
}

__attribute__((format(printf, 2, 3))) static enum MHD_Result
reply_507(struct MHD_Connection *c, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return reply_text(c, MHD_HTTP_INSUFFICIENT_STORAGE, msg);
}

/* ttl query parameter: absent -> 0; bad -> -1. */
static int parse_ttl(struct MHD_Connection *c) {
  const char *t;
  int has = query_arg(c, "ttl", &t);
  if (has < 0 || (has && !t))
    return -1;
  if (!has)
    return 0;
  char *end;
  errno = 0;
  long v = strtol(t, &end, 10);
  if (errno || end == t || *end || v < 0 || v > 86400)
    return -1;
  return (int)v;
}

/* rev query parameter (a conditional PUT): absent -> -1; bad -> -2. */
static int64_t parse_rev(struct MHD_Connection *c) {
  const char *t;
  int has = query_arg(c, "rev", &t);
  if (has < 0 || (has && !t))
    return -2;
  if (!has)
    return -1;
  char *end;
  errno = 0;
  long long v = strtoll(t, &end, 10);
  if (errno || end == t || *end || v < 0)
    return -2;
  return (int64_t)v;
}

static int key_ok(const char *key) {
  if (!key || mc_http_key_check(key, strlen(key)) != 0)
    return 0;
  json_t *s = json_string(key); /* rejects invalid UTF-8: listings are JSON */
  json_decref(s);
  return s != NULL;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *data,
                              size_t *data_size, void **con_cls) {
  server *srv = cls;
  (void)version;
  int is_put = strcmp(method, "PUT") == 0;
  if (!*con_cls) { /* first call for this request: headers only */
    upload *u = calloc(1, sizeof(*u));
    if (!u)
      return MHD_NO;
    *con_cls = u;
    if (srv->token[0] && !authorized(srv, c))
      return refuse(srv, c); /* before the body: it is never read */
    /* A declared length over the limit is refused before the body too. */
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (is_put && cl) {
      char *end;
      errno = 0;
      unsigned long long n = strtoull(cl, &end, 10);
      if (end != cl && !*end && (errno || n > srv->max_value))
        return reply_507(c, "value too large: Content-Length %.40s is over the "
                            "server's --max-value-size of %zu bytes\n",
                         cl, srv->max_value);
    }
    return MHD_YES;
  }
  upload *u = *con_cls;
  if (*data_size) { /* body chunk: past a limit, dropped as it arrives */
    if (!is_put) {
      u->not_allowed = 1;
    } else if (u->too_large || *data_size > srv->max_value - u->n) {
      u->too_large = 1;
      free(u->p); /* what came so far is no use either */
      u->p = NULL;
      u->n = u->cap = 0;
    } else {
      if (u->n + *data_size > u->cap) {
        size_t cap = u->cap ? u->cap : 4096;
        while (cap < u->n + *data_size)
          cap *= 2;
        if (cap > srv->max_value)
          cap = srv->max_value;
        char *np = realloc(u->p, cap);
        if (!np)
          return MHD_NO;
        u->p = np;
        u->cap = cap;
      }
      memcpy(u->p + u->n, data, *data_size);
      u->n += *data_size;
    }
    *data_size = 0;
    return MHD_YES;
  }
  if (strcmp(url, srv->path) != 0)
    return reply_text(c, MHD_HTTP_NOT_FOUND, "unknown path\n");
  if (u->not_allowed)
    return reply_text(c, MHD_HTTP_CONTENT_TOO_LARGE, "only PUT takes a body\n");
  if (u->too_large)
    return reply_507(c, "value too large: more than the server's --max-value-size of "
                        "%zu bytes\n",
                     srv->max_value);
  const char *key, *prefix;
  if (query_arg(c, "key", &key) < 0 || query_arg(c, "prefix", &prefix) < 0)
    return reply_text(c, MHD_HTTP_BAD_REQUEST,
                      "key and prefix must not contain NUL (%00)\n");
  if (strcmp(method, "GET") == 0 && prefix && !key) {
    char *json;
    size_t len;
    if (mds_store_list_json(srv->store, prefix, &json, &len) != 0)
      return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    enum MHD_Result r = reply(c, MHD_HTTP_OK, json, len, "application/json");
    free(json);
    return r;
  }
  if (!key_ok(key))
    return reply_text(c, MHD_HTTP_BAD_REQUEST,
                      "need ?key=K (1..1024 bytes of UTF-8, no control characters) or ?prefix=P\n");
  int ttl = parse_ttl(c);
  if (ttl < 0)
    return reply_text(c, MHD_HTTP_BAD_REQUEST, "ttl must be 0..86400 seconds\n");
  if (strcmp(method, "GET") == 0) {
    void *val;
    size_t len;
    int64_t rev = 0;
    int rc = mds_store_get_rev(srv->store, key, &val, &len, &rev);
    if (rc == MC_ENOENT)
      return reply_text(c, MHD_HTTP_NOT_FOUND, "no such key\n");
    if (rc)
      return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    enum MHD_Result r = reply_rev(c, MHD_HTTP_OK, val, len, "application/json", rev);
    free(val);
    return r;
  }
  if (is_put) {
    int64_t expect = parse_rev(c), rev = 0;
    if (expect == -2)
      return reply_text(c, MHD_HTTP_BAD_REQUEST, "rev must be a revision >= 0\n");
    int rc = mds_store_put_if(srv->store, key, expect, u->p, u->n, ttl, &rev);
    if (rc == MC_ENOSPC)
      return reply_507(c, "store full: the keys and values held (%zu bytes) leave no "
                          "room for this one under the server's --max-total-size of "
                          "%zu bytes\n",
                       mds_store_bytes(srv->store), srv->max_total);
    if (rc == MC_EAGAIN)
      return reply_text(c, MHD_HTTP_PRECONDITION_FAILED,
                        expect ? "the key is not at that revision\n" : "the key exists\n");
    if (rc != 0)
      return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    return reply_rev(c, MHD_HTTP_OK, "ok\n", 3, "text/plain", rev);
  }
  if (strcmp(method, "POST") == 0) {
    if (mds_store_touch(srv->store, key, ttl) != 0)
      return reply_text(c, MHD_HTTP_NOT_FOUND, "no such key\n");
    return reply_text(c, MHD_HTTP_OK, "ok\n");
  }
  if (strcmp(method, "DELETE") == 0) {
    if (mds_store_delete(srv->store, key) != 0)
      return reply_text(c, MHD_HTTP_NOT_FOUND, "no such key\n");
    return reply_text(c, MHD_HTTP_OK, "ok\n");
  }
  return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET, PUT, POST or DELETE\n");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode code) {
  (void)cls;
  (void)c;
  (void)code;
  upload *u = *con_cls;
  if (u) {
    free(u->p);
    free(u);
    *con_cls = NULL;
  }
}

/* libmicrohttpd's error log, rate-limited: under a flood it reports every
 * refused connection ("Server reached connection limit", "IP connection
 * limit reached"); one line per LOG_EVERY_S seconds, with the number of
 * messages held back. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static time_t log_last;
static unsigned long log_held;

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  msg[strcspn(msg, "\n")] = '\0';
  time_t now = time(NULL);
  pthread_mutex_lock(&log_mu);
  if (log_last && now - log_last < LOG_EVERY_S) {
    log_held++;
    pthread_mutex_unlock(&log_mu);
    return;
  }
  unsigned long held = log_held;
  log_held = 0;
  log_last = now;
  pthread_mutex_unlock(&log_mu);
  if (held)
    fprintf(stderr, "mooncake-metadata-server: %s (and %lu more messages in the last %d s)\n",
            msg, held, LOG_EVERY_S);
  else
    fprintf(stderr, "mooncake-metadata-server: %s\n", msg);
}

/* Raises the open-file limit to hold `want` connections; returns how many
 * connections the limit allows. */
static unsigned fit_fd_limit(unsigned want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return want;
  rlim_t need = (rlim_t)want + FD_RESERVE;
  if (rl.rlim_cur < need) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
    return rl.rlim_cur > FD_RESERVE + 16 ? (unsigned)(rl.rlim_cur - FD_RESERVE) : 16;
  return want;
}

static void usage(FILE *f) {
  fprintf(f, "usage: mooncake-metadata-server [--listen HOST:PORT | --port N] [--path /metadata]\n"
             "                                [--max-value-size BYTES] [--max-total-size BYTES]\n"
             "                                [--max-connections N] [--max-per-ip N]\n"
             "                                [--connection-timeout SECONDS]\n"
             "                                [--threads N] [--token-file PATH]\n"
             "  HOST must be an IPv4 address (default 0.0.0.0:8080); PORT 0 picks a free port.\n"
             "  --port N          the same as --listen 0.0.0.0:N (upstream's form)\n"
             "  --max-connections connections served at once (default 4096; the open-file\n"
             "                    limit is raised to fit, else this is lowered to it)\n"
             "  --max-per-ip      connections at once from one client address (default 64)\n"
             "  --connection-timeout  seconds a connection may stay idle (default 10)\n"
             "  --threads         worker threads (default 4)\n"
             "  --token-file      demand \"Authorization: Bearer <token>\" (cluster token)\n"
             "  --max-value-size  largest value a PUT may store (default 4M; --max-body is\n"
             "                    the older name of it)\n"
             "  --max-total-size  bound on the key and value bytes held (default 256M)\n"
             "  BYTES takes K, M or G (binary: 1K = 1024).  A PUT past either answers 507.\n");
}

int main(int argc, char **argv) {
  const char *listen = "0.0.0.0:8080";
  server srv = {.max_value = DEFAULT_MAX_VALUE, .max_total = DEFAULT_MAX_TOTAL};
  int value_set = 0;
  strcpy(srv.path, "/metadata");
  unsigned threads = 4;
  unsigned max_conns = DEFAULT_MAX_CONNS, per_ip = DEFAULT_PER_IP,
           conn_timeout = DEFAULT_CONN_TIMEOUT;
  char port_listen[32];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    static const char *const known[] = {"--listen",         "--path",
                                        "--max-value-size", "--max-body",
                                        "--max-total-size", "--token-file",
                                        "--threads",        "--port",
                                        "--max-connections", "--max-per-ip",
                                        "--connection-timeout"};
    int is_known = 0;
    for (size_t k = 0; k < sizeof known / sizeof *known; k++)
      is_known |= strcmp(a, known[k]) == 0;
    if (!is_known) {
      fprintf(stderr, "mooncake-metadata-server: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
    if (!v) {
      fprintf(stderr, "mooncake-metadata-server: %s needs a value\n", a);
      usage(stderr);
      return 2;
    }
    i++;
    if (strcmp(a, "--listen") == 0) {
      listen = v;
    } else if (strcmp(a, "--port") == 0) {
      char *end;
      unsigned long pn = strtoul(v, &end, 10);
      if (!*v || *end || pn > 65535) {
        fprintf(stderr, "mooncake-metadata-server: bad --port '%s' (want 0..65535)\n", v);
        return 2;
      }
      snprintf(port_listen, sizeof port_listen, "0.0.0.0:%lu", pn);
      listen = port_listen;
    } else if (strcmp(a, "--max-connections") == 0 || strcmp(a, "--max-per-ip") == 0 ||
               strcmp(a, "--connection-timeout") == 0) {
      char *end;
      unsigned long n = strtoul(v, &end, 10);
      int is_timeout = a[2] == 'c';
      unsigned long most = is_timeout ? 3600 : 1000000;
      if (!*v || *end || n < 1 || n > most) {
        fprintf(stderr, "mooncake-metadata-server: bad %s '%s' (want 1..%lu)\n", a, v, most);
        return 2;
      }
      if (is_timeout)
        conn_timeout = (unsigned)n;
      else if (strcmp(a, "--max-per-ip") == 0)
        per_ip = (unsigned)n;
      else
        max_conns = (unsigned)n;
    } else if (strcmp(a, "--path") == 0) {
      if (v[0] != '/' || strlen(v) >= sizeof(srv.path)) {
        fprintf(stderr, "mooncake-metadata-server: --path must start with '/' (got '%s')\n", v);
        return 2;
      }
      strcpy(srv.path, v);
    } else if (strcmp(a, "--max-value-size") == 0 || strcmp(a, "--max-body") == 0 ||
               strcmp(a, "--max-total-size") == 0) {
      int total = strcmp(a, "--max-total-size") == 0;
      uint64_t n = 0;
      uint64_t most = total ? (uint64_t)SIZE_MAX / 2 : MAX_VALUE_LIMIT;
      if (mc_config_parse_size(v, &n) != 0 || n == 0 || n > most) {
        fprintf(stderr,
                "mooncake-metadata-server: bad %s '%s' (want %s bytes, with an "
                "optional K, M or G)\n",
                a, v, total ? "1 or more" : "1..4G");
        return 2;
      }
      if (total) {
        srv.max_total = (size_t)n;
      } else {
        srv.max_value = (size_t)n;
        value_set = 1;
      }
    } else if (strcmp(a, "--token-file") == 0) {
      char why[512];
      if (mc_token_load(v, srv.token, why, sizeof why) != 0) {
        fprintf(stderr, "mooncake-metadata-server: --token-file: %s\n", why);
        return 2;
      }
    } else if (strcmp(a, "--threads") == 0) {
      threads = (unsigned)atoi(v);
      if (threads < 1 || threads > 64) {
        fprintf(stderr, "mooncake-metadata-server: --threads must be 1..64\n");
        return 2;
      }
    } else {
      fprintf(stderr, "mooncake-metadata-server: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (srv.max_value > srv.max_total) {
    if (value_set) {
      fprintf(stderr,
              "mooncake-metadata-server: --max-value-size (%zu bytes) is larger than "
              "--max-total-size (%zu bytes)\n",
              srv.max_value, srv.max_total);
      return 2;
    }
    srv.max_value = srv.max_total; /* a small store: its values are smaller */
  }
  char host[256];
  uint16_t port;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  if (mc_net_split_hostport(listen, host, sizeof(host), &port) != 0 ||
      inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "mooncake-metadata-server: bad --listen '%s' (want IPv4:PORT)\n", listen);
    return 2;
  }
  sa.sin_port = htons(port);
  /* Signals are taken synchronously by main; MHD's threads inherit the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (!(srv.store = mds_store_create())) {
    fprintf(stderr, "mooncake-metadata-server: out of memory\n");
    return 1;
  }
  mds_store_set_max_bytes(srv.store, srv.max_total);
  unsigned fit = fit_fd_limit(max_conns);
  if (fit < max_conns) {
    fprintf(stderr,
            "mooncake-metadata-server: the open-file limit allows %u connections, not the "
            "%u asked for (raise ulimit -n)\n",
            fit, max_conns);
    max_conns = fit;
  }
  if (per_ip > max_conns)
    per_ip = max_conns;
  /* libmicrohttpd splits the connection limit over the pool's threads. */
  if (threads > max_conns)
    threads = max_conns;
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
      handle, &srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
      conn_timeout, MHD_OPTION_CONNECTION_LIMIT, max_conns,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_LISTEN_BACKLOG_SIZE,
      (unsigned)1024, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "mooncake-metadata-server: cannot listen on %s: %s\n", listen,
            strerror(errno));
    mds_store_destroy(srv.store);
    return 1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  printf("mooncake-metadata-server listening on http://%s:%u%s%s\n", host,
         info ? info->port : port, srv.path,
         srv.token[0] ? " (cluster token required)" : "");
  fprintf(stderr,
          "mooncake-metadata-server: at most %u connections, %u per client address, "
          "%u s idle timeout, %u threads\n",
          max_conns, per_ip, conn_timeout, threads);
  fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  fprintf(stderr, "mooncake-metadata-server: signal %d, stopping (%zu keys dropped)\n", sig,
          mds_store_count(srv.store));
  MHD_stop_daemon(d);
  mds_store_destroy(srv.store);
  return 0;
}
