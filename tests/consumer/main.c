/* Uses the installed header and library: defaults and validation, no MPI needed. */
#include <fkm.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    fkm_params p;
    fkm_params_default(&p);
    fkm_error err;
    if (fkm_params_check(&p, &err) != FKM_EINPUT || !strstr(err.msg, "--input")) return 1;
    p.input = "x.h5";
    p.k = 3;
    if (fkm_params_check(&p, &err) != FKM_OK) return 1;
    printf("consumer: fkm %s, max_iter default %d\n", FKM_VERSION, p.max_iter);
    return 0;
}
