#!/usr/bin/env bash
# Runs every Go fuzz target of the module, one at a time, for FUZZTIME each.
#
# Usage: hack/fuzz.sh            (or: make fuzz)
#
# Environment:
#   FUZZTIME      how long to fuzz each target, as go test -fuzztime takes it (default 30s)
#   FUZZMINIMIZETIME  bound on minimizing each new interesting input (default 100x runs): go
#                 test's default of 60 s would spend a short run minimizing large YAML inputs
#                 instead of fuzzing
#   FUZZ_TARGETS  space-separated target names to run instead of all (e.g. "FuzzLoad")
#
# A failing input is written by go test to testdata/fuzz/<target>/ next to the target's
# package; commit it so the failure becomes a regression test that plain "go test" runs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZTIME=${FUZZTIME:-30s}

# The test files: tracked and new ones in a Git work tree, otherwise all of them.
test_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard -- '*_test.go'
	else
		find . -name '*_test.go' -not -path './_output/*' -not -path '*/testdata/*' | sed 's|^\./||'
	fi
}

# Every "func FuzzXxx(f *testing.F)" in a test file, as "package-dir target".
targets=()
while IFS= read -r match; do
	file=${match%%:*}
	name=${match#*:func }
	name=${name%%(*}
	targets+=("./$(dirname "$file") $name")
done < <(test_files | xargs -r grep -H -o '^func Fuzz[A-Za-z0-9_]*(f \*testing\.F)' | sort || true)

if [[ ${#targets[@]} -eq 0 ]]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

failed=()
ran=0
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	if [[ -n ${FUZZ_TARGETS:-} && " $FUZZ_TARGETS " != *" $name "* ]]; then
		continue
	fi
	ran=$((ran + 1))
	printf '\n==> %s %s for %s\n' "$pkg" "$name" "$FUZZTIME"
	# Go's fuzzing coordinator can fail a target with "context deadline exceeded" at the end of
	# -fuzztime without finding anything (golang/go#75804, fixed in Go 1.27): such a failure,
	# which writes no failing input, is run once more; a failing input always fails.
	for attempt in 1 2; do
		corpus="${pkg#./}/testdata/fuzz/$name"
		before=$( (find "$corpus" -type f 2>/dev/null || true) | wc -l)
		log_file=$(mktemp)
		if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "${FUZZMINIMIZETIME:-100x}" "$pkg" 2>&1 | tee "$log_file"; then
			rm -f "$log_file"
			break
		fi
		after=$( (find "$corpus" -type f 2>/dev/null || true) | wc -l)
		if [[ $attempt -eq 1 && $after -eq $before ]] && grep -q 'context deadline exceeded' "$log_file"; then
			echo "fuzz: $name stopped on Go's fuzztime deadline race with no failing input (golang/go#75804); running it again" >&2
			rm -f "$log_file"
			continue
		fi
		rm -f "$log_file"
		failed+=("$pkg $name")
		break
	done
done

if [[ $ran -eq 0 ]]; then
	echo "fuzz: no target matches FUZZ_TARGETS=\"$FUZZ_TARGETS\"" >&2
	exit 1
fi
if [[ ${#failed[@]} -gt 0 ]]; then
	printf '\nfuzz: %d of %d targets failed (the failing inputs are under testdata/fuzz/):\n' "${#failed[@]}" "$ran" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
printf '\nfuzz: %d targets ran for %s each without failure\n' "$ran" "$FUZZTIME"
