#!/bin/sh
# The bundled ledger's Postgres (the chart's ledger.bundled): on an empty data directory,
# initdb; on every start, the pg_hba.conf below and the password of the ledger role from the
# environment; then postgres in the foreground (logs on stderr), listening on 5432.
#   PGDATA                  data directory, on the volume (a subdirectory, so a lost+found beside
#                           it does not matter)
#   POSTGRES_PASSWORD_FILE  file holding the ledger role's password (a mounted Secret), or
#   POSTGRES_PASSWORD       the password itself
# The ledger role is `arclight` (LOGIN, no superuser), owner of the database `arclight`.
# Writes only under PGDATA and /var/run/postgresql (the socket: an emptyDir in the chart), so
# the root file system can be read-only. The superuser `postgres` has no password: it logs in
# only over the socket, as this container's OS user (peer), e.g. `kubectl exec ... -- psql`.
set -eu
: "${PGDATA:?PGDATA is not set}"
SOCKETS=/var/run/postgresql
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
fi
[ -n "${POSTGRES_PASSWORD:-}" ] || { echo "postgres: set POSTGRES_PASSWORD_FILE or POSTGRES_PASSWORD" >&2; exit 1; }
export POSTGRES_PASSWORD

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "postgres: initializing $PGDATA" >&2
  initdb --pgdata="$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 --no-instructions >&2
fi
cat >"$PGDATA/pg_hba.conf" <<'EOF'
# Written by the image's entrypoint at every start.
local all postgres                peer
host  all all      0.0.0.0/0      scram-sha-256
host  all all      ::/0           scram-sha-256
EOF

# The role, its database and its password, through the socket of a server no one else can reach.
pg_ctl --pgdata="$PGDATA" --wait --silent \
  -o "-c listen_addresses='' -c unix_socket_directories=$SOCKETS" start
psql --host="$SOCKETS" --username=postgres --dbname=postgres --quiet --no-psqlrc \
  --set=ON_ERROR_STOP=1 >/dev/null <<'EOF'
\getenv password POSTGRES_PASSWORD
SELECT 'CREATE ROLE arclight LOGIN'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'arclight') \gexec
ALTER ROLE arclight PASSWORD :'password';
SELECT 'CREATE DATABASE arclight OWNER arclight'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'arclight') \gexec
EOF
pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
unset POSTGRES_PASSWORD

exec postgres -D "$PGDATA" -c listen_addresses='*' -c port=5432 \
  -c unix_socket_directories="$SOCKETS" -c password_encryption=scram-sha-256 -c jit=off
