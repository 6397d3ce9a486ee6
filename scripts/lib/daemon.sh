# Shared by the scripts that run a local service for the tests (Kafka, Alertmanager,
# Prometheus): wait for a started process to answer, and stop it. Sourced, not run.
#
#   already_running NAME PIDFILE                    # 0 (and says so) if PIDFILE's process lives
#   await_start NAME PIDFILE LOG SECONDS CHECK...   # 0 once CHECK succeeds; 1 if the process
#                                                   # died (LOG's tail shown) or time ran out
#   stop_pid PIDFILE                                # TERM, up to 10 s, then KILL

already_running() {
  local name="$1" pidfile="$2"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$name already running (pid $(cat "$pidfile"))"
    return 0
  fi
  return 1
}

await_start() {
  local name="$1" pidfile="$2" log="$3" seconds="$4"
  shift 4
  local _
  for _ in $(seq 1 $((seconds * 2))); do
    if "$@"; then
      echo "$name running (pid $(cat "$pidfile"))"
      return 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "$name exited during start-up; see $log" >&2
      tail -n 40 "$log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
  echo "$name did not answer within $seconds s; see $log" >&2
  return 1
}

stop_pid() {
  local pidfile="$1" _
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 1 40); do
      kill -0 "$(cat "$pidfile")" 2>/dev/null || break
      sleep 0.25
    done
    kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}
