"""Reporting: the controller's audit log of a run, and the result matrix of a deploy."""
from .audit import AuditLog

__all__ = ["AuditLog"]
