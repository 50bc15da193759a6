#!/usr/bin/env bash
# cmake --install puts the library, header, program and package config in a prefix, and
# another CMake project builds against it with find_package(fkm).
source "$(dirname "$0")/lib.sh"
cmake --install "$BUILD_DIR" --prefix "$T/prefix" > "$T/install.log" 2>&1 || { cat "$T/install.log"; fail install; finish; }
for f in include/fkm.h bin/fkm; do [ -e "$T/prefix/$f" ] && ok "$f installed" || fail "$f missing"; done
ls "$T"/prefix/lib*/libfkm.so* > /dev/null 2>&1 && ok "libfkm installed" || fail "libfkm missing"
ls "$T"/prefix/lib*/cmake/fkm/fkmConfig.cmake > /dev/null 2>&1 && ok "package config installed" || fail "fkmConfig.cmake missing"
"$T/prefix/bin/fkm" --version | grep -q "^fkm " && ok "installed fkm runs" || fail "installed fkm does not run"
cmake -S "$SRC_DIR/tests/consumer" -B "$T/consumer" -DCMAKE_PREFIX_PATH="$T/prefix" > "$T/c.log" 2>&1 \
  && cmake --build "$T/consumer" >> "$T/c.log" 2>&1 || { cat "$T/c.log"; fail "consumer build"; finish; }
"$T/consumer/consumer" && ok "find_package(fkm) consumer runs" || fail "consumer run"
finish
