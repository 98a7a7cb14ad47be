"""How requests reach hosts: `ssh` (paramiko pool, strict host keys), `ssh_agent` (the agent over
an SSH connection: one-shot or resident), `known_hosts`."""
