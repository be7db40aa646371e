#!/usr/bin/env bash
# Runs a command against a throwaway one-node Slurm cluster on this machine.
#
#   scripts/with-slurm.sh cargo nextest run --workspace -E 'binary(slurm)'
#
# Installs Debian's `slurm-wlm` and `munge` with apt-get when missing (sudo
# when not root), writes a one-node slurm.conf bound to 127.0.0.1 under a
# temporary folder (its own munge key and socket, state, spool, logs, free
# ports), starts munged, slurmctld and slurmd, waits until `sinfo` shows
# the node idle (polling, no fixed sleep), exports
#   WEFT_TEST_SLURM=1
#   SLURM_CONF=<the temporary slurm.conf>
# for the command, and always stops the three daemons by PID and deletes
# the folder on exit; the command's exit code is returned.
#
# slurmrestd too (Debian's `slurmrestd`, installed with the rest): the
# controller also takes JWTs (AuthAltTypes=auth/jwt, a fresh HS256 key from
# /dev/urandom, mode 0600, owned by SlurmUser), slurmrestd listens on a
# free loopback port with rest_auth/jwt and the v0.0.38 API (it refuses to
# run as root or SlurmUser, so `-u nobody -g nogroup` drops to nobody; no
# slurmdbd, so no dbv0.0.38 plugin), and
#   WEFT_SLURM_REST_URL=http://127.0.0.1:<port>
#   WEFT_SLURM_REST_USER=<this user>   WEFT_SLURM_REST_TOKEN_FILE=<file>
# (a token from `scontrol token`, mode 0600) are exported as well; it is
# stopped by PID with the daemons.
#
# Choices: the node declares WEFT_SLURM_CPUS CPUs (default 8, more than a
# small CI machine has: SlurmdParameters=config_overrides lets tests run
# several one-CPU worker jobs at once) and 4096 MB; EnforcePartLimits is
# left at its default (NO), so a job asking for more CPUs than the node has
# is accepted and stays PENDING with Reason=PartitionConfig, the case the
# launcher must fail on by itself (a job sbatch rejects is tested with an
# unknown partition).
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]
}

if ! { have slurmctld && have slurmd && have sbatch && have munged && have slurmrestd; }; then
    echo "with-slurm: installing slurm-wlm, slurmrestd and munge with apt-get..." >&2
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm slurmrestd munge >&2
fi
export PATH="$PATH:/usr/sbin:/sbin"

if [ "$(id -u)" -ne 0 ]; then
    # slurmd starts jobs as their user: it must run as root.
    SUDO=(sudo)
else
    SUDO=()
fi

free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# munged refuses a socket folder unless every folder above it is
# world-executable: /tmp is, and so is this folder (mktemp makes it 0700).
WORK="$(mktemp -d /tmp/weft-slurm.XXXXXX)"
chmod 0755 "$WORK"
pids=()

cleanup() {
    local rc=$?
    local pid
    if [ -n "${SLURM_CONF:-}" ] && [ "${#pids[@]}" -ge 2 ]; then
        # Jobs still running would leave their slurmstepd behind: cancel
        # them and wait (polling) until the controller has none left.
        scancel --partition=debug >/dev/null 2>&1 || true
        for _ in $(seq 1 200); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.05
        done
    fi
    for pid in "${pids[@]}"; do
        "${SUDO[@]}" kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 100); do
            "${SUDO[@]}" kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        "${SUDO[@]}" kill -KILL "$pid" 2>/dev/null || true
    done
    "${SUDO[@]}" rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT INT TERM

# A daemon's PID from its pid file (they fork into the background).
wait_pid() {
    local file=$1 name=$2 log=$3
    local deadline=$((SECONDS + 30))
    until [ -s "$file" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "with-slurm: $name wrote no pid file within 30 s:" >&2
            "${SUDO[@]}" cat "$log" >&2 || true
            exit 1
        fi
        sleep 0.02
    done
    pids+=("$(cat "$file")")
}

mkdir -p "$WORK/munge" "$WORK/state" "$WORK/spool" "$WORK/log" "$WORK/jwt"
chmod 0700 "$WORK/jwt"
# The JWT key of this cluster only, readable by SlurmUser (root) alone.
dd if=/dev/urandom of="$WORK/jwt/jwt_hs256.key" bs=32 count=1 status=none
chmod 0600 "$WORK/jwt/jwt_hs256.key"
"${SUDO[@]}" chown root:root "$WORK/jwt" "$WORK/jwt/jwt_hs256.key"
chmod 0755 "$WORK/munge"
# A key of this cluster only.
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chmod 0600 "$WORK/munge/munge.key"
SOCKET="$WORK/munge/munge.socket"
"${SUDO[@]}" munged --force \
    --key-file="$WORK/munge/munge.key" \
    --socket="$SOCKET" \
    --pid-file="$WORK/munge/munged.pid" \
    --log-file="$WORK/log/munged.log" \
    --seed-file="$WORK/munge/munged.seed"
wait_pid "$WORK/munge/munged.pid" munged "$WORK/log/munged.log"

HOST="$(hostname -s)"
CPUS="${WEFT_SLURM_CPUS:-8}"
CTLD_PORT="$(free_port)"
SLURMD_PORT="$(free_port)"
REST_PORT="$(free_port)"
USER_NAME="$(id -un)"
cat >"$WORK/slurm.conf" <<EOF
ClusterName=weft-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$WORK/jwt/jwt_hs256.key
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SchedulerParameters=batch_sched_delay=0
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=300
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=$CPUS RealMemory=4096 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$WORK/slurm.conf"

"${SUDO[@]}" env SLURM_CONF="$SLURM_CONF" slurmctld -i
wait_pid "$WORK/slurmctld.pid" slurmctld "$WORK/log/slurmctld.log"
"${SUDO[@]}" env SLURM_CONF="$SLURM_CONF" slurmd -N "$HOST"
wait_pid "$WORK/slurmd.pid" slurmd "$WORK/log/slurmd.log"

deadline=$((SECONDS + 60))
until [ "$(sinfo -h -n "$HOST" -o %T 2>/dev/null)" = "idle" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "with-slurm: node $HOST not idle within 60 s ($(sinfo -h -o %T 2>&1)):" >&2
        "${SUDO[@]}" tail -n 30 "$WORK/log/slurmctld.log" "$WORK/log/slurmd.log" >&2 || true
        exit 1
    fi
    sleep 0.05
done

# slurmrestd, as nobody (it refuses root and SlurmUser), JWT only.
"${SUDO[@]}" env SLURM_CONF="$SLURM_CONF" SLURM_JWT=daemon \
    slurmrestd -a rest_auth/jwt -s openapi/v0.0.38 -u nobody -g nogroup \
    "127.0.0.1:$REST_PORT" >"$WORK/log/slurmrestd.log" 2>&1 &
pids+=("$!")
TOKEN_FILE="$WORK/slurmrestd.token"
(umask 077 && scontrol token username="$USER_NAME" lifespan=86400 | sed -n 's/^SLURM_JWT=//p' >"$TOKEN_FILE")
if [ ! -s "$TOKEN_FILE" ]; then
    echo "with-slurm: scontrol token gave no token" >&2
    exit 1
fi
deadline=$((SECONDS + 30))
until curl -sf -o /dev/null -H "X-SLURM-USER-NAME: $USER_NAME" \
    -H "X-SLURM-USER-TOKEN: $(cat "$TOKEN_FILE")" "http://127.0.0.1:$REST_PORT/slurm/v0.0.38/ping"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "with-slurm: slurmrestd not answering on 127.0.0.1:$REST_PORT within 30 s:" >&2
        cat "$WORK/log/slurmrestd.log" >&2 || true
        exit 1
    fi
    sleep 0.05
done
export WEFT_SLURM_REST_URL="http://127.0.0.1:$REST_PORT"
export WEFT_SLURM_REST_USER="$USER_NAME"
export WEFT_SLURM_REST_TOKEN_FILE="$TOKEN_FILE"

export WEFT_TEST_SLURM=1
echo "with-slurm: Slurm $(sinfo -V | awk '{print $2}') node $HOST idle ($CPUS CPUs), SLURM_CONF=$SLURM_CONF (as $USER_NAME), slurmrestd on $WEFT_SLURM_REST_URL" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
