# shellcheck shell=bash
# Shared by bench/run.sh, bench/h2.sh, bench/soak.sh, bench/heavy.sh and bench/idle-users.sh (sourced; defines
# functions only): the tools a bench installs, and the nginx target every bench runs against,
# from a config of its own in a directory of its own.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# positive_ints SCRIPT VAR...: exits 2, naming SCRIPT and the variable, unless each VAR holds a
# positive whole number (a bench's counts and seconds, from its flags or environment).
positive_ints() {
    local who=$1 v; shift
    for v in "$@"; do
        case "${!v}" in ''|*[!0-9]*|0) echo "$who: $v must be a positive whole number" >&2; exit 2 ;; esac
    done
}

# nginx_conf DIR SERVERS: writes DIR/nginx.conf for an nginx in the foreground with every file
# under DIR and SERVERS (the text of its server blocks) in its http block. Tuned by variables:
#   NGINX_WORKERS (1), NGINX_CONNECTIONS per worker (4096), NGINX_NOFILE (worker_rlimit_nofile,
#   unset: none), NGINX_KEEPALIVE (300s), NGINX_ERROR_LEVEL (warn), NGINX_ACCESS_FORMAT (unset:
#   no access log; else a log_format for DIR/access.log, e.g. '$request_method $uri $status').
nginx_conf() {
    local dir=$1 servers=$2 rlimit="" access="access_log off;"
    [ -z "${NGINX_NOFILE:-}" ] || rlimit="worker_rlimit_nofile $NGINX_NOFILE;"
    if [ -n "${NGINX_ACCESS_FORMAT:-}" ]; then
        access="log_format count '$NGINX_ACCESS_FORMAT';
    access_log $dir/access.log count;"
    fi
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" <<CONF
worker_processes ${NGINX_WORKERS:-1};
$rlimit
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log ${NGINX_ERROR_LEVEL:-warn};
events { worker_connections ${NGINX_CONNECTIONS:-4096}; }
http {
    $access
    keepalive_requests 1000000;
    keepalive_timeout ${NGINX_KEEPALIVE:-300s};
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
$servers
}
CONF
}

# nginx_start NGINX DIR PORT [PREFIX...]: starts NGINX on DIR/nginx.conf in the background
# (behind PREFIX, e.g. taskset -c 0) and waits up to 5 s for PORT to accept. Sets NGINX_PID;
# returns 1 (NGINX_PID empty, the process stopped) when nginx exits or PORT never opens.
nginx_start() {
    local nginx=$1 dir=$2 port=$3
    shift 3
    "$@" "$nginx" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout" 2>&1 &
    NGINX_PID=$!
    for _ in $(seq 50); do
        kill -0 "$NGINX_PID" 2>/dev/null || { NGINX_PID=; return 1; }
        if port_open "$port"; then return 0; fi
        sleep 0.1
    done
    kill -TERM "$NGINX_PID" 2>/dev/null
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=
    return 1
}

# install_missing PKG...: installs Debian packages (as root; otherwise says to run as root once),
# with an `apt-get update` first when the package lists are stale. `nginx-light`, gone from newer
# releases, falls back to `nginx`. Debian's postinst may start the system nginx (when there is
# an init system): no bench uses it, and it does not listen on a bench's port.
install_missing() {
    [ $# -gt 0 ] || return 0
    [ "$(id -u)" = 0 ] || { echo "error: missing $*; run as root once to install them" >&2; exit 1; }
    echo "installing $*" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "$@" >&2 && return 0
    apt-get update >&2
    apt-get install -y "$@" >&2 && return 0
    local pkgs=("${@/nginx-light/nginx}")
    apt-get install -y "${pkgs[@]}" >&2
}

# nginx_stop: stops NGINX_PID (TERM: a fast shutdown of master and workers; KILL after 5 s).
nginx_stop() {
    [ -n "${NGINX_PID:-}" ] && kill -0 "$NGINX_PID" 2>/dev/null || return 0
    kill -TERM "$NGINX_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NGINX_PID" 2>/dev/null
    return 0
}
