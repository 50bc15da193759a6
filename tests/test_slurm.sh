#!/usr/bin/env bash
# The sbatch templates of slurm/ against a real Slurm on this machine (label slurm).
#
# Installs slurm-wlm + munge when missing (root; otherwise skips with 77), starts a private
# one-node cluster (tests/slurm/localslurm.sh) and, with the CPU backend and 2 ranks:
#   1. fkm-1node.sbatch with FKM_LAUNCHER=mpirun, and fkm-multinode.sbatch (held to one node)
#      with FKM_LAUNCHER=srun --mpi=pmix where this Slurm and Open MPI support it: both
#      results have the README's layout and are bitwise equal to a direct mpirun of the fit;
#   2. preemption: a longer fit with a checkpoint every 5 iterations; once it runs and a
#      checkpoint exists, `scancel --signal=USR1 --batch` (the path of --signal=B:USR1@120).
#      The job script must pass the signal on, fkm must write its checkpoint and exit 75, the
#      script must requeue the job, the requeued run must resume from the checkpoint and finish,
#      and the result must be bitwise equal to an uninterrupted direct run. Done once with srun
#      (1-node template) and once with mpirun (multi-node template), or with mpirun only.
# Every daemon started is stopped on every exit path; every wait is bounded.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${SRC_DIR:-$(dirname "$HERE")}
source "$HERE/slurm/localslurm.sh"

# Nothing from an outer Slurm job or from the user's fkm settings may leak into ours.
for v in $(compgen -v | grep -E '^(SLURM_|SBATCH_|SRUN_|SALLOC_|FKM_)'); do unset "$v"; done
export OMP_NUM_THREADS=1 # the same in the direct runs and in the jobs (cpus-per-task=1)
L=$T/slurm
mkdir -p "$L"

lslurm_install "$L"
case $? in
0) ;;
77) exit 77 ;;
*) fail "could not install Slurm"; finish ;;
esac

WATCHDOG=""
cleanup() {
    local rc=$?
    [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
    lslurm_down
    exit $rc
}
trap cleanup EXIT
trap 'echo "test_slurm: interrupted"; exit 130' INT TERM
# Whatever happens, give up after 270 s (the trap above then stops the daemons). Short sleeps
# with no output: once the watchdog is killed, nothing of it keeps CTest's pipe open.
( end=$((SECONDS + 270)); while [ $SECONDS -lt $end ]; do sleep 1 >/dev/null 2>&1; done
  echo "test_slurm: FAIL: 270 s limit reached"; kill -TERM $$ ) &
WATCHDOG=$!
START=$SECONDS

HAVE_CKPT=1
if ! "$FKM" fit --help 2>&1 | grep -q -- --checkpoint; then
    fail "$FKM has no --checkpoint flag: the preemption/requeue part cannot run"
    HAVE_CKPT=0
fi

# ---- inputs and direct (non-Slurm) reference runs ------------------------------------------------
"$FKM" gen --output "$T/small.h5" --n 30011 --d 16 --clusters 10 --seed 7 --dataset /emb >/dev/null || fail "gen small"
SMALL_FIT=(--input "$T/small.h5" --dataset /emb --k 10 --iters 12 --tol 0 --seed 5)
timeout 120 "$MPIEXEC" --oversubscribe -n 2 "$FKM" fit "${SMALL_FIT[@]}" --backend cpu --labels -q \
    --output "$T/ref_small.h5" || fail "direct fit (small)"
# The long fit: 200k x 24 points that take ~250 Lloyd iterations to settle; 150 are run.
LONG_ITERS=150
"$FKM" gen --output "$T/long.h5" --n 200000 --d 24 --clusters 300 --spread 2 --seed 4 >/dev/null || fail "gen long"
if [ $HAVE_CKPT -eq 1 ]; then
    t=$SECONDS
    timeout 200 "$MPIEXEC" --oversubscribe -n 2 "$FKM" fit --input "$T/long.h5" --k 80 --iters $LONG_ITERS \
        --tol 0 --seed 11 --backend cpu -q --output "$T/ref_long.h5" || fail "direct fit (long)"
    ok "uninterrupted long fit: $((SECONDS - t)) s"
    its=$($PYTHON -c 'import h5py,sys; print(int(h5py.File(sys.argv[1],"r").attrs["iterations"]))' "$T/ref_long.h5" 2>/dev/null)
    [ "$its" = $LONG_ITERS ] || fail "the long fit stopped after '$its' iterations, not $LONG_ITERS: pick other data"
fi

# ---- the cluster ------------------------------------------------------------------------------------
t=$SECONDS
if ! lslurm_up "$L"; then
    fail "the local Slurm did not come up (logs in $L)"
    finish
fi
ok "local Slurm up in $((SECONDS - t)) s"
SRUN_LAUNCH=mpirun
if timeout 10 srun --mpi=list 2>&1 | grep -qw pmix; then
    SRUN_LAUNCH=srun
    ok "srun --mpi=list offers pmix: the srun launcher is tested too"
else
    echo "note: srun --mpi=list has no pmix here; only the mpirun launcher is tested"
    timeout 10 srun --mpi=list 2>&1 | sed 's/^/    /'
fi

# submit TEMPLATE [sbatch flags...] -- [VAR=value...]: prints the job id
submit() {
    local tmpl=$1 flags=() vars=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    vars=("$@")
    env "${vars[@]}" timeout 30 sbatch --parsable --chdir="$T" --ntasks-per-node=2 --gpus-per-node=2 \
        --cpus-per-task=1 --time=10 "${flags[@]}" "$SRC/slurm/$tmpl" | cut -d';' -f1
}
state() { lslurm_job_field "$1" JobState; }
# wait_state JOB SECONDS REGEX: 0 once the job's state matches
wait_state() {
    local j=$1 end=$((SECONDS + $2)) s="" r
    while [ $SECONDS -lt $end ]; do
        s=$(state "$j")
        [[ $s =~ ^($3)$ ]] && return 0
        r=$(lslurm_job_field "$j" Reason)
        if [[ $s = PENDING && $r =~ ^(PartitionConfig|BadConstraints|Partition.*Limit|ReqNodeNotAvail.*|NodeDown|JobHeld.*)$ ]]; then
            echo "job $j: pending for a reason that will not pass: $r"
            return 1
        fi
        sleep 0.25
    done
    echo "job $j: state '$s' after $2 s (waited for $3)"
    return 1
}
show() { # diagnostics of a job
    echo "---- job $1: $(timeout 10 scontrol -o show job "$1" 2>&1 | head -c 1500)"
    echo "---- $T/fkm-$1.out:"
    tail -40 "$T/fkm-$1.out" 2>/dev/null
    echo "---- slurmctld.log / slurmd.log (tails):"
    tail -8 "$L/slurmctld.log" "$L/slurmd.log" 2>/dev/null
}
# check_done JOB OUTDIR REF N D K: COMPLETED with status 0, result layout, bitwise = REF
check_done() {
    local j=$1 out=$2/out-$1.h5 bad=0
    [ "$(state "$j")" = COMPLETED ] || { fail "job $j is $(state "$j"), not COMPLETED"; bad=1; }
    [ "$(lslurm_job_field "$j" ExitCode)" = 0:0 ] || { fail "job $j: ExitCode $(lslurm_job_field "$j" ExitCode)"; bad=1; }
    if [ -f "$out" ]; then
        $CHECK layout "$out" "$4" "$5" "$6" || { fail "job $j: layout of $out"; bad=1; }
        $CHECK same "$3" "$out" || { fail "job $j: $out differs from the direct run $3"; bad=1; }
    else
        fail "job $j: no result $out"; bad=1
    fi
    [ -e "$2/ckpt-$j.h5" ] && { fail "job $j: checkpoint left after success"; bad=1; }
    grep -q "fkm-slurm: .* done: $out" "$T/fkm-$j.out" 2>/dev/null || { fail "job $j: no 'done' line in its log"; bad=1; }
    [ $bad -ne 0 ] && show "$j"
    return $bad
}

# ---- 1. plain runs ----------------------------------------------------------------------------------
SMALL_VARS=(FKM_INPUT="$T/small.h5" FKM_DATASET=/emb FKM_K=10 FKM_ITERS=12 FKM_TOL=0 FKM_SEED=5
            "FKM_ARGS=--backend cpu --labels -q")
t=$SECONDS
ja=$(submit fkm-1node.sbatch -- "${SMALL_VARS[@]}" FKM_OUTDIR="$T/a" FKM_LAUNCHER=mpirun)
[ -n "$ja" ] || fail "sbatch fkm-1node.sbatch"
jb=""
if [ $SRUN_LAUNCH = srun ]; then
    jb=$(submit fkm-multinode.sbatch --nodes=1 -- "${SMALL_VARS[@]}" FKM_OUTDIR="$T/b" FKM_LAUNCHER=srun)
    [ -n "$jb" ] || fail "sbatch fkm-multinode.sbatch"
fi
for j in $ja $jb; do
    wait_state "$j" 90 'COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE' || show "$j"
done
[ -n "$ja" ] && check_done "$ja" "$T/a" "$T/ref_small.h5" 30011 16 10 &&
    ok "fkm-1node.sbatch, mpirun launcher: job $ja done, bitwise equal to the direct run"
[ -n "$jb" ] && check_done "$jb" "$T/b" "$T/ref_small.h5" 30011 16 10 &&
    ok "fkm-multinode.sbatch (1 node), srun --mpi=pmix launcher: job $jb done, bitwise equal to the direct run"
echo "plain jobs: $((SECONDS - t)) s"

# ---- 2. preemption: USR1 -> checkpoint -> exit 75 -> requeue -> resume -----------------------------
# requeue_case NAME TEMPLATE LAUNCHER [sbatch flags...]
requeue_case() {
    local name=$1 tmpl=$2 launcher=$3 t=$SECONDS
    shift 3
    local d=$T/$name j ck log
    j=$(submit "$tmpl" "$@" -- FKM_INPUT="$T/long.h5" FKM_K=80 FKM_ITERS=$LONG_ITERS FKM_TOL=0 FKM_SEED=11 \
        FKM_CHECKPOINT_EVERY=5 FKM_OUTDIR="$d" FKM_LAUNCHER="$launcher" "FKM_ARGS=--backend cpu")
    if [ -z "$j" ]; then fail "$name: sbatch $tmpl"; return; fi
    ck=$d/ckpt-$j.h5
    log=$T/fkm-$j.out
    # running, with a checkpoint on disk
    local end=$((SECONDS + 90))
    while [ $SECONDS -lt $end ] && ! { [ "$(state "$j")" = RUNNING ] && [ -f "$ck" ]; }; do sleep 0.2; done
    if ! [ -f "$ck" ] || [ "$(state "$j")" != RUNNING ]; then
        fail "$name: job $j never ran with a checkpoint on disk ($ck)"; show "$j"; return
    fi
    timeout 15 scancel --signal=USR1 --batch "$j" || fail "$name: scancel --signal=USR1 --batch $j"
    # The script requeues the job; Slurm holds a requeued job ~2 min (BeginTime): release it,
    # but not within the second of the requeue: slurmd refuses a credential of the job that is
    # not newer than the revocation of the last one ("Job credential revoked": job FAILED).
    end=$((SECONDS + 60))
    local released=0 s r
    while [ $SECONDS -lt $end ]; do
        s=$(state "$j")
        r=$(lslurm_job_field "$j" Restarts)
        if [ "${r:-0}" -ge 1 ] && [ "$s" = PENDING ]; then
            sleep 2
            timeout 10 scontrol update JobId="$j" StartTime=now && { released=1; break; }
        fi
        [[ $s =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT)$ ]] && break
        sleep 0.25
    done
    if [ $released -ne 1 ]; then
        fail "$name: job $j was not requeued after SIGUSR1 (state $(state "$j"), restarts $(lslurm_job_field "$j" Restarts))"
        show "$j"; return
    fi
    wait_state "$j" 120 'COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY' || { show "$j"; }
    local bad=0 stopped
    grep -q "fkm-slurm: .* got SIGUSR1" "$log" || { fail "$name: the job script did not report SIGUSR1"; bad=1; }
    stopped=$(grep -o "stopped by signal 10 after iteration [0-9]*" "$log" | grep -o '[0-9]*$' | head -1)
    if [ -z "$stopped" ] || [ "$stopped" -ge $LONG_ITERS ]; then
        fail "$name: fkm did not report a stop by SIGUSR1 (signal 10) before iteration $LONG_ITERS"; bad=1
    fi
    grep -q "fkm-slurm: .* fkm exited with status 75" "$log" || { fail "$name: fkm did not exit with 75"; bad=1; }
    grep -q "fkm-slurm: .* requeueing job $j; the next run resumes from $ck" "$log" ||
        { fail "$name: the script did not requeue the job"; bad=1; }
    grep -q "resuming from '$ck' after iteration $stopped" "$log" ||
        { fail "$name: the requeued run did not resume from the checkpoint of iteration $stopped"; bad=1; }
    [ "$(lslurm_job_field "$j" Restarts)" = 1 ] || { fail "$name: Restarts=$(lslurm_job_field "$j" Restarts), not 1"; bad=1; }
    check_done "$j" "$d" "$T/ref_long.h5" 200000 24 80 || bad=1
    if [ $bad -eq 0 ]; then
        ok "$name: $tmpl with $launcher: SIGUSR1 -> checkpoint after iteration $stopped -> exit 75 -> requeued -> resumed -> bitwise equal to the uninterrupted run ($((SECONDS - t)) s)"
    else
        show "$j"
    fi
}
# cancel_case: a plain scancel (SIGTERM to every process of the job) must end the job, not
# requeue it; the last periodic checkpoint stays for a manual resume.
cancel_case() {
    local d=$T/cancel j ck
    j=$(submit fkm-1node.sbatch -- FKM_INPUT="$T/long.h5" FKM_K=80 FKM_ITERS=$LONG_ITERS FKM_TOL=0 FKM_SEED=11 \
        FKM_CHECKPOINT_EVERY=5 FKM_OUTDIR="$d" FKM_LAUNCHER=$SRUN_LAUNCH "FKM_ARGS=--backend cpu")
    if [ -z "$j" ]; then fail "cancel: sbatch"; return; fi
    ck=$d/ckpt-$j.h5
    local end=$((SECONDS + 90))
    while [ $SECONDS -lt $end ] && ! { [ "$(state "$j")" = RUNNING ] && [ -f "$ck" ]; }; do sleep 0.2; done
    timeout 15 scancel "$j" || fail "cancel: scancel $j"
    if wait_state "$j" 60 'CANCELLED|COMPLETED|FAILED|PENDING|REQUEUED'; then
        sleep 2 # a requeue would show by now
        local s r
        s=$(state "$j")
        r=$(lslurm_job_field "$j" Restarts)
        if [ "$s" = CANCELLED ] && [ "$r" = 0 ] && [ -f "$ck" ] && [ ! -e "$d/out-$j.h5" ]; then
            ok "cancel: scancel ends the job (CANCELLED, not requeued), checkpoint kept, no result"
        else
            fail "cancel: after scancel: state $s, restarts $r, checkpoint $([ -f "$ck" ] && echo kept || echo gone)"
            show "$j"
        fi
    else
        fail "cancel: job $j did not end after scancel"; show "$j"
    fi
}
if [ $HAVE_CKPT -eq 1 ]; then
    requeue_case requeue_1node fkm-1node.sbatch $SRUN_LAUNCH
    [ $SRUN_LAUNCH = srun ] && requeue_case requeue_multinode fkm-multinode.sbatch mpirun --nodes=1
    cancel_case
fi

# ---- the two templates keep one body ----------------------------------------------------------------
body() { sed -n '/^# ---- common body/,$p' "$SRC/slurm/$1"; }
if [ -n "$(body fkm-1node.sbatch)" ] && diff <(body fkm-1node.sbatch) <(body fkm-multinode.sbatch) >/dev/null; then
    ok "the two templates share one body"
else
    fail "slurm/fkm-1node.sbatch and slurm/fkm-multinode.sbatch bodies differ below '# ---- common body'"
fi
echo "test_slurm: $((SECONDS - START)) s after the install check"
finish
