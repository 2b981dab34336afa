/* config_value.c - the value syntax of every configuration key: one parser
 * per type, shared by the engine's keys, the plugins' keys (checked before
 * init), the typed getters of mc_host_api, and mc-transport-conformance's
 * fake host (which links this file's object alone, not the core). */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "config_value.h"

int mc_config_parse_size(const char *text, uint64_t *out) {
  if (!text || !isdigit((unsigned char)text[0]))
    return -1;
  uint64_t v = 0;
  const char *p = text;
  for (; isdigit((unsigned char)*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  unsigned shift = 0;
  switch (*p) {
  case 'k': case 'K': shift = 10; p++; break;
  case 'm': case 'M': shift = 20; p++; break;
  case 'g': case 'G': shift = 30; p++; break;
  case 't': case 'T': shift = 40; p++; break;
  default: break;
  }
  /* Accept the common spellings 64K, 64KB, 64KiB and 4096B.  The unit is
   * an upper-case B only: "64kb" would be kilobits to many readers, so it
   * is refused rather than guessed. */
  if (shift && *p == 'i')
    p++;
  if (*p == 'B')
    p++;
  if (*p != '\0')
    return -1;
  if (shift && v > (UINT64_MAX >> shift))
    return -1;
  *out = v << shift;
  return 0;
}

int mc_config_parse_int(const char *text, int64_t *out) {
  if (!text)
    return -1;
  const char *p = text;
  int neg = *p == '-';
  if (neg)
    p++;
  if (!isdigit((unsigned char)*p))
    return -1;
  /* Accumulate the magnitude as unsigned, so INT64_MIN parses too. */
  uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; isdigit((unsigned char)*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (lim - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  if (*p)
    return -1;
  *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v)
             : (int64_t)v;
  return 0;
}

int mc_config_parse_bool(const char *text, int *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; text && i < 4; i++) {
    if (strcasecmp(text, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
    if (strcasecmp(text, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}
