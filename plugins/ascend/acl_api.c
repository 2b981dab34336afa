/* acl_api.c - dlopen of the CANN runtime and its entry table. */
#include "acl_api.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  const char *sym;
  size_t off; /* offset of the slot in acl_api */
  int optional;
} acl_sym;

#define E(name, member, opt) {name, offsetof(acl_api, member), opt}
static const acl_sym syms[] = {
    E("aclInit", Init, 0),
    E("aclFinalize", Finalize, 0),
    E("aclrtSetDevice", SetDevice, 0),
    E("aclrtGetDeviceCount", GetDeviceCount, 0),
    E("aclrtCreateStream", CreateStream, 0),
    E("aclrtDestroyStream", DestroyStream, 0),
    E("aclrtSynchronizeStream", SynchronizeStream, 0),
    E("aclrtMemcpyAsync", MemcpyAsync, 0),
    E("aclrtCreateEvent", CreateEvent, 0),
    E("aclrtDestroyEvent", DestroyEvent, 0),
    E("aclrtRecordEvent", RecordEvent, 0),
    E("aclrtQueryEventStatus", QueryEventStatus, 0),
    E("aclFinalizeReference", FinalizeReference, 1),
    E("aclGetRecentErrMsg", GetRecentErrMsg, 1),
    E("aclrtPointerGetAttributes", PointerGetAttributes, 1),
    E("aclrtIpcMemGetExportKey", IpcMemGetExportKey, 1),
    E("aclrtIpcMemSetImportPid", IpcMemSetImportPid, 1),
    E("aclrtIpcMemImportByKey", IpcMemImportByKey, 1),
    E("aclrtIpcMemClose", IpcMemClose, 1),
    E("aclrtDeviceGetBareTgid", DeviceGetBareTgid, 1),
};
#undef E

int acl_api_load(acl_api *a, const char *lib, char *why, size_t whylen) {
  memset(a, 0, sizeof *a);
  const char *name = lib && lib[0] ? lib : "libascendcl.so";
  /* RTLD_NODELETE: a vendor runtime initialized by aclInit is not safe to
   * unload (its threads and allocations outlive aclFinalize); it stays
   * for the process's life once loaded. */
  a->dl = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!a->dl) {
    const char *e = dlerror();
    snprintf(why, whylen, "cannot load %s (%s); install the CANN toolkit (set "
             "LD_LIBRARY_PATH as its set_env.sh does) or set transports.ascend.library",
             name, e ? e : "dlopen failed");
    return -1;
  }
  for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
    void *p = dlsym(a->dl, syms[i].sym);
    if (!p && !syms[i].optional) {
      snprintf(why, whylen, "%s lacks %s", name, syms[i].sym);
      dlclose(a->dl);
      memset(a, 0, sizeof *a);
      return -1;
    }
    memcpy((char *)a + syms[i].off, &p, sizeof p);
  }
  /* IPC is all or nothing: a partial set cannot share memory. */
  if (!acl_api_has_ipc(a)) {
    a->IpcMemGetExportKey = NULL;
    a->IpcMemSetImportPid = NULL;
    a->IpcMemImportByKey = NULL;
    a->IpcMemClose = NULL;
    a->DeviceGetBareTgid = NULL;
  }
  return 0;
}

void acl_api_unload(acl_api *a) {
  if (a->dl)
    dlclose(a->dl);
  memset(a, 0, sizeof *a);
}

int acl_api_has_ipc(const acl_api *a) {
  return a->IpcMemGetExportKey && a->IpcMemSetImportPid && a->IpcMemImportByKey &&
         a->IpcMemClose && a->DeviceGetBareTgid;
}
