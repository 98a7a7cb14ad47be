#!/bin/sh
# A lab host's init, run inside fresh mount/UTS/IPC/PID namespaces (and, for a host, its own
# network namespace). It gives the host copy-on-write views of the machine's system directories,
# so packages, /etc and services are the host's own and the machine is never written.
#
#   hostinit.sh run   NAME UPPER LAYERS REPO            -> becomes the host's PID 1 (runsvdir, or
#                                                         systemd with LAB_INIT=systemd)
#   hostinit.sh build NAME UPPER LAYERS REPO INPUT      -> runs INPUT/build.sh to fill an image layer
#
# UPPER is the directory that takes this host's (or layer's) writes; LAYERS is a ':'-separated list
# of image layer directories, top first (may be empty); REPO is the lab apt repository (its sibling
# rpm/, when present, the dnf repositories, on /srv/rpm); INPUT holds
# a layer's build script and files, seen at /srv/lab-input (the machine's /tmp is hidden by then).
set -eu
mode=$1 name=$2 upper=$3 layers=$4 repo=$5

mount --make-rprivate /
for d in etc var usr opt srv root home; do
    mkdir -p "$upper/$d" "$upper/.work/$d"
    lower=""
    if [ -n "$layers" ]; then
        lower=$(printf '%s\n' "$layers" | tr ':' '\n' | sed "s|\$|/$d|" | paste -sd:):
    fi
    mount -t overlay "lab-$name-$d" -o "lowerdir=$lower/$d,upperdir=$upper/$d,workdir=$upper/.work/$d" "/$d"
done
mkdir -p /srv/apt
mount --bind "$repo" /srv/apt
mount -o remount,bind,ro /srv/apt
if [ -d "$repo/../rpm" ]; then  # the dnf repositories, when the estate has RPM-family hosts
    mkdir -p /srv/rpm
    mount --bind "$repo/../rpm" /srv/rpm
    mount -o remount,bind,ro /srv/rpm
fi
if [ "$mode" = build ]; then
    mkdir -p /srv/lab-input
    mount --bind "$6" /srv/lab-input
fi
if [ "${LAB_INIT:-runit}" = systemd ]; then
    # systemd as PID 1 (a container, as systemd-nspawn makes one): its own /dev with only the
    # harmless nodes (its tmpfiles and udev units must not touch the machine's), /sys and
    # /proc/sys read-only (no sysctl, udev or binfmt reaches the machine's kernel), and the
    # cgroup2 subtree the lab made for this host (the cgroup namespace's root) on /sys/fs/cgroup.
    mount -t tmpfs -o mode=755,nosuid "lab-$name-dev" /tmp
    for n in null zero full random urandom tty; do
        touch "/tmp/$n"
        mount --bind "/dev/$n" "/tmp/$n"
    done
    mkdir /tmp/pts /tmp/shm /tmp/mqueue
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620 "lab-$name-devpts" /tmp/pts
    ln -s pts/ptmx /tmp/ptmx
    ln -s /proc/self/fd /tmp/fd
    mount --move /tmp /dev
    mount -t cgroup2 "lab-$name-cgroup" /sys/fs/cgroup
    mount -o remount,bind,ro /sys
    mount --bind /proc/sys /proc/sys
    mount -o remount,bind,ro /proc/sys
fi
for d in /run /tmp /dev/shm; do
    mount -t tmpfs -o mode=1777 "lab-$name-tmpfs" "$d"
done
chmod 755 /run
mount -o remount,bind,ro /
mkdir -p /run/sshd /run/lock /run/haproxy
[ "${LAB_INIT:-runit}" = systemd ] || mkdir -p /run/runit/supervise /run/runit/sv
hostname "$name"
# systemd sets the hostname from /etc/hostname (the machine's, through the overlay): the host's own.
[ "$mode" = run ] && [ "${LAB_INIT:-runit}" = systemd ] && echo "$name" > /etc/hostname
# The host resolves its own name (sudo looks it up on every run, and warns when it cannot).
if [ "$mode" = run ] && ! grep -q "[[:space:]]$name\$" /etc/hosts 2>/dev/null; then
    printf '127.0.1.1\t%s\n' "$name" >> /etc/hosts
fi
ip link set lo up 2>/dev/null || true
if [ -n "${LAB_ADDR:-}" ]; then
    ip addr replace "$LAB_ADDR" dev eth0
    ip link set eth0 up
fi

if [ "$mode" = build ]; then
    exec /bin/sh /srv/lab-input/build.sh
fi
if [ "${LAB_INIT:-runit}" = systemd ]; then
    exec env -i container=lab PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd
fi
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin runsvdir -P /etc/service
