/* The big-ann-benchmarks formats: .fbin (float32), .u8bin (uint8), .i8bin (int8). An 8-byte
 * header of two little-endian uint32, rows then columns, followed by rows×columns elements
 * in C order, nothing else. The file's size must be exactly that. */
#include "reader_impl.h"
#include "util.h"

#include <stdio.h>
#include <unistd.h>

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int fkm_bigann_open(fkm_reader *r, fkm_elem elem, fkm_error *err)
{
    int fd;
    int64_t size;
    unsigned char hdr[8];
    const char *ext = elem == FKM_EL_U8 ? "u8bin" : elem == FKM_EL_I8 ? "i8bin" : "fbin";

    int st = fkm_raw_open_file(r, &fd, &size, err);
    if (st) return st;
    if (size < (int64_t)sizeof hdr) {
        close(fd);
        return fkm_fail(err, FKM_EINPUT,
                        "%s '%s': file is %lld bytes, shorter than the 8-byte .%s header (rows, "
                        "columns)",
                        r->role, r->file, (long long)size, ext);
    }
    st = fkm_raw_pread(r, fd, hdr, sizeof hdr, 0, 1, err);
    if (st) {
        close(fd);
        return st;
    }
    r->elem = elem;
    r->n = (int64_t)le32(hdr);
    r->d = (int64_t)le32(hdr + 4);
    snprintf(r->format, sizeof r->format, "%s", ext);
    if (r->n == 0 || r->d == 0) {
        close(fd);
        return fkm_fail(err, FKM_EINPUT, "%s '%s': has 0 %s (header: %lld rows × %lld columns)",
                        r->role, r->file, r->n == 0 ? "rows" : "columns", (long long)r->n,
                        (long long)r->d);
    }
    st = fkm_raw_check_size(r, (int64_t)sizeof hdr, size, err);
    if (st) {
        close(fd);
        return st;
    }
    return fkm_raw_attach(r, fd, (int64_t)sizeof hdr, err);
}
