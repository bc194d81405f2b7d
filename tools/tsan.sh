#!/usr/bin/env bash
# Runs the suite (or the targets given) under ThreadSanitizer: clang-16, -fsanitize=thread, in a
# Bazel output base of its own so the gcc build stays cached. Each ringlb a test starts inherits
# TSAN_OPTIONS, so a race in it aborts it (halt_on_error) and fails its test.
#   tools/tsan.sh                    # every test of //... (the manual package test aside)
#   tools/tsan.sh //tests:foo_test
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh || exit 1
targets=("$@")
# Not //... itself: in this output base the gcc build's bazel-* links are plain directories, and
# //... would descend into them. The default output base knows them, so it lists the tests.
[ ${#targets[@]} -eq 0 ] && mapfile -t targets < <(bazel query 'tests(//...) except attr(tags, "manual", //...)' 2>/dev/null)
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:external_symbolizer_path=/usr/bin/llvm-symbolizer:suppressions=$PWD/tools/tsan.supp"
# One output base per checkout: one used from another checkout (a removed worktree) keeps runfiles
# that point there, and tests then read empty data files.
base=/tmp/ringlb-tsan-bazel-$(pwd | md5sum | cut -c1-8)
exec bazel --output_base="$base" test --config=tsan --test_env=TSAN_OPTIONS "${targets[@]}"
