"""`become: sudo`: log in as a plain user, run the agent as root through `sudo -n`.

Nothing the login user can write is run as root. The agent runs from its root-owned directory
(/var/lib/orchestrator/agent-<sha12>/); to install it, a root-run step, INSTALLER, reads the
zipapp's bytes once on stdin, checks that their sha256 starts with the <sha12> the directory will be
named by, unpacks and compiles them into a root-owned directory and renames it into place. INSTALLER
is a fixed one-line program: the sudo rule (sudoers_rule) names it exactly, so the login user's sudo
rights are the agent and its installer, never a shell or `python3 -` with code of their choosing.
The bytes reach it on the session's stdin, no file is left in the login user's home: first contact
is one session that installs and then serves (install_and_serve_command).

One `sudo` per resident agent (the serve session lives for the run), so sudo's start cost is paid
once per host and run, not per call.
"""
from __future__ import annotations

import shlex

PYTHON = "/usr/bin/python3"
AGENT_DIR = "/var/lib/orchestrator"
#: The root-run install step, one line (sudoers rules are one line), with no character that sudoers
#: globbing treats specially (* ? [ ] \\) or that starts a comment (#). argv: the expected sha12.
INSTALLER = (
    "import sys,os,io,hashlib,zipfile,compileall,tempfile,shutil;"
    "s=sys.argv.pop();d=sys.stdin.buffer.read();"
    "hashlib.sha256(d).hexdigest().startswith(s) or sys.exit('orchestrator install: the upload does not have hash '+s);"
    f"f='{AGENT_DIR}/agent-'+s;os.makedirs('{AGENT_DIR}',0o755,exist_ok=True);"
    f"t=tempfile.mkdtemp(prefix='agent-'+s+'.tmp-',dir='{AGENT_DIR}');"
    "zipfile.ZipFile(io.BytesIO(d)).extractall(t);"
    "compileall.compile_dir(t,ddir=f,quiet=1) or sys.exit('orchestrator install: cannot compile the agent');"
    "os.chmod(t,0o755);"
    "shutil.rmtree(t) if os.path.isdir(f) else os.rename(t,f);"
    # pin this agent (the gate runs only the pinned one) and remove every older agent, as INSTALL_SCRIPT does
    f"p='{AGENT_DIR}/current';q=p+'.tmp-'+str(os.getpid());open(q,'w').write(s+chr(10));os.chmod(q,0o644);os.rename(q,p);"
    f"tuple(shutil.rmtree('{AGENT_DIR}/'+n,ignore_errors=True) for n in os.listdir('{AGENT_DIR}') "
    "if n.startswith('agent-') and len(n)==18 and n!='agent-'+s and set(n.removeprefix('agent-'))<=set('0123456789abcdef'))"
)
SHA_GLOB = "[0-9a-f]" * 12
#: The sudo rule's name for what it allows (sudoers Cmnd_Alias).
ALIAS = "ORCHESTRATOR_AGENT"
SUDOERS_PATH = "/etc/sudoers.d/orchestrator"


def _main(sha: str) -> str:
    return f"{AGENT_DIR}/agent-{sha}/__main__.py"


def _as_root(sha: str, serve: bool = False) -> str:
    """The installed agent through `sudo -n`, exactly as the sudo rule names it."""
    return f"sudo -n {PYTHON} -S -E {shlex.quote(_main(sha))}" + (" --serve" if serve else "")


def _installer(sha: str) -> str:
    """INSTALLER through `sudo -n`, exactly as the sudo rule names it; the zipapp on its stdin."""
    return f"sudo -n {PYTHON} -S -E -c {shlex.quote(INSTALLER)} {sha}"


def agent_command(sha: str, serve: bool = False) -> str:
    """The agent as root: `[ -f main ] || exit 111` as the login user (the directory is world-readable),
    then `sudo -n` on the root-owned path."""
    return f"[ -f {shlex.quote(_main(sha))} ] || exit 111; exec {_as_root(sha, serve)}"


def install_command(sha: str) -> str:
    """INSTALLER as root on the session's whole stdin (the zipapp), for the one-shot path."""
    return f"exec {_installer(sha)}"


def install_and_serve_command(sha: str, size: int) -> str:
    """First contact in one session: the first `size` bytes of stdin (the zipapp) go to INSTALLER
    as root, then the resident agent serves the rest of the session as root. `head -c` is GNU
    coreutils' (Debian, RHEL): it reads no byte past `size`, so the serve mode gets every line
    that follows. Exits with INSTALLER's (or sudo's) status when the install did not happen."""
    return f"head -c {int(size)} | {_installer(sha)} || exit; exec {_as_root(sha, serve=True)}"


def _escape(text: str) -> str:
    """sudoers: `\\`, `,`, `:` and `=` in a command's arguments are escaped with a backslash."""
    for ch in "\\,:=":
        text = text.replace(ch, "\\" + ch)
    return text


def sudoers_rule(user: str) -> str:
    """The file for /etc/sudoers.d/ that lets `user` run the agent (one-shot and --serve) and its
    installer as root without a password, keeping $SSH_USER_AUTH so the host policy knows the key."""
    main = f"{AGENT_DIR}/agent-{SHA_GLOB}/__main__.py"
    return (f"# orchestrator: {user} may run the installed agent and its installer as root, nothing else\n"
            f"Cmnd_Alias {ALIAS} = {PYTHON} -S -E {main}, {PYTHON} -S -E {main} --serve, \\\n"
            f"    {PYTHON} -S -E -c {_escape(INSTALLER)} {SHA_GLOB}\n"
            f"Defaults!{ALIAS} env_keep += \"SSH_USER_AUTH\"\n"
            f"{user} ALL=(root) NOPASSWD: {ALIAS}\n")


def refusal(host: str, user: str, rc: int, stdout: str, stderr: str) -> str | None:
    """The one-line error when sudo would not run the agent (no rule, a rule that asks for a
    password, no sudo at all); None when it ran."""
    if rc == 0 or stdout.strip():
        return None
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    said = next((ln for ln in reversed(lines) if ln.startswith("sudo:") or "sudo: not found" in ln), None)
    if said is None:
        return None
    reason = said.split("sudo:", 1)[1].strip() if said.startswith("sudo:") else "sudo is not installed"
    return (f"{host}: sudo -n will not run the agent as root for {user} ({reason}): it needs the rule "
            f"`{user} ALL=(root) NOPASSWD: {ALIAS}` in {SUDOERS_PATH} (`orch sudoers {user}` prints the file)")
