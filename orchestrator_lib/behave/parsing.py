"""The step vocabulary's parameter types, registered with behave's `parse` matcher. They only
recognise text; values are checked where they are used, so a bad one fails as a step failure
with a one-line message rather than as an undefined step."""
from __future__ import annotations

import re

import parse
from behave import register_type

from orchestrator_lib.controller.deploy import StepOptions


@parse.with_pattern(r'[^\s"]+')
def parse_word(text: str) -> str:
    return text


@parse.with_pattern(r'[^\s",]+(?:(?:\s*,\s*|\s+and\s+)[^\s",]+)*')
def parse_names(text: str) -> list[str]:
    """"web1, web2 and web3" -> ["web1", "web2", "web3"]."""
    return [n for n in re.split(r"\s*,\s*|\s+and\s+", text.strip()) if n]


@parse.with_pattern(r"(?:\s+in batches of [^\s\"]+|\s+with \d+ tr(?:y|ies))*")
def parse_run_options(text: str) -> StepOptions:
    """The first of each option; one given twice is kept in `repeated`, for the step to refuse."""
    batches = re.findall(r"in batches of [^\s\"]+", text)
    tries = re.findall(r"with \d+ tr(?:y|ies)", text)
    repeated = tuple(t for found in (batches, tries) if len(found) > 1 for t in found)
    return StepOptions(batches[0].split()[-1] if batches else None, int(tries[0].split()[1]) if tries else 1,
                      repeated)


@parse.with_pattern(r"(?:(?:,|\s+and|\s+with)\s+(?:an?\s+)?(?:failure|inconclusive|error) limit of \d{1,6})*")
def parse_limits(text: str) -> dict[str, int]:
    """" with a failure limit of 1 and an inconclusive limit of 2" -> {"failures": 1, "inconclusive": 2}."""
    words = {"failure": "failures", "inconclusive": "inconclusive", "error": "errors"}
    return {words[kind]: int(n) for kind, n in re.findall(r"(failure|inconclusive|error) limit of (\d+)", text)}


@parse.with_pattern(r"(?: by more than \d{1,4}%)?")
def parse_margin(text: str) -> float:
    """" by more than 20%" -> 0.2 (nothing: 0.0)."""
    digits = re.findall(r"\d+", text)
    return int(digits[0]) / 100 if digits else 0.0


@parse.with_pattern(r"disable|drain|enable")
def parse_lb_action(text: str) -> str:
    return text


@parse.with_pattern(r"disabled|drained|enabled")
def parse_lb_state(text: str) -> str:
    return {"disabled": "maint", "drained": "drain", "enabled": "ready"}[text]


@parse.with_pattern(r"hosts?")
def parse_hosts_word(text: str) -> str:
    return text


@parse.with_pattern(r"seconds?")
def parse_seconds_word(text: str) -> str:
    return text


register_type(Word=parse_word, Limits=parse_limits, Margin=parse_margin, Names=parse_names, RunOptions=parse_run_options,
              LbAction=parse_lb_action, LbState=parse_lb_state, Hosts=parse_hosts_word,
              Seconds=parse_seconds_word)
