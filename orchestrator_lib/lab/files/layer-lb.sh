#!/bin/sh
# Image layer "lb": HAProxy (already on the machine) configured by the lab, supervised by runit.
set -eu
mkdir -p /etc/haproxy /etc/sv/haproxy
cp /srv/lab-input/haproxy.cfg /etc/haproxy/haproxy.cfg
cat > /etc/sv/haproxy/run <<'RUN'
#!/bin/sh
exec 2>&1
mkdir -p /run/haproxy
exec haproxy -W -db -f /etc/haproxy/haproxy.cfg
RUN
chmod +x /etc/sv/haproxy/run
ln -sf /run/runit/supervise/haproxy /etc/sv/haproxy/supervise
ln -sf /etc/sv/haproxy /etc/service/haproxy
