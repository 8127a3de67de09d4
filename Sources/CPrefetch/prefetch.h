/* A software prefetch for GlassboxRuntime: Swift has no spelling of it (the intrinsics
   module's `_mm_prefetch` is a macro, and its `_m_prefetch` call is dropped). */
static inline __attribute__((always_inline)) void glassbox_prefetch(const void *address) {
  __builtin_prefetch(address, 0, 3);
}
