#!/usr/bin/env bash
# Runs every cargo fuzz target (fuzz/fuzz_targets) for a fixed number of iterations, starting
# from the committed seeds in fuzz/corpus/<target>. New inputs go to a temporary folder, so the
# committed corpus stays as it is; a crash stops the script (exit 1) and leaves its input in
# fuzz/artifacts/<target>/ (docs/testing.md, Fuzzing, says how to turn it into a regression test).
#
#   bash fuzz/run.sh            # 10000 runs per target
#   bash fuzz/run.sh 2000       # what CI runs
#   FUZZ_SECONDS=300 bash fuzz/run.sh   # instead: five minutes per target
#
# cargo-fuzz comes from crates.io into $HATCHERY_TOOLS (default /var/cache/hatchery/cargo-tools,
# outside the clone, so it is installed once per machine). The fuzz build goes to
# $HATCHERY_FUZZ_TARGET (default /var/cache/hatchery/fuzz-target), also kept across clones:
# only hatchery-core and the targets are rebuilt when they change.
#
# cargo fuzz passes nightly-only flags (-Z sanitizer=address, -C passes=sancov-module, ...);
# the stable toolchain accepts them with RUSTC_BOOTSTRAP=1, which is set for this script only.
runs=${1:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/.ci/lib.sh"
tools=${HATCHERY_TOOLS:-$HATCHERY_CACHE/cargo-tools}
target_dir=${HATCHERY_FUZZ_TARGET:-$HATCHERY_CACHE/fuzz-target}
cargo_fuzz_version=0.13.2
export PATH="$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
    echo "fuzz: installing cargo-fuzz $cargo_fuzz_version into $tools"
    # In a temporary build folder of its own, not a CARGO_TARGET_DIR meant for the project.
    env -u CARGO_TARGET_DIR CARGO_INSTALL_ROOT="$tools" \
        cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi

cd "$root"
if [[ -n ${FUZZ_SECONDS:-} ]]; then
    limit=(-max_total_time="$FUZZ_SECONDS")
else
    limit=(-runs="$runs")
fi
start=$SECONDS
cargo fuzz build --target-dir "$target_dir"
echo "fuzz: built the targets in $((SECONDS - start)) s"
passed=0
for target in $(cargo fuzz list); do
    work=$(mktemp -d)
    t0=$SECONDS
    # -timeout: an input that takes 10 s is a hang, reported like a crash.
    if ! cargo fuzz run --target-dir "$target_dir" "$target" "$work" "fuzz/corpus/$target" -- \
        "${limit[@]}" -timeout=10 -print_final_stats=1 2>"$work.log"; then
        tail -n 60 "$work.log"
        echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/"
        echo "fuzz: $passed passed, 1 failed"
        rm -rf "$work" "$work.log"
        exit 1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$' || true)
    echo "fuzz: $target ok: ${execs:-?} inputs in $((SECONDS - t0)) s, no crash"
    rm -rf "$work" "$work.log"
    passed=$((passed + 1))
done
echo "fuzz: $((SECONDS - start)) s in all"
echo "fuzz: $passed passed, 0 failed"
