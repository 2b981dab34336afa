/* shm transport: registration table (see shm_reg.h). */
#include "shm_reg.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mooncake/errors.h"

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int shm_reg_create(shm_reg_owner *o, const uint8_t nonce[16], uint32_t pid,
                   uint64_t seed) {
  memset(o, 0, sizeof *o);
  o->seed = seed;
  o->fd = memfd_create("mc-shm-ident", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (o->fd < 0)
    return MC_EIO;
  uint8_t blob[24];
  memcpy(blob, "MCSI", 4);
  memcpy(blob + 4, nonce, 16);
  memcpy(blob + 20, &pid, 4);
  if (ftruncate(o->fd, SHM_REG_SIZE) ||
      pwrite(o->fd, blob, sizeof blob, 0) != (ssize_t)sizeof blob ||
      fcntl(o->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))
    goto fail;
  void *m = mmap(NULL, SHM_REG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, o->fd, 0);
  if (m == MAP_FAILED)
    goto fail;
  o->map = m;
  o->slots = (shm_slot *)(o->map + SHM_REG_HDR);
  return 0;
fail:
  close(o->fd);
  o->fd = -1;
  return MC_EIO;
}

void shm_reg_destroy(shm_reg_owner *o) {
  if (o->map)
    munmap(o->map, SHM_REG_SIZE);
  o->map = NULL;
  if (o->fd >= 0)
    close(o->fd);
  o->slots = NULL;
  o->fd = -1;
}

int shm_reg_add(shm_reg_owner *o, uint64_t base, uint64_t len, uint32_t *slot,
                uint64_t *secret) {
  for (uint32_t i = 0; i < SHM_REG_SLOTS; i++) {
    uint32_t s = (o->hint + i) % SHM_REG_SLOTS;
    shm_slot *e = &o->slots[s];
    if (atomic_load_explicit(&e->secret, memory_order_relaxed))
      continue;
    uint64_t sec;
    do
      sec = mix(o->seed ^ ++o->counter);
    while (!sec);
    e->base = base;
    e->len = len;
    atomic_store_explicit(&e->secret, sec, memory_order_release);
    o->hint = s + 1;
    *slot = s;
    *secret = sec;
    return 0;
  }
  return MC_ENOMEM;
}

void shm_reg_close(shm_reg_owner *o) {
  if (!o->map)
    return;
  atomic_store_explicit((_Atomic uint32_t *)(o->map + 64), 1u, memory_order_release);
  for (uint32_t i = 0; i < SHM_REG_SLOTS; i++)
    if (atomic_load_explicit(&o->slots[i].secret, memory_order_relaxed))
      atomic_store_explicit(&o->slots[i].secret, 0, memory_order_release);
}

void shm_reg_remove(shm_reg_owner *o, uint32_t slot) {
  if (slot < SHM_REG_SLOTS)
    atomic_store_explicit(&o->slots[slot].secret, 0, memory_order_release);
}

const shm_slot *shm_reg_map_peer(int fd) {
  /* A short or shrinkable file would SIGBUS us when read. */
  struct stat st;
  int seals = fcntl(fd, F_GET_SEALS);
  if (fstat(fd, &st) || (uint64_t)st.st_size < SHM_REG_SIZE || seals < 0 ||
      !(seals & F_SEAL_SHRINK))
    return NULL;
  void *m = mmap(NULL, SHM_REG_SIZE, PROT_READ, MAP_SHARED, fd, 0);
  return m == MAP_FAILED ? NULL : (const shm_slot *)((uint8_t *)m + SHM_REG_HDR);
}

void shm_reg_unmap_peer(const shm_slot *slots) {
  if (slots)
    munmap((uint8_t *)slots - SHM_REG_HDR, SHM_REG_SIZE);
}
