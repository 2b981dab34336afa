/* Allocation-failure test of the configuration loader: config.c and its
 * parts (config_schema.c, config_yaml.c, config_env.c, config_params.c) are
 * compiled into this program with its allocator calls redirected, and every
 * allocation of a load (and of an env override) is made to fail in turn.
 * Each run must return MC_ENOMEM with a message (or succeed when the failure
 * is not reached), leave a usable config behind, and leak nothing (the
 * sanitizer build checks that). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long oom_at = -1; /* index of the allocation to fail; -1 = none */
static long oom_count;
static int oom_hit;

static int oom_now(void) {
  if (oom_count++ == oom_at) {
    oom_hit = 1;
    return 1;
  }
  return 0;
}
static void *t_malloc(size_t n) { return oom_now() ? NULL : malloc(n); }
static void *t_calloc(size_t a, size_t b) {
  return oom_now() ? NULL : calloc(a, b);
}
static void *t_realloc(void *p, size_t n) {
  return oom_now() ? NULL : realloc(p, n);
}
static char *t_strdup(const char *s) { return oom_now() ? NULL : strdup(s); }
static char *t_strndup(const char *s, size_t n) {
  return oom_now() ? NULL : strndup(s, n);
}

#define malloc t_malloc
#define calloc t_calloc
#define realloc t_realloc
#define strdup t_strdup
#define strndup t_strndup
#include "config.c"
#include "config_schema.c"
#include "config_yaml.c"
#include "config_env.c"
#include "config_params.c"
#include "config_value.c"
#undef malloc
#undef calloc
#undef realloc
#undef strdup
#undef strndup

#include "check.h"


static const char yaml[] =
    "segment_name: seg\n"
    "listen: \"0.0.0.0:1\"\n"
    "metadata: etcd://h:1\n"
    "plugin_path: \"/a:/b\"\n"
    "transports:\n"
    "  tcp: {connections: 4, devices: [a, b]}\n"
    "  shm: {}\n"
    "transport_order: [shm, tcp]\n"
    "slice_size: 1M\n"
    "topology:\n"
    "  cpu:0: {preferred: [tcp:c0, tcp:c1], fallback: [shm]}\n"
    "  cpu:1: {preferred: [tcp:c1]}\n";

static void load_all_failures(void) {
  long n;
  for (n = 0;; n++) {
    mc_config *cfg = NULL;
    char err[MC_CONFIG_ERR_MAX] = "";
    oom_at = n;
    oom_count = 0;
    oom_hit = 0;
    int rc = mc_config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err,
                                   sizeof err);
    oom_at = -1;
    if (!oom_hit) {
      if (rc != 0 || !cfg) {
        fprintf(stderr, "load without failure: %d %s\n", rc, err);
        mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
      }
      mc_config_free(cfg);
      break;
    }
    if (rc != MC_ENOMEM || cfg || !strstr(err, "t.yaml: out of memory")) {
      fprintf(stderr, "allocation %ld failed: rc %d cfg %p err '%s'\n", n, rc,
              (void *)cfg, err);
      mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
      mc_config_free(cfg);
    }
  }
  printf("load: %ld allocation failures injected\n", n);
}

static void env_all_failures(void) {
  setenv("MC_SEGMENT_NAME", "envseg", 1);
  setenv("MC_LISTEN", "1.2.3.4:5", 1);
  setenv("MC_METADATA", "p2p", 1);
  setenv("MC_TRANSPORTS", "rdma,tcp", 1);
  setenv("MC_TRANSPORT_TCP_CONNECTIONS", "8", 1);
  setenv("MC_TRANSPORT_RDMA_GID_INDEX", "3", 1);
  long n;
  for (n = 0;; n++) {
    mc_config *cfg = NULL;
    char err[MC_CONFIG_ERR_MAX] = "";
    int rc = mc_config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err,
                                   sizeof err);
    if (rc != 0) {
      fprintf(stderr, "load: %s\n", err);
      mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
      return;
    }
    oom_at = n;
    oom_count = 0;
    oom_hit = 0;
    rc = mc_config_apply_env(cfg, err, sizeof err);
    oom_at = -1;
    if (!oom_hit) {
      if (rc != 0 || cfg->ntransports != 2 ||
          strcmp(cfg->transports[0].name, "rdma") != 0) {
        fprintf(stderr, "env without failure: %d %s\n", rc, err);
        mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
      }
      mc_config_free(cfg);
      break;
    }
    if (rc != MC_ENOMEM || !strstr(err, "out of memory")) {
      fprintf(stderr, "env allocation %ld failed: rc %d err '%s'\n", n, rc,
              err);
      mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    }
    /* What is left must be whole: every transport named, every string set. */
    for (size_t i = 0; i < cfg->ntransports; i++) {
      if (!cfg->transports[i].name) {
        fprintf(stderr, "env allocation %ld: transport %zu lost its name\n",
                n, i);
        mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
      }
      for (size_t j = 0; j < cfg->transports[i].nparams; j++)
        if (!cfg->transports[i].params[j].value)
          mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    }
    if (!cfg->listen || !cfg->metadata)
      mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    mc_config_free(cfg);
  }
  printf("env: %ld allocation failures injected\n", n);
}

/* The same for the mc_engine_opts members: every allocation fails in
 * turn; MC_ENOMEM with a message, a whole config left behind. */
static void opts_all_failures(void) {
  mc_engine_opts o = {.struct_size = sizeof o,
                      .segment_name = "optseg",
                      .listen = "1.2.3.4:6",
                      .metadata = "http://h:1/md",
                      .transports = "shm, rdma",
                      .plugin_path = "/o1:/o2"};
  long n;
  for (n = 0;; n++) {
    mc_config *cfg = NULL;
    char err[MC_CONFIG_ERR_MAX] = "";
    int rc = mc_config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err,
                                   sizeof err);
    if (rc != 0) {
      fprintf(stderr, "load: %s\n", err);
      mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
      return;
    }
    oom_at = n;
    oom_count = 0;
    oom_hit = 0;
    rc = mc_config_apply_opts(cfg, &o, err, sizeof err);
    oom_at = -1;
    if (!oom_hit) {
      if (rc != 0 || cfg->ntransports != 2 || cfg->nplugin_path != 4 ||
          strcmp(cfg->transports[0].name, "shm") != 0 ||
          strcmp(cfg->plugin_path[0], "/o1") != 0) {
        fprintf(stderr, "opts without failure: %d %s\n", rc, err);
        mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
      }
      mc_config_free(cfg);
      break;
    }
    if (rc != MC_ENOMEM || !strstr(err, "out of memory")) {
      fprintf(stderr, "opts allocation %ld failed: rc %d err '%s'\n", n, rc,
              err);
      mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    }
    for (size_t i = 0; i < cfg->ntransports; i++)
      if (!cfg->transports[i].name)
        mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    for (size_t i = 0; i < cfg->nplugin_path; i++)
      if (!cfg->plugin_path[i])
        mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    if (!cfg->listen || !cfg->metadata)
      mc_check_failed(__FILE__, __LINE__, "the check above", NULL);
    mc_config_free(cfg);
  }
  printf("opts: %ld allocation failures injected\n", n);
}

int main(void) {
  mc_check_keep_going(1);
  load_all_failures();
  env_all_failures();
  opts_all_failures();
  if (!mc_check_failures())
    printf("config-oom: all tests passed\n");
  return mc_check_exit_status();
}
