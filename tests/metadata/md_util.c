/* See md_util.h. */
#include "md_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "descriptor.h"

int tu_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
  socklen_t l = sizeof(a);
  CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

char *tu_make_desc(const char *name, uint64_t version, size_t *len) {
  uint8_t blob[5] = {0, 1, 0, 2, 0};
  mc_desc_transport t = {.name = "tcp", .len = sizeof blob, .blob = blob};
  mc_desc_key k = {.transport = 0, .len = 2, .bytes = {0, 0}};
  mc_desc_buffer b = {.addr = 0x7f0000001000ull, .len = 1 << 20,
                      .kind = MC_MEM_CPU, .location = "cpu:0", .nkeys = 1,
                      .keys = &k};
  mc_seg_desc d = {.version = version, .ntransports = 1, .transports = &t,
                   .nbuffers = 1, .buffers = &b};
  snprintf(d.name, sizeof d.name, "%s", name);
  char *json;
  CHECK_RC(mc_desc_encode(&d, &json, len), 0);
  return json;
}

void tu_sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

