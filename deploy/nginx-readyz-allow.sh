#!/bin/sh
# A start hook of the nginx image (/docker-entrypoint.d/, run before nginx starts): writes
# READYZ_ALLOWED_NETWORKS (comma-separated addresses or CIDR networks) as the `allow` lines
# nginx.conf includes for /readyz. Unset or empty: no line, so /readyz is 403 through the proxy.
# Anything but an address or network stops the start (nothing else can get into nginx's config).
set -eu
allow_file=/etc/nginx/readyz-allow.conf
: > "$allow_file"
for network in $(printf '%s' "${READYZ_ALLOWED_NETWORKS:-}" | tr ',' ' '); do
    case "$network" in
        *[!0-9A-Fa-f.:/]*)
            echo "READYZ_ALLOWED_NETWORKS: '$network' is not an address or CIDR network" >&2
            exit 1
            ;;
    esac
    echo "allow $network;" >> "$allow_file"
done
