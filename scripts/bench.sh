#!/bin/sh
# Runs powermeter's benchmarks and prints the numbers.
#
#   scripts/bench.sh              all sections
#   scripts/bench.sh server       only the named sections
#   BENCHTIME=5s scripts/bench.sh (default 3s per benchmark)
#
# One function per area (bench_<area>); a section whose package is missing
# is skipped. To add an area: write bench_<area> and list it in SECTIONS.
set -eu

cd "$(dirname "$0")/.."
BENCHTIME="${BENCHTIME:-3s}"
SECTIONS="server import store retention meters dashboard household logger outbox postgres ops mqtt"

# have PKG: the package directory exists and holds a benchmark.
have() {
	[ -d "$1" ] && grep -qs '^func Benchmark' "$1"/*_test.go
}

# run_bench PKG REGEX [BENCHTIME]: run the benchmarks of PKG matching REGEX
# once, print the result lines.
run_bench() {
	if ! res=$(go test -run '^$' -bench "$2" -benchtime "${3:-$BENCHTIME}" -count 1 "./$1" 2>&1); then
		printf '%s\n' "$res" | tail -n 30
		return 1
	fi
	printf '%s\n' "$res" | grep -E '^(Benchmark|ok)'
}

# Legacy GET ingest over real HTTP with keep-alive into a real SQLite file
# (durable), against a no-op handler on the same clients as the ceiling.
bench_server() {
	pkg=internal/server
	if ! have "$pkg"; then
		echo "server: skipped ($pkg missing)"
		return 0
	fi
	echo "== server: legacy log.php ingest (durable, parallel keep-alive clients)"
	out=$(run_bench "$pkg" 'BenchmarkLegacyIngest|BenchmarkNoopHandler') || {
		echo "$out"
		return 1
	}
	echo "$out"
	echo "$out" | awk '
		/^Benchmark/ {
			name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
			for (i = 2; i < NF; i++) {
				if ($(i+1) == "readings/s") rate = $i
				if ($(i+1) == "p99-ms") p99 = $i
			}
			printf "   %-14s %10.0f readings/s   p99 %6.2f ms\n", name, rate, p99
		}'
}

# Memory under hostile bodies: `powermeter serve` (SQLite) gets 40
# concurrent native POSTs of the largest body max_body_bytes allows (4 MiB)
# made of 2 M tiny items ({"readings":[0,0,…]}); prints the server's peak
# RSS (VmHWM) and the answers. POWERMETER_BIN=path measures another build
# (e.g. an older one, for a before/after comparison).
bench_ingestmem() {
	if ! command -v curl >/dev/null; then
		echo "ingestmem: skipped (no curl)"
		return 0
	fi
	echo "== server: peak RSS under 40 concurrent 4 MiB native bodies of 2 M items"
	tmp=$(mktemp -d)
	bin="${POWERMETER_BIN:-}"
	if [ -z "$bin" ]; then
		go build -o "$tmp/powermeter" ./cmd/powermeter || return 1
		bin="$tmp/powermeter"
	fi
	port=$((20000 + $$ % 20000))
	printf '[server]\nlisten = "127.0.0.1:%s"\ndatabase = "sqlite://%s/pm.db"\n[[server.sources]]\nname = "home"\nkey = "bench-key-0001"\n' "$port" "$tmp" >"$tmp/pm.toml"
	{
		printf '{"readings":[0'
		yes ',0' | head -n 2097144 | tr -d '\n'
		printf ']}'
	} >"$tmp/body.json"
	"$bin" serve --config "$tmp/pm.toml" 2>"$tmp/serve.log" &
	srv=$!
	for _ in $(seq 50); do
		curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
		sleep 0.1
	done
	base=$(grep -E '^VmHWM' "/proc/$srv/status" | tr -s ' \t' ' ')
	curls=""
	for i in $(seq 40); do
		curl -s -m "${CURL_TIMEOUT:-120}" -o "$tmp/ans.$i" -w '%{http_code}\n' -H 'Authorization: Bearer bench-key-0001' \
			-H 'Content-Type: application/json' --data-binary "@$tmp/body.json" \
			"http://127.0.0.1:$port/api/v1/readings" >"$tmp/code.$i" &
		curls="$curls $!"
	done
	# shellcheck disable=SC2086
	wait $curls || true
	printf '   body %s bytes; before: %s; after 40 requests: ' "$(wc -c <"$tmp/body.json")" "$base"
	grep -E '^(VmHWM|VmRSS)' "/proc/$srv/status" | tr -s ' \t' ' ' | tr '\n' ' '
	echo
	printf '   answers: '
	cat "$tmp"/code.* | sort | uniq -c | tr -s ' \n' ' '
	echo
	kill -TERM "$srv"
	wait "$srv" 2>/dev/null || true
	rm -rf "$tmp"
}

# Migration speed: a week of 10-s lines from a PHP data folder into a fresh
# SQLite file.
bench_import() {
	pkg=internal/phpdir
	if ! have "$pkg"; then
		echo "import: skipped ($pkg missing)"
		return 0
	fi
	echo "== import: PHP data folder into SQLite (a week of 10-s lines)"
	out=$(run_bench "$pkg" 'BenchmarkImport' 3x) || {
		echo "$out"
		return 1
	}
	echo "$out"
	echo "$out" | awk '
		/^Benchmark/ {
			for (i = 2; i < NF; i++) if ($(i+1) == "lines/s") rate = $i
			printf "   %-14s %10.0f lines/s (a year of 10-s lines: %.0f s)\n", "Import", rate, 3153600 / rate
		}'
}

# Logger: (1) a logger in its own process with 10 meters (emulators in the
# parent) for 1000 rounds without waiting (fake clock), sending natively:
# peak RSS (VmHWM, split into anon and file-backed pages) and CPU per round
# (getrusage); (2) a day of one meter's backlog (8640 readings) drained into
# our server on SQLite over HTTP, native and legacy; (3) the real binary,
# `powermeter run` with 10 meters at interval 1s for LOGGER_SECONDS
# (default 30) seconds: VmHWM/RssAnon/RssFile from /proc. LOGGER_TAGS=loggeronly
# measures the small build (no server, database or dashboard).
bench_logger() {
	pkg=internal/logger
	if ! have "$pkg"; then
		echo "logger: skipped ($pkg missing)"
		return 0
	fi
	echo "== logger: 10 meters, 1000 rounds as fast as they go (own process)"
	out=$(go test -run '^$' -bench 'BenchmarkLogger10Meters' -benchtime 1x -count 1 "./$pkg" |
		grep -E '^(Benchmark|ok|FAIL|---)') || {
		echo "$out"
		return 1
	}
	echo "$out"
	echo "== logger: drain a day of one meter's backlog (8640 readings) into our server"
	out=$(go test -run '^$' -bench 'BenchmarkDrainDay' -benchtime 1x -count 1 ./internal/cli |
		grep -E '^(Benchmark|ok|FAIL|---)') || {
		echo "$out"
		return 1
	}
	echo "$out"
	secs="${LOGGER_SECONDS:-30}"
	echo "== logger: powermeter run, 10 meters, interval 1s, ${secs}s"
	tmp=$(mktemp -d)
	go build -tags "${LOGGER_TAGS:-}" -o "$tmp/powermeter" ./cmd/powermeter || return 1
	pids=""
	for kind in fritzbox shelly-gen1 shelly-pro3em; do
		"$tmp/powermeter" emulate "$kind" --user admin --password bench-pass-1 >"$tmp/$kind.out" 2>/dev/null &
		pids="$pids $!"
	done
	sleep 2
	url() { sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$tmp/$1.out" | head -1; }
	{
		printf 'data_dir = "%s/data"\n[logger]\ninterval = "1s"\nstatus_listen = "127.0.0.1:0"\n' "$tmp"
		for i in 1 2 3; do
			printf '[[meters]]\nname = "dect%s"\ntype = "fritzdect"\nurl = "%s"\nusername = "admin"\npassword = "bench-pass-1"\nain = "11657 0020838"\n' "$i" "$(url fritzbox)"
		done
		for i in 1 2 3 4; do
			printf '[[meters]]\nname = "plug%s"\ntype = "shelly"\nurl = "%s"\nusername = "admin"\npassword = "bench-pass-1"\n' "$i" "$(url shelly-gen1)"
		done
		for i in 1 2 3; do
			printf '[[meters]]\nname = "em%s"\ntype = "shelly"\nurl = "%s"\nusername = "admin"\npassword = "bench-pass-1"\n' "$i" "$(url shelly-pro3em)"
		done
	} >"$tmp/logger.toml"
	"$tmp/powermeter" run --config "$tmp/logger.toml" 2>"$tmp/run.log" &
	run=$!
	sleep "$secs"
	printf '   '
	grep -E '^(VmHWM|VmRSS|RssAnon|RssFile)' "/proc/$run/status" | tr -s ' \t' ' ' | tr '\n' ' '
	echo
	status_url=$(sed -n 's/.*msg="status at \(http[^"]*\)".*/\1/p' "$tmp/run.log" | head -1)
	if [ -n "$status_url" ] && command -v curl >/dev/null; then
		curl -s "$status_url" | grep -E '"(rounds|readings|missed_rounds)"' | tr -d ' \n'
		echo
	fi
	kill -TERM "$run"
	wait "$run" || true
	# shellcheck disable=SC2086
	kill $pids 2>/dev/null || true
	wait 2>/dev/null || true
	grep -E 'level=(WARN|ERROR)' "$tmp/run.log" | head -5
	rm -rf "$tmp"
}

# MQTT (needs the broker on 127.0.0.1:1883, as scripts/test.sh starts it):
# (1) a day of one meter's backlog (8640 readings) drained over MQTT, every
# reading acknowledged (QoS 1), Home Assistant discovery on; (2) the
# loggeronly binary, `powermeter run` with 10 meters (interval 1s) and an
# MQTT uplink for MQTT_SECONDS (default 30): VmHWM/RssAnon/RssFile.
bench_mqtt() {
	plain internal/uplink 'MQTTDrainDay' 3x "mqtt: drain a day of one meter's backlog (8640 readings) to the broker" || return 1
	secs="${MQTT_SECONDS:-30}"
	echo "== mqtt: loggeronly powermeter run, 10 meters, interval 1s, MQTT uplink, ${secs}s"
	tmp=$(mktemp -d)
	CGO_ENABLED=0 go build -tags loggeronly -o "$tmp/powermeter" ./cmd/powermeter || return 1
	echo "   binary: $(wc -c <"$tmp/powermeter") bytes"
	pids=""
	for kind in fritzbox shelly-gen1 shelly-pro3em; do
		"$tmp/powermeter" emulate "$kind" --user admin --password bench-pass-1 >"$tmp/$kind.out" 2>/dev/null &
		pids="$pids $!"
	done
	sleep 2
	url() { sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$tmp/$1.out" | head -1; }
	{
		printf 'data_dir = "%s/data"\n[logger]\ninterval = "1s"\nstatus_listen = "127.0.0.1:0"\n' "$tmp"
		for i in 1 2 3; do
			printf '[[meters]]\nname = "dect%s"\ntype = "fritzdect"\nurl = "%s"\nusername = "admin"\npassword = "bench-pass-1"\nain = "11657 0020838"\n' "$i" "$(url fritzbox)"
		done
		for i in 1 2 3 4; do
			printf '[[meters]]\nname = "plug%s"\ntype = "shelly"\nurl = "%s"\nusername = "admin"\npassword = "bench-pass-1"\n' "$i" "$(url shelly-gen1)"
		done
		for i in 1 2 3; do
			printf '[[meters]]\nname = "em%s"\ntype = "shelly"\nurl = "%s"\nusername = "admin"\npassword = "bench-pass-1"\n' "$i" "$(url shelly-pro3em)"
		done
		printf '[[uplinks]]\nname = "mqtt"\nprotocol = "mqtt"\nurl = "mqtt://127.0.0.1:1883"\ntopic_prefix = "pmbench/%s"\n' "$$"
	} >"$tmp/logger.toml"
	"$tmp/powermeter" run --config "$tmp/logger.toml" 2>"$tmp/run.log" &
	run=$!
	sleep "$secs"
	if ! kill -0 "$run" 2>/dev/null; then
		echo "   powermeter run ended early:"
		tail -n 5 "$tmp/run.log"
		rm -rf "$tmp"
		return 1
	fi
	printf '   '
	grep -E '^(VmHWM|VmRSS|RssAnon|RssFile)' "/proc/$run/status" | tr -s ' \t' ' ' | tr '\n' ' '
	echo
	mqtt_status=$(sed -n 's/.*url=\(http[^ ]*\)\/status.*/\1/p' "$tmp/run.log" | head -1)
	if [ -n "$mqtt_status" ] && command -v curl >/dev/null; then
		printf '   '
		curl -s "$mqtt_status/metrics" | grep -E '^powermeter_(rounds_total|uplink_sent_readings_total|outbox_backlog_readings)' | tr '\n' ' '
		echo
	fi
	kill -TERM "$run"
	wait "$run" || true
	# shellcheck disable=SC2086
	kill $pids 2>/dev/null || true
	wait 2>/dev/null || true
	grep -E 'level=(WARN|ERROR)' "$tmp/run.log" | head -5
	rm -rf "$tmp"
}

# plain PKG REGEX BENCHTIME TITLE: run a package's benchmarks and print them.
plain() {
	if ! have "$1"; then
		echo "$4: skipped ($1 missing)"
		return 0
	fi
	echo "== $4"
	run_bench "$1" "$2" "$3"
}

# SQLite store: durable concurrent inserts (group commit), bytes per reading
# after a year of 10-s readings and one day's range out of that year (the
# year file is built once and kept at $POWERMETER_BENCH_YEARDB).
bench_store() {
	plain internal/store/sqlite 'InsertConcurrent' 20000x "store: SQLite, 64 goroutines inserting 1-reading batches" &&
		plain internal/store/sqlite 'YearBytes|RangeDay' 200x "store: SQLite, a year of 10-s readings: bytes/reading, one day's range"
}

# Retention on SQLite: a copy of the store's year file (one device, 10-s
# readings) reduced to 1-minute rows with energy.Reducer in one Reduce
# call, then vacuumed: bytes per reading before, bytes per reduced row and
# per raw reading after the vacuum, the file sizes, the time to reduce;
# then the latency of 8 goroutines inserting while the year is reduced.
bench_retention() {
	echo "== retention: SQLite, a year of 10-s readings of one device reduced to 1-minute rows"
	out=$(run_bench internal/store/sqlite 'YearReduce|InsertDuringReduce' 1x) || {
		echo "$out"
		return 1
	}
	echo "$out"
	echo "$out" | awk '
		/^BenchmarkInsertDuringReduce/ {
			for (i = 2; i < NF; i++) v[$(i+1)] = $i
			printf "   inserts while reducing: median %.1f ms, p99 %.1f ms (alone: %.1f / %.1f ms)\n",
				v["reducing-p50-ms"], v["reducing-p99-ms"], v["alone-p50-ms"], v["alone-p99-ms"]
		}
		/^BenchmarkYearReduce/ {
			for (i = 2; i < NF; i++) v[$(i+1)] = $i
			printf "   before %.1f MiB (%.1f bytes/reading); reduced in %.1f s; after VACUUM %.1f MiB (%.1f bytes/reduced row, %.2f bytes per raw reading); before VACUUM %.1f MiB\n",
				v["MiB-before"], v["raw-bytes/reading"], v["reduce-s"], v["MiB-vacuumed"], v["bytes/reduced-row"], v["bytes/raw-reading-after"], v["MiB-reduced"]
		}'
}

# One round over 50 emulated meters of all families (Tasmota plugs and SML
# read heads, FRITZ!Boxes over AHA-HTTP and the 8.2 REST API, Shelly, DTUs,
# Epever), read concurrently.
bench_meters() {
	plain internal/meter/all 'Round' 100x "meters: one round over 50 emulated meters (mixed families)" &&
		plain internal/scan 'Scan' 3x "meters: discover --scan wall time, default 3 s timeout, 9 emulated devices on 127.0.0.1"
}

# Dashboard pages rendered server-side with a year of 10-s readings.
# Dashboard over a year of 10-s readings (the store's year file): a past
# day's page the first time (DayPage, a different day each time) and warm
# (PastDayWarm, from the page cache; also the gzip'd weight of the page with
# app.js, chart.js and style.css, and of the tooltip data), today's page
# with a new reading before every view (TodayPage), and the year overview:
# first-ms right after the year was imported (nothing summarized), bg-ms
# until the background summarized the rest, then warm (memory / database).
# Targets: first 15 ms, warm 3 ms, today 10 ms, overview first 1 s, warm 5 ms.
bench_dashboard() {
	echo "== dashboard: pages over a year of 10-s readings"
	out=$(run_bench internal/dashboard 'DayPage|PastDayWarm|TodayPage|YearOverview' 40x) || {
		echo "$out"
		return 1
	}
	echo "$out"
	echo "$out" | awk '
		/^Benchmark/ {
			name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
			ms = ""; first = ""; bg = ""; all = ""; page = ""; data = ""
			for (i = 2; i < NF; i++) {
				if ($(i+1) == "ns/op") ms = sprintf("%.2f ms", $i / 1e6)
				if ($(i+1) == "first-ms") first = $i
				if ($(i+1) == "bg-ms") bg = $i
				if ($(i+1) == "with-assets-gz-bytes") all = $i
				if ($(i+1) == "page-gz-bytes") page = $i
				if ($(i+1) == "data-json-gz-bytes") data = $i
			}
			extra = ""
			if (first != "") extra = sprintf("  first view %d ms, background done after %d ms", first, bg)
			if (all != "") extra = sprintf("  gzip: page %.1f KB, with app.js+chart.js+style.css %.1f KB, tooltip data %.1f KB", page / 1024, all / 1024, data / 1024)
			printf "   %-26s %10s%s\n", name, ms, extra
		}'
}

# A three-device home (grid meter, balcony plant, fridge) with a year of
# 10-s readings and a tariff (issue 10): the year overview with flows and
# money and the energy API for the year by day and by hour, warm; then
# how long a role change takes to recompute the year. cpu-ms/op is the
# CPU time per request, steadier than ns/op on a shared machine.
bench_household() {
	plain internal/server 'HomeYear' 40x "household: year overview and energy API, a three-device home, a year of 10-s readings" &&
		plain internal/server 'HomeRoleChange' 2x "household: a role change recomputes the year"
}

# The outbox fault matrix (issue 9): bytes flipped, files cut and deleted,
# at rest and with a batch in flight; readings lost and doubled must be 0
# for every reading whose record is still on disk.
bench_outbox() {
	echo "== outbox: fault matrix (lost and doubled must be 0 and 0)"
	if ! res=$(go test -count 1 -run '^TestFaultMatrix$' -v ./internal/outbox 2>&1); then
		printf '%s\n' "$res" | grep -v '^=== ' | tail -n 40
		return 1
	fi
	printf '%s\n' "$res" | sed -n 's/^ *fault_test.go:[0-9]*: /   /p'
}

# PostgreSQL (needs POWERMETER_TEST_POSTGRES, e.g.
# postgres://postgres@127.0.0.1:5432/test?sslmode=disable): the store's
# benchmarks (inserts, a year in the compact layout: bytes/reading, a day's
# range, the Grafana view's device-day, a copy of the year reduced to
# minutes by retention), the dashboard's day page and year
# overview on PostgreSQL, then legacy GET ingest over real HTTP with 1,
# 10 000 and 100 000 sources on both backends. The year fixtures are built
# once and kept in their own schemas (docs/postgres.md, "Benchmarks").
bench_postgres() {
	if [ -z "${POWERMETER_TEST_POSTGRES:-}" ]; then
		echo "postgres: skipped (set POWERMETER_TEST_POSTGRES)"
		return 0
	fi
	plain internal/store/postgres '.' 3000x "postgres: store (inserts, batches, day range, bytes/reading, Grafana view, a year reduced to minutes)" &&
		plain internal/dashboard 'Postgres' 40x "postgres: dashboard day page and year overview" &&
		plain internal/store/postgres/scaleout 'LegacyIngest' 10000x "postgres vs sqlite: legacy GET ingest over HTTP by number of sources and of loggers sending at once (noop: this machine's ceiling now)"
}

# Operations: backup (VACUUM INTO) and quick_check of a year of 10-s
# readings in SQLite.
bench_ops() {
	plain internal/store/sqlite 'BenchmarkBackupYear' 1x "ops: backup and quick_check of a year of readings (SQLite)"
}

status=0
for s in ${*:-$SECTIONS}; do
	if ! command -v "bench_$s" >/dev/null 2>&1; then
		echo "unknown section: $s (have: $SECTIONS)" >&2
		exit 2
	fi
	"bench_$s" || status=1
done
echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3), load $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
