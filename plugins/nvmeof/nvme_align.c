/* nvme_align.c - the O_DIRECT alignment a file needs, from statx
 * (STATX_DIOALIGN, Linux 6.1).  Its own file: <linux/stat.h>, which has the
 * fields, cannot be mixed with glibc's <sys/stat.h>. */
#include <fcntl.h>
#include <linux/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nvme.h"

uint32_t nv_dio_align(int fd) {
  struct statx sx;
#ifdef STATX_DIOALIGN
  if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
      (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align) {
    uint32_t a = sx.stx_dio_offset_align > sx.stx_dio_mem_align ? sx.stx_dio_offset_align
                                                                : sx.stx_dio_mem_align;
    return a;
  }
#else
  (void)sx;
  (void)fd;
#endif
  return 4096; /* safe for every device: a multiple of any logical block */
}
