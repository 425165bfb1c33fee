#!/usr/bin/env bash
# Audit benchmark: measures "imdsguard audit --output json" on a synthetic cluster of 100,000
# pods, 5,000 namespaces, 20,000 NetworkPolicies and 50 AdminNetworkPolicies, splits the time
# between decoding, evaluation and output with the Go benchmarks, and records the figures in
# docs/benchmarks.md between the audit-bench markers (audit-bench-calico, audit-bench-cilium
# when Calico or Cilium policies are added, so each variant keeps its own section).
#
# Usage: hack/bench.sh          (or: make bench)
#
# Environment:
#   BENCH_PODS   pods in the synthetic cluster (default 100000; namespaces and policies scale)
#   BENCH_RUNS   runs of the whole command (default 5)
#   BENCH_COUNT  -count of the Go benchmarks (default 5)
#   BENCH_DOC    file to update (default docs/benchmarks.md; "none" to leave the docs alone)
#   BENCH_CALICO Calico policies added to the cluster (default 0)
#   BENCH_CILIUM Cilium policies added to the cluster (default 0)
#   BENCH_NODES  Nodes added to the cluster, in 20 Karpenter node pools, with the imdsguard
#                agent's state on half of them (default 0: pods name nodes that are not in
#                the input, and the node and instance layers are unknown)
#   BENCH_IAC    1: the infrastructure-code variant (section audit-bench-iac): a Terraform
#                repository of 200 modules (2,000 *.tf files, synth.WriteTerraform) whose EKS
#                managed node groups the cluster's BENCH_NODES nodes (default 1000 here) join;
#                the audit with the repository and without it run in turn, BENCH_RUNS rounds,
#                and BenchmarkRead (internal/iac/scan) times the reading alone
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PODS=${BENCH_PODS:-100000}
SEED=1
RUNS=${BENCH_RUNS:-5}
COUNT=${BENCH_COUNT:-5}
DOC=${BENCH_DOC:-docs/benchmarks.md}
CALICO=${BENCH_CALICO:-0}
CILIUM=${BENCH_CILIUM:-0}
IAC=${BENCH_IAC:-0}
MODULES=200
NODES=${BENCH_NODES:-0}
if ((IAC)) && [[ -z ${BENCH_NODES:-} ]]; then
	NODES=1000
fi
BIN=bin/imdsguard
OUT=_output/bench
INPUT=$OUT/cluster.json
INFRA=$OUT/infra
PARAMS=$OUT/cluster.params
STATS=$OUT/cluster.stats.json

# Targets.
TARGET_WALL_S=5
TARGET_EVAL_S=0.5
TARGET_RSS_KB=$((3 * 1024 * 1024 / 2)) # 1.5 GiB

# shellcheck source=hack/lib/bench.sh
source hack/lib/bench.sh

# json_field prints a numeric field of a flat JSON object.
json_field() { sed -n "s/.*\"$2\": *\([0-9.]*\).*/\1/p" "$1" | head -n1; }

# commas prints a number with thousands separators.
commas() { printf '%s' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }

# The docs section, and what the variant adds to the cluster.
SECTION=audit-bench VARIANT="" VARIANT_ENV="" VARIANT_FLAGS=""
if ((CALICO > 0)); then
	SECTION+=-calico VARIANT+=" with $(commas "$CALICO") Calico policies" VARIANT_ENV+="BENCH_CALICO=$CALICO " VARIANT_FLAGS+=" -calico $CALICO"
fi
if ((CILIUM > 0)); then
	SECTION+=-cilium VARIANT+=" with $(commas "$CILIUM") Cilium policies" VARIANT_ENV+="BENCH_CILIUM=$CILIUM " VARIANT_FLAGS+=" -cilium $CILIUM"
fi

if ((IAC)); then
	SECTION+=-iac VARIANT+=" on $(commas "$NODES") nodes in the EKS node groups of $MODULES Terraform modules" VARIANT_ENV+="BENCH_IAC=1 " VARIANT_FLAGS+=" -nodes $NODES -nodegroups $MODULES -terraform $INFRA"
	if ((NODES != 1000)); then
		VARIANT_ENV+="BENCH_NODES=$NODES "
	fi
elif ((NODES > 0)); then
	SECTION+=-nodes VARIANT+=" on $(commas "$NODES") nodes in 20 node pools" VARIANT_ENV+="BENCH_NODES=$NODES " VARIANT_FLAGS+=" -nodes $NODES -pools 20"
fi

mkdir -p "$OUT"

# 1. The binary (make build normally made it).
if [[ ! -x $BIN ]]; then
	log "building $BIN"
	make build
fi

# 2. GNU time, for peak RSS.
need_gnu_time

# 3. The input, regenerated only when the parameters or the generator changed.
generator=$(ls internal/synth/*.go hack/gencluster/*.go | grep -v '_test\.go$' | xargs cat | sha256sum | cut -c1-16)
params="pods=$PODS seed=$SEED calico=$CALICO cilium=$CILIUM nodes=$NODES iac=$IAC generator=$generator"
if [[ -s $INPUT && -s $STATS && -f $PARAMS && $(cat "$PARAMS") == "$params" ]]; then
	log "reusing $INPUT ($params)"
else
	log "generating $INPUT ($params)"
	rm -f "$PARAMS"
	rm -rf "$INFRA"
	if ((IAC)); then
		go run ./hack/gencluster -pods "$PODS" -seed "$SEED" -calico "$CALICO" -cilium "$CILIUM" -nodes "$NODES" -nodegroups "$MODULES" -terraform "$INFRA" -o "$INPUT.tmp" -stats "$STATS"
	else
		go run ./hack/gencluster -pods "$PODS" -seed "$SEED" -calico "$CALICO" -cilium "$CILIUM" -nodes "$NODES" -pools 20 -o "$INPUT.tmp" -stats "$STATS"
	fi
	mv "$INPUT.tmp" "$INPUT"
	printf '%s\n' "$params" >"$PARAMS"
fi
in_bytes=$(stat -c %s "$INPUT")
in_pods=$(json_field "$STATS" pods)
in_ns=$(json_field "$STATS" namespaces)
in_deploy=$(json_field "$STATS" deployments)
in_netpols=$(json_field "$STATS" networkPolicies)
in_anps=$(json_field "$STATS" adminNetworkPolicies)
in_items=$(json_field "$STATS" items)

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

if ((IAC)); then
	# shellcheck source=hack/lib/bench-iac.sh
	source hack/lib/bench-iac.sh
	exit 0
fi

# 4. The whole command, RUNS times.
cmd=("$BIN" audit --output json --fail-on none "$INPUT")
walls=() rss=() cpus=() syss=()
for i in $(seq 1 "$RUNS"); do
	tfile=$OUT/time.$i.txt
	/usr/bin/time -v -o "$tfile" "${cmd[@]}" >/dev/null
	read -r wall cpu sys kb < <(time_fields "$tfile")
	walls+=("$wall") rss+=("$kb") cpus+=("$cpu") syss+=("$sys")
	log "run $i/$RUNS: wall ${wall}s, cpu ${cpu}s, peak RSS $((kb / 1024)) MiB"
done
wall_med=$(printf '%s\n' "${walls[@]}" | median)
wall_min=$(printf '%s\n' "${walls[@]}" | sort -g | head -n1)
cpu_med=$(printf '%s\n' "${cpus[@]}" | median)
sys_med=$(printf '%s\n' "${syss[@]}" | median)

# One more run with debug logging, which logs how long each phase of the command took.
"${cmd[0]}" --log-level debug "${cmd[@]:1}" 2>"$OUT/phases.log" >/dev/null
# phases prints a table row per logged phase: "| msg | seconds |".
phases() {
	awk '/ msg=[^ ]+ .*duration=/ {
		msg = $0; sub(/.* msg=/, "", msg); sub(/ .*/, "", msg)
		d = $0; sub(/.*duration=/, "", d); sub(/ .*/, "", d)
		if (d ~ /ms$/) s = d / 1000; else if (d ~ /µs$/) s = d / 1e6; else if (d ~ /^[0-9.]+s$/) s = d + 0; else next
		printf "| %s | %.2f s |\n", msg, s
		n++
	}
	END { if (!n) print "| (no phase durations in the debug log) | |" }' "$OUT/phases.log"
}
rss_max=$(printf '%s\n' "${rss[@]}" | sort -n | tail -n1)

# 5. The Go benchmarks, for the split between decoding, evaluation and output.
gocmd=(go test -run '^$' -bench 'Decode|Evaluate|Audit' -benchtime 3x -count "$COUNT" ./internal/audit/)
gocmd_text="go test -run '^\$' -bench 'Decode|Evaluate|Audit' -benchtime 3x -count $COUNT ./internal/audit/"
log "IMDSGUARD_BENCH_PODS=$PODS $gocmd_text"
IMDSGUARD_BENCH_PODS=$PODS IMDSGUARD_BENCH_CALICO=$CALICO IMDSGUARD_BENCH_CILIUM=$CILIUM IMDSGUARD_BENCH_NODES=$NODES "${gocmd[@]}" | tee "$OUT/gobench.txt" >&2

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# values NAME UNIT prints every value of one metric of one benchmark, one per line.
values() {
	awk -v name="$1" -v unit="$2" '
		$1 ~ "^Benchmark" name "(-[0-9]+)?$" {
			for (k = 3; k < NF; k += 2) if ($(k + 1) == unit) print $k
		}' "$OUT/gobench.txt"
}
metric() { values "$1" "$2" | median; }              # median of a metric
fastest() { values "$1" "$2" | sort -g | head -n1; } # smallest value of a metric
ns_s() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1e9 }'; }
ms_s() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.0f MB", b / 1e6 }'; }
share() { awk -v a="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.0f%%", 100 * a / t; else print "-" }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; print (d > 0 ? d : 0) }'; }

decode_med=$(ns_s "$(metric Decode ns/op)") decode_min=$(ns_s "$(fastest Decode ns/op)")
decode_cpu=$(ms_s "$(metric Decode cpu-ms/op)") decode_mbs=$(metric Decode MB/s)
eval_med=$(ns_s "$(metric Evaluate ns/op)") eval_min=$(ns_s "$(fastest Evaluate ns/op)")
eval_cpu=$(ms_s "$(metric Evaluate cpu-ms/op)")
audit_med=$(ns_s "$(metric Audit ns/op)") audit_min=$(ns_s "$(fastest Audit ns/op)")
audit_cpu=$(ms_s "$(metric Audit cpu-ms/op)")
exposures=$(metric Audit exposures) findings=$(metric Audit findings)

# Phases of BenchmarkAudit; evaluation comes from BenchmarkEvaluate and is taken out of audit.Run.
load_ms=$(metric Audit load-ms/op) load_fast=$(fastest Audit load-ms/op)
run_ms=$(metric Audit run-ms/op) run_fast=$(fastest Audit run-ms/op)
write_ms=$(metric Audit write-ms/op) write_fast=$(fastest Audit write-ms/op)
eval_ms=$(awk -v ns="$(metric Evaluate ns/op)" 'BEGIN { print ns / 1e6 }')
eval_fast=$(awk -v ns="$(fastest Evaluate ns/op)" 'BEGIN { print ns / 1e6 }')
rest_ms=$(minus "$run_ms" "$eval_ms") rest_fast=$(minus "$run_fast" "$eval_fast")
total_fast=$(awk -v a="$load_fast" -v b="$run_fast" -v c="$write_fast" 'BEGIN { print a + b + c }')

# 6. Report. Pass or fail is judged on medians (peak RSS on the largest run).
rss_gib=$(awk -v kb="$rss_max" 'BEGIN { printf "%.2f", kb / 1024 / 1024 }')
wall_ok=$(verdict "$wall_med" "$TARGET_WALL_S")
eval_ok=$(verdict "$eval_med" "$TARGET_EVAL_S")
rss_ok=$(verdict "$rss_max" "$TARGET_RSS_KB")

section=$(
	cat <<EOF
<!-- $SECTION:begin -->
## Audit: $(commas "$in_pods")-pod cluster$VARIANT

Generated by \`hack/bench.sh\` on $(date -u +%Y-%m-%d). Reproduce with:

\`\`\`sh
make build && ${VARIANT_ENV}hack/bench.sh
# the input alone:
go run ./hack/gencluster -pods $PODS -seed $SEED$VARIANT_FLAGS -o $INPUT
# the Go benchmarks alone (they generate the same input in a temporary directory):
IMDSGUARD_BENCH_PODS=$PODS ${VARIANT_ENV//BENCH_/IMDSGUARD_BENCH_}$gocmd_text
\`\`\`

**Machine:** $(machine).
Load average (1, 5, 15 min): $load_before before the runs, $load_after after.

**Input:** \`$INPUT\`, $(awk -v b="$in_bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }'), one JSON List of
$(commas "$in_items") items: $(commas "$in_pods") pods, $(commas "$in_ns") namespaces, $(commas "$in_deploy") Deployments, $(commas "$in_netpols") NetworkPolicies,
$in_anps AdminNetworkPolicies (plus service accounts)${VARIANT:+, and ${VARIANT# with }}. Every pod and workload template is evaluated
against the $(awk -v e="$exposures" -v p="$in_pods" -v d="$in_deploy" 'BEGIN { printf "%d", e / (p + d) }') endpoints of all clouds: $(commas "$exposures") exposures, $(commas "$findings") findings.

Wall times are the median and the fastest of the runs; CPU time (user + system) is the
median. Pass or fail is judged on the median.

| Measure | Median | Fastest | CPU | Target | Result |
|---|---|---|---|---|---|
| \`${cmd[*]} > /dev/null\` ($RUNS runs) | ${wall_med} s | ${wall_min} s | ${cpu_med} s | ≤ ${TARGET_WALL_S} s | $wall_ok |
| same, system time (mostly page faults on fresh memory) | | | ${sys_med} s | | |
| same, peak RSS (largest of $RUNS runs) | $((rss_max / 1024)) MiB ($rss_gib GiB) | | | ≤ 1.5 GiB | $rss_ok |
| Evaluation: \`policy.Compile\` + \`EvaluateAll\` (BenchmarkEvaluate) | ${eval_med} s | ${eval_min} s | ${eval_cpu} s | ≤ ${TARGET_EVAL_S} s | $eval_ok |
| Decoding: \`inventory.Load\` (BenchmarkDecode, ${decode_mbs} MB/s) | ${decode_med} s | ${decode_min} s | ${decode_cpu} s | | |
| Load + \`audit.Run\` + \`WriteJSON\` in one process (BenchmarkAudit) | ${audit_med} s | ${audit_min} s | ${audit_cpu} s | | |

Phases of the command itself, from one more run with \`--log-level debug\`:

| Phase (debug log message) | Time |
|---|---|
$(phases)

The Go benchmarks below run each phase again in one process: from the second iteration on,
the heap is already grown, so they do not pay for page faults on fresh memory as the command
does, and their times are lower.

Where the time goes: the phases of BenchmarkAudit ($COUNT × 3 iterations), with evaluation
taken from BenchmarkEvaluate and subtracted from \`audit.Run\` (so the split is approximate).
Shares are of the fastest figures, the least disturbed by other work on the machine.

| Phase | Median | Fastest | Share |
|---|---|---|---|
| Decoding: read the file, split the List, decode the items (\`inventory.Load\`) | $(ms_s "$load_ms") s | $(ms_s "$load_fast") s | $(share "$load_fast" "$total_fast") |
| Evaluation: compile the policies, decide every exposure | $(ms_s "$eval_ms") s | $(ms_s "$eval_fast") s | $(share "$eval_fast" "$total_fast") |
| Rest of \`audit.Run\`: subjects, isolation, findings | $(ms_s "$rest_ms") s | $(ms_s "$rest_fast") s | $(share "$rest_fast" "$total_fast") |
| Output: \`WriteJSON\` to io.Discard | $(ms_s "$write_ms") s | $(ms_s "$write_fast") s | $(share "$write_fast" "$total_fast") |

Allocated per operation: decoding $(mb "$(metric Decode B/op)"), evaluation $(mb "$(metric Evaluate B/op)"), whole audit $(mb "$(metric Audit B/op)").
<!-- $SECTION:end -->
EOF
)

printf '%s\n' "$section" >"$OUT/section.md"
if [[ $DOC != none ]]; then
	write_section "$DOC" "$SECTION" "$OUT/section.md"
fi

cat >&2 <<EOF

audit --output json, $in_pods pods ($(awk -v b="$in_bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }')), load average $load_before -> $load_after:
  wall, median of $RUNS    ${wall_med} s (fastest ${wall_min} s, CPU ${cpu_med} s), target ≤ ${TARGET_WALL_S} s: $wall_ok
  peak RSS, largest      $((rss_max / 1024)) MiB, target ≤ 1536 MiB: $rss_ok
  evaluation, median     ${eval_med} s (fastest ${eval_min} s, CPU ${eval_cpu} s), target ≤ ${TARGET_EVAL_S} s: $eval_ok
  decoding, median       ${decode_med} s (fastest ${decode_min} s, CPU ${decode_cpu} s)
  audit phases, fastest  load $(ms_s "$load_fast") s, run $(ms_s "$run_fast") s, write $(ms_s "$write_fast") s (in process)
  command phases         $(phases | awk -F'|' '{ gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3); printf "%s%s %s", sep, $2, $3; sep = ", " }')
EOF
