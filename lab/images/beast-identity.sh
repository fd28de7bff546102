#!/bin/sh
# Applies the per-VM identity the provider passes on the kernel command line:
#   beast.hostname=NAME beast.hostid=8HEX beast.if=MAC,ADDR/PREFIX ... beast.sshkey=BASE64
# Runs every boot from beast-identity.service, before networking, sshd, ZFS and iSCSI start.
set -u

root=${BEAST_IDENTITY_ROOT:-}  # tests run the script against a fake tree
nic_wait_seconds=${BEAST_IDENTITY_NIC_WAIT:-30}

log() { echo "beast-identity: $*" >&2; }

hostname=""
hostid=""
sshkey=""
interfaces=""
for arg in $(cat "$root/proc/cmdline"); do
    case "$arg" in
        beast.hostname=*) hostname=${arg#beast.hostname=} ;;
        beast.hostid=*) hostid=${arg#beast.hostid=} ;;
        beast.sshkey=*) sshkey=${arg#beast.sshkey=} ;;
        beast.if=*) interfaces="$interfaces ${arg#beast.if=}" ;;
    esac
done

status=0

if [ -n "$hostname" ]; then
    echo "$hostname" > "$root/etc/hostname"
    echo "$hostname" > "$root/proc/sys/kernel/hostname"
    sed -i '/^127\.0\.1\.1[[:space:]]/d' "$root/etc/hosts"
    printf '127.0.1.1\t%s\n' "$hostname" >> "$root/etc/hosts"
    log "hostname $hostname"
fi

if [ -n "$hostid" ]; then
    if zgenhostid -f -o "$root/etc/hostid" "$hostid"; then
        log "hostid $hostid"
    else
        log "zgenhostid -f $hostid failed"
        status=1
    fi
fi

interface_with_mac() {
    for dev in "$root"/sys/class/net/*; do
        [ "$(cat "$dev/address" 2>/dev/null)" = "$1" ] && { basename "$dev"; return 0; }
    done
    return 1
}

# udev may rename a NIC (eth0 -> ens2) between the lookup and `ip`: look it up again and retry.
configure_interface() {
    mac=$1 address=$2 waited=0
    while [ "$waited" -lt $((nic_wait_seconds * 2)) ]; do
        if dev=$(interface_with_mac "$mac") && ip link set dev "$dev" up 2>/dev/null \
            && ip address replace "$address" dev "$dev"; then
            log "$dev ($mac) $address"
            return 0
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    log "no NIC with MAC $mac came up with $address after $nic_wait_seconds s"
    return 1
}

for spec in $interfaces; do
    mac=$(echo "${spec%%,*}" | tr 'A-F' 'a-f')
    configure_interface "$mac" "${spec#*,}" || status=1
done

if [ -n "$sshkey" ]; then
    ssh_dir="$root/root/.ssh"
    mkdir -p "$ssh_dir"
    chmod 700 "$ssh_dir"
    if echo "$sshkey" | base64 -d > "$ssh_dir/authorized_keys.new"; then
        echo >> "$ssh_dir/authorized_keys.new"
        chmod 600 "$ssh_dir/authorized_keys.new"
        mv "$ssh_dir/authorized_keys.new" "$ssh_dir/authorized_keys"
        log "authorized_keys installed"
    else
        log "beast.sshkey is not valid base64"
        rm -f "$ssh_dir/authorized_keys.new"
        status=1
    fi
fi

if ! ls "$root"/etc/ssh/ssh_host_*_key > /dev/null 2>&1; then
    ssh-keygen -A ${root:+-f "$root"} && log "ssh host keys generated" || status=1
fi

if [ -n "$hostname" ] && [ ! -s "$root/etc/iscsi/initiatorname.iscsi" ]; then
    echo "InitiatorName=iqn.2016-01.local.sss:$hostname" > "$root/etc/iscsi/initiatorname.iscsi"
    log "iSCSI initiator iqn.2016-01.local.sss:$hostname"
fi

exit $status
