/* `fkm info`: list the 2-D datasets of an HDF5 file, so that users can pick --dataset, or
 * describe the one array of a .npy/.fbin/.u8bin/.i8bin file. */
#include "reader_impl.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* H5Ovisit changed signature in 1.12 (H5O_info2_t); ask only for the basic fields. */
#if H5_VERSION_GE(1, 12, 0)
typedef H5O_info2_t info_obj_t;
#define INFO_VISIT(f, cb, ctx) H5Ovisit3(f, H5_INDEX_NAME, H5_ITER_INC, cb, ctx, H5O_INFO_BASIC)
#elif H5_VERSION_GE(1, 10, 3)
typedef H5O_info_t info_obj_t;
#define INFO_VISIT(f, cb, ctx) H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, cb, ctx, H5O_INFO_BASIC)
#else
typedef H5O_info_t info_obj_t;
#define INFO_VISIT(f, cb, ctx) H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, cb, ctx)
#endif

typedef struct {
    const char *file;
    int64_t shown;
    fkm_error *err;
    int status;
} info_ctx;

/* One line for a 2-D dataset: path, shape, type, layout (and filters when compressed). */
static int show_dataset(hid_t loc, const char *name, info_ctx *c)
{
    char detail[256], tname[64], line[1024];
    hid_t dset = H5Dopen2(loc, name, H5P_DEFAULT), space = H5I_INVALID_HID;
    hid_t type = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    int ok = dset >= 0 && (space = H5Dget_space(dset)) >= 0 && (type = H5Dget_type(dset)) >= 0 &&
             (dcpl = H5Dget_create_plist(dset)) >= 0;
    if (!ok) {
        c->status =
            fkm_fail(c->err, FKM_ERUNTIME, "input '%s': cannot inspect dataset '/%s' (HDF5: %s)",
                     c->file, name, fkm_h5_detail(detail, sizeof detail));
        goto done;
    }
    if (H5Sget_simple_extent_ndims(space) != 2) goto done;

    hsize_t dims[2];
    if (H5Sget_simple_extent_dims(space, dims, NULL) != 2) {
        c->status =
            fkm_fail(c->err, FKM_ERUNTIME, "input '%s': cannot get the shape of '/%s' (HDF5: %s)",
                     c->file, name, fkm_h5_detail(detail, sizeof detail));
        goto done;
    }
    fkm_h5_type_name(type, tname, sizeof tname);
    char attr[64];
    if (H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 2 &&
        H5Tget_sign(type) == H5T_SGN_NONE && fkm_h5_dtype_attr(dset, attr, sizeof attr) == 1 &&
        strcmp(attr, "bfloat16") == 0)
        snprintf(tname, sizeof tname, "bfloat16 (uint16 bits)");
    int len = snprintf(line, sizeof line, "/%s  shape %llu x %llu  %s", name,
                       (unsigned long long)dims[0], (unsigned long long)dims[1], tname);
    H5D_layout_t layout = H5Pget_layout(dcpl);
    if (layout == H5D_CHUNKED) {
        hsize_t ch[2];
        if (H5Pget_chunk(dcpl, 2, ch) != 2) {
            c->status = fkm_fail(c->err, FKM_ERUNTIME,
                                 "input '%s': cannot get the chunks of '/%s' (HDF5: %s)", c->file,
                                 name, fkm_h5_detail(detail, sizeof detail));
            goto done;
        }
        len += snprintf(line + len, sizeof line - (size_t)len, "  chunked %llu x %llu",
                        (unsigned long long)ch[0], (unsigned long long)ch[1]);
        int nf = H5Pget_nfilters(dcpl);
        for (int i = 0; i < nf && len < (int)sizeof line - 1; i++) {
            char fname[64] = "";
            unsigned flags, cfg[8];
            size_t ncfg = 8;
            if (H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncfg, cfg, sizeof fname, fname, NULL) <
                0)
                snprintf(fname, sizeof fname, "unknown");
            len += snprintf(line + len, sizeof line - (size_t)len, "%s%s", i ? "," : "  filters ",
                            fname[0] ? fname : "unnamed");
        }
    } else {
        snprintf(line + len, sizeof line - (size_t)len, "  %s",
                 layout == H5D_COMPACT   ? "compact"
                 : layout == H5D_VIRTUAL ? "virtual"
                                         : "contiguous");
    }
    printf("%s\n", line);
    c->shown++;
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (dset >= 0) H5Dclose(dset);
    return c->status ? -1 : 0;
}

static herr_t visit_cb(hid_t obj, const char *name, const info_obj_t *info, void *data)
{
    if (info->type != H5O_TYPE_DATASET) return 0;
    return show_dataset(obj, name, data);
}

/* One line for a .npy or big-ann file: the reader's own checks, then shape and type. */
static int info_raw(const char *file, fkm_error *err)
{
    fkm_reader *r = NULL;
    int st = fkm_reader_open(file, NULL, &r, NULL, err);
    if (st) return st;
    printf("%s  shape %lld x %lld  %s  %s\n", file, (long long)r->n, (long long)r->d,
           fkm_elem_name(r->elem), r->format);
    fflush(stdout);
    fkm_reader_close(r);
    return FKM_OK;
}

int fkm_info(const char *file, fkm_error *err)
{
    fkm_error_clear(err);
    if (fkm_format_of(file, NULL) != FKM_FMT_HDF5) return info_raw(file, err);
    char detail[256];
    hid_t fid;
    int st = fkm_h5_open_ro("input", file, &fid, err);
    if (st) return st;
    info_ctx c = {file, 0, err, FKM_OK};
    if (INFO_VISIT(fid, visit_cb, &c) < 0 && !c.status)
        c.status = fkm_fail(err, FKM_ERUNTIME, "input '%s': cannot list its objects (HDF5: %s)",
                            file, fkm_h5_detail(detail, sizeof detail));
    if (!c.status && c.shown == 0) printf("no 2-D datasets in '%s'\n", file);
    fflush(stdout);
    H5Fclose(fid);
    return c.status;
}
