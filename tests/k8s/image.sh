#!/usr/bin/env bash
# Writes a container image of the hatchery binary as a docker archive, by hand: the binary and
# the shared libraries it links (from `ldd`), nothing else; non-root; no registry, no podman.
# Good for the local test cluster (../shared/k8s/load-image.sh loads it). The product images
# are built from deploy/Dockerfile (the packaging work); this one only serves the tests.
#
#   tests/k8s/image.sh BINARY TAG OUT.tar      e.g. target/release/hatchery localhost/hatchery:test img.tar
# The entrypoint is the binary, under its own name in /usr/local/bin.
set -euo pipefail
bin=${1:?binary}; tag=${2:?tag}; out=${3:?output archive}
name=$(basename "$bin")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
root="$work/rootfs"; mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/etc"
cp "$bin" "$root/usr/local/bin/$name"
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"; cp -Ln "$lib" "$root$lib"
done
chmod 1777 "$root/tmp"
printf 'root:x:0:0::/:/sbin/nologin\nhatchery:x:65532:65532::/tmp:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nhatchery:x:65532:\n' > "$root/etc/group"
tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$work/layer.tar" .
diffid=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
cat > "$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"User":"65532:65532","Env":["PATH=/usr/local/bin"],"Entrypoint":["/usr/local/bin/$name"],"ExposedPorts":{"5557/tcp":{},"8089/tcp":{}},"Labels":{"org.opencontainers.image.title":"$name","org.opencontainers.image.description":"$name (test image)"}},"rootfs":{"type":"layers","diff_ids":["sha256:$diffid"]}}
JSON
cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1); mv "$work/config.json" "$work/$cfg.json"
mkdir "$work/$diffid"; mv "$work/layer.tar" "$work/$diffid/layer.tar"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$tag" "$diffid" > "$work/manifest.json"
tar -C "$work" -cf "$out" manifest.json "$cfg.json" "$diffid"
echo "$tag -> $out ($(du -h "$out" | cut -f1))"
