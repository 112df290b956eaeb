#!/bin/sh
# Last step of the image build, inside the guest: remove what must differ per machine.
set -eu
systemctl stop appliance.service
find /var/lib/appliance -mindepth 1 -delete
rm -f /etc/ssh/ssh_host_* /var/lib/appliance-firstboot.done
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.cache /opt/appliance/wheelhouse /opt/appliance/dist
install -d -m 0700 /root/.ssh
printf '%s\n' "${SSH_AUTHORIZED_KEY:-}" | grep . > /root/.ssh/authorized_keys || : > /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
fstrim -av || true
