#include <cblas.h>
/* openblas_set_num_threads and openblas_get_config live in OpenBLAS's cblas.h. */
