/* fkm's HDF5 dataset checks, on well-formed files: the input describes a file (dataset type,
 * rank and shape, layout, filters, the `dtype` attribute and its string, where /data is)
 * that is written with the HDF5 API and then opened as FILE:/data, read, and listed by
 * fkm_info. Raw bytes as an HDF5 file fuzz HDF5's own parser instead, where HDF5 1.10 leaks,
 * asks for absurd allocations and spins (fuzz_h5_raw.c, fuzz/README.md).
 *
 * Input bytes, in order (missing bytes read as 0): type, rank, dims..., layout, chunk dims...,
 * attribute kind, attribute length, attribute bytes..., attribute place (bit 0: on the root
 * group instead; bit 1: run fkm_info too), name, then the data bytes, repeated to fill the
 * dataset when it is small. */
#include "fuzz_common.h"

#include <hdf5.h>

typedef struct {
    const uint8_t *p;
    size_t n, i;
} input;

static int g_info; /* run fkm_info on this input too */

static unsigned take(input *in) { return in->i < in->n ? in->p[in->i++] : 0; }

/* 0..63, 0..16383, up to 2^30, or a power of two up to 2^63 */
static hsize_t take_dim(input *in)
{
    unsigned b = take(in);
    switch (b >> 6) {
    case 0: return b & 63;
    case 1: return (hsize_t)(b & 63) << 8 | take(in);
    case 2: return (hsize_t)(b & 63) << 24 | (hsize_t)take(in) << 8 | take(in);
    default: return (hsize_t)1 << (32 + (b & 31));
    }
}

static hid_t make_type(unsigned sel)
{
    hid_t t = H5I_INVALID_HID;
    switch (sel % 26) {
    case 0: return H5Tcopy(H5T_IEEE_F32LE);
    case 1: return H5Tcopy(H5T_IEEE_F32BE);
    case 2: return H5Tcopy(H5T_IEEE_F64LE);
    case 3: return H5Tcopy(H5T_IEEE_F64BE);
    case 4:
    case 5: /* IEEE half, both byte orders */
        t = H5Tcopy(sel % 26 == 4 ? H5T_IEEE_F32LE : H5T_IEEE_F32BE);
        H5Tset_fields(t, 15, 10, 5, 0, 10);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 15);
        return t;
    case 6: /* bfloat16 as a float type (refused: it must be uint16 + attribute) */
        t = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(t, 15, 7, 8, 0, 7);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 127);
        return t;
    case 7: return H5Tcopy(H5T_STD_U8LE);
    case 8: return H5Tcopy(H5T_STD_I8LE);
    case 9:
    case 24: return H5Tcopy(H5T_STD_U16LE);
    case 10:
    case 25: return H5Tcopy(H5T_STD_U16BE);
    case 11: return H5Tcopy(H5T_STD_I16LE);
    case 12: return H5Tcopy(H5T_STD_I32LE);
    case 13: return H5Tcopy(H5T_STD_U64BE);
    case 14:
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 8);
        return t;
    case 15:
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        return t;
    case 16:
        t = H5Tcreate(H5T_COMPOUND, 8);
        H5Tinsert(t, "a", 0, H5T_IEEE_F32LE);
        H5Tinsert(t, "b", 4, H5T_IEEE_F32LE);
        return t;
    case 17: {
        hsize_t two = 2;
        return H5Tarray_create2(H5T_IEEE_F32LE, 1, &two);
    }
    case 18: {
        t = H5Tenum_create(H5T_STD_I8LE);
        signed char v = 1;
        H5Tenum_insert(t, "one", &v);
        return t;
    }
    case 19:
        t = H5Tcreate(H5T_OPAQUE, 2);
        H5Tset_tag(t, "two bytes");
        return t;
    case 20: /* a 3-byte float */
        t = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(t, 23, 16, 7, 0, 16);
        H5Tset_size(t, 3);
        H5Tset_ebias(t, 63);
        return t;
    case 21: /* half's layout with another bias: not IEEE half */
        t = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(t, 15, 10, 5, 0, 10);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 14);
        return t;
    case 22: return H5Tcopy(H5T_NATIVE_B8);
    default: return H5Tcopy(H5T_STD_I8BE);
    }
}

/* The dtype attribute (or something posing as it) on obj. */
static void put_attr(hid_t obj, unsigned kind, const char *text, size_t len)
{
    hid_t sp = H5I_INVALID_HID, t = H5I_INVALID_HID, a = H5I_INVALID_HID;
    const char *vl = text;
    char fixed[2][64];
    switch (kind % 10) {
    case 0: return;
    case 1:
    case 2:
    case 9: /* variable-length string, ASCII or UTF-8; 9: exactly "bfloat16" */
        if (kind % 10 == 9) vl = "bfloat16";
        sp = H5Screate(H5S_SCALAR);
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        if (kind % 10 != 1) H5Tset_cset(t, H5T_CSET_UTF8);
        a = H5Acreate2(obj, "dtype", t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, t, &vl);
        break;
    case 3:
    case 4:
    case 5: /* fixed length, each padding */
        sp = H5Screate(H5S_SCALAR);
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, len ? len : 1);
        H5Tset_strpad(t, kind % 10 == 3   ? H5T_STR_NULLTERM
                         : kind % 10 == 4 ? H5T_STR_NULLPAD
                                          : H5T_STR_SPACEPAD);
        memset(fixed[0], 0, sizeof fixed[0]);
        memcpy(fixed[0], text, len);
        a = H5Acreate2(obj, "dtype", t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, t, fixed[0]);
        break;
    case 6: { /* not a string */
        int v = (int)len;
        sp = H5Screate(H5S_SCALAR);
        a = H5Acreate2(obj, "dtype", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_INT, &v);
        break;
    }
    case 7: { /* two strings */
        hsize_t two = 2;
        sp = H5Screate_simple(1, &two, NULL);
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 64);
        memset(fixed, 0, sizeof fixed);
        memcpy(fixed[0], text, len);
        memcpy(fixed[1], "bfloat16", 8);
        a = H5Acreate2(obj, "dtype", t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, t, fixed);
        break;
    }
    case 8: /* a string with no value (null dataspace) */
        sp = H5Screate(H5S_NULL);
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 8);
        a = H5Acreate2(obj, "dtype", t, sp, H5P_DEFAULT, H5P_DEFAULT);
        break;
    }
    if (a >= 0) H5Aclose(a);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
}

/* Write the file the input describes; 0 when HDF5 refused it (nothing to test). */
static int make_file(const char *file, input *in)
{
    unsigned tsel = take(in), rsel = take(in);
    int rank = (int)(rsel % 5); /* 0: scalar, 4: null */
    hsize_t dims[3] = {0, 0, 0}, cdims[3] = {1, 1, 1}, maxd[3];
    for (int i = 0; i < rank && i < 3; i++) dims[i] = take_dim(in);
    unsigned layout = take(in);
    for (int i = 0; i < rank && i < 3; i++) cdims[i] = 1 + take(in) % 32;
    unsigned akind = take(in);
    size_t alen = take(in) % 40;
    char atext[64] = {0};
    size_t avail = in->i < in->n ? in->n - in->i : 0, got = alen < avail ? alen : avail;
    if (got) memcpy(atext, in->p + in->i, got); /* missing bytes stay 0 */
    in->i += got;
    unsigned aplace = take(in), name = take(in) % 5;
    g_info = (aplace & 2) != 0;

    int ok = 0;
    hid_t f = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return 0;
    hid_t type = make_type(tsel), space = H5I_INVALID_HID, ds = H5I_INVALID_HID;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (rank == 0)
        space = H5Screate(H5S_SCALAR);
    else if (rank == 4)
        space = H5Screate(H5S_NULL);
    else {
        for (int i = 0; i < rank && i < 3; i++) maxd[i] = layout % 4 == 3 ? H5S_UNLIMITED : dims[i];
        space = H5Screate_simple(rank, dims, maxd);
    }
    if (type < 0 || space < 0) goto done;
    if (rank >= 1 && rank <= 3 && (layout % 4 == 1 || layout % 4 == 3)) {
        H5Pset_chunk(dcpl, rank, cdims);
        if (layout & 4) H5Pset_deflate(dcpl, 1);
        if (layout & 8) H5Pset_shuffle(dcpl);
    } else if (layout % 4 == 2) {
        H5Pset_layout(dcpl, H5D_COMPACT);
    }
    const char *path = name == 0 ? "/data" : name == 1 ? "/g/data" : name == 2 ? "/data/x" : "/real";
    ds = H5Dcreate2(f, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    if (ds < 0) goto done;
    if (name == 3) H5Lcreate_soft("/real", f, "/data", H5P_DEFAULT, H5P_DEFAULT);
    if (name == 4) H5Lcreate_soft("/nowhere", f, "/data", H5P_DEFAULT, H5P_DEFAULT);
    put_attr(aplace & 1 ? f : ds, akind, atext, alen);

    /* data: the rest of the input, repeated, when the dataset is small and of fixed size */
    hssize_t npts = H5Sget_simple_extent_npoints(space);
    size_t esize = H5Tget_size(type);
    if (H5Tis_variable_str(type) <= 0 && npts > 0 && esize > 0 &&
        (uint64_t)npts <= (uint64_t)(1 << 16) / esize && in->i < in->n) {
        size_t bytes = (size_t)npts * esize;
        uint8_t *buf = malloc(bytes);
        for (size_t i = 0; i < bytes; i++) buf[i] = in->p[in->i + i % (in->n - in->i)];
        H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        free(buf);
    }
    ok = 1;
done:
    if (ds >= 0) H5Dclose(ds);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Fclose(f);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once = 0;
    if (!once) { /* fkm_info prints a line per dataset; HDF5 would print its error stacks */
        once = 1;
        if (!freopen("/dev/null", "w", stdout)) abort();
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    }
    input in = {data, size, 0};
    const char *file = fz_path("in.h5");
    if (!make_file(file, &in)) return 0;
    FZ_ASSERT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "the harness left HDF5 ids open");

    fz_open_and_read(file, "/data", 1);
    if (g_info) { /* `fkm info` walks every dataset (half the inputs: HDF5 opens are slow) */
        fkm_error err;
        int st = fkm_info(file, &err);
        FZ_ASSERT(st == FKM_OK || strstr(err.msg, file), "fkm_info %d: %s", st, err.msg);
    }
    FZ_ASSERT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "fkm left HDF5 ids open");
    return 0;
}
