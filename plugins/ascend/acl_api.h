/* acl_api.h - the Ascend CANN runtime (ACL) calls this plugin makes,
 * declared here (the CANN toolkit is not packaged in Debian) and reached
 * through dlopen("libascendcl.so").  Types and values follow CANN's
 * acl/acl_rt.h; only what the plugin uses is declared. */
#ifndef MC_ACL_API_H
#define MC_ACL_API_H

#include <stddef.h>
#include <stdint.h>

typedef int aclError;
typedef void *aclrtStream;
typedef void *aclrtEvent;

#define ACL_SUCCESS 0

/* aclrtMemcpyKind */
enum {
  ACL_MEMCPY_HOST_TO_HOST = 0,
  ACL_MEMCPY_HOST_TO_DEVICE = 1,
  ACL_MEMCPY_DEVICE_TO_HOST = 2,
  ACL_MEMCPY_DEVICE_TO_DEVICE = 3,
};

/* aclrtEventRecordedStatus */
enum {
  ACL_EVENT_RECORDED_STATUS_NOT_READY = 0,
  ACL_EVENT_RECORDED_STATUS_COMPLETE = 1,
};

/* aclrtIpcMemGetExportKey / aclrtIpcMemImportByKey flags */
#define ACL_RT_IPC_MEM_EXPORT_FLAG_DEFAULT 0x0UL /* importers must be whitelisted */
#define ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION 0x1UL
#define ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS 0x1UL
#define ACL_IPC_KEY_LEN 65 /* the key's buffer, NUL included */

/* aclrtPtrAttributes (aclrtPointerGetAttributes) */
enum { ACL_MEM_LOCATION_TYPE_HOST = 0, ACL_MEM_LOCATION_TYPE_DEVICE = 1 };
typedef struct acl_ptr_attrs {
  uint32_t id;   /* aclrtMemLocation.id */
  int type;      /* aclrtMemLocation.type */
  uint32_t pageSize;
  uint32_t rsv[4];
} acl_ptr_attrs;

typedef struct acl_api {
  void *dl;
  aclError (*Init)(const char *config);
  aclError (*Finalize)(void);
  aclError (*SetDevice)(int32_t dev);
  aclError (*GetDeviceCount)(uint32_t *n);
  aclError (*CreateStream)(aclrtStream *s);
  aclError (*DestroyStream)(aclrtStream s);
  aclError (*SynchronizeStream)(aclrtStream s);
  aclError (*MemcpyAsync)(void *dst, size_t dmax, const void *src, size_t n, int kind,
                          aclrtStream s);
  aclError (*CreateEvent)(aclrtEvent *e);
  aclError (*DestroyEvent)(aclrtEvent e);
  aclError (*RecordEvent)(aclrtEvent e, aclrtStream s);
  aclError (*QueryEventStatus)(aclrtEvent e, int *status);
  /* Optional (NULL when the runtime predates them). */
  aclError (*FinalizeReference)(uint64_t *refs);
  const char *(*GetRecentErrMsg)(void);
  aclError (*PointerGetAttributes)(const void *p, acl_ptr_attrs *a);
  /* IPC of device memory between processes: all four or none. */
  aclError (*IpcMemGetExportKey)(void *p, size_t len, char *key, size_t keylen, uint64_t flags);
  aclError (*IpcMemSetImportPid)(const char *key, int32_t *pid, size_t n);
  aclError (*IpcMemImportByKey)(void **p, const char *key, uint64_t flags);
  aclError (*IpcMemClose)(const char *key);
  aclError (*DeviceGetBareTgid)(int32_t *pid);
} acl_api;

/* Opens lib (NULL or "": libascendcl.so) and resolves the entries.  0, or
 * -1 with the reason in why. */
int acl_api_load(acl_api *a, const char *lib, char *why, size_t whylen);
void acl_api_unload(acl_api *a);
/* Nonzero when the IPC calls are all present. */
int acl_api_has_ipc(const acl_api *a);

#endif
