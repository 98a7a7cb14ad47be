#!/bin/sh
# A lab host's init, run inside fresh mount/UTS/IPC/PID namespaces (and, for a host, its own
# network namespace). It gives the host copy-on-write views of the machine's system directories,
# so packages, /etc and services are the host's own and the machine is never written.
#
#   hostinit.sh run   NAME UPPER LAYERS REPO            -> becomes the host's PID 1 (runsvdir)
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
for d in /run /tmp /dev/shm; do
    mount -t tmpfs -o mode=1777 "lab-$name-tmpfs" "$d"
done
chmod 755 /run
mount -o remount,bind,ro /
mkdir -p /run/sshd /run/lock /run/runit/supervise /run/runit/sv /run/haproxy
hostname "$name"
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
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin runsvdir -P /etc/service
