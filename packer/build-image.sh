#!/usr/bin/env bash
# `make image`: a bootable appliance qcow2 (plus a Vagrant box for libvirt) built offline
# from Debian's package registry, with no cloud image download:
#   1. a wheelhouse of the appliance and its dependencies, built on this host (the guest
#      then needs no PyPI, nor this host's CA settings);
#   2. a Debian bookworm root made by mmdebstrap in a partitioned raw disk, booted by GRUB
#      (SYSLINUX images stopped booting after their first boot), converted to qcow2;
#   3. Packer (packer/appliance.pkr.hcl) boots that qcow2 and applies ansible/roles/appliance
#      through the ansible provisioner, the same role as the Vagrantfile and bare hosts.
# Needs root (loop devices, mount, chroot). Figures (times, sizes) go to $OUT/figures.txt.
#
# Environment: OUT (packer/output), ACCEL (tcg; kvm where the CPU can run a Linux guest),
# DISK_SIZE (4G), MIRROR (http://deb.debian.org/debian), SSH_PUBKEY (a public key file to
# leave authorized for root in the image; default: the build key $OUT/appliance_ed25519),
# BASE_ONLY=1 (stop after $OUT/base.qcow2), REUSE_BASE=1 (provision an existing base.qcow2),
# PACKER_ARGS (more `packer build` options, e.g. -on-error=abort to inspect a failed guest).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-packer/output}
ACCEL=${ACCEL:-tcg}
DISK_SIZE=${DISK_SIZE:-4G}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
VENV_BIN=$PWD/.venv/bin
PART_OFFSET=$((1024 * 1024)) # the root partition starts at 1 MiB (sector 2048)

# Packages baked into the base image: the boot and SSH essentials plus everything the role
# installs, so the role's apt step finds them present and the guest stays offline.
PACKAGES=(
  systemd-sysv udev kmod linux-image-amd64 grub-pc initramfs-tools e2fsprogs
  ifupdown isc-dhcp-client iproute2 netbase openssh-server sudo ca-certificates procps
  python3 python3-apt
  python3-venv python3-dev python3-setuptools gcc pkg-config librrd-dev rrdtool rrdcached
  libvirt-dev lm-sensors
)

for tool in mmdebstrap sfdisk losetup mkfs.ext4 blkid qemu-img qemu-system-x86_64 packer \
  ssh-keygen; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is missing" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "build-image: run as root (loop devices, mount, chroot)" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d /tmp/appliance-image.XXXXXX)
mnt=$work/root
disk_loop=""
part_loop=""

cleanup() {
  for m in dev/pts dev proc sys ""; do
    mountpoint -q "$mnt/$m" 2>/dev/null && umount "$mnt/$m"
  done
  [ -n "$part_loop" ] && losetup -d "$part_loop"
  [ -n "$disk_loop" ] && losetup -d "$disk_loop"
  rm -rf "$work"
}
trap cleanup EXIT

t0=$SECONDS
step() { echo "== build-image: $* ($((SECONDS - t0)) s)"; }

key=$OUT/appliance_ed25519
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C appliance-image-build -f "$key"
authorized=$(cat "${SSH_PUBKEY:-$key.pub}")

build_base() {
step "partitioned raw disk"
raw=$work/base.raw
truncate -s "$DISK_SIZE" "$raw"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$raw"
disk_loop=$(losetup -f --show "$raw")
# No partition device nodes appear for loop devices here: map the partition by offset.
part_loop=$(losetup -f --show -o "$PART_OFFSET" "$raw")
mkfs.ext4 -q -L appliance-root "$part_loop"
uuid=$(blkid -s UUID -o value "$part_loop")
mkdir -p "$mnt"
mount "$part_loop" "$mnt"

step "mmdebstrap bookworm"
t_debootstrap=$SECONDS
mmdebstrap --variant=minbase --skip=cleanup/apt/lists \
  --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  bookworm "$mnt" "$MIRROR"
t_debootstrap=$((SECONDS - t_debootstrap))

step "configure the root"
echo "UUID=$uuid / ext4 errors=remount-ro 0 1" >"$mnt/etc/fstab"
echo appliance >"$mnt/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 appliance\n' >"$mnt/etc/hosts"
# net.ifnames=0 on the kernel command line makes the first NIC eth0 on any hypervisor.
printf 'auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n' \
  >"$mnt/etc/network/interfaces"
install -d -m 0700 "$mnt/root/.ssh"
cat "$key.pub" >"$mnt/root/.ssh/authorized_keys"
chmod 0600 "$mnt/root/.ssh/authorized_keys"

step "GRUB"
for m in dev dev/pts proc sys; do mount --bind "/$m" "$mnt/$m"; done
chroot "$mnt" grub-install --target=i386-pc --modules="part_msdos ext2" "$disk_loop"
# grub-mkconfig would probe the loop devices; the first boot's kernel update or an
# `update-grub` inside the VM replaces this file with a generated one.
cat >"$mnt/boot/grub/grub.cfg" <<GRUB
set timeout=1
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root $uuid
linux /vmlinuz root=UUID=$uuid ro net.ifnames=0 console=tty0 console=ttyS0,115200
initrd /initrd.img
boot
GRUB
for m in sys proc dev/pts dev ""; do umount "$mnt/$m"; done
losetup -d "$part_loop"; part_loop=""
losetup -d "$disk_loop"; disk_loop=""

step "qcow2"
qemu-img convert -O qcow2 "$raw" "$OUT/base.qcow2"
rm -f "$raw"
}

t_debootstrap=0
if [ "${REUSE_BASE:-}" = 1 ] && [ -f "$OUT/base.qcow2" ]; then
  step "reusing $OUT/base.qcow2"
else
  build_base
fi
[ "${BASE_ONLY:-}" = 1 ] && exit 0

step "wheelhouse"
"$VENV_BIN/python" -m pip wheel -q -w "$work/wheelhouse" .
wheel=$(ls "$work"/wheelhouse/appliance-*.whl)
# One archive of plain files (no "." entry): the role unpacks it in a single transfer.
(cd "$work/wheelhouse" && tar -cf "$work/wheelhouse.tar" -- *.whl)

step "packer build (accelerator $ACCEL)"
t_packer=$SECONDS
# shellcheck disable=SC2086 # PACKER_ARGS is a list of options
PATH=$VENV_BIN:$PATH packer build -force ${PACKER_ARGS:-} \
  -var base_image="$OUT/base.qcow2" \
  -var accelerator="$ACCEL" \
  -var disk_size="$DISK_SIZE" \
  -var ssh_private_key_file="$key" \
  -var ssh_authorized_key="$authorized" \
  -var appliance_wheel="$wheel" \
  -var appliance_wheelhouse="$work/wheelhouse.tar" \
  -var output_directory="$OUT/image" \
  packer/appliance.pkr.hcl
t_packer=$((SECONDS - t_packer))

step "done"
{
  echo "build_seconds_total=$((SECONDS - t0))"
  echo "build_seconds_mmdebstrap=$t_debootstrap"
  echo "build_seconds_packer=$t_packer"
  echo "accelerator=$ACCEL"
  echo "qcow2_bytes=$(stat -c %s "$OUT/image/appliance.qcow2")"
  echo "qcow2_virtual_size=$DISK_SIZE"
  echo "box_bytes=$(stat -c %s "$OUT/image/appliance-libvirt.box")"
} | tee "$OUT/figures.txt"
echo "image: $OUT/image/appliance.qcow2  box: $OUT/image/appliance-libvirt.box"
