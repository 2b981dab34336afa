/* config_value.h - the value syntax of configuration keys (see
 * config_value.c).  Depends on nothing but libc. */
#ifndef MC_CONFIG_VALUE_H
#define MC_CONFIG_VALUE_H

#include <stdint.h>

/* Parses a size: decimal digits, optionally followed by one multiplier K,
 * M, G or T (either case; binary: 1K = 1024) and then optionally "B" or
 * "iB": 4096, 4096B, 64K, 64k, 64KB, 64KiB, 1M, 2G.  The unit is an
 * upper-case B only: "64kb" is refused, since a lower-case b reads as bits.
 * -1 on error or overflow. */
int mc_config_parse_size(const char *text, uint64_t *out);

/* Parses a decimal integer ("-1", "42"; no sign but '-', no hex) that fits
 * int64_t; -1 on error. */
int mc_config_parse_int(const char *text, int64_t *out);

/* Parses a boolean: true/false, yes/no, on/off, 1/0, any case; -1 on
 * error. */
int mc_config_parse_bool(const char *text, int *out);

#endif
