/* Internal: the segment descriptor and its JSON form (jansson).
 *
 * A segment descriptor is what one engine publishes through metadata:
 *   { "format": 1, "name": "host:port", "version": 7,
 *     "host_id": "<boot id>/<netns id>",
 *     "listen": "10.0.0.5:40123",
 *     "transports": [ {"name": "tcp", "desc": "<base64 blob>"} ],
 *     "buffers": [ {"addr": "0x7f..", "len": 4096, "location": "cpu:0",
 *                   "kind": 1, "keys": {"tcp": "<base64 rkey>"}} ] }
 * Addresses are hex strings (JSON numbers lose 64-bit precision in many
 * parsers).  "listen" (optional; absent in descriptors of engines older
 * than ABI 1.2) is the host:port of the engine's handshake listener, where
 * the control channel (mc_host_api.ctrl_call) reaches it whatever the
 * metadata backend.  Decoding is defensive: the text comes off the
 * network. */
#ifndef MC_DESCRIPTOR_H
#define MC_DESCRIPTOR_H

#include <stddef.h>
#include <stdint.h>

#include "mooncake/transport.h"

#define MC_DESC_FORMAT 1
#define MC_DESC_MAX_TRANSPORTS 16
#define MC_DESC_MAX_BUFFERS 65536
#define MC_DESC_JSON_MAX (64u << 20) /* refuse larger descriptors */

typedef struct mc_desc_key {
  uint32_t transport; /* index into mc_seg_desc.transports */
  uint32_t len;
  uint8_t bytes[MC_RKEY_MAX];
} mc_desc_key;

typedef struct mc_desc_buffer {
  uint64_t addr;
  uint64_t len;
  uint32_t kind; /* enum mc_mem_kind */
  char location[32];
  uint32_t nkeys;
  mc_desc_key *keys;
} mc_desc_buffer;

typedef struct mc_desc_transport {
  char name[64];
  uint32_t len;
  uint8_t *blob; /* len bytes, <= MC_DESC_MAX */
} mc_desc_transport;

typedef struct mc_seg_desc {
  char name[MC_NAME_MAX];
  uint64_t version;
  char host_id[128];
  char listen[MC_NAME_MAX]; /* handshake listener "host:port"; "" = none */
  uint32_t ntransports;
  mc_desc_transport *transports;
  uint32_t nbuffers;
  mc_desc_buffer *buffers; /* sorted by addr, non-overlapping */
} mc_seg_desc;

/* Encodes to compact JSON; *json is malloc'd (caller frees). */
int mc_desc_encode(const mc_seg_desc *d, char **json, size_t *len);

/* Decodes and validates (sizes, caps, sorted non-overlapping buffers, key
 * transport indices).  MC_EPROTO with a reason in err on bad input. */
int mc_desc_decode(const char *json, size_t len, mc_seg_desc **out, char *err,
                   size_t errlen);

/* Index of the buffer containing [addr, addr+len), or -1. */
long mc_desc_find_buffer(const mc_seg_desc *d, uint64_t addr, uint64_t len);

/* Index of the transport named name, or -1. */
int mc_desc_find_transport(const mc_seg_desc *d, const char *name);

void mc_desc_free(mc_seg_desc *d);

#endif
