/* The .npy reader: the input is the whole file (magic, version, header length, the header
 * dict, the data). Open must either succeed with every row readable or fail with one clean
 * line naming the file. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *file = fz_path("in.npy");
    fz_write(file, data, size);
    fz_open_and_read(file, NULL, 1);
    return 0;
}
