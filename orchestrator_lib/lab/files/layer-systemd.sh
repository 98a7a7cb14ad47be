#!/bin/sh
# Image layer "systemd", over "web": a web host whose PID 1 is systemd (lab: {service_manager:
# systemd}). The lower layers are the machine's own /etc and /usr, so the machine's enabled units
# (haproxy, nats-server, postgresql, gettys, timers) would start in every host: only sshd and the
# app stay enabled, and the units that would reach beyond the host (kernel modules, sysctl, /dev
# nodes, binfmt) or that a lab host has no use for (logins, D-Bus, utmp, consoles) are masked.
set -eu
rm -f /etc/systemd/system/multi-user.target.wants/* /etc/systemd/system/getty.target.wants/* \
      /etc/systemd/system/timers.target.wants/* /etc/systemd/system/sysinit.target.wants/*
systemctl mask -q console-getty.service getty.target systemd-logind.service dbus.service dbus.socket \
    systemd-modules-load.service systemd-sysctl.service systemd-tmpfiles-setup-dev.service \
    systemd-remount-fs.service systemd-sysusers.service systemd-update-utmp.service \
    systemd-binfmt.service systemd-hwdb-update.service systemd-random-seed.service \
    systemd-firstboot.service systemd-journal-catalog-update.service ldconfig.service \
    proc-sys-fs-binfmt_misc.automount sys-kernel-debug.mount sys-kernel-tracing.mount \
    sys-kernel-config.mount sys-fs-fuse-connections.mount dev-hugepages.mount
# runit's links (made by the web layer's packages) mean nothing here; the app runs as its unit.
rm -f /etc/service/mywebapp /etc/service/nginx
systemctl enable -q ssh.service mywebapp.service
systemctl set-default -q multi-user.target
