/* mc-transport-conformance: the checks that need no context: the ABI
 * header, names, members and the params table. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "config_value.h"
#include "conformance.h"

/* ---- checks ------------------------------------------------------------- */

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

int check_abi(const char *path, const plugin *p) {
  const mc_transport_ops *o = p->ops;
  int ok = 1;
  if (o->abi_major != MC_TRANSPORT_ABI_MAJOR) {
    fail("abi.header", "abi_major %u, expected %u", o->abi_major, MC_TRANSPORT_ABI_MAJOR);
    return -1;
  }
  if (o->struct_size < MC_TRANSPORT_OPS_V1_MIN_SIZE) {
    fail("abi.header", "struct_size %u < minimum %zu", o->struct_size,
         (size_t)MC_TRANSPORT_OPS_V1_MIN_SIZE);
    return -1;
  }
  if (o->abi_minor >= 1 && o->struct_size < offsetof(mc_transport_ops, param_info_size) +
                                                sizeof o->param_info_size) {
    fail("abi.header", "abi_minor %u but struct_size %u does not cover the 1.1 members",
         o->abi_minor, o->struct_size);
    return -1;
  }
  if (o->abi_minor >= 2 && o->struct_size < offsetof(mc_transport_ops, ctrl_handle) +
                                                sizeof o->ctrl_handle) {
    fail("abi.header", "abi_minor %u but struct_size %u does not cover the 1.2 members",
         o->abi_minor, o->struct_size);
    return -1;
  }
  if (o->abi_minor >= 3 && o->struct_size < offsetof(mc_transport_ops, query_mem) +
                                                sizeof o->query_mem) {
    fail("abi.header", "abi_minor %u but struct_size %u does not cover the 1.3 members",
         o->abi_minor, o->struct_size);
    return -1;
  }
  pass("abi.header", "v%u.%u, struct_size %u", o->abi_major, o->abi_minor, o->struct_size);

  char expect[128];
  const char *b = base_name(path);
  size_t bl = strlen(b);
  if (strncmp(b, "mc-transport-", 13) || bl < 17 || strcmp(b + bl - 3, ".so")) {
    fail("abi.name", "file name %s is not mc-transport-<name>.so", b);
    ok = 0;
  } else {
    snprintf(expect, sizeof expect, "%.*s", (int)(bl - 16), b + 13);
    int okname = expect[0] != '\0';
    for (const char *c = expect; *c; c++)
      okname &= (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
    if (!okname) {
      fail("abi.name", "transport name '%s' is not [a-z0-9_]+ (the loader refuses it)", expect);
      ok = 0;
    } else if (!o->name || strcmp(o->name, expect)) {
      fail("abi.name", "name '%s' differs from file name '%s'", o->name ? o->name : "(null)",
           expect);
      ok = 0;
    } else {
      pass("abi.name", "'%s', version %s", o->name, o->version ? o->version : "(null)");
    }
  }

  const char *missing = NULL;
  if (!o->version) missing = "version";
  else if (!o->init) missing = "init";
  else if (!o->fini) missing = "fini";
  else if (!o->query_rails) missing = "query_rails";
  else if (!o->local_desc) missing = "local_desc";
  else if (!o->register_mem) missing = "register_mem";
  else if (!o->deregister_mem) missing = "deregister_mem";
  else if (!o->connect) missing = "connect";
  else if (!o->disconnect) missing = "disconnect";
  else if (!o->import_mem) missing = "import_mem";
  else if (!o->release_mem) missing = "release_mem";
  else if (!o->submit) missing = "submit";
  else if (!o->progress != !!(o->caps & MC_CAP_OWN_THREADS)) missing = "progress (NULL iff OWN_THREADS)";
  else if (!o->send_notify != !(o->caps & MC_CAP_NOTIFY)) missing = "send_notify (iff NOTIFY)";
  if (missing) {
    fail("abi.members", "member %s missing or inconsistent with caps", missing);
    ok = 0;
  } else {
    pass("abi.members", "caps 0x%" PRIx64 ", local kinds 0x%x, remote kinds 0x%x", o->caps,
         o->local_mem_kinds, o->remote_mem_kinds);
  }
  if (o->struct_size >= offsetof(mc_transport_ops, free_mem) + sizeof(void *) &&
      !o->alloc_mem != !o->free_mem) {
    fail("abi.alloc_mem", "alloc_mem and free_mem must come together");
    ok = 0;
  }

  /* The params table, read with the stride the plugin declares (1.1). */
  char why[256] = "";
  int np = 0;
  size_t stride = mc_fake_param_stride(o);
  if (o->params && o->abi_minor >= 1 && o->param_info_size == 0)
    snprintf(why, sizeof why,
             "abi_minor %u but param_info_size 0: the core would read the entries with the 1.0 "
             "stride (%zu bytes); set it to sizeof(mc_param_info)",
             o->abi_minor, (size_t)MC_PARAM_INFO_V1_SIZE);
  else if (stride < MC_PARAM_INFO_V1_SIZE)
    snprintf(why, sizeof why, "param_info_size %zu is smaller than a 1.0 entry (%zu bytes)",
             stride, (size_t)MC_PARAM_INFO_V1_SIZE);
  for (np = 0; o->params && !why[0]; np++) {
    mc_param_info pi;
    if (np == 256) {
      snprintf(why, sizeof why, "no MC_PARAM_END within 256 entries");
      break;
    }
    mc_fake_param_at(o, (size_t)np, &pi);
    if (pi.type == MC_PARAM_END)
      break;
    const char *nm = pi.name;
    int okname = nm && nm[0];
    for (const char *c = nm; okname && *c; c++)
      okname = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
    if (pi.type > MC_PARAM_STRING) {
      snprintf(why, sizeof why, "entry %d: type %u", np, pi.type);
    } else if (!okname) {
      snprintf(why, sizeof why, "entry %d: name '%s' is not [a-z0-9_]+", np, nm ? nm : "(null)");
    } else if (!strcmp(nm, "optional")) {
      snprintf(why, sizeof why, "key 'optional' is reserved by the core");
    } else if (!pi.help || !pi.help[0]) {
      snprintf(why, sizeof why, "key '%s': no help text", nm);
    } else if ((pi.type == MC_PARAM_INT || pi.type == MC_PARAM_SIZE) && pi.min > pi.max) {
      snprintf(why, sizeof why, "key '%s': min %" PRId64 " > max %" PRId64, nm, pi.min, pi.max);
    } else if (pi.type == MC_PARAM_SIZE && pi.min < 0) {
      snprintf(why, sizeof why, "key '%s': SIZE with negative min %" PRId64, nm, pi.min);
    } else if (pi.default_text && pi.default_text[0] && pi.type != MC_PARAM_STRING) {
      /* The default must be a value the core accepts, inside the range. */
      uint64_t sz = 0;
      int64_t iv = 0;
      int bv, bad = 0, out = 0;
      if (pi.type == MC_PARAM_BOOL)
        bad = mc_config_parse_bool(pi.default_text, &bv) != 0;
      else if (pi.type == MC_PARAM_INT) {
        bad = mc_config_parse_int(pi.default_text, &iv) != 0;
        out = !bad && (pi.min || pi.max) && (iv < pi.min || iv > pi.max);
      } else {
        bad = mc_config_parse_size(pi.default_text, &sz) != 0;
        out = !bad && (pi.min || pi.max) &&
              (sz > (uint64_t)INT64_MAX || (int64_t)sz < pi.min || (int64_t)sz > pi.max);
      }
      if (bad)
        snprintf(why, sizeof why, "key '%s': default '%s' is not a valid %s", nm, pi.default_text,
                 pi.type == MC_PARAM_BOOL ? "boolean" : pi.type == MC_PARAM_INT ? "integer" : "size");
      else if (out)
        snprintf(why, sizeof why, "key '%s': default '%s' outside [%" PRId64 ", %" PRId64 "]", nm,
                 pi.default_text, pi.min, pi.max);
    }
    for (int j = 0; j < np && !why[0]; j++) {
      mc_param_info pj;
      mc_fake_param_at(o, (size_t)j, &pj);
      if (!strcmp(pj.name, nm))
        snprintf(why, sizeof why, "key '%s' listed twice", nm);
    }
  }
  if (!why[0]) {
    pass("abi.params", "%d documented keys, entry size %zu%s", np, stride,
         o->param_info_size ? "" : " (1.0)");
  } else {
    /* Only the core reads params: the runtime checks can still run. */
    fail("abi.params", "%s", why);
  }
  return ok ? 0 : -1;
}

