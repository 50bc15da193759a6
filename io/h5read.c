/* HDF5 dataset reader: opens and checks a 2-D dataset, then reads row ranges (hyperslabs
 * [row0, row0+nrows) × [0, d)) as float32 or in the file's own type. Element types:
 * float32 and float64 (HDF5 converts them, in either byte order), IEEE float16, int8,
 * uint8, and bfloat16 stored as uint16 with the string attribute dtype = "bfloat16". */
#include "reader_impl.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hid_t file, dset, fspace;
    hid_t mem_type;  /* memory type of the raw read (a half type, uint16, int8, uint8) */
    int own_mem;     /* 1 when mem_type was made here and must be closed */
    int direct;      /* 1: float32/float64 on disk, HDF5 converts to native float itself */
    void *scratch;   /* raw elements of a converting read, grown on demand */
    size_t scratch_bytes;
    int rank;        /* 2, or 1 for a vector (fkm_reader_open_vector): n values as n×1 */
} h5_state;

static void h5_close(fkm_reader *r)
{
    h5_state *s = r->impl;
    if (!s) return;
    if (s->own_mem && s->mem_type >= 0) H5Tclose(s->mem_type);
    if (s->fspace >= 0) H5Sclose(s->fspace);
    if (s->dset >= 0) H5Dclose(s->dset);
    if (s->file >= 0) H5Fclose(s->file);
    free(s->scratch);
    free(s);
    r->impl = NULL;
}

int fkm_h5_dtype_attr(hid_t obj, char *buf, size_t len) { return fkm_h5_str_attr(obj, "dtype", buf, len); }

int fkm_h5_str_attr(hid_t obj, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    htri_t ex = H5Aexists(obj, name);
    if (ex <= 0) return ex < 0 ? -1 : 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a), mt = H5I_INVALID_HID;
    int ret = -1;
    if (t < 0 || sp < 0 || H5Tget_class(t) != H5T_STRING ||
        H5Sget_simple_extent_npoints(sp) != 1)
        goto done;
    htri_t vl = H5Tis_variable_str(t);
    /* the memory string type takes the file's character set: HDF5 does not convert between
     * ASCII and UTF-8 (h5py writes UTF-8) */
    if (vl < 0 || (mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0) goto done;
    if (vl) {
        char *v = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &v) < 0) goto done;
        snprintf(buf, len, "%s", v ? v : "");
        if (v) H5free_memory(v);
    } else {
        char v[258];
        size_t sz = H5Tget_size(t);
        if (sz == 0 || sz > 256 || H5Tset_size(mt, sz + 1) < 0 ||
            H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 || H5Aread(a, mt, v) < 0)
            goto done;
        v[sz] = '\0';
        snprintf(buf, len, "%s", v);
    }
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == ' ') buf[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) buf[i] = '?';
    ret = 1;
done:
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return ret;
}

/* Why H5Dopen2 failed: the path is missing, or names something that is not a dataset. */
static int dataset_open_error(const fkm_reader *r, hid_t file, fkm_error *err)
{
    char detail[256];
    fkm_h5_detail(detail, sizeof detail); /* before H5Oopen clears the error stack */
    hid_t obj = H5Oopen(file, r->dset, H5P_DEFAULT);
    if (obj < 0)
        return fkm_fail(err, FKM_EINPUT,
                        "%s '%s': dataset '%s' not found (`fkm info %s` lists them)", r->role,
                        r->file, r->dset, r->file);
    H5I_type_t t = H5Iget_type(obj);
    H5Oclose(obj);
    if (t == H5I_GROUP)
        return fkm_fail(err, FKM_EINPUT, "%s '%s': '%s' is a group, not a dataset", r->role,
                        r->file, r->dset);
    if (t != H5I_DATASET)
        return fkm_fail(err, FKM_EINPUT, "%s '%s': '%s' is not a dataset", r->role, r->file,
                        r->dset);
    return fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s' cannot be opened (HDF5: %s)", r->role,
                    r->file, r->dset, detail);
}

#define H5_TYPES_OK                                                                            \
    "expected float32 or float16 (or float64, int8, uint8, and bfloat16 stored as uint16 with "  \
    "the attribute dtype = \"bfloat16\")"

/* The element type of the dataset and the memory type that reads it raw. */
static int pick_type(fkm_reader *r, h5_state *s, hid_t ftype, fkm_error *err)
{
    char tname[64], detail[256], attr[128];
    const H5T_class_t cls = H5Tget_class(ftype);
    const size_t size = H5Tget_size(ftype);

    if (cls == H5T_FLOAT && size == 2 && fkm_h5_is_half(ftype)) {
        r->elem = FKM_EL_F16;
        /* same byte order as the host: read with the file's own type, so HDF5 copies the bits
         * without a conversion pass; otherwise a native half type makes it swap the bytes */
        if (H5Tget_order(ftype) == H5Tget_order(H5T_NATIVE_FLOAT))
            s->mem_type = H5Tcopy(ftype);
        else
            s->mem_type = fkm_h5_half_type(H5T_NATIVE_FLOAT);
        if (s->mem_type < 0)
            return fkm_fail(err, FKM_ERUNTIME,
                            "%s '%s': cannot make a float16 memory type (HDF5: %s)", r->role,
                            r->file, fkm_h5_detail(detail, sizeof detail));
        s->own_mem = 1;
        return FKM_OK;
    }
    if (cls == H5T_FLOAT && size == 2)
        return fkm_fail(err, FKM_EINPUT,
                        "%s '%s': dataset '%s' has type %s; store bfloat16 as uint16 with the "
                        "attribute dtype = \"bfloat16\"",
                        r->role, r->file, r->dset, fkm_h5_type_name(ftype, tname, sizeof tname));
    if (cls == H5T_FLOAT) {
        r->elem = size == 8 ? FKM_EL_F64 : FKM_EL_F32;
        s->direct = 1;
        return FKM_OK;
    }
    if (cls == H5T_INTEGER && size == 1) {
        const int is_signed = H5Tget_sign(ftype) != H5T_SGN_NONE;
        r->elem = is_signed ? FKM_EL_I8 : FKM_EL_U8;
        s->mem_type = is_signed ? H5T_NATIVE_SCHAR : H5T_NATIVE_UCHAR;
        return FKM_OK;
    }
    if (cls == H5T_INTEGER && size == 2) {
        int a = fkm_h5_dtype_attr(s->dset, attr, sizeof attr);
        if (a < 0)
            return fkm_fail(err, FKM_EINPUT,
                            "%s '%s': dataset '%s': its attribute 'dtype' is not one string "
                            "(expected dtype = \"bfloat16\")",
                            r->role, r->file, r->dset);
        if (a == 0)
            return fkm_fail(err, FKM_EINPUT,
                            "%s '%s': dataset '%s' has type %s; if it holds bfloat16 bits, add "
                            "the attribute dtype = \"bfloat16\"",
                            r->role, r->file, r->dset,
                            fkm_h5_type_name(ftype, tname, sizeof tname));
        if (strcmp(attr, "bfloat16") != 0)
            return fkm_fail(err, FKM_EINPUT,
                            "%s '%s': dataset '%s' of type %s has the attribute dtype = \"%s\"; "
                            "only \"bfloat16\" is understood",
                            r->role, r->file, r->dset,
                            fkm_h5_type_name(ftype, tname, sizeof tname), attr);
        if (H5Tget_sign(ftype) != H5T_SGN_NONE)
            return fkm_fail(err, FKM_EINPUT,
                            "%s '%s': dataset '%s' is marked bfloat16 but stored as int16; "
                            "store the bits as uint16",
                            r->role, r->file, r->dset);
        r->elem = FKM_EL_BF16;
        s->mem_type = H5T_NATIVE_UINT16; /* HDF5 swaps the bytes of big-endian files */
        return FKM_OK;
    }
    return fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s' has type %s, " H5_TYPES_OK, r->role,
                    r->file, r->dset, fkm_h5_type_name(ftype, tname, sizeof tname));
}

/* Read rows [row0, row0+nrows) (checked) with memory type `mtype` into dst. */
static int read_rows(fkm_reader *r, h5_state *s, int64_t row0, int64_t nrows, void *dst,
                     hid_t mtype, fkm_error *err)
{
    char detail[256];
    int st = FKM_OK;
    hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)nrows, (hsize_t)r->d};
    hid_t mspace = H5Screate_simple(s->rank, count, NULL);
    if (mspace < 0)
        return fkm_fail(err, FKM_ERUNTIME,
                        "%s '%s': cannot make a dataspace of %lld rows (HDF5: %s)", r->role,
                        r->file, (long long)nrows, fkm_h5_detail(detail, sizeof detail));
    if (H5Sselect_hyperslab(s->fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0)
        st = fkm_fail(err, FKM_ERUNTIME,
                      "%s '%s': cannot select rows [%lld, %lld) of '%s' (HDF5: %s)", r->role,
                      r->file, (long long)row0, (long long)(row0 + nrows), r->dset,
                      fkm_h5_detail(detail, sizeof detail));
    else if (H5Dread(s->dset, mtype, mspace, s->fspace, H5P_DEFAULT, dst) < 0)
        st = fkm_fail(err, FKM_ERUNTIME,
                      "%s '%s': reading rows [%lld, %lld) of '%s' failed (HDF5: %s)", r->role,
                      r->file, (long long)row0, (long long)(row0 + nrows), r->dset,
                      fkm_h5_detail(detail, sizeof detail));
    H5Sclose(mspace);
    return st;
}

static int h5_read(fkm_reader *r, int64_t row0, int64_t nrows, void *dst, int f32,
                   fkm_error *err)
{
    h5_state *s = r->impl;
    if (s->direct) /* float32/float64: HDF5 converts to native float */
        return read_rows(r, s, row0, nrows, dst, H5T_NATIVE_FLOAT, err);
    if (!f32 && r->elem == FKM_EL_F16) /* the half bits themselves */
        return read_rows(r, s, row0, nrows, dst, s->mem_type, err);

    /* read the raw elements, then convert here (HDF5's soft float conversion is slow) */
    const size_t count = (size_t)nrows * (size_t)r->d, bytes = count * fkm_elem_size(r->elem);
    if (bytes > s->scratch_bytes) {
        free(s->scratch);
        s->scratch_bytes = 0;
        s->scratch = fkm_malloc(bytes, "read buffer", err);
        if (!s->scratch) return FKM_ENOMEM;
        s->scratch_bytes = bytes;
    }
    int st = read_rows(r, s, row0, nrows, s->scratch, s->mem_type, err);
    if (st) return st;
    fkm_elem_to_f32(r->elem, s->scratch, count, dst);
    return FKM_OK;
}

static const fkm_reader_ops h5_ops = {h5_read, h5_close};

int fkm_h5_reader_open(fkm_reader *r, fkm_dsinfo *info, fkm_error *err)
{
    const char *role = r->role, *file = r->file, *dataset = r->dset;
    hid_t ftype = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    char detail[256];
    int st = FKM_OK;

    h5_state *s = fkm_calloc(1, sizeof *s, "reader", err);
    if (!s) return FKM_ENOMEM;
    s->file = s->dset = s->fspace = s->mem_type = H5I_INVALID_HID;
    r->impl = s;
    snprintf(r->format, sizeof r->format, "HDF5");

    st = fkm_h5_open_ro(role, file, &s->file, err);
    if (st) goto fail;

    s->dset = H5Dopen2(s->file, dataset, H5P_DEFAULT);
    if (s->dset < 0) {
        st = dataset_open_error(r, s->file, err);
        goto fail;
    }

    /* shape: exactly 2-D, at least one row and one column */
    s->fspace = H5Dget_space(s->dset);
    if (s->fspace < 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s': cannot get its shape (HDF5: %s)",
                      role, file, dataset, fkm_h5_detail(detail, sizeof detail));
        goto fail;
    }
    H5S_class_t sclass = H5Sget_simple_extent_type(s->fspace);
    int rank = H5Sget_simple_extent_ndims(s->fspace);
    if (sclass == H5S_NULL || sclass == H5S_SCALAR) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s' is %s, expected 2-D (rows × columns)",
                      role, file, dataset,
                      sclass == H5S_NULL ? "empty (null dataspace)" : "a scalar");
        goto fail;
    }
    if (rank < 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s': cannot get its rank (HDF5: %s)",
                      role, file, dataset, fkm_h5_detail(detail, sizeof detail));
        goto fail;
    }
    if (rank != 2 && !(rank == 1 && r->vector)) {
        st = fkm_fail(err, FKM_EINPUT,
                      "%s '%s': dataset '%s' is %d-D, expected %s", role, file, dataset, rank,
                      r->vector ? "1-D (one value per row) or 2-D with one column" : "2-D (rows × columns)");
        goto fail;
    }
    s->rank = rank;
    hsize_t dims[2] = {0, 1};
    if (H5Sget_simple_extent_dims(s->fspace, dims, NULL) < 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s': cannot get its shape (HDF5: %s)",
                      role, file, dataset, fkm_h5_detail(detail, sizeof detail));
        goto fail;
    }

    ftype = H5Dget_type(s->dset);
    if (ftype < 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s': cannot get its type (HDF5: %s)",
                      role, file, dataset, fkm_h5_detail(detail, sizeof detail));
        goto fail;
    }
    if ((st = pick_type(r, s, ftype, err))) goto fail;
    r->dtype = fkm_elem_dtype(r->elem);

    if (dims[0] == 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s' has 0 rows", role, file, dataset);
        goto fail;
    }
    if (dims[1] == 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s' has 0 columns", role, file, dataset);
        goto fail;
    }
    /* HDF5 allows dimensions up to 2^64-1; rows × columns must fit our 64-bit indices */
    int64_t elems;
    if (dims[0] > (hsize_t)INT64_MAX || dims[1] > (hsize_t)INT64_MAX ||
        __builtin_mul_overflow((int64_t)dims[0], (int64_t)dims[1], &elems)) {
        st = fkm_fail(err, FKM_EINPUT,
                      "%s '%s': dataset '%s' has %llu × %llu elements, more than 2^63", role,
                      file, dataset, (unsigned long long)dims[0], (unsigned long long)dims[1]);
        goto fail;
    }
    r->n = (int64_t)dims[0];
    r->d = (int64_t)dims[1];

    if (info) {
        dcpl = H5Dget_create_plist(s->dset);
        if (dcpl < 0) {
            st =
                fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s': cannot get its layout (HDF5: %s)",
                         role, file, dataset, fkm_h5_detail(detail, sizeof detail));
            goto fail;
        }
        if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
            hsize_t cdims[2] = {0, 1};
            if (H5Pget_chunk(dcpl, 2, cdims) != rank) {
                st = fkm_fail(err, FKM_EINPUT,
                              "%s '%s': dataset '%s': cannot get its chunk shape (HDF5: %s)", role,
                              file, dataset, fkm_h5_detail(detail, sizeof detail));
                goto fail;
            }
            info->chunked = 1;
            info->chunk[0] = (int64_t)cdims[0];
            info->chunk[1] = (int64_t)cdims[1];
        }
    }

    if (dcpl >= 0) H5Pclose(dcpl);
    H5Tclose(ftype);
    r->ops = &h5_ops;
    return FKM_OK;

fail:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ftype >= 0) H5Tclose(ftype);
    h5_close(r);
    return st;
}
