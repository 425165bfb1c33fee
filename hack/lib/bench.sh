# Shared helpers of the benchmark scripts (hack/bench*.sh). Source it; it defines functions only.

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

# median reads numbers, one per line, and prints their median.
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# verdict prints PASS when value <= limit, FAIL otherwise.
verdict() { awk -v v="$1" -v l="$2" 'BEGIN { print (v <= l ? "PASS" : "FAIL") }'; }

# need_gnu_time installs GNU time (for peak RSS) when it is missing.
need_gnu_time() {
	[[ -x /usr/bin/time ]] && return
	log "installing GNU time (Debian package time)"
	if [[ $(id -u) -ne 0 ]]; then
		die "/usr/bin/time is missing: install the Debian package 'time' (apt-get install -y time)"
	fi
	apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
}

# time_fields FILE prints "wall cpu sys rss_kb" from a GNU time -v report.
time_fields() {
	awk -F': ' '
		/Elapsed \(wall clock\)/ { n = split($2, p, ":"); w = 0; for (k = 1; k <= n; k++) w = w * 60 + p[k] }
		/User time/ { u = $2 }
		/System time/ { s = $2 }
		/Maximum resident set size/ { kb = $2 }
		END { print w, u + s, s, kb }' "$1"
}

# machine prints the machine line of a benchmark section.
machine() {
	printf '%s CPUs, %s, %s memory, Linux %s, %s' "$(nproc)" \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" \
		"$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1024 / 1024 }' /proc/meminfo)" \
		"$(uname -r)" "$(go version | cut -d' ' -f3)"
}

# write_section DOC NAME FILE replaces the text between "<!-- NAME:begin -->" and
# "<!-- NAME:end -->" in DOC with FILE (which holds both markers), or appends FILE.
write_section() {
	local doc=$1 name=$2 file=$3
	if [[ ! -f $doc ]]; then
		mkdir -p "$(dirname "$doc")"
		cat >"$doc" <<'HEAD'
# Benchmarks

Performance figures for imdsguard, each section written by the script named in it. The
machines are shared and noisy: every figure is a median of several runs, and the load
average during the runs is recorded next to them. Rerun the script to refresh a section;
only the text between its markers is replaced.

HEAD
	fi
	if grep -q "<!-- $name:begin -->" "$doc"; then
		awk -v file="$file" -v begin="<!-- $name:begin -->" -v end="<!-- $name:end -->" '
			$0 == begin { while ((getline line < file) > 0) print line; skip = 1; next }
			$0 == end { skip = 0; next }
			!skip { print }' "$doc" >"$doc.tmp"
		mv "$doc.tmp" "$doc"
	else
		printf '\n' >>"$doc"
		cat "$file" >>"$doc"
	fi
	log "updated $doc"
}
