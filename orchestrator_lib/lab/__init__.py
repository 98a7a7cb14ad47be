"""The local lab: an estate of real hosts (sshd, HAProxy, dpkg/apt, runit) in namespaces."""
from .estate import HostStatus, Lab
from .network import refuse_if_down

__all__ = ["Lab", "HostStatus", "refuse_if_down"]
