#!/usr/bin/env bash
# Builds adde's test images offline and starts the local services the integration tests use.
#
#   adde-test/busybox:1    FROM scratch + Debian's static busybox (about 2 MB, about 1 s)
#   adde-test/scratch:1    FROM scratch with one static program and no shell at all
#   adde-test/python:3     Debian bookworm minbase + python3 + pip, via debootstrap (about 40 s once)
#   adde-test/fake-node:1  busybox with a stand-in npm, for the npm install path
#   adde-test/python-data:1  Debian bookworm minbase + python3 with matplotlib and pandas, via
#                          debootstrap (a few minutes once), for the code-interpreter tests
#   a registry on 127.0.0.1:5000 holding 127.0.0.1:5000/adde-test/busybox:{latest,other,autopull}
#   and adde-test/broken:1, whose layer blob is deleted (a pull that fails mid-stream)
#   a wheel of a tiny package (adde-demo) in a PEP 503 index at $CACHE/index, for dependency tests
#
# Everything is cached: images already in the engine are kept, the Python root filesystem is
# kept as a tarball in $CACHE, so a second run takes a few seconds. Needs root (apt, debootstrap).
set -euo pipefail

CACHE="${ADDE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/adde-test}"
REGISTRY_ADDR="127.0.0.1:5000"
LABEL="io.adde.test-image=true"
mkdir -p "$CACHE"

log() { echo "test-images: $*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

need_packages() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q 'static' || missing+=(busybox-static)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
  command -v curl >/dev/null || missing+=(curl)
  command -v file >/dev/null || missing=(file "${missing[@]}")
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

build_busybox() {
  have_image adde-test/busybox:1 && return
  log "building adde-test/busybox:1"
  local dir; dir="$(mktemp -d)"
  cp "$(readlink -f /bin/busybox)" "$dir/busybox"
  cat >"$dir/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/bin:/usr/bin:/bin
DOCKERFILE
  docker build -q --label "$LABEL" -t adde-test/busybox:1 "$dir" >/dev/null
  rm -rf "$dir"
}

build_scratch() {
  # No /bin/sh, no coreutils: only a static busybox at /busybox, so anything that needs a shell
  # fails. Proves adde works on images with no shell. Its command prints, then idles: the
  # use_image_cmd tests read that output.
  have_image adde-test/scratch:1 && return
  log "building adde-test/scratch:1"
  local dir; dir="$(mktemp -d)"
  cp "$(readlink -f /bin/busybox)" "$dir/busybox"
  cat >"$dir/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /busybox
CMD ["/busybox", "sh", "-c", "echo server up; echo warming up >&2; exec /busybox sleep 3600"]
DOCKERFILE
  docker build -q --label "$LABEL" -t adde-test/scratch:1 "$dir" >/dev/null
  rm -rf "$dir"
}

build_fake_node() {
  # busybox plus a stand-in `npm` that records how adde called it and "installs" each package
  # as node_modules/<name>/index.js: proves npm is detected from what the image has and
  # called with the right arguments, with no Node or npm registry offline.
  have_image adde-test/fake-node:1 && return
  log "building adde-test/fake-node:1"
  local dir; dir="$(mktemp -d)"
  cat >"$dir/npm" <<'NPM'
#!/bin/sh
prefix=""; packages=""; seen_dashdash=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift ;;
    --) seen_dashdash=1 ;;
    -*) ;;
    install) ;;
    *) [ -n "$seen_dashdash" ] && packages="$packages $1" ;;
  esac
  shift
done
mkdir -p "$prefix/node_modules"
echo "registry=$NPM_CONFIG_REGISTRY" > "$prefix/npm-call.txt"
for p in $packages; do
  mkdir -p "$prefix/node_modules/$p"
  echo "module.exports = '$p';" > "$prefix/node_modules/$p/index.js"
done
echo "added$packages"
NPM
  chmod 755 "$dir/npm"
  printf 'FROM adde-test/busybox:1\nCOPY npm /usr/local/bin/npm\n' >"$dir/Dockerfile"
  docker build -q --label "$LABEL" -t adde-test/fake-node:1 "$dir" >/dev/null
  rm -rf "$dir"
}

build_python() {
  have_image adde-test/python:3 && return
  local tarball="$CACHE/python-bookworm-rootfs.tar"
  debootstrap_rootfs "$tarball" python3-minimal,python3-pip
  log "importing adde-test/python:3"
  docker import --change "LABEL $LABEL" --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    "$tarball" adde-test/python:3 >/dev/null
}

# A Debian root filesystem made by debootstrap with PACKAGES, cached as a tarball in $CACHE.
debootstrap_rootfs() {
  local tarball="$1" packages="$2"
  [ -s "$tarball" ] && return
  log "debootstrap of $(basename "$tarball") (a few minutes, once)"
  local mirror root
  # The host's own Debian mirror when the host is Debian; Debian's otherwise.
  mirror=""
  if grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
    [ -n "$mirror" ] || mirror="$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  fi
  [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
  root="$(mktemp -d)"
  debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$tarball.log" 2>&1 \
    || { log "debootstrap failed, see $tarball.log"; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
}

build_python_data() {
  # Python with Debian's matplotlib and pandas (no pip, no network at run time): the code
  # interpreter's charts and tables.
  have_image adde-test/python-data:1 && return
  local tarball="$CACHE/python-data-bookworm-rootfs.tar"
  debootstrap_rootfs "$tarball" python3-minimal,python3-matplotlib,python3-pandas
  log "importing adde-test/python-data:1"
  docker import --change "LABEL $LABEL" --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    "$tarball" adde-test/python-data:1 >/dev/null
}

push_broken() {
  # An image whose manifest resolves but whose own layer is gone from the registry's storage:
  # pulling it fails inside the progress stream, after the pull has begun.
  local ref="$REGISTRY_ADDR/adde-test/broken:1" dir digest
  curl -fsS -o /dev/null "http://$REGISTRY_ADDR/v2/adde-test/broken/manifests/1" 2>/dev/null && return
  dir="$(mktemp -d)"
  head -c 65536 /dev/urandom >"$dir/noise"
  printf 'FROM adde-test/busybox:1\nCOPY noise /noise\n' >"$dir/Dockerfile"
  docker build -q -t "$ref" "$dir" >/dev/null
  docker push -q "$ref" >/dev/null
  docker rmi "$ref" >/dev/null
  rm -rf "$dir"
  digest="$(curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY_ADDR/v2/adde-test/broken/manifests/1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][-1]["digest"])')"
  digest="${digest#sha256:}"
  rm -f "$CACHE/registry/docker/registry/v2/blobs/sha256/${digest:0:2}/$digest/data"
}

start_registry() {
  if ! curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
    log "starting a registry on $REGISTRY_ADDR"
    mkdir -p "$CACHE/registry"
    cat >"$CACHE/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $CACHE/registry
http:
  addr: $REGISTRY_ADDR
YAML
    nohup docker-registry serve "$CACHE/registry.yml" >"$CACHE/registry.log" 2>&1 &
    for _ in $(seq 50); do curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  push_broken
  local ref
  for tag in latest other autopull; do
    ref="$REGISTRY_ADDR/adde-test/busybox:$tag"
    docker tag adde-test/busybox:1 "$ref"
    docker push -q "$ref" >/dev/null
    docker rmi "$ref" >/dev/null
  done
}

build_wheel() {
  # A pure-Python wheel the dependency tests install from a local index.
  local index="$CACHE/index/simple/adde-demo"
  [ -s "$index/adde_demo-1.0-py3-none-any.whl" ] && return
  mkdir -p "$index"
  python3 - "$index/adde_demo-1.0-py3-none-any.whl" <<'PY'
import base64, hashlib, sys, zipfile
files = {
    "adde_demo/__init__.py": "GREETING = 'hello from adde_demo'\n",
    "adde_demo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: adde-demo\nVersion: 1.0\n",
    "adde_demo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: adde-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for name, text in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record.append(f"{name},sha256={digest},{len(text.encode())}")
record.append("adde_demo-1.0.dist-info/RECORD,,")
with zipfile.ZipFile(sys.argv[1], "w") as wheel:
    for name, text in files.items():
        wheel.writestr(name, text)
    wheel.writestr("adde_demo-1.0.dist-info/RECORD", "\n".join(record) + "\n")
PY
  printf '<a href="adde_demo-1.0-py3-none-any.whl">adde_demo-1.0-py3-none-any.whl</a>\n' >"$index/index.html"
  printf '<a href="adde-demo/">adde-demo</a>\n' >"$CACHE/index/simple/index.html"
}

need_packages
build_busybox
build_scratch
build_fake_node
build_python &
python_job=$!
build_python_data &
python_data_job=$!
start_registry
build_wheel
wait "$python_job"
wait "$python_data_job"
echo "$CACHE"
