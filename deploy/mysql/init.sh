# Runs init.sql with the database users' passwords taken from the environment, so that
# overriding AUTH_DB_PASSWORD / CHAT_DB_PASSWORD (deploy/.env) changes both the user in
# MySQL and the service's login. For the mysql image's /docker-entrypoint-initdb.d/:
# the file is NOT executable, so the entrypoint sources it and docker_process_sql (its
# root connection) is available. Expects init.sql at /etc/parley/init.sql (see
# docs/security.md for the compose lines).
parley_sql=${PARLEY_INIT_SQL:-/etc/parley/init.sql}
parley_auth_pw=${AUTH_DB_PASSWORD:-auth-dev-password}
parley_chat_pw=${CHAT_DB_PASSWORD:-chat-dev-password}
case "$parley_auth_pw$parley_chat_pw" in
  *\'*|*\\*|*\|*|*\&*)
    echo "init.sh: database passwords must not contain ' \\ | or &" >&2
    exit 1 ;;
esac
# The passwords become SQL string literals; the characters refused above are the ones
# that could end the literal or confuse sed.
sed -e "s|'auth-dev-password'|'$parley_auth_pw'|" -e "s|'chat-dev-password'|'$parley_chat_pw'|" "$parley_sql" |
  docker_process_sql
unset parley_sql parley_auth_pw parley_chat_pw
