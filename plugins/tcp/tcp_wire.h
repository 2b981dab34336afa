/* tcp_wire.h - wire format of the TCP transport: frame headers, the endpoint
 * descriptor and the remote key.  Pure functions, no I/O, no allocation;
 * every decoder treats its input as hostile (fuzzed by fuzz_tcp_wire.c).
 *
 * All integers are little-endian on the wire.  Every frame is one fixed
 * 64-byte header, optionally followed by `len` payload bytes:
 *
 *   off size field
 *     0    4 magic   "MCTW" (0x5754434d as LE u32)
 *     4    2 version TCPW_VERSION
 *     6    2 type    enum tcpw_type
 *     8    4 status  0 or MC_E* (responses), 0 otherwise
 *    12    4 flags   reserved, 0
 *    16    8 seq     request sequence number, echoed in the response
 *    24    8 buf_id  target buffer id (READ/WRITE)
 *    32    8 addr    target address (READ/WRITE)
 *    40    8 len     bytes addressed / payload length
 *    48   16 secret  the buffer's 128-bit secret (READ/WRITE); in HELLO the
 *                    target endpoint's secret from its descriptor, which
 *                    proves the initiator read that descriptor; else zero
 */
#ifndef MC_TCP_WIRE_H
#define MC_TCP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define TCPW_MAGIC 0x5754434du /* "MCTW" */
#define TCPW_VERSION 1u
#define TCPW_HDR_SIZE 64u
#define TCPW_SECRET_SIZE 16u
/* Largest READ/WRITE a single frame may address (the core slices far
 * smaller; the cap bounds what a hostile peer can make us drain). */
#define TCPW_MAX_IO (1ull << 30)
#define TCPW_MAX_NAME 255u   /* HELLO payload: segment name, no NUL */
#define TCPW_MAX_NOTIFY 4096u /* NOTIFY payload (== MC_NOTIFY_MAX) */
#define TCPW_MAX_HOST 255u

enum tcpw_type {
  TCPW_HELLO = 1,      /* initiator -> target: payload = segment name */
  TCPW_HELLO_ACK = 2,  /* target -> initiator: payload = segment name */
  TCPW_READ = 3,       /* request, no payload */
  TCPW_WRITE = 4,      /* request, payload = len bytes */
  TCPW_READ_RESP = 5,  /* status 0: payload = len bytes; else none */
  TCPW_WRITE_RESP = 6, /* no payload */
  TCPW_NOTIFY = 7,     /* initiator -> target: payload = message */
};

typedef struct tcpw_hdr {
  uint16_t type;
  int32_t status;
  uint64_t seq;
  uint64_t buf_id;
  uint64_t addr;
  uint64_t len;
  uint8_t secret[TCPW_SECRET_SIZE];
} tcpw_hdr;

/* Writes h into out (TCPW_HDR_SIZE bytes). */
void tcpw_hdr_encode(const tcpw_hdr *h, uint8_t *out);

/* Parses and validates a header: magic, version, known type, reserved
 * fields zero, per-type length caps, status a known MC_E* code.  Returns 0
 * or MC_EPROTO. */
int tcpw_hdr_decode(const uint8_t *in, size_t n, tcpw_hdr *h);

/* Bytes of payload that follow header h on the wire. */
uint64_t tcpw_payload_len(const tcpw_hdr *h);

/* A segment name as carried by HELLO: 1..TCPW_MAX_NAME printable bytes.
 * Returns 0 or MC_EPROTO. */
int tcpw_name_check(const void *name, size_t len);

/* Endpoint descriptor: "MCTD" u32, version u16, port u16, host_len u16,
 * reserved u16, secret[16] (the endpoint's, demanded in HELLO), host bytes
 * (printable, no NUL).  encode: *len in/out, MC_ENOSPC with the size
 * needed. */
#define TCPW_DESC_MAGIC 0x4454434du /* "MCTD" */
#define TCPW_DESC_VERSION 2u
int tcpw_desc_encode(const char *host, uint16_t port,
                     const uint8_t secret[TCPW_SECRET_SIZE], void *buf,
                     size_t *len);
/* host receives a NUL-terminated copy (hostcap >= TCPW_MAX_HOST + 1).
 * Returns 0 or MC_EPROTO. */
int tcpw_desc_decode(const void *buf, size_t len, char *host, size_t hostcap,
                     uint16_t *port, uint8_t secret[TCPW_SECRET_SIZE]);

/* Remote key: "MCTK" u32, version u16, reserved u16, buf_id u64, base u64,
 * len u64, secret[16]: TCPW_RKEY_SIZE bytes exactly. */
#define TCPW_RKEY_MAGIC 0x4b54434du /* "MCTK" */
#define TCPW_RKEY_VERSION 1u
#define TCPW_RKEY_SIZE 48u
typedef struct tcpw_rkey {
  uint64_t buf_id;
  uint64_t base;
  uint64_t len;
  uint8_t secret[TCPW_SECRET_SIZE];
} tcpw_rkey;
int tcpw_rkey_encode(const tcpw_rkey *k, void *buf, size_t *len);
int tcpw_rkey_decode(const void *buf, size_t len, tcpw_rkey *k);

/* 1 when [addr, addr+len) lies inside [base, base+blen), overflow-safe. */
int tcpw_range_inside(uint64_t addr, uint64_t len, uint64_t base, uint64_t blen);

#endif
