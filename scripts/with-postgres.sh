#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL server.
#
#   scripts/with-postgres.sh cargo nextest run -p weft-store
#
# Installs Debian's `postgresql` package when no initdb/pg_ctl is found,
# creates a cluster in a temporary folder owned by the `postgres` user,
# starts it on a free loopback port with scram-sha-256 password auth over
# TCP, creates a database and exports
#   WEFT_TEST_POSTGRES_URL=postgres://weft:PASSWORD@127.0.0.1:PORT/weft_test
# for the command. The cluster is stopped and deleted on exit; the
# command's exit code is returned.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

find_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

PGBIN="$(find_bin || true)"
if [ -z "$PGBIN" ]; then
    echo "with-postgres: installing PostgreSQL (apt-get)..." >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "with-postgres: PostgreSQL is not installed and we are not root; install the 'postgresql' package" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    PGBIN="$(find_bin)"
fi

# PostgreSQL refuses to run as root: run the server as `postgres`.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

free_port() {
    python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

WORK="$(mktemp -d /tmp/weft-pg.XXXXXX)"
chmod 755 "$WORK"
DATA="$WORK/data"
SOCK="$WORK/sock"
mkdir -p "$DATA" "$SOCK"
[ "$(id -u)" -eq 0 ] && chown -R postgres "$WORK"
PASSWORD="weft-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
PWFILE="$WORK/pw"
echo "$PASSWORD" > "$PWFILE"
[ "$(id -u)" -eq 0 ] && chown postgres "$PWFILE"

cleanup() {
    local rc=$?
    as_pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT INT TERM

as_pg "$PGBIN/initdb" -D "$DATA" -U weft --pwfile="$PWFILE" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >"$WORK/initdb.log" 2>&1 \
    || { cat "$WORK/initdb.log" >&2; exit 1; }
cat > "$DATA/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
HBA

PORT=""
for _ in 1 2 3 4 5; do
    PORT="$(free_port)"
    if as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCK -c max_connections=300 -c fsync=off -c password_encryption=scram-sha-256" \
        start >/dev/null 2>&1; then
        break
    fi
    PORT=""
done
if [ -z "$PORT" ]; then
    echo "with-postgres: the server did not start:" >&2
    cat "$WORK/server.log" >&2 || true
    exit 1
fi

as_pg "$PGBIN/createdb" -h "$SOCK" -p "$PORT" -U weft weft_test

export WEFT_TEST_POSTGRES_URL="postgres://weft:$PASSWORD@127.0.0.1:$PORT/weft_test"
echo "with-postgres: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (cluster in $WORK)" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
