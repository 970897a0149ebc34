#!/bin/sh
# eks-image-bake prewarm: read the cached container images' files once, at boot, in the
# background, so the EBS volume made from the AMI's snapshot fetches their blocks from S3 now
# instead of when a pod first starts (see docs/first-start.md).
#
# It reads exactly what the bake listed (the images' content blobs and unpacked layer
# directories), several files at once, at idle I/O and CPU priority. It never fails: a missing
# list, file or directory is logged and skipped, and the exit status is always 0.
#
# Settings (environment): PREWARM_LIST (the list; lines "f PATH" or "d PATH"), PREWARM_PARALLEL.

LIST=${PREWARM_LIST:-/etc/eks-image-bake/prewarm.list}
PARALLEL=${PREWARM_PARALLEL:-8}

log() { echo "eks-image-bake-prewarm: $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime 2>/dev/null || echo 0; }

if [ ! -r "$LIST" ]; then
    log "no list at $LIST: nothing to read"
    exit 0
fi
# systemd already sets these (IOSchedulingClass=idle, Nice=19); run by hand, do it here.
ionice -c 3 -p $$ >/dev/null 2>&1 || true
renice -n 19 -p $$ >/dev/null 2>&1 || true

started=$(uptime_s)
log "reading the files listed in $LIST with $PARALLEL readers"
# Every listed file, then every regular file under each listed directory, NUL-separated; each
# reader prints "FILES BYTES" for its batch and awk adds them up.
totals=$(
    while read -r kind path; do
        case "$kind" in
            f) if [ -f "$path" ]; then printf '%s\0' "$path"; else log "missing file: $path" >&2; fi ;;
            d) if [ -d "$path" ]; then find "$path" -xdev -type f -print0 2>/dev/null; else log "missing directory: $path" >&2; fi ;;
            *) [ -n "$kind" ] && log "ignoring the line: $kind $path" >&2 ;;
        esac
    done < "$LIST" |
    xargs -0 -r -P "$PARALLEL" -n 32 sh -c 'b=$(cat -- "$@" 2>/dev/null | wc -c); echo "$# $b"' sh |
    awk '{ f += $1; b += $2 } END { printf "%d %d\n", f, b }'
)
ended=$(uptime_s)
set -- $totals
log "read ${2:-0} bytes in ${1:-0} files in $(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }') s"
exit 0
