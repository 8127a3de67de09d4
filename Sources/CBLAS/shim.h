/* Types and prototypes only: GlassboxRuntime loads OpenBLAS with dlopen after choosing its
   kernels (OPENBLAS_CORETYPE is read when the library initialises), so nothing links it. */
#include <cblas.h>
