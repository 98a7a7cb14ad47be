"""The local lab: an estate of real hosts (sshd, HAProxy, dpkg/apt, runit) in namespaces."""
from .estate import HostStatus, Lab

__all__ = ["Lab", "HostStatus"]
