/* The big-ann readers: the first input byte picks the extension (.fbin, .u8bin, .i8bin),
 * the rest is the file (two uint32 LE, rows and columns, then the elements). Open must
 * either succeed with every row readable or fail with one clean line naming the file. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"in.fbin", "in.u8bin", "in.i8bin"};
    if (size < 1) return 0;
    const char *file = fz_path(names[data[0] % 3]);
    fz_write(file, data + 1, size - 1);
    fz_open_and_read(file, "/ignored", 1);
    return 0;
}
