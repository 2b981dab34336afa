/* Private to the configuration (config*.c): limits, the key table's row
 * type, a parsed value, and the helpers the parts share. */
#ifndef MC_CONFIG_P_H
#define MC_CONFIG_P_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "mooncake/errors.h"


#define CFG_MAX_INPUT (1u << 20) /* bytes of YAML */
#define CFG_MAX_DEPTH 16         /* the schema needs 4 levels */
#define CFG_MAX_NODES 65536
#define CFG_MAX_ENTRIES 1024  /* items of one sequence or mapping */
#define CFG_MAX_SCALAR 4096   /* bytes of one scalar */
#define CFG_MAX_JOINED 64     /* items of an option value given as a list */
#define CFG_MAX_NAME MC_CONFIG_NAME_MAX
#define CFG_MAX_SLICE (1ull << 30)
#define CFG_MAX_RETRY 64
#define CFG_MAX_TIMEOUT 2147483647ull /* fits an int for poll() and friends */
#define CFG_OPTIONAL "optional"       /* core-reserved key of transports.<t> */
#define SIZE_SYNTAX "a size like 64K or 1M (K, M, G, T = 1024^n, then B or iB)"
#define BOOL_SYNTAX "true or false (or yes/no, on/off, 1/0)"

enum key_type {
  KT_TEXT,       /* one value checked by `check` */
  KT_SIZE,       /* a size, lo..hi */
  KT_UINT,       /* a decimal integer, lo..hi */
  KT_LEVEL,      /* a log level */
  KT_TRANSPORTS, /* "auto" or names "a,b"; YAML also [a, b], {a: {...}} */
  KT_NAMES,      /* names "a,b"; YAML also [a, b] */
  KT_PATHS,      /* "dir:dir" (empty entries skipped); YAML also [a, b] */
  KT_TOPOLOGY,   /* YAML only: a mapping of locations */
};

enum field_kind { FK_NONE, FK_STR, FK_U64, FK_U32, FK_INT };

#define NO_OFF ((size_t)-1)
#define OPT(m) #m, offsetof(mc_engine_opts, m)
#define NO_OPTS NULL, NO_OFF
#define FIELD(m) offsetof(mc_config, m)

typedef struct cfg_key {
  const char *key; /* YAML key */
  const char *env; /* MC_* variable; NULL: none */
  const char *opt; /* mc_engine_opts member; NULL: none */
  size_t opt_off;  /* its offset (a const char *) */
  int type;        /* enum key_type */
  uint64_t lo, hi; /* KT_SIZE, KT_UINT: accepted range */
  /* KT_TEXT: the value; KT_NAMES, KT_PATHS: each item (KT_TRANSPORTS and
   * KT_NAMES items are also transport names). */
  int (*check)(const char *v, char *why, size_t n);
  const char *what; /* "expected <what>" when a YAML value has the wrong
                       shape; NULL: derived from the type */
  int reset;        /* a YAML null resets it to its default */
  size_t field;     /* FK_*: where the value goes in mc_config */
  int fkind;
  size_t set_flag;   /* an int set to 1 when the key is set, or NO_OFF */
  size_t line_field; /* an int set to the file line (0 otherwise), NO_OFF */
} cfg_key;

/* A parsed value of one key, before it is committed. */
typedef struct kval {
  char *s;     /* KT_TEXT: owned copy; NULL resets */
  uint64_t u;  /* KT_SIZE, KT_UINT */
  int i;       /* KT_LEVEL */
  int is_auto; /* KT_TRANSPORTS */
  char **v;    /* KT_TRANSPORTS, KT_NAMES, KT_PATHS: owned */
  size_t n;
} kval;

/* config.c: helpers */
void mc_cfg_free_strv(char **v, size_t n);
void mc_cfg_free_transports(mc_config_transport *t, size_t n);
void mc_cfg_free_topology(mc_config_topo *t, size_t n);
int mc_cfg_strv_push(char ***v, size_t *n, char *s);
int mc_cfg_strv_contains(char *const *v, size_t n, const char *s);
void mc_cfg_show(const char *text, char *out, size_t outlen);
void mc_cfg_fmt_size(uint64_t v, char *out, size_t n);
/* config.c: transports */
int mc_cfg_transport_set(mc_config_transport *t, const char *key, char *value,
                         int line, char *var);
int mc_cfg_replace_transports(mc_config *cfg, char *const *names, size_t n);

/* config_schema.c: validators */
int mc_cfg_check_size(const char *v, uint64_t lo, uint64_t hi, uint64_t *out,
                      char *why, size_t n);
int mc_cfg_check_uint(const char *v, uint64_t lo, uint64_t hi, uint64_t *out,
                      char *why, size_t n);
int mc_cfg_check_level(const char *v, int *out, char *why, size_t n);
int mc_cfg_printable_word(const char *v);
int mc_cfg_check_word(const char *v, const char *what, char *why, size_t n);
int mc_cfg_chk_rail(const char *v, char *why, size_t n);
/* config_schema.c: the key table */
extern const cfg_key mc_cfg_keys[];
#define N_KEYS ((size_t)MC_CONFIG_NKEYS)
const cfg_key *mc_cfg_find_key(const char *key);
const cfg_key *mc_cfg_key_of_type(int type);
const char *mc_cfg_key_what(const cfg_key *k, char *buf, size_t n);
void mc_cfg_kval_free(kval *v);
int mc_cfg_parse_text(const cfg_key *k, const char *text, kval *out, char *why,
                      size_t whylen);
int mc_cfg_commit(mc_config *cfg, const cfg_key *k, kval *v, int src, int line);

#endif
