"""Reporting: the controller's audit log of a run, and the result matrix of a deploy."""
from .audit import AuditLog
from .matrix import BAD, Cell, HostRecap, Outcome, ResultMatrix, ScenarioRecord, StepRecord

__all__ = ["AuditLog", "BAD", "Cell", "HostRecap", "Outcome", "ResultMatrix", "ScenarioRecord", "StepRecord"]
