#!/bin/sh
# Image layer "rpm": an RPM-family web host. rpm and dnf (Debian's packages, on the machine) with
# their own database in /var/lib/rpm, the lab's dnf repositories (rpmrepo.py, mounted on /srv/rpm),
# an os-release of the RHEL family (so agents and facts see what they would on such a host), and
# the application at its initial version (LAB_INITIAL: "name-version-release ...").
set -eu
rm -f /etc/os-release
cat > /etc/os-release <<'OS'
NAME="Lab Enterprise Linux"
ID=lab-el
ID_LIKE="rhel fedora"
VERSION_ID=8
PRETTY_NAME="Lab Enterprise Linux 8 (rpm and dnf on the lab's userland)"
OS
mkdir -p /etc/rpm /etc/dnf/vars /etc/yum.repos.d /var/lib/rpm
echo '%_dbpath /var/lib/rpm' > /etc/rpm/macros.dbpath
echo 8 > /etc/dnf/vars/releasever
cp /srv/lab-input/lab.repo /etc/yum.repos.d/lab.repo
rpm --initdb
dnf -q -y install lab-filesystem $LAB_INITIAL >/dev/null
