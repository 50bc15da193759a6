/* HDF5 helpers shared by the readers, the writers, `fkm gen` and `fkm info`. */
#include "io_internal.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fkm_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct {
    char *buf;
    size_t len;
    int found;
} detail_ctx;

static herr_t detail_walk(unsigned n, const H5E_error2_t *e, void *data)
{
    detail_ctx *c = data;
    if (!c->found && e->desc && e->desc[0]) {
        snprintf(c->buf, c->len, "%s", e->desc);
        c->found = 1;
    }
    return 0;
}

const char *fkm_h5_detail(char *buf, size_t len)
{
    detail_ctx c = {buf, len, 0};
    /* upward = innermost first: the most specific reason (e.g. a missing filter) */
    if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, detail_walk, &c) < 0 || !c.found)
        snprintf(buf, len, "no detail");
    return buf;
}

hid_t fkm_h5_half_type(hid_t base)
{
    hid_t t = H5Tcopy(base);
    if (t < 0) return H5I_INVALID_HID;
    /* sign bit 15, exponent bits 10..14, mantissa bits 0..9, bias 15 */
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 ||
        H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

int fkm_h5_is_half(hid_t type)
{
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != 2) return 0;
    if (H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0) return 0;
    return spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 &&
           H5Tget_ebias(type) == 15 && H5Tget_precision(type) == 16 && H5Tget_offset(type) == 0;
}

const char *fkm_h5_type_name(hid_t type, char *buf, size_t len)
{
    size_t size = H5Tget_size(type);
    switch (H5Tget_class(type)) {
    case H5T_FLOAT:
        if (size == 2 && !fkm_h5_is_half(type))
            snprintf(buf, len, "16-bit float that is not IEEE half (bfloat16?)");
        else
            snprintf(buf, len, "float%zu", size * 8);
        break;
    case H5T_INTEGER:
        snprintf(buf, len, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", size * 8);
        break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    case H5T_ENUM: snprintf(buf, len, "enum"); break;
    case H5T_ARRAY: snprintf(buf, len, "array"); break;
    case H5T_VLEN: snprintf(buf, len, "variable-length"); break;
    case H5T_OPAQUE: snprintf(buf, len, "opaque"); break;
    case H5T_BITFIELD: snprintf(buf, len, "bitfield"); break;
    case H5T_REFERENCE: snprintf(buf, len, "reference"); break;
    case H5T_TIME: snprintf(buf, len, "time"); break;
    default: snprintf(buf, len, "unknown"); break;
    }
    return buf;
}

int fkm_h5_open_ro(const char *role, const char *file, hid_t *fid, fkm_error *err)
{
    struct stat st;
    char detail[256];
    *fid = H5I_INVALID_HID;
    fkm_h5_quiet();
    if (!file || !file[0]) return fkm_fail(err, FKM_EINPUT, "%s: no file given", role);
    if (stat(file, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return fkm_fail(err, FKM_EINPUT, "%s '%s': no such file", role, file);
        return fkm_fail(err, FKM_EINPUT, "%s '%s': %s", role, file, strerror(errno));
    }
    if (S_ISDIR(st.st_mode))
        return fkm_fail(err, FKM_EINPUT, "%s '%s': is a directory, expected an HDF5 file", role,
                        file);
    if (access(file, R_OK) != 0)
        return fkm_fail(err, FKM_EINPUT, "%s '%s': cannot be read: %s", role, file,
                        strerror(errno));
    /* H5Fis_hdf5 looks for the signature; < 0 means it could not even look (e.g. empty) */
    if (H5Fis_hdf5(file) <= 0)
        return fkm_fail(err, FKM_EINPUT, "%s '%s': not an HDF5 file", role, file);
    *fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*fid < 0)
        return fkm_fail(err, FKM_EINPUT,
                        "%s '%s': HDF5 cannot open it (HDF5: %s); if another program is "
                        "writing it, wait for it to finish",
                        role, file, fkm_h5_detail(detail, sizeof detail));
    return FKM_OK;
}
