#!/usr/bin/env bash
# fkm fit --backend cuda with streamed rows (label gpu; skipped without a visible GPU):
#  - the measured chunk rule: without --chunk-rows, the host and file residencies log one
#    "chunk: measured" line on rank 0 (also with 2 ranks) and pick a chunk within the rule's
#    bounds (the shard in a power-of-two number ≥ 2 of chunks of [8 MiB, 1 GiB] of rows), the
#    start line's chunk_rows and the output's chunk_rows attribute; --chunk-rows pins it (no
#    measurement), -q silences the line, the device residency does not measure;
#  - with the measured chunk, the host and file tiers (the file through the reader thread,
#    several passes: the row norms cached after the first) equal the device tier bitwise;
#  - a read failing in the reader thread mid-fit (the .fbin input truncated after a few
#    iterations) ends the fit with status 1, naming the file and the rows, and leaves no
#    output file.
source "$(dirname "$0")/lib.sh"
if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then echo "no GPU: skipped"; exit 77; fi
N=2000003
D=32
RB=$((D * 4))
"$FKM" gen --output "$T/x.h5" --n $N --d $D --clusters 64 --seed 5 || fail gen
common=(--input "$T/x.h5" --k 64 --iters 3 --tol 0 --seed 2 --backend cuda --labels)
attr() { $PYTHON -c "import h5py, sys; print(int(h5py.File(sys.argv[1]).attrs['chunk_rows']))" "$1"; }
startchunk() { sed -n 's/.*chunk_rows=\([0-9]*\).*/\1/p' "$1" | head -1; }
# in_bounds SHARD_ROWS CHUNK: ceil(shard / 2^j) == chunk for some j >= 1, chunk rows in [8 MiB, 1 GiB]
in_bounds() {
  $PYTHON - "$1" "$2" "$RB" <<'PY'
import sys
n, c, rb = map(int, sys.argv[1:])
pows = [p for p in (2 ** j for j in range(1, 40)) if -(-n // p) == c]
assert pows, "chunk %d is not the shard of %d rows in a power of two of chunks" % (c, n)
assert c * rb <= 2 ** 30, "chunk of %d bytes" % (c * rb)
assert c * rb >= 8 * 2 ** 20 or n * rb < 16 * 2 ** 20, "chunk of %d bytes" % (c * rb)
PY
}

for tier in host file; do
  "$FKM" fit "${common[@]}" --residency $tier --output "$T/$tier.h5" > "$T/$tier.txt" || fail "$tier fit"
  lines=$(grep -c "^chunk: measured" "$T/$tier.txt")
  c=$(startchunk "$T/$tier.txt")
  [ "$lines" = 1 ] && [ -n "$c" ] && in_bounds $N "$c" && [ "$(attr "$T/$tier.h5")" = "$c" ] \
    && ok "$tier: measured chunk $c within bounds, logged once, written as chunk_rows: $(grep '^chunk: measured' "$T/$tier.txt")" \
    || fail "$tier: measured chunk: $lines lines, chunk '$c': $(head -3 "$T/$tier.txt")"
  "$FKM" fit "${common[@]}" --residency device --chunk-rows "$c" --output "$T/dev_$tier.h5" -q || fail "device fit"
  $CHECK same "$T/$tier.h5" "$T/dev_$tier.h5" > /dev/null \
    && ok "$tier with the measured chunk == device with --chunk-rows $c (bitwise)" || fail "$tier differs from device"
done
# two ranks sharing the GPU: each measures, the smallest chunk wins, rank 0 logs one line
mpirun_n 2 "$FKM" fit "${common[@]}" --comm mpi --residency host --output "$T/h2.h5" > "$T/h2.txt" || fail "2-rank host fit"
c=$(startchunk "$T/h2.txt")
[ "$(grep -c '^chunk: measured' "$T/h2.txt")" = 1 ] && in_bounds $(((N + 1) / 2)) "$c" && [ "$(attr "$T/h2.h5")" = "$c" ] \
  && ok "2 ranks: one measured line, chunk $c within bounds" || fail "2 ranks: $(head -3 "$T/h2.txt")"
# --chunk-rows pins the chunk; -q silences the line; the device residency measures nothing
"$FKM" fit "${common[@]}" --residency host --chunk-rows 100000 --output "$T/pin.h5" > "$T/pin.txt" || fail "pinned fit"
! grep -q "^chunk: measured" "$T/pin.txt" && [ "$(startchunk "$T/pin.txt")" = 100000 ] && [ "$(attr "$T/pin.h5")" = 100000 ] \
  && ok "--chunk-rows 100000 pins the chunk (no measurement)" || fail "--chunk-rows: $(head -2 "$T/pin.txt")"
"$FKM" fit "${common[@]}" --residency file -q --output "$T/q.h5" > "$T/q.txt" || fail "quiet fit"
[ ! -s "$T/q.txt" ] && ok "-q: nothing logged" || fail "-q logged: $(head -2 "$T/q.txt")"
"$FKM" fit "${common[@]}" --residency device --output "$T/d.h5" > "$T/dev.txt" || fail "device fit"
! grep -q "^chunk: measured" "$T/dev.txt" && ok "device residency: no measurement" || fail "device measured"

# a read error in the reader thread, mid-fit: the input truncated after a few iterations
NF=300007
$PYTHON - "$T/t.fbin" $NF <<'PY'
import numpy as np, sys
n = int(sys.argv[2])
x = np.random.default_rng(3).standard_normal((n, 32), dtype=np.float32)
with open(sys.argv[1], "wb") as f:
    np.array([n, 32], "<u4").tofile(f)
    x.tofile(f)
PY
"$FKM" fit --input "$T/t.fbin" --k 16 --iters 1000000 --tol 0 --backend cuda --residency file \
  --chunk-rows 10007 --output "$T/t.h5" > "$T/t.txt" 2> "$T/t.err" &
pid=$!
for _ in $(seq 1 600); do
  [ "$(grep -c '^iter' "$T/t.txt" 2> /dev/null)" -ge 3 ] && break
  kill -0 $pid 2> /dev/null || break
  sleep 0.1
done
truncate -s $((8 + 150000 * 32 * 4)) "$T/t.fbin"
for _ in $(seq 1 600); do kill -0 $pid 2> /dev/null || break; sleep 0.1; done
if kill -0 $pid 2> /dev/null; then
  fail "truncated input: the fit still runs 60 s later"
  kill -9 $pid
fi
wait $pid
rc=$?
[ $rc -eq 1 ] && grep -q "t.fbin" "$T/t.err" && grep -q "rows \[" "$T/t.err" && [ ! -e "$T/t.h5" ] \
  && ok "read error in the reader thread: status 1, $(head -c 400 "$T/t.err")" \
  || fail "read error: status $rc, $(grep -c '^iter' "$T/t.txt") iterations, message: $(head -c 600 "$T/t.err")"
finish
