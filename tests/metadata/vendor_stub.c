/* A stand-in for a vendor library a metadata module needs (gRPC, libcurl):
 * mc-metadata-needsvendor.so links it, and modules_test.sh copies that
 * module where the library cannot be found, to see dlerror() as the
 * refusal reason. */
int mc_md_vendor_stub_answer(void);
int mc_md_vendor_stub_answer(void) { return 42; }
