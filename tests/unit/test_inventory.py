"""Inventory loading: the shipped local estate, and every way a hand-edited file can be wrong."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator_lib.controller.errors import InventoryError
from orchestrator_lib.controller.inventory import Host, load_inventory
from orchestrator_lib.protocol import AGENTS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Write environments/x.yaml under a temporary cwd and return a loader for it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "environments").mkdir()

    def write(text: str, name: str = "x"):
        (tmp_path / "environments" / f"{name}.yaml").write_text(textwrap.dedent(text))
        return lambda: load_inventory(name)

    return write


def error_of(load) -> str:
    with pytest.raises(InventoryError) as caught:
        load()
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    return message


MINIMAL = "hosts:\n  web1: {address: 10.0.0.1}\n"


# --- the shipped local inventory ----------------------------------------------------------------


def test_local_inventory_loads_twelve_hosts_in_file_order():
    inv = load_inventory("local", REPO / "environments")
    assert inv.name == "local"
    assert inv.path == REPO / "environments" / "local.yaml"
    assert list(inv.hosts) == ["lb1"] + [f"web{i}" for i in range(1, 10)] + ["notify1", "notify2"]
    assert inv.known_hosts == REPO / ".lab" / "local" / "known_hosts"
    assert inv.lab["subnet"] == "10.231.0.0/24" and inv.lab["app_port"] == 8080
    assert inv.groups["notify"] == ("notify1", "notify2")
    web1 = inv.hosts["web1"]
    assert web1 == inv.host("web1")
    assert (web1.address, web1.port, web1.user, web1.become) == ("10.231.0.11", 22, "deploy", "sudo")
    assert web1.key == REPO / ".lab" / "local" / "id_ed25519"
    assert web1.facts == {"cluster": "alfa", "hagroup": "a", "country": "de"}
    assert web1.classes == ("roles::web",)
    assert web1.agents == AGENTS
    assert web1.lab == {"role": "web"}


def test_local_inventory_by_name_from_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)
    assert len(load_inventory("local").hosts) == 12


def test_local_inventory_by_path(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert load_inventory(REPO / "environments" / "local.yaml").name == "local"
    assert load_inventory(str(REPO / "environments" / "local.yaml")).name == "local"


def test_host_and_group_helpers():
    inv = load_inventory("local", REPO / "environments")
    assert [h.name for h in inv.group("notify")] == ["notify1", "notify2"]
    with pytest.raises(InventoryError, match=r"unknown host 'web10' \(did you mean 'web1'\?\)"):
        inv.host("web10")
    with pytest.raises(InventoryError, match=r"unknown group 'notfy' \(did you mean 'notify'\?\)"):
        inv.group("notfy")


# --- finding the file ---------------------------------------------------------------------------


def test_unknown_environment_lists_the_available_ones(env):
    env(MINIMAL, "staging")
    env(MINIMAL, "prod")
    message = error_of(lambda: load_inventory("prd"))
    assert message == "environments/prd.yaml: unknown environment 'prd' (available: prod, staging)"


def test_unknown_environment_in_empty_dir(tmp_path):
    message = error_of(lambda: load_inventory("nope", tmp_path))
    assert "unknown environment 'nope'" in message and "no environments in" in message


def test_missing_file_given_by_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert error_of(lambda: load_inventory("envs/none.yaml")) == "envs/none.yaml: environment file not found"


def test_directory_given_as_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.yaml").mkdir()
    assert error_of(lambda: load_inventory("d.yaml")) == "d.yaml: not a file"


def test_empty_environment_name():
    assert "empty environment name" in error_of(lambda: load_inventory(" "))


def test_environments_dir_argument(tmp_path):
    (tmp_path / "mine.yaml").write_text(MINIMAL)
    inv = load_inventory("mine", tmp_path)
    assert inv.name == "mine"  # defaults to the file name
    assert inv.path == (tmp_path / "mine.yaml").resolve()


# --- YAML level ---------------------------------------------------------------------------------


def test_bad_yaml_reports_the_line(env):
    load = env("""\
        hosts:
          web1: {address: 10.0.0.1
          web2: {address: 10.0.0.2}
    """)
    message = error_of(load)
    assert message.startswith("environments/x.yaml:3: invalid YAML: ")


def test_bad_indentation_reports_the_line(env):
    load = env("""\
        name: x
        hosts:
          web1:
            address: 10.0.0.1
           port: 22
    """)
    assert error_of(load).startswith("environments/x.yaml:5: invalid YAML: ")


def test_not_utf8(env, tmp_path):
    env(MINIMAL)
    (tmp_path / "environments" / "x.yaml").write_bytes(b"hosts: {\xff: 1}\n")
    assert error_of(lambda: load_inventory("x")).startswith("environments/x.yaml: not UTF-8 text")


def test_empty_file(env):
    assert error_of(env("# nothing\n")) == (
        "environments/x.yaml:1: top level: the file is empty; expected a mapping with at least 'hosts'"
    )


def test_top_level_not_a_mapping(env):
    message = error_of(env("- web1\n- web2\n"))
    assert message.startswith("environments/x.yaml:1: top level: expected a mapping with keys name, ")
    assert message.endswith("got a list")


def test_several_documents(env):
    assert "invalid YAML" in error_of(env(MINIMAL + "---\nhosts: {}\n"))


def test_missing_hosts(env):
    assert error_of(env("name: x\n")) == "environments/x.yaml:1: top level: missing key 'hosts'"


def test_duplicate_host_names_both_lines(env):
    load = env("""\
        hosts:
          web1: {address: 10.0.0.1}
          web2: {address: 10.0.0.2}
          web1: {address: 10.0.0.3}
    """)
    assert error_of(load) == "environments/x.yaml:4: hosts.web1: duplicate host 'web1', first defined at line 2"


def test_duplicate_key_in_a_host_spec(env):
    load = env("""\
        hosts:
          web1:
            address: 10.0.0.1
            port: 22
            port: 2222
    """)
    assert error_of(load) == "environments/x.yaml:5: hosts.web1.port: duplicate key 'port', first defined at line 4"


def test_duplicate_top_level_key(env):
    load = env("name: a\n" + MINIMAL + "name: b\n")
    assert error_of(load) == "environments/x.yaml:4: name: duplicate key 'name', first defined at line 1"


def test_merge_keys_are_not_duplicates(env):
    load = env("""\
        hosts:
          web1: &web
            address: 10.0.0.1
            port: 2222
            facts: {cluster: alfa}
          web2:
            <<: *web
            address: 10.0.0.2
          web3: {<<: *web, address: 10.0.0.3, port: 22}
    """)
    inv = load()
    assert [(h.address, h.port) for h in inv.hosts.values()] == [
        ("10.0.0.1", 2222),
        ("10.0.0.2", 2222),
        ("10.0.0.3", 22),
    ]
    assert inv.hosts["web3"].facts == {"cluster": "alfa"}


def test_non_scalar_key(env):
    load = env("""\
        hosts:
          ? [a, b]
          : {address: 10.0.0.1}
    """)
    assert error_of(load).startswith("environments/x.yaml:2: hosts: mapping keys must be plain names")


def test_recursive_alias(env):
    message = error_of(env("hosts: &h\n  web1: *h\n"))
    assert message == "environments/x.yaml:2: hosts.web1: recursive YAML alias"


@pytest.mark.parametrize("tag", ["!!python/object:os.system", "!!set", "!custom"])
def test_unsupported_tags(env, tag):
    message = error_of(env(f"hosts:\n  web1: {tag} {{address: 10.0.0.1}}\n"))
    assert message.startswith("environments/x.yaml:2: hosts.web1: unsupported YAML tag ")


def test_python_tags_on_scalars_are_refused(env):
    message = error_of(env("hosts:\n  web1: {address: !!python/name:os.system x}\n"))
    assert message.startswith("environments/x.yaml:2: invalid YAML: ")


# --- unknown keys -------------------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_closest(env):
    load = env("hots:\n  web1: {address: 10.0.0.1}\n")
    assert error_of(load) == "environments/x.yaml:1: hots: unknown key 'hots' (did you mean 'hosts'?)"


def test_unknown_key_without_a_close_one_lists_the_valid_ones(env):
    load = env(MINIMAL + "zzz: 1\n")
    assert error_of(load) == (
        "environments/x.yaml:3: zzz: unknown key 'zzz' "
        "(valid keys: name, known_hosts, ssh_config, defaults, loadbalancer, transport, nats, lab, hosts, groups, facts, facts_ttl)"
    )


def test_unknown_key_in_defaults(env):
    load = env("defaults:\n  usr: deploy\n" + MINIMAL)
    assert error_of(load) == "environments/x.yaml:2: defaults.usr: unknown key 'usr' (did you mean 'user'?)"


def test_unknown_key_in_a_host_spec(env):
    load = env("""\
        hosts:
          web1: {address: 10.0.0.1}
          web2:
            adress: 10.0.0.2
    """)
    assert error_of(load) == "environments/x.yaml:4: hosts.web2.adress: unknown key 'adress' (did you mean 'address'?)"


# --- hosts --------------------------------------------------------------------------------------


def test_missing_address(env):
    load = env("""\
        hosts:
          web1: {address: 10.0.0.1}
          web2:
            port: 22
    """)
    assert error_of(load) == "environments/x.yaml:3: hosts.web2: missing key 'address'"


def test_host_spec_not_a_mapping(env):
    load = env("hosts:\n  web1:\n")
    assert error_of(load) == "environments/x.yaml:2: hosts.web1: expected a mapping with at least 'address', got null"


def test_hosts_not_a_mapping(env):
    assert error_of(env("hosts: [web1]\n")) == (
        "environments/x.yaml:1: hosts: expected a mapping of host names to specs, got a list"
    )


def test_invalid_host_name(env):
    message = error_of(env("hosts:\n  'web 1': {address: 10.0.0.1}\n"))
    assert message.startswith("environments/x.yaml:2: hosts.web 1: invalid host name")


@pytest.mark.parametrize("address", ["10.0.0.300", "web_1", "-web", "a..b", "", "10.0.0.1/24"])
def test_invalid_address(env, address):
    load = env(f"hosts:\n  web1: {{address: '{address}'}}\n")
    assert error_of(load) == f"environments/x.yaml:2: hosts.web1.address: expected an IP address or DNS name, got '{address}'"


def test_address_must_be_a_string(env):
    load = env("hosts:\n  web1: {address: 10.5}\n")
    assert error_of(load) == "environments/x.yaml:2: hosts.web1.address: expected an IP address or DNS name, got 10.5"


@pytest.mark.parametrize("address", ["10.0.0.1", "::1", "fe80::1", "localhost", "web1.example.com", "web1.example.com."])
def test_valid_addresses(env, address):
    assert load_address(env, address) == address


def load_address(env, address):
    return env(f"hosts:\n  web1: {{address: '{address}'}}\n")().hosts["web1"].address


@pytest.mark.parametrize(
    "port, shown",
    [("abc", "expected an integer, got 'abc'"), ("'22'", "expected an integer, got '22'"),
     ("true", "expected an integer, got true"), ("22.5", "expected an integer, got 22.5"),
     ("0", "expected a port between 1 and 65535, got 0"),
     ("65536", "expected a port between 1 and 65535, got 65536")],
)
def test_bad_port(env, port, shown):
    load = env(f"""\
        hosts:
          web1: {{address: 10.0.0.1}}
          web3:
            address: 10.0.0.3
            port: {port}
    """)
    assert error_of(load) == f"environments/x.yaml:5: hosts.web3.port: {shown}"


def test_bad_default_port(env):
    load = env("defaults: {port: ssh}\n" + MINIMAL)
    assert error_of(load) == "environments/x.yaml:1: defaults.port: expected an integer, got 'ssh'"


def test_bad_user(env):
    load = env("hosts:\n  web1: {address: 10.0.0.1, user: [root]}\n")
    assert error_of(load) == "environments/x.yaml:2: hosts.web1.user: expected a non-empty string, got a list"


def test_bad_name(env):
    load = env("name: 3\n" + MINIMAL)
    assert error_of(load) == "environments/x.yaml:1: name: expected a non-empty string, got 3"


def test_defaults_and_overrides(env, tmp_path):
    load = env("""\
        name: staging
        known_hosts: ../state/known_hosts
        defaults: {user: deploy, port: 2222, key: keys/id}
        hosts:
          a: {address: 10.0.0.1}
          b: {address: 10.0.0.2, user: root, port: 22, key: /etc/other}
          c: {address: 10.0.0.3, key: null}
    """)
    inv = load()
    envdir = (tmp_path / "environments").resolve()
    assert inv.name == "staging"
    assert inv.known_hosts == (tmp_path / "state" / "known_hosts").resolve()
    a, b, c = inv.hosts.values()
    assert (a.user, a.port, a.key) == ("deploy", 2222, envdir / "keys" / "id")
    assert (b.user, b.port, b.key) == ("root", 22, Path("/etc/other"))
    assert c.key is None
    assert inv.groups == {} and inv.lab == {}


def test_builtin_defaults(env):
    host = env(MINIMAL)().hosts["web1"]
    assert host == Host("web1", "10.0.0.1")
    assert (host.port, host.user, host.key, host.facts, host.classes, host.agents, host.lab) == (
        22, "root", None, {}, (), AGENTS, {}
    )


def test_default_agents_are_the_shipped_ones():
    core = pytest.importorskip("orchestrator_lib.host.core")
    assert sorted(AGENTS) == core.agent_names()


def test_hosts_are_hashable(env):
    inv = env(MINIMAL)()
    assert inv.hosts["web1"] in {inv.hosts["web1"]}


# --- facts, classes, agents, lab ----------------------------------------------------------------


def test_fact_values_are_strings_as_written(env):
    load = env("""\
        hosts:
          web1:
            address: 10.0.0.1
            facts: {cores: 8, version: 1.10, ratio: 0.50, ha: true, off: no, os: debian, v: '4.2.6-3.el5'}
    """)
    assert load().hosts["web1"].facts == {
        "cores": "8", "version": "1.10", "ratio": "0.50", "ha": "true", "off": "no",  # YAML 1.2: `no` is a string
        "os": "debian", "v": "4.2.6-3.el5",
    }


def test_facts_not_a_mapping(env):
    load = env("hosts:\n  web1: {address: 10.0.0.1, facts: [a, b]}\n")
    assert error_of(load) == "environments/x.yaml:2: hosts.web1.facts: expected a mapping of fact names to values, got a list"


@pytest.mark.parametrize("value, shown", [("[a]", "a list"), ("{a: 1}", "a mapping"), ("null", "null")])
def test_fact_value_not_a_scalar(env, value, shown):
    load = env(f"""\
        hosts:
          web1:
            address: 10.0.0.1
            facts:
              cluster: alfa
              role: {value}
    """)
    assert error_of(load) == f"environments/x.yaml:6: hosts.web1.facts.role: expected a string, number or boolean, got {shown}"


def test_fact_name_unusable_in_filters(env):
    load = env("hosts:\n  web1:\n    address: 10.0.0.1\n    facts: {'a=b': 1}\n")
    assert error_of(load).startswith("environments/x.yaml:4: hosts.web1.facts.a=b: invalid fact name")


def test_classes_given_as_a_string(env):
    load = env("hosts:\n  web1: {address: 10.0.0.1, classes: roles::web}\n")
    assert error_of(load) == (
        "environments/x.yaml:2: hosts.web1.classes: expected a list of strings, got 'roles::web' (write [roles::web])"
    )


def test_class_not_a_string(env):
    load = env("""\
        hosts:
          web1:
            address: 10.0.0.1
            classes:
              - roles::web
              - 42
    """)
    assert error_of(load) == "environments/x.yaml:6: hosts.web1.classes[1]: expected a string without spaces, got 42"


def test_agents_not_a_list(env):
    load = env("hosts:\n  web1: {address: 10.0.0.1, agents: {package: yes}}\n")
    assert error_of(load) == "environments/x.yaml:2: hosts.web1.agents: expected a list of strings, got a mapping"


def test_explicit_agents_and_classes(env):
    load = env("hosts:\n  web1: {address: 10.0.0.1, agents: [package, package], classes: [a, 'b::c']}\n")
    host = load().hosts["web1"]
    assert host.agents == ("package",)  # repeats dropped
    assert host.classes == ("a", "b::c")


def test_an_unknown_agent_name_is_an_error_not_a_host_left_out_of_minus_a(env):
    load = env("""\
        hosts:
          web1:
            address: 10.0.0.1
            agents:
              - pakage
              - rpcutil
    """)
    assert error_of(load) == (
        "environments/x.yaml:5: hosts.web1.agents[0]: unknown agent 'pakage' (did you mean 'package'?)"
    )
    load = env("hosts:\n  web1: {address: 10.0.0.1, agents: [rpcutil, zz]}\n")
    assert error_of(load) == ("environments/x.yaml:2: hosts.web1.agents[1]: unknown agent 'zz' (agents: appmgr, "
                              "firewall, haproxy, health, lease, nats, notify, package, rpcutil, service)")


def test_host_lab_must_be_a_mapping(env):
    load = env("hosts:\n  web1: {address: 10.0.0.1, lab: web}\n")
    assert error_of(load) == "environments/x.yaml:2: hosts.web1.lab: expected a mapping, got 'web'"


def test_top_level_lab_kept_as_is(env):
    inv = env("lab: {bridge: br0, ports: [1, 2], nested: {a: true}}\n" + MINIMAL)()
    assert inv.lab == {"bridge": "br0", "ports": [1, 2], "nested": {"a": True}}


# --- groups -------------------------------------------------------------------------------------


def test_group_naming_an_unknown_host(env):
    load = env("""\
        hosts:
          web1: {address: 10.0.0.1}
          web2: {address: 10.0.0.2}
        groups:
          web:
            - web1
            - web11
    """)
    assert error_of(load) == "environments/x.yaml:7: groups.web[1]: unknown host 'web11' (did you mean 'web1'?)"


def test_group_listing_a_host_twice(env):
    load = env(MINIMAL + "groups: {web: [web1, web1]}\n")
    assert error_of(load) == "environments/x.yaml:3: groups.web[1]: host 'web1' is listed twice"


def test_group_not_a_list(env):
    load = env(MINIMAL + "groups:\n  web: 3\n")
    assert error_of(load) == "environments/x.yaml:4: groups.web: expected a list of strings, got 3"


def test_groups_keep_order(env):
    inv = env(MINIMAL.replace("hosts:\n", "hosts:\n  web2: {address: 10.0.0.2}\n") + "groups: {all: [web1, web2], none: []}\n")()
    assert inv.groups == {"all": ("web1", "web2"), "none": ()}


# --- paths --------------------------------------------------------------------------------------


def test_a_tilde_in_a_path_is_the_home_directory_not_a_folder_beside_the_file(env, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    inv = env("known_hosts: ~/.ssh/known_hosts\ndefaults: {key: ~/.ssh/id_rsa}\n" + MINIMAL)()
    assert inv.known_hosts == tmp_path / "home" / ".ssh" / "known_hosts"
    assert inv.hosts["web1"].key == tmp_path / "home" / ".ssh" / "id_rsa"


# --- login settings: user, port, key, become, jump (estate defaults < group < host) ---------------


def test_login_settings_nearest_wins_and_are_marked_explicit(env):
    inv = env("""\
        defaults: {user: deploy, become: sudo}
        hosts:
          bastion1: {address: 10.0.0.2, become: false}
          web1: {address: 10.0.0.11}
          web2: {address: 10.0.0.12, user: ops, port: 2222}
          db1: {address: 10.0.0.21}
        groups:
          web: {hosts: [web1, web2], jump: bastion1, port: 2200}
          db: [db1]
    """)()
    h = inv.hosts
    assert (h["web1"].user, h["web1"].port, h["web1"].become, h["web1"].jump) == ("deploy", 2200, "sudo", "bastion1")
    assert (h["web2"].user, h["web2"].port, h["web2"].jump) == ("ops", 2222, "bastion1")
    assert (h["db1"].port, h["db1"].jump, h["db1"].become) == (22, None, "sudo")
    assert h["bastion1"].become is None and h["bastion1"].jump is None
    assert h["db1"].explicit == {"address", "user", "become"}
    assert inv.groups["web"] == ("web1", "web2")


def test_nothing_set_means_root_on_22_and_nothing_explicit(env):
    web1 = env(MINIMAL)().hosts["web1"]
    assert (web1.user, web1.port, web1.become, web1.jump, web1.explicit) == ("root", 22, None, None, {"address"})


@pytest.mark.parametrize("text, message", [
    ("defaults: {become: su}\nhosts: {a: {address: 10.0.0.1}}\n",
     "environments/x.yaml:1: defaults.become: expected sudo (or false), got 'su'"),
    ("hosts: {a: {address: 10.0.0.1, jump: a}}\n", "environments/x.yaml:1: hosts.a.jump: a host cannot jump through itself"),
    ("hosts: {a: {address: 10.0.0.1, jump: 'b c'}}\n",
     "environments/x.yaml:1: hosts.a.jump: expected a host name or [user@]host[:port], got 'b c'"),
    ("hosts: {a: {address: 10.0.0.1}}\ngroups:\n  x: {hosts: [a], jump: j1}\n  y: {hosts: [a], jump: j2}\n",
     "environments/x.yaml:4: groups.y.jump: host 'a' is also in group 'x', which sets 'jump' too: set it on the host instead"),
    ("hosts: {a: {address: 10.0.0.1}}\ngroups:\n  x: {hots: [a]}\n",
     "environments/x.yaml:3: groups.x.hots: unknown key 'hots' (did you mean 'hosts'?)"),
])
def test_bad_login_settings_are_one_line_errors(env, text, message):
    assert error_of(env(text)) == message


def test_the_loadbalancer_section_any_estate_may_have(env):
    inv = env("loadbalancer: {backend: www}\nhosts: {web1: {address: 10.0.0.1}}\n")()
    assert inv.loadbalancer == {"backend": "www"} and inv.lab == {}
    assert error_of(env("loadbalancer: {backend: www, bakend: x}\nhosts: {web1: {address: 10.0.0.1}}\n")) == (
        "environments/x.yaml:1: loadbalancer.bakend: unknown key 'bakend' (did you mean 'backend'?)")


def test_the_loadbalancer_host_must_be_a_host(env):
    assert env("loadbalancer: {host: web1}\nhosts: {web1: {address: 10.0.0.1}}\n")().loadbalancer["host"] == "web1"
    assert error_of(env("loadbalancer: {host: lb}\nhosts: {lb1: {address: 10.0.0.1}}\n")) == (
        "environments/x.yaml:1: loadbalancer.host: unknown host 'lb' (did you mean 'lb1'?)")
