#!/usr/bin/env bash
# The local cluster's credit ledger: a Postgres server (Debian's postgresql-15) on this machine,
# reachable from pods at the node address, for the demo's metering.
#   hack/ledger.sh up      start it (created once under /var/lib/arclight/ledger-pg15/)
#   hack/ledger.sh dsn     the DSN pods use (host = the node address), password included
#   hack/ledger.sh psql    a psql session on the ledger (arguments go to psql)
#   hack/ledger.sh down    stop it (the data stays; `purge` deletes it)
# Postgres refuses to run as root: as root its commands run as the `postgres` system user.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/cluster/lib.sh
source hack/cluster/lib.sh
BIN=/usr/lib/postgresql/15/bin
DIR="${ARCLIGHT_LEDGER_DIR:-/var/lib/arclight/ledger-pg15}"  # the postgres user cannot enter /root
PORT="${ARCLIGHT_LEDGER_PORT:-55432}"
DATA="$DIR/data"

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
password() { cat "$DIR/password"; }
running() { [ -f "$DATA/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

init() {
  [ -x "$BIN/initdb" ] || { echo "ledger: $BIN/initdb missing: run hack/install-deps.sh" >&2; exit 1; }
  install -d -m 755 "$(dirname "$DIR")"; install -d -m 700 "$DIR"
  [ -f "$DIR/password" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/password")
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$DIR"
  as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1,$NODE_IP'
port = $PORT
unix_socket_directories = '$DIR'
EOF
  cat >"$DATA/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host all all $POD_CIDR scram-sha-256
host all all $NODE_IP/32 scram-sha-256
EOF
}

up() {
  [ -f "$DATA/PG_VERSION" ] || init
  if ! running; then
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DIR/log" -w -t 60 start >/dev/null
  fi
  as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -qAt -d postgres >/dev/null <<EOF
SELECT 'CREATE ROLE arclight LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'arclight')\gexec
ALTER ROLE arclight PASSWORD '$(password)';
SELECT 'CREATE DATABASE arclight OWNER arclight'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'arclight')\gexec
EOF
  echo "ledger: Postgres on $NODE_IP:$PORT (database arclight)" >&2
}

case "${1:-}" in
  up) up ;;
  dsn) echo "postgresql://arclight:$(password)@$NODE_IP:$PORT/arclight" ;;
  psql) shift; as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d arclight "$@" ;;
  down) if running; then as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; fi ;;
  purge) "$0" down; rm -rf "$DIR" ;;
  *) echo "usage: hack/ledger.sh up|dsn|psql|down|purge" >&2; exit 2 ;;
esac
