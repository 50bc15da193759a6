# A throwaway one-node Slurm cluster on this machine, for tests (sourced; bash).
#
#   lslurm_install LOGDIR   install slurm-wlm + munge with apt when missing (root only);
#                           returns 77 when they are missing and we are not root
#   lslurm_up LOGDIR        start munged, slurmctld and slurmd with a private configuration
#                           (LOGDIR/slurm.conf, gres.conf and the daemons' logs; state, spool
#                           and the munge socket in a short /tmp/fkmsl.* folder, since Unix
#                           socket paths must stay short); exports SLURM_CONF and waits until
#                           the node is idle. Node: `hostname -s`, CPUs = nproc, RealMemory 80 %
#                           of the available memory, 2 GPUs that are /dev/null and /dev/zero (so
#                           that GPU requests such as --gpus-per-node=2 of the templates can be
#                           scheduled; the CPU backend never opens them), partition "fkm".
#   lslurm_down             cancel every job, stop the daemons, kill by pid whatever is left
#                           of what they started (processes whose environment holds this
#                           cluster's LSLURM_TAG), delete the /tmp folder. Safe to call twice
#                           and after a partial start; use it in an EXIT trap.
#   lslurm_job_field JOB F  one field (JobState, Restarts, ExitCode, ...) of scontrol show job
#
# Nothing is written outside LOGDIR and the /tmp folder, and the ports are free ones picked at
# start, so a real Slurm on the machine and other runs of the test are left alone.

LSLURM_RT=""
LSLURM_PIDS=()
LSLURM_TAG=""

lslurm_log() { echo "localslurm: $*"; }

lslurm_install() {
    local log=$1 missing=() c
    export PATH=$PATH:/usr/sbin:/sbin
    for c in munged slurmctld slurmd sbatch scontrol squeue sinfo scancel srun; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        lslurm_log "SKIP: ${missing[*]} not installed, and only root may install them"
        return 77
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        lslurm_log "SKIP: ${missing[*]} not installed and no apt-get here"
        return 77
    fi
    lslurm_log "installing slurm-wlm and munge (missing: ${missing[*]})"
    mkdir -p "$log"
    if ! { timeout 300 apt-get update -qq -o DPkg::Lock::Timeout=120 &&
           DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends \
               -o DPkg::Lock::Timeout=120 slurm-wlm munge; } >"$log/apt.log" 2>&1; then
        tail -20 "$log/apt.log"
        lslurm_log "apt-get install slurm-wlm munge failed"
        return 1
    fi
}

lslurm_free_ports() {
    "${PYTHON:-python3}" -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])'
}

lslurm_job_field() {
    timeout 15 scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

lslurm_up() {
    local log=$1
    mkdir -p "$log" || return 1
    export PATH=$PATH:/usr/sbin:/sbin
    LSLURM_TAG="fkm-lslurm-$$-$RANDOM$RANDOM"
    export LSLURM_TAG # every process started from here on carries it (see lslurm_down)
    LSLURM_RT=$(mktemp -d /tmp/fkmsl.XXXXXX) || return 1
    chmod 755 "$LSLURM_RT"
    mkdir -p "$LSLURM_RT/state" "$LSLURM_RT/spool" "$LSLURM_RT/munge"
    chmod 700 "$LSLURM_RT/munge"
    local host cpus mem ports ctlport dport
    host=$(hostname -s 2>/dev/null || uname -n | cut -d. -f1)
    # nproc honours OMP_NUM_THREADS: ask without it; at least 2 CPUs (for 2 ranks)
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
    [ "$cpus" -ge 2 ] 2>/dev/null || cpus=2
    mem=$(awk '/^MemAvailable:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
    ports=$(lslurm_free_ports) || return 1
    read -r ctlport dport <<<"$ports"

    # munge: a private key and socket
    dd if=/dev/urandom of="$LSLURM_RT/munge/munge.key" bs=1024 count=1 status=none || return 1
    chmod 400 "$LSLURM_RT/munge/munge.key"
    munged -F --force --socket="$LSLURM_RT/munge.sock" --key-file="$LSLURM_RT/munge/munge.key" \
        --pid-file="$LSLURM_RT/munge/munged.pid" --seed-file="$LSLURM_RT/munge/seed" \
        --log-file="$log/munged.log" >"$log/munged.out" 2>&1 &
    LSLURM_PIDS+=($!)
    local i
    for i in $(seq 1 50); do [ -S "$LSLURM_RT/munge.sock" ] && break; sleep 0.1; done
    if ! [ -S "$LSLURM_RT/munge.sock" ]; then
        lslurm_log "munged did not start:"; cat "$log/munged.out" "$log/munged.log" 2>/dev/null
        return 1
    fi

    cat >"$log/slurm.conf" <<EOF
# written by tests/slurm/localslurm.sh: a throwaway one-node cluster
ClusterName=fkmtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctlport
SlurmdPort=$dport
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$LSLURM_RT/munge.sock
CredType=cred/munge
StateSaveLocation=$LSLURM_RT/state
SlurmdSpoolDir=$LSLURM_RT/spool
SlurmctldPidFile=$LSLURM_RT/slurmctld.pid
SlurmdPidFile=$LSLURM_RT/slurmd.pid
SlurmctldLogFile=$log/slurmctld.log
SlurmdLogFile=$log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
InactiveLimit=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=fkm Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$log/gres.conf" <<EOF
AutoDetect=off
NodeName=$host Name=gpu File=/dev/null
NodeName=$host Name=gpu File=/dev/zero
EOF
    export SLURM_CONF=$log/slurm.conf
    slurmctld -D -f "$SLURM_CONF" >"$log/slurmctld.out" 2>&1 &
    LSLURM_PIDS+=($!)
    slurmd -D -f "$SLURM_CONF" >"$log/slurmd.out" 2>&1 &
    LSLURM_PIDS+=($!)
    local st=""
    for i in $(seq 1 150); do # 30 s
        st=$(timeout 10 sinfo -h -N -n "$host" -o %t 2>/dev/null | head -1)
        [ "$st" = idle ] && break
        sleep 0.2
    done
    if [ "$st" != idle ]; then
        lslurm_log "node $host is '$st', not idle, after 30 s"
        timeout 10 scontrol show node "$host" 2>&1 | head -20
        tail -15 "$log/slurmctld.log" "$log/slurmd.log" "$log/slurmctld.out" "$log/slurmd.out" 2>/dev/null
        return 1
    fi
    lslurm_log "up: node $host idle ($cpus CPUs, ${mem} MB, 2 fake GPUs), ports $ctlport/$dport, runtime $LSLURM_RT"
}

# Kill (SIGKILL, by pid) every process that carries this cluster's tag, except this shell.
lslurm_sweep() {
    [ -n "$LSLURM_TAG" ] || return 0
    local d pid kv hit=()
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [ "$pid" = "$$" ] && continue
        [ "$pid" = "${BASHPID:-$$}" ] && continue
        while IFS= read -r -d '' kv; do
            if [ "$kv" = "LSLURM_TAG=$LSLURM_TAG" ]; then hit+=("$pid"); break; fi
        done 2>/dev/null <"$d/environ"
    done
    if [ ${#hit[@]} -gt 0 ]; then
        lslurm_log "killing leftover processes ${hit[*]}"
        kill -9 "${hit[@]}" 2>/dev/null
    fi
}

lslurm_down() {
    [ -n "$LSLURM_TAG" ] || return 0
    local i p alive
    if [ -n "${SLURM_CONF:-}" ] && [ ${#LSLURM_PIDS[@]} -gt 1 ]; then
        timeout 15 scancel --quiet --partition=fkm 2>/dev/null
        for i in $(seq 1 40); do # 10 s for jobs to end
            [ -z "$(timeout 10 squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.25
        done
    fi
    # daemons in reverse order of start: slurmd, slurmctld, munged
    for ((i = ${#LSLURM_PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${LSLURM_PIDS[i]}" 2>/dev/null
    done
    for i in $(seq 1 50); do # 10 s
        alive=0
        for p in "${LSLURM_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.2
    done
    for p in "${LSLURM_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${LSLURM_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    lslurm_sweep
    [ -n "$LSLURM_RT" ] && rm -rf "$LSLURM_RT"
    LSLURM_PIDS=()
    LSLURM_RT=""
    LSLURM_TAG=""
    unset LSLURM_TAG
}
