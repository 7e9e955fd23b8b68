#!/usr/bin/env bash
# Build the `bot` and `worker-cpu` images for real and start them, without Docker: Debian's Podman (see
# docs/deploy.md, "Checking the images without Docker"). Called by .ci/run; runs as root.
#
#   scripts/container_check.sh
#
# 1. installs podman, runc, catatonit and debootstrap when they are missing (apt);
# 2. uses the pinned PYTHON_IMAGE when it can be pulled, else a stand-in made by debootstrap from
#    Debian's mirror (its rootfs tarball is cached in .cache/container-check/, so later runs import it
#    in seconds);
# 3. builds the `bot` target;
# 4. checks the image: `app.py --help`; `--role all` with the compose file's hardening (read-only
#    root, tmpfs /tmp, no capabilities, no-new-privileges, init) and a `_FILE` secret: /healthz, then
#    /readyz; every process runs as the image's non-root uid; the image's own HEALTHCHECK passes;
#    SIGTERM stops it with exit code 0 within the compose file's stop_grace_period;
# 5. carries one prompt through containers: the image as `--role bot` and as `--role worker`
#    (GENERATOR=fake) on the host network, against a real Kafka broker (tools/kafka_broker.py),
#    moto's S3 server and the fake Bot API of the tests (scripts/container_prompt_check.py), all on
#    127.0.0.1: the picture must reach the user and its object must be in the bucket;
# 6. builds the `worker-cpu` target (torch from the PyTorch CPU index when it answers, else from PyPI:
#    TORCH_CPU_INDEX_URL=pypi, the CUDA build, which runs on the CPU too) and carries one prompt
#    through it as in 5, the bot image as `--role bot` and worker-cpu as `--role worker` with the
#    compose file's hardening and GENERATOR=tiny (the random-weight Würstchen, built into the model
#    cache volume, /cache, not the read-only root). The image is removed as soon as it is checked:
#    it is several GB (the CUDA torch), and its build needs about 26 GB of free disk at its peak.
# Every step prints its time; the images, containers, volumes and secrets it made are removed at the
# end (trap), and so are the broker and the S3 server. Any failed check exits non-zero.
#
# Environment: P2P_CI_KEEP_IMAGES=1 keeps the images (to iterate on the run checks),
# P2P_CI_REUSE_BOT_IMAGE=REF and P2P_CI_REUSE_WORKER_CPU_IMAGE=REF skip a build and check REF,
# P2P_CI_TORCH_CPU_INDEX_URL forces worker-cpu's torch index (`pypi`: PyPI), PYTHON_IMAGE overrides the pin,
# P2P_CI_STANDIN_SUITE (default bookworm: Python 3.11, the pinned minor version), DEBIAN_MIRROR.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PYTHONUNBUFFERED=1

run_id="$(date +%s)-$$"
prefix="p2p-ci-${run_id}"
work="${CONTAINER_CHECK_CACHE:-$root/.cache/container-check}"
mkdir -p "$work"
bot_image="localhost/p2p-ci-bot:${run_id}"
worker_cpu_image="localhost/p2p-ci-worker-cpu:${run_id}"
cpu_index_default="$(sed -n 's/^ARG TORCH_CPU_INDEX_URL=//p' Dockerfile | head -1)"
standin_suite="${P2P_CI_STANDIN_SUITE:-bookworm}"
standin_image="localhost/p2p-ci-python-standin:${standin_suite}-${run_id}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
made_images=()
moto_pid=""
kafka_state="$work/kafka-${run_id}.json"
kafka_started=""

# --------------------------------------------------------------------------- output and timing
script_start=$(date +%s.%N)
step_name=""
step_start=""
summary=()

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

step() {
    end_step
    step_name="$1"
    step_start=$(date +%s.%N)
    echo "== container_check: $step_name"
}

end_step() {
    if [ -n "$step_name" ]; then
        local t
        t=$(elapsed "$step_start")
        echo "-- $step_name: ${t} s"
        summary+=("$(printf '%7s s  %s' "$t" "$step_name")")
        step_name=""
    fi
}

fail() {
    echo "container_check: FAILED: $*" >&2
    exit 1
}

ok() { echo "   ok: $*"; }

# Without systemd, podman 4.3 logs "unable to get systemd connection to add healthchecks" on every
# run/stop/rm: harmless (the check runs the health check itself), so it is left out of the output.
no_noise() { grep -v 'unable to get systemd connection' || true; }
podman() { command podman "$@" 2> >(no_noise >&2); }

# Poll a command until it succeeds or the deadline passes.
wait_until() {  # wait_until SECONDS DESCRIPTION CMD...
    local limit="$1" what="$2"
    shift 2
    local deadline=$(( $(date +%s) + limit ))
    until "$@" > /dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.25
    done
    ok "$what after $(elapsed "$step_start") s"
}

# --------------------------------------------------------------------------- cleanup (trap)
cleanup() {
    local status=$?
    trap - EXIT
    end_step
    set +e
    echo "== container_check: cleanup"
    if command -v podman > /dev/null 2>&1; then
        local c v
        for c in $(podman ps -a --format '{{.Names}}' 2> /dev/null | grep "^${prefix}-"); do
            podman rm -f -t 0 "$c" > /dev/null 2>&1
        done
        for v in $(podman volume ls --format '{{.Name}}' 2> /dev/null | grep "^${prefix}-"); do
            podman volume rm -f "$v" > /dev/null 2>&1
        done
        if [ "${P2P_CI_KEEP_IMAGES:-0}" = 1 ]; then
            echo "   kept images (P2P_CI_KEEP_IMAGES=1): ${made_images[*]:-none}"
        elif [ "${#made_images[@]}" -gt 0 ]; then
            podman rmi -f "${made_images[@]}" > /dev/null 2>&1
        fi
    fi
    if [ -n "$moto_pid" ]; then
        kill "$moto_pid" 2> /dev/null
        wait "$moto_pid" 2> /dev/null
    fi
    if [ -n "$kafka_started" ]; then
        python3 tools/kafka_broker.py stop --state-file "$kafka_state" > /dev/null 2>&1
    fi
    rm -f "$kafka_state"
    rm -rf "$work/run-${run_id}"
    echo "== container_check: step times"
    printf '%s\n' "${summary[@]}"
    printf '%7s s  total\n' "$(elapsed "$script_start")"
    if [ "$status" -eq 0 ]; then
        echo "container_check: all checks passed"
    else
        echo "container_check: FAILED (exit $status)" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --------------------------------------------------------------------------- 1. tools
step "tools (podman, runc, catatonit, debootstrap)"
missing=()
for tool in podman runc catatonit debootstrap; do
    command -v "$tool" > /dev/null 2>&1 || [ -x "/usr/libexec/podman/$tool" ] || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "   installing ${missing[*]} (apt)"
    [ "$(id -u)" -eq 0 ] || fail "must run as root to install ${missing[*]} (and to run podman with runc here)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        podman runc catatonit debootstrap uidmap > "$work/apt.log" 2>&1 \
        || { tail -20 "$work/apt.log" >&2; fail "apt-get install of podman runc catatonit debootstrap"; }
fi
# This VM kind: root cannot raise the nofile hard limit (20000), crun refuses its hybrid cgroups,
# and only the loopback and the package registries may be reached (no CNI bridge, no NAT).
cat > "$work/containers.conf" << 'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$work/containers.conf"
ok "$(podman --version), $(runc --version | head -1)"

# --------------------------------------------------------------------------- 2. base image
pinned="$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile | head -1)"
python_image="${PYTHON_IMAGE:-$pinned}"
[ -n "$python_image" ] || fail "no ARG PYTHON_IMAGE=... default in the Dockerfile"
step "base image: pull $python_image"
if timeout 120 podman pull -q "$python_image" > "$work/pull.log" 2>&1; then
    ok "pulled $python_image"
else
    echo "   $python_image cannot be pulled here: $(tail -1 "$work/pull.log")"
    # The stand-in (Debian's python3 in a minimal rootfs, its rootfs cached as a tarball):
    # scripts/python_standin.sh, shared with the release test.
    step "base image: stand-in (scripts/python_standin.sh; debootstrap once, then the cached rootfs)"
    P2P_CI_STANDIN_SUITE="$standin_suite" DEBIAN_MIRROR="$mirror" CONTAINER_CHECK_CACHE="$work" \
        bash scripts/python_standin.sh "$standin_image" > /dev/null || fail "the stand-in base image"
    made_images+=("$standin_image")
    python_image="$standin_image"
    ok "stand-in $standin_image: $(podman run --rm "$standin_image" python --version)"
fi

# --------------------------------------------------------------------------- 3. build
# --layers=false: buildah 1.28 bind-mounts an empty folder for RUN --mount=from=<cached stage>
# (containers/buildah#4375). --format docker keeps the HEALTHCHECK. The host's CA bundle lets pip
# through this network's TLS interception; the image keeps its own bundle.
build_args=(--layers=false --format docker --network host --pull=never
    --build-arg "PYTHON_IMAGE=$python_image")
[ -r "$ca_bundle" ] && build_args+=(-v "$ca_bundle:$ca_bundle:ro")
if [ -n "${P2P_CI_REUSE_BOT_IMAGE:-}" ]; then
    bot_image="$P2P_CI_REUSE_BOT_IMAGE"
    step "build: reusing $bot_image (P2P_CI_REUSE_BOT_IMAGE)"
    podman image exists "$bot_image" || fail "no image $bot_image"
else
    step "build: target bot (PYTHON_IMAGE=$python_image)"
    made_images+=("$bot_image")
    if ! podman build "${build_args[@]}" --target bot -t "$bot_image" . > "$work/build.log" 2>&1; then
        tail -40 "$work/build.log" >&2
        fail "the bot image does not build (full log: $work/build.log)"
    fi
    ok "built $bot_image, $(podman image inspect "$bot_image" --format '{{.Size}}' | awk '{ printf "%d MB", $1 / 1e6 }')"
fi

# --------------------------------------------------------------------------- 4. image checks
step "image: metadata (non-root user, HEALTHCHECK, entry point)"
image_user="$(podman image inspect "$bot_image" --format '{{.Config.User}}')"
uid="${image_user%%:*}"
case "$uid" in
    '' | 0 | root) fail "the image runs as root (USER is '${image_user}')" ;;
    *[!0-9]*) fail "USER must be a numeric uid (Kubernetes' runAsNonRoot needs one), not '${image_user}'" ;;
esac
ok "USER $image_user"
health="$(podman image inspect "$bot_image" --format '{{json .Config.Healthcheck}}')"
[ "$health" != null ] && [ -n "$health" ] || fail "the image has no HEALTHCHECK (built in OCI format?)"
ok "HEALTHCHECK $health"

step "image: app.py --help"
help_out="$(timeout 60 podman run --rm "$bot_image" python app.py --help 2>&1 | no_noise)" \
    || { echo "$help_out" >&2; fail "python app.py --help failed in the image"; }
grep -q -- '--role' <<< "$help_out" || { echo "$help_out" >&2; fail "app.py --help does not list --role"; }
ok "$(head -1 <<< "$help_out")"

mapfile -t harden < <(python3 scripts/container_prompt_check.py hardening bot --volume-prefix "$prefix")
[ "${#harden[@]}" -gt 0 ] || fail "could not read the bot's hardening from docker-compose.yml"
grace="$(python3 scripts/container_prompt_check.py grace bot)"
http_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
secret_value="ci-link-key-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"

step "image: the entry point refuses a missing _FILE secret"
set +e
refused="$(timeout 60 podman run --rm -e LINK_SIGNING_KEY_FILE=/run/secrets/absent "$bot_image" true 2>&1)"
code=$?
refused="$(no_noise <<< "$refused")"
set -e
[ "$code" -eq 66 ] && grep -q 'LINK_SIGNING_KEY_FILE=/run/secrets/absent is missing' <<< "$refused" \
    || { echo "$refused" >&2; fail "a missing secret file should stop the entry point with exit 66 (got $code)"; }
ok "exit 66: $refused"

step "image: --role all starts, hardened (${harden[*]})"
# A Compose `file:` secret is a read-only bind mount of the host's file (podman's own --secret cannot
# mount into a --read-only container in podman 4.3: containers/podman#15541), readable by the uid only.
secrets_dir="$work/run-${run_id}/secrets"
install -d -m 0700 "$secrets_dir"
printf '%s' "$secret_value" > "$secrets_dir/link_signing_key"
chown "$uid:$uid" "$secrets_dir/link_signing_key"
chmod 0400 "$secrets_dir/link_signing_key"
ctr="${prefix}-all"
podman run -d --name "$ctr" "${harden[@]}" \
    -v "$secrets_dir/link_signing_key:/run/secrets/link_signing_key:ro" \
    -e HTTP_HOST=127.0.0.1 -e HTTP_PORT="$http_port" -e SHUTDOWN_GRACE_S=20 \
    -e LINK_SIGNING_KEY_FILE=/run/secrets/link_signing_key \
    "$bot_image" python app.py --role all > /dev/null
probe() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1"; }
show_logs() { podman logs --tail 40 "$ctr" >&2 || true; }
wait_until 60 "/healthz answers" probe "http://127.0.0.1:$http_port/healthz" \
    || { show_logs; fail "/healthz did not answer within 60 s"; }
wait_until 60 "/readyz answers" probe "http://127.0.0.1:$http_port/readyz" \
    || { show_logs; fail "/readyz did not answer 200 within 60 s"; }

step "image: processes, user, capabilities, read-only root, secret"
podman top "$ctr" huser user pid args
bad_users="$(podman top "$ctr" huser | tail -n +2 | grep -vx "$uid" || true)"
[ -z "$bad_users" ] || fail "processes not running as uid $uid: $bad_users"
nprocs="$(podman top "$ctr" huser | tail -n +2 | wc -l)"
[ "$nprocs" -ge 2 ] || fail "expected the init and the app, saw $nprocs process(es)"
ok "all $nprocs processes run as uid $uid"
# What the kernel says of every process in the container: user, capabilities, no_new_privs; the
# app saw the secret from its _FILE (and the _FILE variable is gone); the root is read-only.
if ! podman exec -i -e P2P_EXPECTED_SECRET="$secret_value" -e P2P_UID="$uid" "$ctr" python - << 'EOF'
import os, sys, tempfile
uid, expected = int(os.environ["P2P_UID"]), os.environ["P2P_EXPECTED_SECRET"]
errors, app_seen = [], False
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines() if ":" in l)
        argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")
        env = dict(e.split("=", 1) for e in open(f"/proc/{pid}/environ", "rb").read().decode().split("\0") if "=" in e)
    except (FileNotFoundError, ProcessLookupError):
        continue
    uids = set(status["Uid"].split())
    if uids != {str(uid)}:
        errors.append(f"pid {pid} ({cmdline}) has uids {uids}")
    for cap in ("CapEff", "CapPrm", "CapBnd"):
        if int(status[cap].strip(), 16):
            errors.append(f"pid {pid} ({cmdline}) has {cap} {status[cap].strip()}")
    if status.get("NoNewPrivs", "").strip() != "1":
        errors.append(f"pid {pid} ({cmdline}) lacks no_new_privs")
    cmdline = " ".join(argv).strip()
    if argv[0].rsplit("/", 1)[-1].startswith("python") and argv[1:2] == ["app.py"]:  # the app itself
        app_seen = True
        if env.get("LINK_SIGNING_KEY") != expected:
            errors.append("the app did not get LINK_SIGNING_KEY from LINK_SIGNING_KEY_FILE")
        if "LINK_SIGNING_KEY_FILE" in env:
            errors.append("LINK_SIGNING_KEY_FILE is still in the app's environment")
if not app_seen:
    errors.append("no app.py process found")
for path in ("/app/x", "/usr/local/x", "/etc/x"):
    try:
        open(path, "w").close()
        errors.append(f"{path} is writable: the root file system is not read-only")
    except OSError:
        pass
with tempfile.NamedTemporaryFile(dir="/tmp"):  # the tmpfs
    pass
with tempfile.NamedTemporaryFile(dir="/app/data"):  # the volume
    pass
print("\n".join(errors) or "   ok: uid, no capabilities, no_new_privs on every process; secret read; root read-only; /tmp and /app/data writable")
sys.exit(1 if errors else 0)
EOF
then
    show_logs
    fail "the process checks inside the container failed"
fi

step "image: its own HEALTHCHECK (podman healthcheck run)"
podman healthcheck run "$ctr" || { show_logs; fail "the image's HEALTHCHECK failed"; }
ok "healthy: $(podman inspect "$ctr" --format '{{.State.Healthcheck.Status}}')"

step "image: SIGTERM stops it with exit 0 within ${grace} s"
podman kill --signal TERM "$ctr" > /dev/null
if ! code="$(timeout "$grace" podman wait "$ctr")"; then
    show_logs
    fail "the container did not stop within ${grace} s of SIGTERM"
fi
[ "$code" = 0 ] || { show_logs; fail "exit code $code after SIGTERM (expected 0)"; }
ok "exit 0 after $(elapsed "$step_start") s"
if podman logs "$ctr" 2>&1 | grep -qF "$secret_value"; then
    fail "the secret appears in the container's log"
fi
ok "the secret is not in the log"
podman rm -f "$ctr" > /dev/null

# --------------------------------------------------------------------------- 5. one prompt
step "prompt: start the Kafka broker on 127.0.0.1 (tools/kafka_broker.py)"
kafka_out="$(timeout 180 python3 tools/kafka_broker.py start --state-file "$kafka_state")" \
    || fail "the Kafka broker did not start"
kafka_started=1
bootstrap="$(sed -n 's/^KAFKA_BOOTSTRAP_SERVERS=//p' <<< "$kafka_out")"
[ -n "$bootstrap" ] || fail "tools/kafka_broker.py start printed no KAFKA_BOOTSTRAP_SERVERS"
ok "Kafka at $bootstrap"
step "prompt: start moto's S3 server on 127.0.0.1"
mkdir -p "$work/run-${run_id}"
s3_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
moto_server -H 127.0.0.1 -p "$s3_port" > "$work/run-${run_id}/moto.log" 2>&1 &
moto_pid=$!
s3_up() { python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$s3_port"; }
wait_until 30 "moto S3 server at 127.0.0.1:$s3_port" s3_up \
    || { tail -20 "$work/run-${run_id}/moto.log" >&2; fail "moto_server did not start within 30 s"; }

step "prompt: bot and worker containers, a prompt in, a picture out"
timeout 300 python3 scripts/container_prompt_check.py prompt --image "$bot_image" \
    --kafka "$bootstrap" --s3 "http://127.0.0.1:$s3_port" --prefix "$prefix" \
    || fail "the prompt through containers"

# --------------------------------------------------------------------------- 6. the CPU worker image
if [ -n "${P2P_CI_REUSE_WORKER_CPU_IMAGE:-}" ]; then
    worker_cpu_image="$P2P_CI_REUSE_WORKER_CPU_IMAGE"
    step "build: reusing $worker_cpu_image (P2P_CI_REUSE_WORKER_CPU_IMAGE)"
    podman image exists "$worker_cpu_image" || fail "no image $worker_cpu_image"
else
    # The Dockerfile's default, the PyTorch CPU index (CPU-only torch, ~200 MB), when it answers;
    # else PyPI's torch (the CUDA build, ~6 GB with its libraries; it runs on the CPU as well).
    torch_index="${P2P_CI_TORCH_CPU_INDEX_URL:-}"
    if [ -z "$torch_index" ]; then
        if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' \
            "${cpu_index_default%/}/torch/" > /dev/null 2>&1; then
            torch_index="$cpu_index_default"
        else
            torch_index=pypi
            echo "   $cpu_index_default cannot be reached here: worker-cpu gets PyPI's torch (TORCH_CPU_INDEX_URL=pypi)"
        fi
    fi
    storage="$(podman info --format '{{.Store.GraphRoot}}')"
    free_gb="$(df -P -BG "$storage" | awk 'NR == 2 { sub("G", "", $4); print $4 }')"
    if [ "$torch_index" = pypi ] && [ "$free_gb" -lt 28 ]; then
        fail "worker-cpu with PyPI's torch needs about 26 GB of free disk at its peak; $storage has $free_gb GB"
    fi
    step "build: target worker-cpu (TORCH_CPU_INDEX_URL=$torch_index; $free_gb GB free)"
    made_images+=("$worker_cpu_image")
    if ! podman build "${build_args[@]}" --build-arg "TORCH_CPU_INDEX_URL=$torch_index" \
        --target worker-cpu -t "$worker_cpu_image" . > "$work/build-worker-cpu.log" 2>&1; then
        tail -40 "$work/build-worker-cpu.log" >&2
        fail "the worker-cpu image does not build (full log: $work/build-worker-cpu.log)"
    fi
    ok "built $worker_cpu_image, $(podman image inspect "$worker_cpu_image" --format '{{.Size}}' | awk '{ printf "%d MB", $1 / 1e6 }'); $(df -P -BG "$storage" | awk 'NR == 2 { print $4 }') free"
fi

step "worker-cpu: metadata, torch on the CPU"
[ "$(podman image inspect "$worker_cpu_image" --format '{{.Config.User}}')" = "$image_user" ] \
    || fail "worker-cpu does not run as $image_user"
[ "$(podman image inspect "$worker_cpu_image" --format '{{json .Config.Healthcheck}}')" != null ] \
    || fail "worker-cpu has no HEALTHCHECK"
torch_out="$(timeout 120 podman run --rm "$worker_cpu_image" python -c \
    'import torch, diffusers; print(f"torch {torch.__version__} (CUDA build: {torch.version.cuda}), diffusers {diffusers.__version__}, GPU: {torch.cuda.is_available()}, {torch.ones(3).sum().item():.0f} = 3 on the CPU")' 2>&1 | no_noise)" \
    || { echo "$torch_out" >&2; fail "torch does not import in worker-cpu"; }
ok "USER $image_user, HEALTHCHECK; $torch_out"

step "prompt: bot and worker-cpu (GENERATOR=tiny) containers, a prompt in, a picture out"
timeout 900 python3 scripts/container_prompt_check.py prompt --image "$bot_image" \
    --worker-image "$worker_cpu_image" --generator tiny --timeout 300 \
    --kafka "$bootstrap" --s3 "http://127.0.0.1:$s3_port" --prefix "${prefix}-cpu" \
    || fail "the prompt through the worker-cpu container"
if [ "${P2P_CI_KEEP_IMAGES:-0}" != 1 ] && [ -z "${P2P_CI_REUSE_WORKER_CPU_IMAGE:-}" ]; then
    step "worker-cpu: remove the image (several GB) now, not at the end"
    podman rmi -f "$worker_cpu_image" > /dev/null
    kept=()
    for image in "${made_images[@]}"; do
        [ "$image" = "$worker_cpu_image" ] || kept+=("$image")
    done
    made_images=("${kept[@]}")
    ok "removed; $(df -P -BG "$(podman info --format '{{.Store.GraphRoot}}')" | awk 'NR == 2 { print $4 }') free"
fi
end_step
