#!/usr/bin/env bash
# Node agent benchmark (issue 4, item 7), in the network-namespace sandbox, as root:
#   1. restore time after tampering: p50/p99 over many tamper events (delete table, flush table,
#      flush chain, delete a rule), from the tamper's kernel commit to the agent's restoring
#      commit (BenchmarkRestoreAfterTamper);
#   2. the agent at rest, as the DaemonSet runs it against a real API server: CPU and resident
#      memory over a window (BenchmarkAgentIdle);
#   3. forwarding throughput pod -> beyond the node, with and without the ruleset, in alternating
#      pairs (BenchmarkForwarding).
# With BENCH_AGENT_BASE=<git revision>, 1 and 2 also run an agent built from that revision,
# interleaved with the current one, for a side-by-side comparison. Records the figures in
# docs/benchmarks.md between the agent-bench markers.
#
# Usage: hack/bench-agent.sh          (make bench runs it after the audit benchmarks)
#
# Environment:
#   BENCH_AGENT_BASE      git revision to compare with (default: none)
#   BENCH_RESTORE_ROUNDS  rounds of the restore benchmark per build (default 5)
#   BENCH_RESTORE_EVENTS  tamper events per round (default 40)
#   BENCH_IDLE_RUNS       idle measurements per build (default 3)
#   BENCH_IDLE_SECONDS    length of each idle window (default 30)
#   BENCH_FWD_PAIRS       with/without pairs of the throughput benchmark (default 30)
#   BENCH_FWD_SECONDS     length of each transfer (default 1)
#   BENCH_DOC             file to update (default docs/benchmarks.md; "none" to leave it alone)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/lib/bench.sh
source hack/lib/bench.sh

BASE=${BENCH_AGENT_BASE:-}
ROUNDS=${BENCH_RESTORE_ROUNDS:-5}
EVENTS=${BENCH_RESTORE_EVENTS:-40}
IDLE_RUNS=${BENCH_IDLE_RUNS:-3}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-30}
FWD_PAIRS=${BENCH_FWD_PAIRS:-30}
FWD_SECONDS=${BENCH_FWD_SECONDS:-1}
DOC=${BENCH_DOC:-docs/benchmarks.md}
OUT=_output/bench-agent
TARGET_P99_MS=100
TARGET_CPU_PCT=1 # "about 0%": at most 1% of one CPU
TARGET_RSS_MIB=40
TARGET_RATIO=0.97

[[ $(id -u) -eq 0 ]] || die "the agent benchmark needs root (network namespaces, nftables, cgroups)"
rm -rf "$OUT"
mkdir -p "$OUT"

# The node tools, and the real API server for the idle measurement.
hack/node-deps.sh
eval "$(hack/kube-apiserver.sh)"
export KUBE_APISERVER ETCD

# The agent as the image builds it (deploy/agent/Dockerfile).
log "building the agent ($(git describe --always --dirty 2>/dev/null || echo worktree))"
CGO_ENABLED=0 go build -trimpath -o "$OUT/imdsguard" ./cmd/imdsguard
builds=(current)
declare -A binary=([current]="$PWD/$OUT/imdsguard")
if [[ -n $BASE ]]; then
	base_rev=$(git rev-parse --short "$BASE")
	log "building the agent at $base_rev for comparison"
	mkdir -p "$OUT/base-src"
	git archive "$base_rev" | tar -x -C "$OUT/base-src"
	(cd "$OUT/base-src" && CGO_ENABLED=0 go build -trimpath -o "../imdsguard-base" ./cmd/imdsguard)
	builds=(base current)
	binary[base]="$PWD/$OUT/imdsguard-base"
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# metric FILE NAME prints the value of a reported benchmark metric (unit NAME).
metric() { awk -v unit="$2" '/^Benchmark/ { for (k = 3; k < NF; k++) if ($(k + 1) == unit) print $k }' "$1"; }
# percentile Q reads numbers and prints the Q-quantile (nearest rank).
percentile() { sort -g | awk -v q="$1" '{ v[NR] = $1 } END { i = int(q * NR) + 1; if (i > NR) i = NR; print v[i] }'; }
# order ROUND prints the builds in the order of that round: alternating, so drift in the
# machine's load falls on both.
order() { if (($1 % 2)); then printf '%s\n' "${builds[@]}" | tac; else printf '%s\n' "${builds[@]}"; fi; }

# 1. Restore time.
restore_cmd="go test -run '^\$' -bench 'RestoreAfterTamper\$' -benchtime ${EVENTS}x ./internal/agent/"
for round in $(seq 1 "$ROUNDS"); do
	for build in $(order "$round"); do
		log "restore, round $round/$ROUNDS, $build agent: $EVENTS tamper events"
		IMDSGUARD_BENCH_AGENT=${binary[$build]} IMDSGUARD_BENCH_SAMPLES="$PWD/$OUT/restore.$build.ms" \
			go test -run '^$' -bench 'RestoreAfterTamper$' -benchtime "${EVENTS}x" ./internal/agent/ >"$OUT/restore.$build.$round.txt" 2>&1 ||
			die "restore benchmark failed: $(tail -n 20 "$OUT/restore.$build.$round.txt")"
		grep -E '^\s+bench_test.go:[0-9]+: (delete|flush|[0-9]+ restores)' "$OUT/restore.$build.$round.txt" | sed 's/^ *bench_test.go:[0-9]*: /    /' >&2 || true
	done
done
declare -A p50 p99 pmax nrest
for build in "${builds[@]}"; do
	f=$OUT/restore.$build.ms
	nrest[$build]=$(wc -l <"$f")
	p50[$build]=$(percentile 0.50 <"$f")
	p99[$build]=$(percentile 0.99 <"$f")
	pmax[$build]=$(sort -g "$f" | tail -n1)
done

# 2. The agent at rest.
idle_cmd="IMDSGUARD_BENCH_IDLE_SECONDS=$IDLE_SECONDS go test -run '^\$' -bench 'AgentIdle\$' -benchtime 1x ./internal/agent/"
for run in $(seq 1 "$IDLE_RUNS"); do
	for build in $(order "$run"); do
		log "idle, run $run/$IDLE_RUNS, $build agent: ${IDLE_SECONDS}s"
		IMDSGUARD_BENCH_AGENT=${binary[$build]} IMDSGUARD_BENCH_IDLE_SECONDS=$IDLE_SECONDS \
			go test -run '^$' -bench 'AgentIdle$' -benchtime 1x ./internal/agent/ >"$OUT/idle.$build.$run.txt" 2>&1 ||
			die "idle benchmark failed: $(tail -n 20 "$OUT/idle.$build.$run.txt")"
		grep '^Benchmark' "$OUT/idle.$build.$run.txt" >&2
	done
done
declare -A cpu rss rssmax anon file peak kids
for build in "${builds[@]}"; do
	files=("$OUT"/idle."$build".*.txt)
	all() { for f in "${files[@]}"; do metric "$f" "$1"; done; }
	cpu[$build]=$(all cpu-% | median)
	rss[$build]=$(all rss-MiB | median)
	rssmax[$build]=$(all rss-MiB | sort -g | tail -n1)
	anon[$build]=$(all anon-MiB | median)
	file[$build]=$(all file-MiB | median)
	peak[$build]=$(all peak-rss-MiB | median)
	kids[$build]=$(all children-rss-MiB | median)
done

# 3. Forwarding throughput.
fwd_cmd="IMDSGUARD_BENCH_PAIRS=$FWD_PAIRS IMDSGUARD_BENCH_SECONDS=$FWD_SECONDS go test -run '^\$' -bench 'Forwarding\$' -benchtime 1x ./internal/firewall/"
log "forwarding throughput: $FWD_PAIRS pairs of ${FWD_SECONDS}s transfers"
IMDSGUARD_BENCH_PAIRS=$FWD_PAIRS IMDSGUARD_BENCH_SECONDS=$FWD_SECONDS \
	go test -run '^$' -bench 'Forwarding$' -benchtime 1x ./internal/firewall/ >"$OUT/forwarding.txt" 2>&1 ||
	die "forwarding benchmark failed: $(tail -n 20 "$OUT/forwarding.txt")"
grep -E '^Benchmark|ratios' "$OUT/forwarding.txt" >&2
with=$(metric "$OUT/forwarding.txt" with-MB/s)
without=$(metric "$OUT/forwarding.txt" without-MB/s)
ratio=$(metric "$OUT/forwarding.txt" ratio)
ratio25=$(metric "$OUT/forwarding.txt" ratio-p25)
ratio75=$(metric "$OUT/forwarding.txt" ratio-p75)

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Verdicts on the current build.
p99_ok=$(verdict "${p99[current]}" "$TARGET_P99_MS")
cpu_ok=$(verdict "${cpu[current]}" "$TARGET_CPU_PCT")
rss_ok=$(verdict "${rssmax[current]}" "$TARGET_RSS_MIB")
ratio_ok=$(awk -v r="$ratio" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t ? "PASS" : "FAIL") }')
fmt() { awk -v v="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, v }'; }

rows_restore() {
	for build in "${builds[@]}"; do
		label="this tree"
		[[ $build == base ]] && label="before ($base_rev)"
		printf '| %s | %s | %s ms | %s ms | %s ms |\n' "$label" "${nrest[$build]}" "$(fmt "${p50[$build]}")" "$(fmt "${p99[$build]}")" "$(fmt "${pmax[$build]}")"
	done
}
rows_idle() {
	for build in "${builds[@]}"; do
		label="this tree"
		[[ $build == base ]] && label="before ($base_rev)"
		printf '| %s | %s %% | %s MiB (largest %s) | %s / %s MiB | %s MiB | %s MiB |\n' "$label" "$(fmt "${cpu[$build]}" 2)" \
			"$(fmt "${rss[$build]}")" "$(fmt "${rssmax[$build]}")" "$(fmt "${anon[$build]}")" "$(fmt "${file[$build]}")" "$(fmt "${peak[$build]}")" "$(fmt "${kids[$build]}")"
	done
}
compare_note=""
if [[ -n $BASE ]]; then
	compare_note="Both builds ran in alternating order (round by round), so the machine's load fell on both alike."
fi

cat >"$OUT/section.md" <<SECTION
<!-- agent-bench:begin -->
## Node agent: restore time, idle cost, forwarding throughput

Generated by \`hack/bench-agent.sh\` on $(date -u +%Y-%m-%d)${BASE:+ with \`BENCH_AGENT_BASE=$base_rev\`}, as root, in the
network-namespace sandbox (internal/sandbox). Reproduce with:

\`\`\`sh
${BASE:+BENCH_AGENT_BASE=$base_rev }hack/bench-agent.sh
# the parts alone (IMDSGUARD_BENCH_AGENT=<binary> runs another build of the agent):
$restore_cmd
$idle_cmd
$fwd_cmd
\`\`\`

**Machine:** $(machine). Shared with other work: load average (1, 5, 15 min) $load_before before
the runs, $load_after after. The agent is built as the image builds it (\`CGO_ENABLED=0 go build
-trimpath\`).

**Restore time after tampering** (target p99 ≤ $TARGET_P99_MS ms: $p99_ok). Another process deletes the
table, flushes it, flushes the forward chain or deletes the IMDS drop, in turn, $ROUNDS rounds of
$EVENTS events per build; the time is from the tamper's commit to the agent's restoring commit, both
read from \`nft monitor\` on the node: the time the node was without its rules. $compare_note

| agent | events | p50 | p99 | max |
|---|---|---|---|---|
$(rows_restore)

**At rest** (targets: CPU about 0 %, here ≤ $TARGET_CPU_PCT % of one CPU: $cpu_ok; resident memory ≤ $TARGET_RSS_MIB MiB: $rss_ok). The
agent as the DaemonSet runs it: against a real kube-apiserver, its node with 30 pods, exemptions by
namespace and service account, the pod watch open, the default 30 s resync; sampled for
$IDLE_SECONDS s after start-up settled, $IDLE_RUNS runs per build, medians. CPU is user + system from
/proc/<pid>/stat; memory is VmRSS (largest one-second sample), split into anonymous and file-backed
(pages of the executable), VmHWM is the peak since start; the agent's child process is counted
apart (this tree: the standby \`nft -f -\`; before: \`nft monitor\`).

| agent | CPU | VmRSS | anon / file | VmHWM (start-up) | child process |
|---|---|---|---|---|---|
$(rows_idle)

**Forwarding throughput** (target with/without ≥ $TARGET_RATIO: $ratio_ok). One TCP stream from a pod (AWS VPC
CNI wiring) to a host beyond the node, through the node's forward and postrouting hooks, with the
agent's ruleset (AWS, Azure and GCP endpoints, the pods cgroup, exemptions) and with no table, in
$FWD_PAIRS back-to-back pairs of ${FWD_SECONDS} s transfers whose order flips each pair. Throughput on this
machine moves by tens of percent from one second to the next; the ratio is the median of the
pairs' ratios (interquartile range $(fmt "$ratio25" 3)-$(fmt "$ratio75" 3)).

| with the ruleset (median) | without (median) | ratio (median of pairs) |
|---|---|---|
| $(fmt "$with" 0) MB/s | $(fmt "$without" 0) MB/s | $(fmt "$ratio" 3) |

Where the restore time went, and what changed it, is in docs/design/firewall.md ("Drift repair").
<!-- agent-bench:end -->
SECTION

if [[ $DOC != none ]]; then
	write_section "$DOC" agent-bench "$OUT/section.md"
fi

cat >&2 <<EOF

node agent, load average $load_before -> $load_after:
  restore p50/p99/max  $(for b in "${builds[@]}"; do printf '%s %s/%s/%s ms  ' "$b" "$(fmt "${p50[$b]}")" "$(fmt "${p99[$b]}")" "$(fmt "${pmax[$b]}")"; done)target p99 ≤ $TARGET_P99_MS ms: $p99_ok
  idle CPU             $(for b in "${builds[@]}"; do printf '%s %s %%  ' "$b" "$(fmt "${cpu[$b]}" 2)"; done)target ≤ $TARGET_CPU_PCT %: $cpu_ok
  idle VmRSS           $(for b in "${builds[@]}"; do printf '%s %s MiB (largest %s)  ' "$b" "$(fmt "${rss[$b]}")" "$(fmt "${rssmax[$b]}")"; done)target ≤ $TARGET_RSS_MIB MiB: $rss_ok
  forwarding           with $(fmt "$with" 0) MB/s, without $(fmt "$without" 0) MB/s, ratio $(fmt "$ratio" 3), target ≥ $TARGET_RATIO: $ratio_ok
EOF
