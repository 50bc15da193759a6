#!/usr/bin/env bash
# Residency tiers: rows kept in memory and rows re-read from the file every iteration give
# bitwise the same labels and centroids for the same --chunk-rows, whatever the chunk size
# (1 row, a prime, larger than the shard), on 1 and 3 ranks. BACKEND selects the backend
# (cpu here; the gpu label runs it with cuda, where the host tier streams from pinned memory).
source "$(dirname "$0")/lib.sh"
BACKEND=${BACKEND:-cpu}
tiers=(device file)
[ "$BACKEND" = cuda ] && tiers=(device host file)
"$FKM" gen --output "$T/x.h5" --n 4099 --d 13 --clusters 7 --seed 6 --dtype f16 || fail gen
for ranks in 1 3; do
  for chunk in 1 7919 997 100000; do
    [ $chunk -eq 1 ] && [ $ranks -eq 3 ] && continue   # one-row chunks: once is enough
    for tier in "${tiers[@]}"; do
      mpirun_n $ranks "$FKM" fit --input "$T/x.h5" --k 7 --iters 6 --tol 0 --backend "$BACKEND" \
        --residency $tier --chunk-rows $chunk --output "$T/$tier.h5" --labels -q || fail "fit $tier chunk $chunk"
    done
    for tier in "${tiers[@]:1}"; do
      $CHECK same "$T/device.h5" "$T/$tier.h5" > /dev/null \
        && ok "$ranks ranks, chunk $chunk: $tier == device (bitwise)" || fail "$ranks ranks, chunk $chunk: $tier differs"
    done
  done
done
# the log says which residency and chunk size were chosen
"$FKM" fit --input "$T/x.h5" --k 7 --iters 2 --backend "$BACKEND" --residency file > "$T/log.txt" || fail "log run"
grep -q "residency=file" "$T/log.txt" && grep -q "chunk_rows=" "$T/log.txt" && ok "log names residency and chunk" \
  || fail "log: $(head -1 "$T/log.txt")"
finish
