/* Internal: the cluster token.  A shared secret, read from a file named by
 * `cluster_token_file`, that the p2p handshake and the HTTP metadata
 * backend present and demand, so a listener serves descriptors (and the
 * rkeys in them) only to peers of the same cluster and the HTTP server
 * takes writes only from them.  It authenticates; it does not encrypt:
 * the wire stays plaintext, as the transports' own frames are. */
#ifndef MC_TOKEN_H
#define MC_TOKEN_H

#include <stddef.h>

#define MC_TOKEN_MIN 16  /* bytes; shorter secrets are refused */
#define MC_TOKEN_MAX 128 /* bytes; fits an HTTP header and a p2p frame */

/* Reads the token from path into out (MC_TOKEN_MAX + 1 bytes, NUL-terminated):
 * the file's content with trailing whitespace removed, MC_TOKEN_MIN..
 * MC_TOKEN_MAX printable ASCII characters without spaces.  The file must be a
 * regular file that neither group nor others can read or write, as ssh asks
 * of its keys.  0, or MC_E* with "path: reason" in err. */
int mc_token_load(const char *path, char out[MC_TOKEN_MAX + 1], char *err,
                  size_t errlen);

/* 1 when the len bytes at t make a token: MC_TOKEN_MIN..MC_TOKEN_MAX of
 * printable ASCII without spaces (what travels in p2p frames and HTTP
 * headers). */
int mc_token_ok(const char *t, size_t len);

/* 1 when the a_len bytes at a equal the NUL-terminated token, compared in
 * time that depends only on the lengths (no early exit on the first
 * differing byte). */
int mc_token_equal(const char *token, const void *a, size_t a_len);

#endif
