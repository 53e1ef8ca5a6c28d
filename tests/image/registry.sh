#!/bin/sh
# A throw-away OCI registry for the image tests and benchmarks: Debian's
# docker-registry (distribution v2.8) on 127.0.0.1, a free port, storage
# under DIR, deletion enabled. No systemd: the registry is an ordinary
# background process of whoever ran `start`.
#
# usage:
#   registry.sh start DIR [--htpasswd [USER:PASSWORD]]
#       Creates DIR (must not hold a running registry), writes DIR/config.yml,
#       starts the registry, waits until GET /v2/ answers, and writes
#         DIR/address   127.0.0.1:PORT, one line
#         DIR/pid       the registry's pid
#         DIR/log       its stdout and stderr
#       With --htpasswd the registry asks for basic auth (bcrypt htpasswd,
#       made with perl's crypt(), i.e. libxcrypt) and DIR/credentials holds
#       USER:PASSWORD (default vmlet-test:vmlet-test-password). Plain HTTP:
#       clients must treat the registry as insecure.
#   registry.sh stop DIR
#       Kills the registry whose pid is in DIR/pid (if it is still the
#       registry) and removes DIR. Safe to run again, or on a DIR never
#       started.
#
# Exits 77 (skip) when docker-registry or an HTTP client is missing, 1 when
# the registry does not come up (its log is printed).
set -eu

registry=/usr/bin/docker-registry
usage() {
  echo "usage: registry.sh start DIR [--htpasswd [USER:PASSWORD]] | registry.sh stop DIR" >&2
  exit 2
}

# Is TCP port $1 free on every address? Reads /proc/net/tcp{,6} for
# listeners (state 0A) on it.
port_free() {
  hex=$(printf '%04X' "$1")
  ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
    awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }'
}

# Prints the HTTP status of GET http://$1/v2/ (000 when nothing answers).
http_status() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 2 "http://$1/v2/" || true
  else
    # busybox wget prints "server returned error: HTTP/1.1 401 ..." on 4xx.
    out=$(no_proxy='*' busybox wget -q -T 2 -O /dev/null "http://$1/v2/" 2>&1) && { echo 200; return; }
    echo "$out" | sed -n 's/.*HTTP\/1\.[01] \([0-9][0-9][0-9]\).*/\1/p' | grep . || echo 000
  fi
}

random_port() {
  # 20000..59999, away from the usual ephemeral range's busiest end.
  n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
  echo $((20000 + n % 40000))
}

is_our_registry() {  # pid
  [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q "docker-registry"
}

stop() {
  dir=$1
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    if is_our_registry "$pid"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do
        is_our_registry "$pid" || break
        sleep 0.1
      done
      if is_our_registry "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
  fi
  rm -rf "$dir"
}

start() {
  dir=$1
  shift
  auth=
  if [ "${1:-}" = "--htpasswd" ]; then
    auth=vmlet-test:vmlet-test-password
    [ -n "${2:-}" ] && auth=$2
    case "$auth" in *:*) ;; *) usage ;; esac
  elif [ -n "${1:-}" ]; then
    usage
  fi
  if [ ! -x "$registry" ]; then
    echo "registry.sh: $registry is missing (apt-get install docker-registry)" >&2
    exit 77
  fi
  if ! command -v curl >/dev/null 2>&1 && ! command -v busybox >/dev/null 2>&1; then
    echo "registry.sh: needs curl or busybox to probe the registry" >&2
    exit 77
  fi
  if [ -f "$dir/pid" ] && is_our_registry "$(cat "$dir/pid")"; then
    echo "registry.sh: a registry already runs from \"$dir\" (pid $(cat "$dir/pid"))" >&2
    exit 1
  fi
  mkdir -p "$dir/storage"
  dir=$(cd "$dir" && pwd)
  rm -f "$dir/address" "$dir/pid"
  auth_yaml=
  if [ -n "$auth" ]; then
    user=${auth%%:*}
    salt=$(openssl rand -base64 16 | tr '+' '.' | cut -c1-22)
    hash=$(P="${auth#*:}" S="$salt" perl -e 'print crypt($ENV{P}, "\$2y\$05\$" . $ENV{S})')
    # shellcheck disable=SC2016  # a literal prefix
    case "$hash" in '$2y$05$'*) ;; *)
      echo "registry.sh: this libcrypt cannot make bcrypt hashes; --htpasswd unsupported" >&2
      exit 77 ;;
    esac
    printf '%s:%s\n' "$user" "$hash" >"$dir/htpasswd"
    printf '%s\n' "$auth" >"$dir/credentials"
    auth_yaml="auth:
  htpasswd:
    realm: vmlet-test
    path: $dir/htpasswd"
  fi

  for _ in $(seq 20); do
    port=$(random_port)
    port_free "$port" || continue
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
$auth_yaml
EOF
    # Detached from our stdout/stderr, so that a caller reading our output
    # to EOF does not wait for the registry.
    "$registry" serve "$dir/config.yml" </dev/null >>"$dir/log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    for _ in $(seq 100); do
      if ! kill -0 "$pid" 2>/dev/null; then
        break  # It exited: most likely the port was taken after all.
      fi
      case "$(http_status "127.0.0.1:$port")" in
        200 | 401)
          if kill -0 "$pid" 2>/dev/null; then
            echo "127.0.0.1:$port" >"$dir/address"
            exit 0
          fi
          ;;
      esac
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
    echo "registry.sh: the registry on port $port did not answer; trying another port" >&2
  done
  echo "registry.sh: could not start docker-registry; its log:" >&2
  cat "$dir/log" >&2 || true
  exit 1
}

[ $# -ge 2 ] || usage
command=$1
shift
case "$command" in
  start) start "$@" ;;
  stop) [ $# -eq 1 ] || usage; stop "$1" ;;
  *) usage ;;
esac
