#!/usr/bin/env bash
# Benchmark: time from `make run` on a fresh clone to /healthz 200.
#
#   bench/cold_start.sh [without|with|both]     (default: both)
#
# "without": a fresh clone, no model: `make run` creates both virtualenvs, compiles the
# catalogs, trains the model, creates the database and starts the three services.
# "with": another fresh clone with the model trained by the first run (or, when run alone, a
# model from this checkout's models/ matching the clone's data) copied into models/ first.
# It clones the last commit (uncommitted changes are not in the clone). Each phase is timed
# from the files `make` leaves behind; the services use free ports, and everything is
# stopped and removed afterwards (set KEEP=1 to keep the clones).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
which=${1:-both}
stamp() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
since() { python3 -c "print(f'{$2 - $1:.0f}')"; }

# Services still running from the clone (their working directory is in it): give them 20 s to
# stop (barri run SIGKILLs stragglers after 15 s), then kill them, so no clone is removed under them.
stop_leftovers() {
  local clone=$1 pids proc
  for _ in $(seq 20); do
    pids=""
    for proc in /proc/[0-9]*; do
      [[ $(readlink "$proc/cwd" 2>/dev/null) == "$clone"* ]] && pids+=" ${proc#/proc/}"
    done
    [[ -z $pids ]] && return 0
    sleep 1
  done
  echo "# killing leftover processes of $clone:$pids" >&2
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}

run_once() {  # $1 = label, $2 = folder of models to copy in (or empty)
  local label=$1 models=$2 clone bot_port log pid start t_app="" t_engine="" t_model="" t_up=""
  clone=$(mktemp -d "/tmp/barri-cold-$label-XXXX")
  git clone --quiet "$here" "$clone"
  if [[ -n $models ]]; then mkdir -p "$clone/models" && cp "$models"/barri-*.tar.gz "$clone/models/"; fi
  bot_port=$(free_port)
  log=$clone/make-run.log
  start=$(stamp)
  # its own session (setsid does not fork here): the whole `make run` tree is stopped as one group
  BOT_PORT=$bot_port RASA_PORT=$(free_port) ACTIONS_PORT=$(free_port) \
    setsid bash -c 'cd "$1" && exec make run' _ "$clone" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    now=$(stamp)
    if [[ -z $t_app && -f $clone/.venv/.installed ]]; then t_app=$now; fi
    if [[ -z $t_engine && -f $clone/.venv-engine/.installed ]]; then t_engine=$now; fi
    if [[ -z $t_model && -z $models ]] && compgen -G "$clone/models/barri-*.tar.gz" >/dev/null; then t_model=$now; fi
    if curl -fsS -o /dev/null "http://127.0.0.1:$bot_port/healthz" 2>/dev/null; then t_up=$now; break; fi
    sleep 1
  done
  kill -TERM -- "-$pid" 2>/dev/null || true  # barri run stops its three services on SIGTERM
  wait "$pid" 2>/dev/null || true
  stop_leftovers "$clone"
  if [[ -z $t_up ]]; then echo "$label: the stack did not come up; see $log" >&2; tail -30 "$log" >&2; return 1; fi
  printf '| %s | %s | %s | %s | %s |\n' "$label" \
    "$( [[ -n $t_app ]] && since "$start" "$t_app" || echo -)" \
    "$( [[ -n $t_engine ]] && since "$start" "$t_engine" || echo -)" \
    "$(if [[ -n $t_model ]]; then since "$start" "$t_model"; elif grep -q '^training ' "$log"; then echo "trained (no match)"; else echo copied; fi)" \
    "$(since "$start" "$t_up")"
  last_clone=$clone
}

echo "# $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) at start"
echo "| model | app venv ready (s) | engine venv ready (s) | model trained (s) | /healthz 200 (s) |"
echo "|---|---|---|---|---|"
last_clone=""
trained=""
if [[ $which == without || $which == both ]]; then
  run_once "without" ""
  trained=$last_clone/models
fi
if [[ $which == with || $which == both ]]; then
  if [[ -z $trained ]]; then
    # this checkout's models: `make run` trains anyway if none matches the committed data
    trained=$here/models
    echo "# (copying this checkout's models/)"
  fi
  run_once "with" "$trained"
fi
echo "# load average $(cut -d' ' -f1 /proc/loadavg) at end"
if [[ -z ${KEEP:-} ]]; then rm -rf /tmp/barri-cold-without-* /tmp/barri-cold-with-*; fi
