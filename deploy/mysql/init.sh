#!/bin/sh
# Runs init.sql with the database users' passwords taken from the environment, so that
# overriding AUTH_DB_PASSWORD / CHAT_DB_PASSWORD (deploy/.env) changes both the user in
# MySQL and the service's login. For the mysql image's /docker-entrypoint-initdb.d/,
# which runs *.sh files with the root connection available as docker_process_sql.
# Expects init.sql at /etc/parley/init.sql (see docs/security.md for the compose lines).
set -eu
sql=${PARLEY_INIT_SQL:-/etc/parley/init.sql}
auth_pw=${AUTH_DB_PASSWORD:-auth-dev-password}
chat_pw=${CHAT_DB_PASSWORD:-chat-dev-password}
for pw in "$auth_pw" "$chat_pw"; do
  case $pw in
    *\'*|*\\*) echo "init.sh: database passwords must not contain ' or \\" >&2; exit 1 ;;
  esac
done
# The passwords are substituted as SQL string literals (quotes and backslashes refused
# above); '|' in a password is escaped for sed.
esc() { printf '%s' "$1" | sed 's/[|&]/\\&/g'; }
sed -e "s|'auth-dev-password'|'$(esc "$auth_pw")'|" -e "s|'chat-dev-password'|'$(esc "$chat_pw")'|" "$sql" |
  docker_process_sql
