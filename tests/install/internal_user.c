/* Must NOT link against the installed libmooncake: INTERNAL_SYM (set on the
 * command line) names something the library contains but does not export,
 * such as an internal helper or a protobuf-c descriptor of the etcd code.
 * Only the name matters to the linker, so it is declared as a function. */
#ifndef INTERNAL_SYM
#error "build with -DINTERNAL_SYM=<symbol>"
#endif
int INTERNAL_SYM(void);

int main(void) { return INTERNAL_SYM(); }
