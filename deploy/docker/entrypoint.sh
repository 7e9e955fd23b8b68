#!/bin/sh
# Container entry point for the Prompt2Pic images.
#
# Docker / Compose secrets arrive as files (/run/secrets/<name>), but the app reads its settings from
# environment variables. For each secret setting below, NAME_FILE=/path makes this script read the
# file into NAME before starting the app, so the value never appears in the compose file, in
# `docker inspect`, or in the image. Setting both NAME and NAME_FILE is an error.
# Then it execs the command (CMD), so the app runs as PID 1's child under `init: true` and gets
# SIGTERM directly.
set -eu

for name in TELEGRAM_BOT_TOKEN TELEGRAM_WEBHOOK_SECRET S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY LINK_SIGNING_KEY DATABASE_URL DATABASE_PASSWORD KAFKA_SASL_PASSWORD; do
    eval "file=\${${name}_FILE:-}"
    [ -n "$file" ] || continue
    eval "current=\${${name}:-}"
    if [ -n "$current" ]; then
        echo "p2p-entrypoint: both ${name} and ${name}_FILE are set; set only one" >&2
        exit 64
    fi
    if [ ! -r "$file" ]; then
        echo "p2p-entrypoint: ${name}_FILE=${file} is missing or not readable by uid $(id -u)" >&2
        exit 66
    fi
    value=$(cat "$file")
    if [ -z "$value" ]; then
        echo "p2p-entrypoint: ${file} (${name}) is empty; set it in .env (see .env.example)" >&2
        exit 66
    fi
    export "${name}=${value}"
    unset "${name}_FILE"
done
unset name file current value

exec "$@"
