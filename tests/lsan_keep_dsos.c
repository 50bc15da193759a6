/* Preloaded into the sanitizer runs only (scripts/sanitize.sh): dlclose() keeps the library
 * mapped. Open MPI unloads its MCA components in MPI_Finalize; the leak checker then finds the
 * runtime's once-per-process allocations with stacks in no known module, where the
 * suppressions (tests/lsan.supp, by module name) cannot match them. */
int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
