#!/bin/sh
# Writes the ACL file from REDIS_PASSWORD, then runs redis-server with redis.conf. Extra
# arguments are passed to redis-server.
set -eu
: "${REDIS_PASSWORD:?REDIS_PASSWORD must hold the relay user's password}"
acl_file="${REDIS_ACL_FILE:-/run/redis/users.acl}"
conf_file="${REDIS_CONF:-/etc/redis/redis.conf}"
umask 077
{
  # Headsets (no password): only their keys, with or without a per-headset prefix; every
  # command except the dangerous ones, plus FLUSHDB (the client clears db 0 at start), INFO
  # and CONFIG GET (read by client libraries when they connect).
  echo "user default on nopass resetkeys ~*userStream ~*aifbStream ~*aiStream ~*char_id ~*change_id resetchannels &* +@all -@dangerous +flushdb +info +config|get"
  # The relay: everything.
  echo "user solami on >${REDIS_PASSWORD} ~* &* +@all"
} > "$acl_file"
exec redis-server "$conf_file" --aclfile "$acl_file" "$@"
