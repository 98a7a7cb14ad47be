#!/bin/sh
# Image layer "base", shared by every lab host: sshd for key logins only, apt pointed only at the
# lab repository, Debian's stock root dotfiles, and the machine's service blockers removed.
set -eu
# The machine image forbids starting services (exit 101); a host must be able to.
rm -f /usr/sbin/policy-rc.d
# runit's dpkg trigger would re-enable this placeholder: keep it off with a dot-link.
rm -f /etc/runit/runsvdir/default/default-syslog
ln -sf /etc/sv/default-syslog /etc/runit/runsvdir/default/.default-syslog
# Stock dotfiles: the machine's root .bashrc (pyenv) would cost every ssh command tens of ms.
cp /etc/skel/.bashrc /etc/skel/.profile /root/
rm -rf /root/.ssh
if [ "$LAB_ROOT_LOGIN" != no ]; then
    mkdir -m 700 /root/.ssh
    cp /srv/lab-input/authorized_keys /root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
fi
# The estate's login users (e.g. deploy): the same keys; root only through the agent's sudo rule.
for user in $LAB_USERS; do
    id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
    usermod -p '*' "$user"   # no password, yet not locked ('!'): sshd without PAM refuses locked accounts
    home=$(getent passwd "$user" | cut -d: -f6)
    install -d -o "$user" -g "$user" -m 700 "$home/.ssh"
    install -o "$user" -g "$user" -m 600 /srv/lab-input/authorized_keys "$home/.ssh/authorized_keys"
done
rm -f /etc/sudoers.d/orchestrator
if [ -s /srv/lab-input/sudoers ]; then
    install -o root -g root -m 0440 /srv/lab-input/sudoers /etc/sudoers.d/orchestrator
    visudo -c -q -f /etc/sudoers.d/orchestrator
fi
# The forced command of the restricted (auditor) key: only the agent invocations rpc sends.
install -o root -g root -m 0755 /srv/lab-input/orchestrator-gate /usr/local/sbin/orchestrator-gate
# Which key may run which agent action (orchestrator_lib/host/policy.py): root's, read by all.
mkdir -p /etc/orchestrator
install -o root -g root -m 0644 /srv/lab-input/policy.json /etc/orchestrator/policy.json
cat > /etc/ssh/sshd_config.d/lab.conf <<CONF
# First value wins in sshd_config: this file is included before Debian's defaults.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin $LAB_ROOT_LOGIN
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
X11Forwarding no
ExposeAuthInfo yes
MaxStartups 200:30:400
MaxSessions 64
CONF
rm -f /etc/ssh/ssh_host_*
# apt sees only the lab repository: its main suite and the NotAutomatic "proposed" one (aptrepo.py).
rm -rf /etc/apt/sources.list.d/* /etc/apt/sources.list
# ... and keeps its indexes as an installed Debian server does: this machine's container image
# turns off apt's binary cache (docker-clean) and keeps the lists compressed (docker-gzip-indexes),
# which makes every apt-cache call re-read 700 KB of dpkg status and the lists (~25 ms more).
rm -f /etc/apt/apt.conf.d/docker-clean /etc/apt/apt.conf.d/docker-gzip-indexes
cp /srv/lab-input/lab.list /etc/apt/sources.list.d/lab.list
apt-get -qq -o Acquire::Languages=none update
mkdir -p /var/log/orchestrator /var/lib/orchestrator
# The agent's NATS service, when the estate has a broker (lab/estate.py: _nats_files): the bundle
# unpacked and compiled into a root-owned directory named by its hash, supervised by runit.
if [ -f /srv/lab-input/nats.pyz ]; then
    dir=/var/lib/orchestrator/nats-$(cat /srv/lab-input/nats.sha)
    python3 -I -c 'import compileall, sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
sys.exit(0 if compileall.compile_dir(sys.argv[2], quiet=1) else 1)' /srv/lab-input/nats.pyz "$dir"
    chmod -R go-w "$dir"
    install -o root -g root -m 0644 /srv/lab-input/nats.json /etc/orchestrator/nats.json
    mkdir -p /etc/sv/orchestrator-nats
    cat > /etc/sv/orchestrator-nats/run <<RUN
#!/bin/sh
exec /usr/bin/python3 -I $dir/__main__.py /etc/orchestrator/nats.json >>/var/log/orchestrator/nats.log 2>&1
RUN
    chmod 755 /etc/sv/orchestrator-nats/run
    ln -sfn /etc/sv/orchestrator-nats /etc/service/orchestrator-nats
fi
