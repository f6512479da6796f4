#!/bin/sh
# Container entrypoint: the first argument names one of Dockspace's processes (web, worker, beat and any an
# app declares; `python -m dockspace.processes list`), which is started as declared there, with any further
# arguments appended to its command line. `manage ARGS` runs a management command; a program on PATH is run as
# given, e.g. `docker compose run --rm web sh`.
set -eu

# How long processes other than web wait for the database to be reachable and fully migrated.
DB_WAIT_SECONDS=120

log() {
    echo "[entrypoint] $*" >&2
}

# Only the web container migrates (several containers migrating at once would race); the other processes
# start once `migrate --check` passes, i.e. the database answers and has no unapplied migration.
wait_for_database() {
    role=$1
    deadline=$(($(date +%s) + DB_WAIT_SECONDS))
    log "$role: waiting for the database to be reachable and migrated (up to ${DB_WAIT_SECONDS}s)"
    while :; do
        if output=$(python manage.py migrate --check 2>&1); then
            log "$role: database ready"
            return 0
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            [ -z "$output" ] || printf '%s\n' "$output" | tail -n 20 >&2
            log "$role: giving up after ${DB_WAIT_SECONDS}s: the database is unreachable or not migrated." \
                "Check DATABASE_URL, and that the web container started and ran its migrations (see its log)."
            exit 1
        fi
        sleep 3
    done
}

[ "$#" -gt 0 ] || set -- web

case "$1" in
    manage)
        shift
        exec python manage.py "$@"
        ;;
    web)
        # Dockspace's files are private to its user (an older volume may still be 0750).
        chmod 0700 "${DOCKSPACE_DATA_DIR:-/data}" 2>/dev/null || true
        python manage.py migrate --noinput
        python manage.py install_periodic_tasks
        python manage.py install_alert_rules
        # While no administrator exists, the first-run page asks for this one-time code.
        setup_code=$(python manage.py setup_code --if-needed)
        [ -z "$setup_code" ] || log "web: $setup_code"
        # DMS wires the access files into Postfix only if they exist when it starts: write every
        # file now, before the mailserver's first start.
        python manage.py export_dms_files \
            || log "web: could not write the DMS files now; see Admin -> DMS sync state (it is retried)"
        exec python -m dockspace.processes run "$@"
        ;;
esac

# A declared process's name comes first (a program of the same name on PATH never shadows it); then a program
# (sh, python, celery...) runs as given; any other word is refused with the list of declared names.
if ! python -m dockspace.processes names | grep -qxF -- "$1"; then
    case "$(command -v -- "$1" 2>/dev/null)" in
        /*) exec "$@" ;;
    esac
    exec python -m dockspace.processes run "$@"  # refused at once, naming the declared processes
fi
wait_for_database "$1"
exec python -m dockspace.processes run "$@"
