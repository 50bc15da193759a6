/* Raw bytes as an HDF5 file, opened as FILE:/data. This fuzzes HDF5's own parser more than
 * fkm: HDF5 1.10 crashes on crafted files (see fuzz/README.md), so run.sh does not run it
 * unless FUZZ_H5_RAW=1. fuzz_h5 covers fkm's dataset checks on well-formed files. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *file = fz_path("in.h5");
    fz_write(file, data, size);
    fz_open_and_read(file, "/data", 0);
    return 0;
}
