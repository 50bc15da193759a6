#include "output.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

int fkm_output_write(fkm_comm *c, const char *path, const fkm_out_meta *m, const float *centroids,
                     const int64_t *counts, const int32_t *labels, const float *distances,
                     int64_t row0, int64_t nlocal, fkm_error *err)
{
    char tmp[4096];
    long pid = (long)getpid();
    int st = fkm_comm_bcast(c, &pid, sizeof pid, 0, err);
    if (st) return st;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, pid);

    if (c->rank == 0) fkm_out_create(tmp, m, centroids, counts, labels ? m->n : 0, err);
    if ((st = fkm_comm_agree(c, err))) goto fail;

    if (labels) {
        /* Serial HDF5: one writer at a time, in rank order. The token is passed on even
         * after a failure so that no rank waits forever; the agreement below then fails. */
        fkm_error mine;
        fkm_error_clear(&mine);
        if (fkm_comm_turn_wait(c, err)) goto fail;
        fkm_out_write_labels(tmp, row0, nlocal, labels, &mine);
        if (!mine.status && distances)
            fkm_out_write_f32(tmp, "/distances", m->n, row0, nlocal, distances, &mine);
        if (fkm_comm_turn_done(c, err)) goto fail;
        *err = mine;
        if ((st = fkm_comm_agree(c, err))) goto fail;
    }
    if (c->rank == 0 && rename(tmp, path) != 0)
        fkm_fail(err, FKM_ERUNTIME, "output '%s': cannot rename the temporary file into place: %s",
                 path, strerror(errno));
    if ((st = fkm_comm_agree(c, err))) goto fail;
    return FKM_OK;
fail:
    if (c->rank == 0) unlink(tmp);
    return err->status;
}
