#!/usr/bin/env bash
# The second engines that tests/engines (cargo test --test engines) runs adde against:
#
#   runsc   gVisor, registered as a runtime of the running dockerd: /etc/docker/daemon.json
#           gains a "runsc" runtime and dockerd reloads its configuration (SIGHUP). dockerd is
#           never restarted: other work uses it.
#   tls     a TLS endpoint with client-certificate verification on 127.0.0.1:2376 (and one
#           that verifies only the server, on 2377): socat in front of /var/run/docker.sock,
#           with a CA, server and client certificates made here by openssl.
#   ssh     sshd on 127.0.0.1:2222 as root with a throwaway key, so that
#           `ssh … docker system dial-stdio` reaches the local engine.
#   podman  rootful Podman's Docker-compatible API (`podman system service`) on its own socket
#           and storage, with the test images copied in (docker save | podman load).
#   rootless_podman  the same as the unprivileged system user adde-rootless (made here, with
#           subordinate ids): on a cgroup v1 host, the engine that accepts limits and applies
#           none.
#
#   eval "$(bash tests/engines/setup.sh)"     # start what is not running yet
#   bash tests/engines/setup.sh stop          # stop what it started
#
# Idempotent: a second call reuses what runs. It installs its Debian packages itself. It
# prints `export` lines: for each engine that is ready, how to reach it; for each that is not,
# ADDE_TEST_<ENGINE>_ERROR with the reason (the tests fail with it under CI=true).
set -uo pipefail
cd "$(dirname "$0")/../.."

dir="${ADDE_ENGINES_DIR:-/tmp/adde-engines}"
mkdir -p "$dir"
log="$dir/setup.log"
images=(adde-test/busybox:1 adde-test/python:3 adde-test/scratch:1)

say() { echo "engines: $*" >&2; }
export_line() { printf 'export %s=%q\n' "$1" "$2"; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pidfile() {
  if alive "$1"; then kill "$(cat "$1")" 2>/dev/null || true; fi
  rm -f "$1"
}

if [ "${1:-}" = stop ]; then
  stop_pidfile "$dir/tls/socat.pid"
  stop_pidfile "$dir/tls/socat-ca-only.pid"
  stop_pidfile "$dir/ssh/sshd.pid"
  stop_pidfile "$dir/podman/service.pid"
  stop_pidfile "$dir/rootless/service.pid"
  # rootless Podman's pause process, which holds its user namespace.
  stop_pidfile "$dir/rootless/xdg/libpod/tmp/pause.pid"
  exit 0
fi

need_packages() {
  local missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${missing[@]}"; } >>"$log" 2>&1
}

# Waits up to 10 s for a command to succeed.
wait_for() {
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

setup_runsc() {
  need_packages runsc:runsc python3:python3-minimal || return 1
  # ptrace: this VM has no KVM for gVisor, and the packaged release predates systrap.
  # --network=none: gVisor's network check fails on newer kernels (adde's environments have
  # no network by default; network: true is refused by gVisor here).
  python3 - <<'EOF' || return 1
import json, os
path = "/etc/docker/daemon.json"
config = json.load(open(path)) if os.path.exists(path) else {}
want = {"path": "/usr/bin/runsc", "runtimeArgs": ["--platform=ptrace", "--network=none"]}
if config.get("runtimes", {}).get("runsc") != want:
    config.setdefault("runtimes", {})["runsc"] = want
    with open(path + ".adde-tmp", "w") as f:
        json.dump(config, f, indent=2)
    os.replace(path + ".adde-tmp", path)
EOF
  if ! docker info --format '{{json .Runtimes}}' | grep -q '"runsc"'; then
    # A configuration reload, not a restart: running containers and other clients are
    # untouched.
    kill -HUP "$(pidof dockerd)" || return 1
    wait_for sh -c "docker info --format '{{json .Runtimes}}' | grep -q '\"runsc\"'" || return 1
  fi
  export_line ADDE_TEST_RUNSC runsc
}

make_certs() {
  local t="$dir/tls"
  [ -s "$t/client/key.pem" ] && [ -s "$t/ca-only/ca.pem" ] && [ -s "$t/wrong-client/key.pem" ] &&
    return 0
  # New certificates: listeners started with the old ones would present a server
  # certificate the new CA did not sign.
  stop_pidfile "$t/socat.pid"
  stop_pidfile "$t/socat-ca-only.pid"
  wait_for bash -c '! (echo >/dev/tcp/127.0.0.1/2376) && ! (echo >/dev/tcp/127.0.0.1/2377)' \
    2>/dev/null || true
  mkdir -p "$t/client" "$t/ca-only" "$t/wrong" "$t/wrong-client"
  (
    cd "$t" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=adde-test-ca \
      -keyout ca-key.pem -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server-key.pem -out server.csr
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
      -extfile server.ext -out server.pem
    openssl req -newkey rsa:2048 -nodes -subj /CN=adde-client -keyout client/key.pem -out client.csr
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
      -extfile client.ext -out client/cert.pem
    cp ca.pem client/ca.pem
    cp ca.pem ca-only/ca.pem
    # A CA that signed nothing here: the server's certificate does not verify against it.
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=other-ca \
      -keyout wrong/ca-key.pem -out wrong/ca.pem
    cp client/cert.pem client/key.pem wrong/
    # A client certificate from that other CA, with the right CA for the server: the
    # server verifies, the client is refused.
    openssl req -newkey rsa:2048 -nodes -subj /CN=adde-intruder -keyout wrong-client/key.pem \
      -out wrong-client.csr
    openssl x509 -req -in wrong-client.csr -CA wrong/ca.pem -CAkey wrong/ca-key.pem \
      -CAcreateserial -days 30 -extfile client.ext -out wrong-client/cert.pem
    cp ca.pem wrong-client/ca.pem
  ) >>"$log" 2>&1
}

start_socat() {
  local pidfile="$1" port="$2" verify="$3" t="$dir/tls"
  alive "$pidfile" && return 0
  # nodelay, as dockerd's own TLS listener has it.
  setsid socat "openssl-listen:$port,bind=127.0.0.1,reuseaddr,fork,nodelay,cert=$t/server.pem,key=$t/server-key.pem,cafile=$t/ca.pem,verify=$verify" \
    unix-connect:/var/run/docker.sock </dev/null >>"$log" 2>&1 &
  echo $! >"$pidfile"
  wait_for bash -c "echo >/dev/tcp/127.0.0.1/$port"
}

setup_tls() {
  need_packages socat:socat openssl:openssl || return 1
  make_certs || return 1
  start_socat "$dir/tls/socat.pid" 2376 1 || return 1
  start_socat "$dir/tls/socat-ca-only.pid" 2377 0 || return 1
  export_line ADDE_TEST_TLS_HOST tcp://127.0.0.1:2376
  export_line ADDE_TEST_TLS_CERTS "$dir/tls/client"
  export_line ADDE_TEST_TLS_CA_ONLY_HOST tcp://127.0.0.1:2377
  export_line ADDE_TEST_TLS_CA_ONLY_CERTS "$dir/tls/ca-only"
  export_line ADDE_TEST_TLS_WRONG_CERTS "$dir/tls/wrong"
  export_line ADDE_TEST_TLS_WRONG_CLIENT_CERTS "$dir/tls/wrong-client"
}

setup_ssh() {
  need_packages sshd:openssh-server ssh:openssh-client || return 1
  local s="$dir/ssh"
  mkdir -p "$s" /run/sshd
  chmod 700 "$s"
  [ -s "$s/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$s/host_key" >>"$log" 2>&1 || return 1
  [ -s "$s/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$s/id_ed25519" >>"$log" 2>&1 || return 1
  cp "$s/id_ed25519.pub" "$s/authorized_keys"
  cat >"$s/sshd_config" <<EOF
Port 2222
ListenAddress 127.0.0.1
HostKey $s/host_key
PidFile $s/sshd.pid
AuthorizedKeysFile $s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
  # What a user's ~/.ssh/config would hold; adde's tests pass it as ADDE_SSH_CONFIG.
  cat >"$s/config" <<EOF
Host *
  IdentityFile $s/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $s/known_hosts
  StrictHostKeyChecking yes
EOF
  echo "[127.0.0.1]:2222 $(cut -d' ' -f1,2 "$s/host_key.pub")" >"$s/known_hosts"
  if ! alive "$s/sshd.pid"; then
    /usr/sbin/sshd -f "$s/sshd_config" -E "$s/sshd.log" || return 1
    wait_for test -s "$s/sshd.pid" || return 1
  fi
  wait_for ssh -F "$s/config" -p 2222 -o BatchMode=yes root@127.0.0.1 docker version || return 1
  export_line ADDE_TEST_SSH_HOST ssh://root@127.0.0.1:2222
  export_line ADDE_TEST_SSH_CONFIG "$s/config"
}

setup_podman() {
  need_packages podman:podman catatonit:catatonit || return 1
  local p="$dir/podman"
  mkdir -p "$p"
  # Its own storage, so nothing here touches another Podman user's images or containers.
  cat >"$p/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$p/storage"
runroot = "$p/run"
EOF
  export CONTAINERS_STORAGE_CONF="$p/storage.conf"
  local podman=(podman --root "$p/storage" --runroot "$p/run")
  if ! alive "$p/service.pid"; then
    rm -f "$p/podman.sock"
    setsid "${podman[@]}" system service --time=0 "unix://$p/podman.sock" \
      </dev/null >>"$p/service.log" 2>&1 &
    echo $! >"$p/service.pid"
    wait_for test -S "$p/podman.sock" || return 1
  fi
  for image in "${images[@]}"; do
    if ! "${podman[@]}" image exists "$image" 2>/dev/null; then
      docker save "$image" | "${podman[@]}" load >>"$log" 2>&1 || return 1
    fi
  done
  export_line ADDE_TEST_PODMAN_HOST "unix://$p/podman.sock"
}

setup_rootless_podman() {
  need_packages podman:podman catatonit:catatonit newuidmap:uidmap || return 1
  local user=adde-rootless p="$dir/rootless"
  if ! id "$user" >/dev/null 2>&1; then
    useradd --system --create-home --home-dir "/var/lib/$user" --shell /usr/sbin/nologin "$user" \
      >>"$log" 2>&1 || return 1
  fi
  # Subordinate ids, so that image layers owned by other uids unpack.
  grep -q "^$user:" /etc/subuid || usermod --add-subuids 400000-465535 "$user" || return 1
  grep -q "^$user:" /etc/subgid || usermod --add-subgids 400000-465535 "$user" || return 1
  mkdir -p "$p/xdg"
  chown "$user:" "$p" "$p/xdg"
  chmod 700 "$p/xdg"
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n' \
    "$p" "$p" >"$p/storage.conf"
  local podman=(runuser -u "$user" -- env "XDG_RUNTIME_DIR=$p/xdg" "HOME=/var/lib/$user"
    "CONTAINERS_STORAGE_CONF=$p/storage.conf" podman --root "$p/storage" --runroot "$p/run")
  if ! alive "$p/service.pid"; then
    rm -f "$p/podman.sock"
    (cd / && exec setsid "${podman[@]}" system service --time=0 "unix://$p/podman.sock" \
      </dev/null >>"$p/service.log" 2>&1) &
    echo $! >"$p/service.pid"
    wait_for test -S "$p/podman.sock" || return 1
  fi
  # busybox is enough: no environment with dropped limits is kept here.
  if ! (cd / && "${podman[@]}" image exists "${images[0]}") 2>/dev/null; then
    docker save "${images[0]}" | (cd / && "${podman[@]}" load) >>"$log" 2>&1 || return 1
  fi
  export_line ADDE_TEST_ROOTLESS_PODMAN_HOST "unix://$p/podman.sock"
}

for engine in runsc tls ssh podman rootless_podman; do
  upper="$(echo "$engine" | tr a-z A-Z)"
  if "setup_$engine"; then
    say "$engine ready"
  else
    say "$engine could not be set up (see $log)"
    export_line "ADDE_TEST_${upper}_ERROR" "$engine could not be set up: see $log"
  fi
done
