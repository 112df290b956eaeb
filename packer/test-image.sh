#!/usr/bin/env bash
# `make image-test`: boot the image from `make image` under qemu-system-x86_64 with user
# networking, forward the API port, and check that /v1/status answers with the admin token
# that the first boot generated and that the status page is served. The image itself is not
# modified: the guest runs on a throw-away overlay. Prints the boot time.
#
# Environment: OUT (packer/output), ACCEL (tcg), BOOT_TIMEOUT (600 s).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-packer/output}
ACCEL=${ACCEL:-tcg}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-600}
image=$OUT/image/appliance.qcow2
key=$OUT/appliance_ed25519
[ -f "$image" ] || { echo "test-image: no $image; run make image first" >&2; exit 1; }

work=$(mktemp -d /tmp/appliance-image-test.XXXXXX)
qemu_pid=""
cleanup() {
  if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; wait "$qemu_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
ssh_port=$(free_port)

qemu-img create -q -f qcow2 -b "$(realpath "$image")" -F qcow2 "$work/overlay.qcow2"
t0=$SECONDS
# x86-64-v2 at least: NumPy 2 wheels refuse plain qemu64 (no SSE4.2, no POPCNT).
qemu-system-x86_64 -accel "$ACCEL" -cpu qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16 -smp 2 -m 1536 \
  -drive file="$work/overlay.qcow2",if=virtio,format=qcow2 \
  -netdev user,id=n0,hostfwd=tcp:127.0.0.1:"$api_port"-:8041,hostfwd=tcp:127.0.0.1:"$ssh_port"-:22 \
  -device virtio-net-pci,netdev=n0 \
  -display none -serial file:"$work/console.log" &
qemu_pid=$!

ssh_guest() {
  ssh -q -i "$key" -p "$ssh_port" -o BatchMode=yes -o ConnectTimeout=5 \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1 "$@"
}

token=""
status=""
while [ $((SECONDS - t0)) -lt "$BOOT_TIMEOUT" ]; do
  kill -0 "$qemu_pid" 2>/dev/null || { echo "test-image: qemu exited" >&2; cat "$work/console.log" >&2; exit 1; }
  [ -n "$token" ] || token=$(ssh_guest cat /var/lib/appliance/admin-token 2>/dev/null || true)
  # The image serves HTTPS (api.tls: auto): trust the certificate this guest made for itself.
  [ -s "$work/cert.pem" ] || ssh_guest cat /var/lib/appliance/tls/cert.pem >"$work/cert.pem" 2>/dev/null || true
  if [ -n "$token" ] && [ -s "$work/cert.pem" ]; then
    status=$(curl -fsS -m 5 --cacert "$work/cert.pem" -H "Authorization: Bearer $token" \
      "https://127.0.0.1:$api_port/v1/status" 2>/dev/null || true)
    [ -n "$status" ] && break
  fi
  sleep 3
done
boot_seconds=$((SECONDS - t0))
[ -n "$status" ] || { echo "test-image: no /v1/status after $boot_seconds s" >&2; tail -50 "$work/console.log" >&2; exit 1; }
echo "test-image: /v1/status after $boot_seconds s: $status"

# Unauthenticated requests must be refused (the image does not open reads by default).
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 --cacert "$work/cert.pem" "https://127.0.0.1:$api_port/v1/status")
[ "$code" = 401 ] || { echo "test-image: /v1/status without a token gave $code, not 401" >&2; exit 1; }

# The status page signs in with the same token (a session cookie, a CSRF field from the
# login form), then serves the overview.
form=$(curl -fsS -m 30 --cacert "$work/cert.pem" -c "$work/cookies" "https://127.0.0.1:$api_port/login")
csrf=$(sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' <<<"$form")
curl -fsS -m 30 --cacert "$work/cert.pem" -b "$work/cookies" -c "$work/cookies" -o /dev/null \
  --data-urlencode "token=$token" --data-urlencode "csrf_token=$csrf" \
  "https://127.0.0.1:$api_port/login"
page=$(curl -fsS -m 30 --cacert "$work/cert.pem" -b "$work/cookies" "https://127.0.0.1:$api_port/")
grep -qi '<html' <<<"$page" || { echo "test-image: the status page is not HTML" >&2; exit 1; }
echo "test-image: status page served ($(wc -c <<<"$page") bytes)"

# First boot: new SSH host keys, and the console hint naming the token's place.
grep -q 'admin token in /var/lib/appliance/admin-token' "$work/console.log" \
  || { echo "test-image: the first-boot hint is missing from the console" >&2; exit 1; }
ssh_guest test -s /etc/ssh/ssh_host_ed25519_key
ssh_guest systemctl is-active appliance.service

# The store survives a service restart and a reboot: measures written before are served
# after each, and rrdcached is not crash-looping (it lost its store on both before 0.2.0).
api() {
  curl -fsS -m 30 --cacert "$work/cert.pem" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' "$@"
}
wait_status() {
  local t=$SECONDS
  until api -o /dev/null "https://127.0.0.1:$api_port/v1/status" 2>/dev/null; do
    [ $((SECONDS - t)) -lt "$BOOT_TIMEOUT" ] || { echo "test-image: no API after $1" >&2; exit 1; }
    sleep 3
  done
  echo "test-image: serving $((SECONDS - t)) s after $1"
}
metric=$(api -d '{"name": "image.test", "archive_policy_name": "medium"}' \
  "https://127.0.0.1:$api_port/v1/metric" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
now=$(( $(date +%s) / 60 * 60 ))
points=$(python3 -c "import json; print(json.dumps([{'timestamp': $now - 60 * k + 0.5, 'value': k} for k in range(10, 0, -1)]))")
api -o /dev/null -d "$points" "https://127.0.0.1:$api_port/v1/metric/$metric/measures"
count_measures() {
  api "https://127.0.0.1:$api_port/v1/metric/$metric/measures?granularity=60" \
    | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
before=$(count_measures)
[ "$before" -ge 9 ] || { echo "test-image: only $before measures readable" >&2; exit 1; }
ssh_guest systemctl restart appliance.service
wait_status "systemctl restart"
[ "$(count_measures)" -ge "$before" ] || { echo "test-image: measures lost by a restart" >&2; exit 1; }
ssh_guest systemctl reboot || true
sleep 10
wait_status "a reboot"
[ "$(count_measures)" -ge "$before" ] || { echo "test-image: measures lost by a reboot" >&2; exit 1; }
crashes=$(ssh_guest journalctl -b -u appliance.service | grep -c 'exited: rrdcached' || true)
[ "$crashes" = 0 ] || { echo "test-image: rrdcached crash-looped after the reboot ($crashes exits)" >&2; exit 1; }
echo "test-image: $before measures served after a restart and a reboot, rrdcached steady"

echo "boot_seconds_to_status=$boot_seconds (accelerator $ACCEL)" | tee -a "$OUT/figures.txt"
echo "test-image: OK"
