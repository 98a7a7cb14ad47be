"""Authorization on the host: which SSH key may run which `agent#action`.

The caller is the key sshd authenticated, not the request's self-declared `caller`: with
`ExposeAuthInfo yes`, sshd writes the accepted key to the file named by $SSH_USER_AUTH.
Unconfigured means deny (as in MCollective): on a host, with no policy file every request is
refused (and audited). The explicit opt-out is a policy that says so, `{"default": "allow"}`.
(Off-host runs, a checkout or a test, which anyone runs as themselves, treat no file as allow.)
A policy only binds a key that
cannot run other commands, i.e. one restricted in authorized_keys (`restrict,command="<gate>"`,
the lab's auditor key: see docs/ARCHITECTURE.md, Security); for an unrestricted root key it is a
guard against mistakes, not against an attacker.

Policy file, /etc/orchestrator/policy.json:
    {"default": "deny",
     "rules": [{"key": "SHA256:...", "allow": ["rpcutil#*", "package#status"], "deny": []}]}
A rule's key is "*" (any key) or an OpenSSH `SHA256:` fingerprint. `allow` lists exact names:
"*" (everything), "agent#*" (every action of an agent) or "agent#action" with the action's
canonical name (no other wildcard, no alias: `package#u*` meant for update used to allow remove
through its alias uninstall). `deny` lists "agent#action" fnmatch patterns, matched against every
name of the action (a deny on an alias denies the action). Deny wins over allow; `default`
applies when nothing matches. Every pattern is matched whole (fullmatch: a trailing newline is
not a pattern). `"audit": "best-effort"` lets requests run when the audit log cannot be written
(the default, "required", refuses them: see audit.py).

Fail closed: a policy that exists but cannot be trusted denies every request, with a one-line reason
in the reply and the audit log: unreadable (a directory, no permission, any error but ENOENT), a
symbolic link, not owned by root (on a host; off-host by root or the user running the agent),
writable by group or others, in a directory that is not root's or is writable by others, not
strict JSON (duplicate keys, NaN/Infinity) or with a field of the wrong type or shape.
"""
from __future__ import annotations

import json
import os
import re
from collections import namedtuple
from fnmatch import fnmatchcase

from ..protocol import ACTIONS, action_names, one_line
from .system import system

TYPE_CHECKING = False  # as in core: annotations only, typing costs every run
if TYPE_CHECKING:
    from typing import Any, Mapping

POLICY_PATH = "/etc/orchestrator/policy.json"
#: Where rpc installs the agent on a host (rpc.AGENT_DIR): code running from there is a host run,
#: and the only code a restricted key's gate lets a caller start.
AGENT_DIR = "/var/lib/orchestrator/"
#: Variables that only make sense off-host (tests, a developer's shell): a host run ignores them
#: unless ENV_OVERRIDES_FLAG, a root-owned file on the host, says otherwise.
TEST_OVERRIDES = ("ORCHESTRATOR_AUDIT_LOG",)
ENV_OVERRIDES_FLAG = "/etc/orchestrator/allow-env-overrides"
#: deny: "*", or agent#action where each side is a non-empty fnmatch pattern of names (fullmatch).
PATTERN = re.compile(r"\*|[A-Za-z0-9_*?\[\]!-]+#[A-Za-z0-9_*?\[\]!-]+")
#: allow: "*", "agent#*" or "agent#action", names only (checked against the protocol's actions).
ALLOW = re.compile(r"\*|(?P<agent>[a-z0-9_]+)#(?P<action>\*|[a-z0-9_]+)")
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
POLICY_KEYS = {"default", "rules", "comment", "audit"}
AUDIT_MODES = ("required", "best-effort")
RULE_KEYS = {"key", "allow", "deny", "comment"}


class PolicyError(ValueError):
    """The policy exists but cannot be trusted: every request is denied."""


class Identity(namedtuple("Identity", "fingerprints user", defaults=("",))):
    """OpenSSH SHA256 fingerprints (a tuple) of the keys that authenticated this session, and the
    user who logged in (under `sudo`, the one sudo ran the agent for: $SUDO_USER)."""
    __slots__ = ()

    @property
    def label(self) -> str:
        return self.fingerprints[0] if self.fingerprints else "unknown key"


def sha256(data: bytes) -> bytes:
    """SHA-256 by CPython's built-in implementation when it has one: hashlib's loads OpenSSL, ~4 ms
    on every request (each one fingerprints its caller's key) for the same digest."""
    global _SHA256
    if _SHA256 is None:
        try:
            from _sha256 import sha256 as builtin      # CPython <= 3.11
        except ImportError:
            try:
                from _sha2 import sha256 as builtin    # CPython >= 3.12
            except ImportError:
                from hashlib import sha256 as builtin
        _SHA256 = builtin
    return _SHA256(data).digest()


_SHA256: Any = None


def fingerprint(blob_b64: str) -> str:
    """OpenSSH's `SHA256:...` fingerprint (as `ssh-keygen -lf` prints it) of a base64 key blob."""
    import base64
    blob = base64.b64decode(blob_b64.strip(), validate=True)
    return "SHA256:" + base64.b64encode(sha256(blob)).decode().rstrip("=")


def parse_auth_info(text: str) -> tuple[str, ...]:
    """Fingerprints of the `publickey TYPE BLOB` lines sshd wrote for this session."""
    found: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "publickey":
            try:
                fp = fingerprint(parts[2])
            except ValueError:
                continue
            if fp not in found:
                found.append(fp)
    return tuple(found)


# --------------------------------------------------------------------------- the environment

def host_run() -> bool:
    """True when this is the agent rpc installed on a host (not a checkout, a test, a zipapp in /tmp).
    Decided by where the code lies, which no caller's environment can change (memoized per
    module path: every request asks, twice)."""
    global _HOST_RUN
    if _HOST_RUN[0] != __file__:
        _HOST_RUN = (__file__, os.path.abspath(__file__).startswith(AGENT_DIR))
    return _HOST_RUN[1]


_HOST_RUN: tuple[str, bool] = ("", False)


def _root_owned(path: str) -> bool:
    """A regular file (not a link) owned by root and writable by nobody else."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (st.st_mode & 0o170000) == 0o100000 and st.st_uid == 0 and not st.st_mode & 0o022


def overrides_enabled() -> bool:
    """May test-only variables (TEST_OVERRIDES) steer this run? Off-host yes: whoever sets them runs
    the agent as themselves anyway. On a host only when root said so, with a root-owned
    ENV_OVERRIDES_FLAG file: a caller's environment never decides it."""
    return not host_run() or _root_owned(ENV_OVERRIDES_FLAG)


def trusted_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the test-only overrides a host run must not honour (see overrides_enabled)."""
    if overrides_enabled():
        return dict(env)
    return {k: v for k, v in env.items() if k not in TEST_OVERRIDES}


def login_user(env: Mapping[str, str]) -> tuple[str, int]:
    """Who logged in, and their uid: under sudo (root running for $SUDO_UID, which sudo itself sets)
    the sudo caller, else the agent's own user."""
    euid = os.geteuid()
    sudo_uid = env.get("SUDO_UID", "")
    if euid == 0 and sudo_uid.isdigit():
        return env.get("SUDO_USER") or sudo_uid, int(sudo_uid)
    try:
        import pwd
        return pwd.getpwuid(euid).pw_name, euid
    except (ImportError, KeyError):
        return str(euid), euid


def identify(env: Mapping[str, str]) -> Identity:
    """The keys sshd accepted for this session ($SSH_USER_AUTH, which a sudo rule keeps with
    `env_keep`) and the login user. On a host the file must look like the one sshd made (a regular
    file of the login user, writable by no one else), or the caller is an unknown key."""
    user, uid = login_user(env)
    path = env.get("SSH_USER_AUTH")
    if not path:
        return Identity((), user)
    if host_run():
        try:
            st = os.lstat(path)
        except OSError:
            return Identity((), user)
        if (st.st_mode & 0o170000) != 0o100000 or st.st_uid != uid or st.st_mode & 0o022:
            return Identity((), user)
    text = system().read_text(path)
    return Identity(parse_auth_info(text) if text else (), user)


# --------------------------------------------------------------------------- the policy

def _owner_ok(uid: int) -> bool:
    """On a host only root may own the policy and its directory; off-host also the user running it."""
    return uid == 0 or (not host_run() and uid == os.geteuid())


def read_policy_text(path: str) -> str | None:
    """The policy file's text; None only when it does not exist (ENOENT). Any other failure raises
    PolicyError: an unreadable or untrustworthy policy must deny, not vanish."""
    try:
        parent = os.stat(os.path.dirname(os.path.abspath(path)))
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        if os.path.islink(path):
            raise PolicyError("it is a symbolic link; the policy must be a regular file") from None
        raise PolicyError(f"cannot read it: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        kind = st.st_mode & 0o170000
        if kind != 0o100000:
            raise PolicyError("it is a directory, not a file" if kind == 0o040000 else "not a regular file")
        if not _owner_ok(st.st_uid):
            raise PolicyError(f"owned by uid {st.st_uid}, not root")
        if st.st_mode & 0o022:
            raise PolicyError(f"writable by group or others (mode {st.st_mode & 0o777:o})")
        if not _owner_ok(parent.st_uid) or parent.st_mode & 0o022:
            raise PolicyError(f"its directory is owned by uid {parent.st_uid} or writable by others "
                              f"(mode {parent.st_mode & 0o777:o}): anyone who can write there can replace it")
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_POLICY:
                raise PolicyError(f"larger than {MAX_POLICY} bytes")
    except OSError as e:
        raise PolicyError(f"cannot read it: {e.strerror or e}") from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError("not UTF-8") from None


MAX_POLICY = 1 << 20


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object_pairs_hook: a duplicate key is an error (json keeps the last one silently:
    `"default": "deny", "default": "allow"` allowed everything)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise PolicyError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise PolicyError(f"{name} is not JSON")


def validate(policy: object) -> dict[str, Any]:
    """The policy if every field has its type and shape, else PolicyError naming the first bad one."""
    if not isinstance(policy, dict):
        raise PolicyError("expected a JSON object with a 'rules' list")
    unknown = sorted(set(policy) - POLICY_KEYS)
    if unknown:
        raise PolicyError(f"unknown field {unknown[0]!r} (known: default, rules)")
    if policy.get("default", "deny") not in ("allow", "deny"):
        raise PolicyError("'default' must be \"allow\" or \"deny\"")
    if policy.get("audit", "required") not in AUDIT_MODES:
        raise PolicyError("'audit' must be \"required\" or \"best-effort\"")
    rules = policy.get("rules", [])
    if not isinstance(rules, list):
        raise PolicyError("'rules' must be a list")
    for i, rule in enumerate(rules):
        where = f"rules[{i}]"
        if not isinstance(rule, dict):
            raise PolicyError(f"{where}: expected an object with 'key' and 'allow'/'deny'")
        unknown = sorted(set(rule) - RULE_KEYS)
        if unknown:
            raise PolicyError(f"{where}: unknown field {unknown[0]!r} (known: key, allow, deny)")
        key = rule.get("key")
        if not isinstance(key, str) or not (key == "*" or FINGERPRINT.fullmatch(key)):
            raise PolicyError(f"{where}.key: expected \"*\" or an OpenSSH SHA256: fingerprint, got {key!r}")
        for field in ("allow", "deny"):
            patterns = rule.get(field, [])
            if not isinstance(patterns, list):
                raise PolicyError(f"{where}.{field}: expected a list of \"agent#action\" patterns, "
                                  f"got {type(patterns).__name__} {patterns!r}")
            for pattern in patterns:
                if not isinstance(pattern, str) or not PATTERN.fullmatch(pattern):
                    raise PolicyError(f"{where}.{field}: {pattern!r} is not an \"agent#action\" pattern")
                if field == "allow":
                    _check_allow(pattern, where)
    return policy


def _check_allow(pattern: str, where: str) -> None:
    """An allow names "*", "agent#*" or an agent's canonical action exactly (see the module doc)."""
    m = ALLOW.fullmatch(pattern)
    if m is None:
        raise PolicyError(f"{where}.allow: {pattern!r}: allow \"*\", \"agent#*\" or \"agent#action\" by name "
                          "(wildcards only in deny)")
    agent, action = m.group("agent"), m.group("action")
    if agent is None:
        return
    if agent not in ACTIONS:
        raise PolicyError(f"{where}.allow: {pattern!r}: no agent {agent!r}")
    if action != "*" and action not in ACTIONS[agent]:
        canonical = action_names(agent, action)[0]
        hint = f" (an alias: allow {agent}#{canonical})" if canonical != action else ""
        raise PolicyError(f"{where}.allow: {pattern!r}: not an action of {agent}{hint}")


#: path -> (the file's stat signature, its validated policy): a long-lived agent (the NATS service,
#: thousands of simulated ones in bench/) reads and validates the file once per change, not per request.
_LOADED: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {}


def _signature(path: str) -> tuple[int, ...] | None:
    try:
        st = os.lstat(path)  # a link put in the file's place is read (and refused) again
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid)


def load_policy(path: str = "") -> dict[str, Any] | None:
    """The policy, or None when there is none (ENOENT). Raises PolicyError (a ValueError) when it
    exists but cannot be trusted. A file unchanged since it was last validated (same inode, size,
    times, mode, owner) is not read again."""
    path = path or POLICY_PATH
    signature = _signature(path)
    cached = _LOADED.get(path)
    if signature is not None and cached is not None and cached[0] == signature:
        return cached[1]
    text = read_policy_text(path)
    if text is None:
        return None
    try:
        policy = json.loads(text, object_pairs_hook=_strict_object, parse_constant=_no_constant)
    except PolicyError:
        raise
    except (ValueError, RecursionError) as e:
        raise PolicyError(f"not JSON: {e}") from None
    policy = validate(policy)
    if signature is not None:
        _LOADED[path] = (signature, policy)
    return policy


def snapshot(path: str = "") -> tuple[dict[str, Any] | None, PolicyError | None]:
    """(the policy or None, None) or (None, why it cannot be trusted): load_policy read once for
    the several checks of one request (names_key, check), so a request sees one version of it."""
    try:
        return load_policy(path), None
    except PolicyError as e:
        return None, e


def names_key(fingerprint: str, path: str = "",
              loaded: tuple[dict[str, Any] | None, PolicyError | None] | None = None) -> bool:
    """Does the policy name this key in a rule of its own? The test for callers that authenticate
    by signing (host/signing.py): with no SSH login in front, a key is known to a host only when its
    policy lists it; `"*"` rules, no policy and an invalid policy know no key. `loaded`: this
    request's snapshot() of it."""
    policy, error = snapshot(path) if loaded is None else loaded
    if error is not None:
        return False
    return policy is not None and any(isinstance(r, dict) and r.get("key") == fingerprint
                                      for r in policy.get("rules", []))


def decide(policy: Mapping[str, Any], label: str | tuple[str, ...], identity: Identity) -> bool:
    """Pure: does `policy` let `identity` run the action `label` names ("agent#action", or every
    label of one action, canonical first)? A deny matching any label denies; an allow must name
    the canonical label (or be "*" / "agent#*")."""
    labels = (label,) if isinstance(label, str) else tuple(label)
    canonical = labels[0]
    agent = canonical.partition("#")[0]
    allowed = False
    for rule in policy.get("rules", []):
        key = rule.get("key") if isinstance(rule, dict) else None
        if key != "*" and key not in identity.fingerprints:
            continue
        if any(fnmatchcase(lb, p) for p in rule.get("deny", []) for lb in labels):
            return False
        allowed = allowed or any(p in ("*", f"{agent}#*", canonical) for p in rule.get("allow", []))
    return allowed or policy.get("default", "deny") == "allow"


def audit_required(path: str = "") -> bool:
    """Must the audit log be written before an action runs? Yes unless the policy says
    "audit": "best-effort" (an unreadable or missing policy: yes)."""
    try:
        policy = load_policy(path or POLICY_PATH)
    except PolicyError:
        return True
    return policy is None or policy.get("audit", "required") != "best-effort"


def check(agent: str, action: str, identity: Identity, path: str = "",
          loaded: tuple[dict[str, Any] | None, PolicyError | None] | None = None) -> str | None:
    """None when allowed, else the one-line denial message for the reply and the audit log.
    `loaded`: this request's snapshot() of the policy at `path`."""
    names = action_names(agent, action)
    labels = tuple(f"{agent}#{n}" for n in names)
    label = f"{agent}#{action}" if names[0] == action else f"{agent}#{action} (alias of {labels[0]})"
    path = path or POLICY_PATH
    policy, error = snapshot(path) if loaded is None else loaded
    if error is not None:
        return (f"denied by policy: {path} is invalid, every request is denied "
                f"({one_line(error, 160)}); {label} for {identity.label}")
    if policy is None:
        if not host_run():
            return None
        return (f"denied by policy: no policy at {path}, so every request is denied (unconfigured means "
                f"deny; {{\"default\": \"allow\"}} opts out); {label} for {identity.label}")
    if decide(policy, labels, identity):
        return None
    return f"denied by policy: {label} for {identity.label}"
