"""The seed deploy (features/deploy_webapp.feature) written for pyinfra 3, as its users write one:
run as `pyinfra -y inventory.py seed_deploy_pyinfra.py` (bench/deploy.py). Inventory groups `web`
(the feature's hosts) and `lb`; data: lb_address, package, version. The web hosts block the LB with
the firewall agent's own REJECT pair, the LB waits until HAProxy has them DOWN, apt.packages installs
the version, the app restarts unless /health already reports it, /health must report it, the web
hosts unblock, the LB waits until HAProxy has them UP. Operations run in order, each on all its
hosts at once (pyinfra's default), as root through sudo."""
from pyinfra import host, inventory
from pyinfra.operations import apt, server

LB = host.data.lb_address
PACKAGE, VERSION = host.data.package, host.data.version
TAG = "deployer-block-lb"
RULES = [f"INPUT -s {LB} -m comment --comment {TAG} -j REJECT",
         f"INPUT -s {LB} -m comment --comment {TAG} -p tcp -j REJECT --reject-with tcp-reset"]
WEB = [h.name for h in inventory.get_group("web")]


def wait_lb(want: str) -> str:
    """Until HAProxy reports every web host in state `want` (0 DOWN, 2 UP): at most 30 s."""
    return ("i=0\n"
            "until [ -z \"$(echo 'show servers state app' | socat stdio /run/haproxy/admin.sock | "
            f"awk 'NR>2 && $4 ~ /^({'|'.join(WEB)})$/ && $6 != {want}')\" ]; do\n"
            "  i=$((i+1)); [ $i -lt 600 ] || exit 1; sleep 0.05\n"
            "done")


# pyinfra 3 orders operations per host and merges the hosts' lists: an operation only some hosts
# run would float free of the others' order (the LB's UP wait ran before the web hosts' restart).
# So every operation is declared for every host, and `_if` skips it where it does not apply.
IS_WEB = host in inventory.get_group("web")
IS_LB = host in inventory.get_group("lb")


def web() -> bool:
    return IS_WEB


def lb() -> bool:
    return IS_LB


server.shell(name="Block the load balancer", _if=web, _sudo=True,
             commands=[f"iptables -w 10 -C {r} 2>/dev/null || iptables -w 10 -I {r}" for r in RULES])
server.shell(name="Traffic from the load balancer is blocked (HAProxy: DOWN)", _if=lb, _sudo=True,
             commands=[wait_lb("0")])
if IS_WEB:  # apt.packages reads the host's packages (a fact) when declared: only where it applies
    apt.packages(name=f"Install {PACKAGE} {VERSION}", packages=[f"{PACKAGE}={VERSION}"], _sudo=True)
else:
    server.shell(name=f"Install {PACKAGE} {VERSION}", commands=["true"], _if=web)
server.shell(name="Restart unless it reports the version", _if=web, _sudo=True,
             commands=[f"curl -fsS --max-time 2 http://127.0.0.1:8080/health | grep -q '\"version\": \"{VERSION}\"' "
                       f"|| SVDIR=/etc/service sv -w 30 restart {PACKAGE}"])
server.shell(name="Health check reports the version", _if=web,
             commands=["i=0\n"
                       f"until curl -fsS --max-time 2 http://127.0.0.1:8080/health | grep -q '\"version\": \"{VERSION}\"'; do\n"
                       "  i=$((i+1)); [ $i -lt 1000 ] || exit 1; sleep 0.1\n"
                       "done"])
server.shell(name="Unblock the load balancer", _if=web, _sudo=True,
             commands=[f"while iptables -w 10 -C {r} 2>/dev/null; do iptables -w 10 -D {r}; done" for r in RULES])
server.shell(name="Traffic from the load balancer is unblocked (HAProxy: UP)", _if=lb, _sudo=True,
             commands=[wait_lb("2")])
