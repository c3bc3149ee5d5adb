#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for SECONDS seconds each (reliability
# matrix row Z), after replaying its checked-in seed corpus.
#
#   .ci/fuzz.sh [SECONDS]        default 30
#
# Needs a nightly toolchain (rustup) and cargo-fuzz, which is installed when
# missing. Findings are written to fuzz/artifacts/<target>/; every target runs,
# and the script fails at the end if any of them crashed, printing how to
# replay the input.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

seconds="${1:-30}"
case "$seconds" in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ]; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "== installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi

targets=(record_decode journal_decode codecs segment_recovery store_open consumer_open verify api_model typed_decode)
failed=()

echo "== fuzz: building ${targets[*]}"
(cd fuzz && cargo +nightly fuzz build)

for t in "${targets[@]}"; do
  # The checked-in seeds are read-only input: libFuzzer writes what it finds
  # into the first corpus directory, which is a scratch copy.
  work="fuzz/target/corpus-work/$t"
  mkdir -p "$work" "fuzz/artifacts/$t"
  seeds="fuzz/corpus/$t"
  [ -d "$seeds" ] || mkdir -p "$seeds"
  echo "== fuzz $t (${seconds}s)"
  start=$(date +%s)
  log="fuzz/target/fuzz-$t.log"
  # Every leak fails: a store joins its threads when it goes, so nothing of
  # one is left for LeakSanitizer to find.
  if ! (cd fuzz && cargo +nightly fuzz run "$t" "../$work" "../$seeds" -- \
        -max_total_time="$seconds" -malloc_limit_mb=64 -rss_limit_mb=2048 \
        -print_final_stats=1) >"$log" 2>&1; then
    # The first report in full (its stack is what matters), then the end.
    grep -m1 -A50 -E 'ERROR: |panicked at' "$log" || true
    echo "   ..."
    tail -n 30 "$log"
    echo "!! fuzz target $t failed; log: $log; input(s): fuzz/artifacts/$t/" >&2
    echo "   replay: (cd fuzz && cargo +nightly fuzz run $t artifacts/$t/<file>)" >&2
    failed+=("$t")
    continue
  fi
  end=$(date +%s)
  runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 || true)
  echo "   ok: $runs runs in $((end - start))s (build included), ${cov:-cov: ?}"
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "== fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "== fuzz: all targets passed"
