/* Helpers shared by the io/ sources (not part of the io.h interface). */
#ifndef FKM_IO_INTERNAL_H
#define FKM_IO_INTERNAL_H

#include "io.h"

#include <hdf5.h>
#include <stddef.h>

/* Turn off HDF5's automatic error-stack printing, so that the user sees only our one-line
 * messages; the detail of a failure is fetched with fkm_h5_detail() instead. */
void fkm_h5_quiet(void);

/* The innermost description on HDF5's error stack of the current thread ("no detail" when
 * empty), for the "(HDF5: ...)" tail of a message. Returns buf. */
const char *fkm_h5_detail(char *buf, size_t len);

/* A new IEEE binary16 float type in the byte order of `base` (a 4-byte float type such as
 * H5T_NATIVE_FLOAT or H5T_IEEE_F32LE), built as h5py does it (HDF5 1.10 has no
 * predefined half). H5I_INVALID_HID on failure; close it with H5Tclose. */
hid_t fkm_h5_half_type(hid_t base);

/* 1 when `type` is an IEEE binary16 float (any byte order), 0 otherwise. */
int fkm_h5_is_half(hid_t type);

/* A short name of an HDF5 type for messages: "float32", "float16", "int64", "string", ... */
const char *fkm_h5_type_name(hid_t type, char *buf, size_t len);

/* Open an existing HDF5 file read-only, telling apart "no such file", "is a directory",
 * "not an HDF5 file" and an HDF5 failure (all FKM_EINPUT, messages "ROLE 'FILE': ..."). */
int fkm_h5_open_ro(const char *role, const char *file, hid_t *fid, fkm_error *err);

/* fkm_gen with an explicit block size in rows (0 = the default, about 64 MiB of output);
 * the tests use it to show that the output does not depend on the blocking. */
int fkm_gen_blocked(const fkm_gen_params *g, int64_t block_rows, fkm_error *err);

#endif
