/* YAML profiles: the shipped example loads, and each kind of mistake is
 * refused with the file, the line and the key. */
#include "check.h"
#include "mooncake/conductor.h"

static const char *good =
    "name: t\n"
    "block_tokens: 512\n"
    "bytes_per_token: 327680\n"
    "prefill_time:\n"
    "  - [0.5, 0, 0]\n"
    "  - [1.0e-3, 1, 0]\n"
    "  - [-1.0e-3, 0, 1]\n"
    "decode_step: {base_s: 0.01, per_seq_s: 0.001, per_token_s: 1e-8}\n"
    "kv_capacity_tokens: 100000\n"
    "link_gbps: 800\n";

static void bad(const char *text, const char *want1, const char *want2) {
  mc_cond_profile p;
  char err[256] = "";
  CHECK_RC(mc_cond_profile_parse(text, strlen(text), "prof.yaml", &p, err, sizeof err),
           MC_EINVAL);
  CHECK_HAS(err, want1);
  if (want2)
    CHECK_HAS(err, want2);
}

static char buf[4096];
static const char *edit(const char *from, const char *to) {
  const char *at = strstr(good, from);
  CHECK(at != NULL);
  snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
  return buf;
}

int main(int argc, char **argv) {
  mc_cond_profile p;
  char err[256] = "";
  CHECK_OK(mc_cond_profile_parse(good, strlen(good), "good", &p, err, sizeof err));
  CHECK_STR(p.name, "t");
  CHECK_EQ_INT(p.block_tokens, 512);
  CHECK_EQ_INT(p.n_terms, 3);
  CHECK_EQ_INT(p.prefill[1].len_pow, 1);
  CHECK(mc_cond_prefill_time(&p, 2000, 1000) > 1.49 && mc_cond_prefill_time(&p, 2000, 1000) < 1.51);
  CHECK(p.decode_per_seq_s == 0.001);

  bad(edit("block_tokens: 512", "block_tokens: 0"), "prof.yaml:2:", "block_tokens");
  bad(edit("bytes_per_token: 327680", "bytes_per_token: lots"), "prof.yaml:3:",
      "'lots' is not a number");
  bad(edit("  - [1.0e-3, 1, 0]", "  - [1.0e-3, 1.5, 0]"), "prof.yaml:6:", "whole numbers");
  bad(edit("  - [1.0e-3, 1, 0]", "  - [1.0e-3, 1]"), "prof.yaml:6:", "[coef, len_pow, prefix_pow]");
  bad(edit("per_seq_s: 0.001", "per_seq: 0.001"), "prof.yaml:8:", "unknown key 'per_seq'");
  bad(edit("link_gbps: 800", "link_gbps: -1"), "prof.yaml:10:", "link_gbps");
  bad(edit("link_gbps: 800\n", ""), "missing key 'link_gbps'", NULL);
  bad(edit("name: t", "nmae: t"), "prof.yaml:1:", "unknown key 'nmae'");
  bad(edit("kv_capacity_tokens: 100000", "kv_capacity_tokens: [1"), "prof.yaml:", NULL);
  bad("- just\n- a list\n", "expected a mapping", NULL);

  CHECK_RC(mc_cond_profile_load("/nonexistent/prof.yaml", &p, err, sizeof err), MC_ENOENT);
  CHECK_HAS(err, "/nonexistent/prof.yaml");
  if (argc > 1) {
    for (int i = 1; i < argc; i++) {
      CHECK_OK(mc_cond_profile_load(argv[i], &p, err, sizeof err));
      CHECK(p.block_tokens == 512 && p.n_terms > 0 && p.kv_capacity_tokens > 0);
    }
  }
  printf("ok: conductor profiles\n");
  return 0;
}
