#!/bin/bash
# A private PostgreSQL cluster for the tests, on loopback, in a directory of
# its own: no system service is used or changed.
#
#   pg_cluster.sh start DIR [DB...]   initdb + pg_ctl start; creates the
#                                     databases (default: whisper); writes
#                                     DIR/conninfo (libpq keywords, the first
#                                     database) and DIR/port
#   pg_cluster.sh stop DIR            pg_ctl stop (fast), then removes DIR
#   pg_cluster.sh restart DIR         pg_ctl restart (the same port)
#   pg_cluster.sh kill DIR            SIGKILL of the postmaster (crash)
#
# PostgreSQL refuses to run as root: as root the cluster runs as the
# `postgres` user that Debian's package makes (or `whisper-pg`, made here
# when there is none). Durability is PostgreSQL's default (fsync on,
# synchronous_commit on).
set -euo pipefail

cmd=${1:?usage: pg_cluster.sh start|stop|restart|kill DIR [DB...]}
dir=${2:?usage: pg_cluster.sh start|stop|restart|kill DIR [DB...]}
shift 2

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "pg_cluster.sh: PostgreSQL's server is not installed (Debian: postgresql)" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$owner" -- "$@"
  else
    "$@"
  fi
}

owner=$(id -un)
if [ "$(id -u)" = 0 ]; then
  if id postgres >/dev/null 2>&1; then
    owner=postgres
  else
    id whisper-pg >/dev/null 2>&1 || useradd --system --no-create-home whisper-pg
    owner=whisper-pg
  fi
fi

case "$cmd" in
start)
  rm -rf "$dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$(id -u)" = 0 ] && chown "$owner" "$dir"
  # the directories above must let the owner through
  if [ "$(id -u)" = 0 ]; then
    d=$dir
    while [ "$d" != / ]; do
      d=$(dirname "$d")
      chmod o+x "$d" 2>/dev/null || true
    done
  fi
  as_owner "$bin/initdb" -D "$dir/data" -U whisper -A trust -E UTF8 --no-instructions \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  for try in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
         -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c shared_buffers=64MB -c max_prepared_transactions=64" \
         start >/dev/null 2>&1; then
      break
    fi
    port=""
  done
  if [ -z "$port" ]; then
    echo "pg_cluster.sh: the server did not start:" >&2
    tail -n 20 "$dir/server.log" >&2 || true
    exit 1
  fi
  [ $# -gt 0 ] || set -- whisper
  for db in "$@"; do
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U whisper "$db"
  done
  echo "$port" >"$dir/port"
  echo "host=127.0.0.1 port=$port user=whisper dbname=$1" >"$dir/conninfo"
  chmod 644 "$dir/port" "$dir/conninfo"
  echo "PostgreSQL on 127.0.0.1:$port ($dir)"
  ;;
stop)
  if [ -d "$dir/data" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
restart)
  port=$(cat "$dir/port")
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c shared_buffers=64MB -c max_prepared_transactions=64" \
    restart >/dev/null
  ;;
kill)
  pid=$(head -n 1 "$dir/data/postmaster.pid")
  kill -9 "$pid"
  ;;
*)
  echo "pg_cluster.sh: unknown command $cmd" >&2
  exit 2
  ;;
esac
