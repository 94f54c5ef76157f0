"""`tokensvc consoles register`: a compute host registers a domain's consoles."""

from __future__ import annotations

import json
import uuid

DOMAIN = """<domain type='kvm'>
  <name>guest</name>
  <devices>
    <graphics type='vnc' port='5901' autoport='yes' listen='0.0.0.0'/>
    <serial type='tcp'><source mode='bind' host='0.0.0.0' service='4555'/></serial>
    <serial type='tcp'><source mode='bind' host='0.0.0.0' service='4556'/></serial>
    <serial type='tcp'><source mode='bind' host='0.0.0.0' service='4557'/></serial>
  </devices>
</domain>"""


def test_register_from_domain_xml_shares_out_serial_ports(production, tmp_path):
    server, admin, proxy = production
    instance = str(uuid.uuid4())
    server.call("PUT", f"/v1/instances/{instance}", admin, {"host": "compute-9"})
    compute = json.loads(
        server.cli("keys", "create", "--role", "compute", "--host", "compute-9", "--json").stdout
    )["key"]
    (tmp_path / "compute.key").write_text(compute + "\n")
    (tmp_path / "domain.xml").write_text(DOMAIN)
    args = ["consoles", "register", "--domain-xml", str(tmp_path / "domain.xml")]
    args += ["--instance", instance, "--host", "192.0.2.44", "--service-url", server.url]
    args += ["--key-file", str(tmp_path / "compute.key"), "--json"]

    serial_ports = []
    for _ in range(3):
        result = server.cli(*args)
        assert result.returncode == 0, result.stderr
        shown = [json.loads(line) for line in result.stdout.splitlines()]
        assert [(s["console_type"], s["host"]) for s in shown] == [
            ("novnc", "192.0.2.44"),
            ("serial", "192.0.2.44"),
        ]
        assert shown[0]["port"] == 5901
        serial_ports.append(shown[1]["port"])
        lease = server.post(
            "/v1/tokens/connect", proxy, {"token": shown[1]["token"], "proxy_id": "p"}
        )
        assert lease.status_code == 200  # a user takes that serial console
    assert sorted(serial_ports) == [4555, 4556, 4557]
    exhausted = server.cli(*args)
    assert exhausted.returncode == 1
    assert exhausted.stderr.strip() == (
        "tokensvc: no more ports available: all 3 console ports are in use"
    )


def test_hostile_domain_xml_is_one_clear_line(production, tmp_path):
    server, _, _ = production
    (tmp_path / "bad.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><domain>&a;</domain>'
    )
    (tmp_path / "k").write_text("tsk_x")
    result = server.cli(
        "consoles",
        "register",
        "--domain-xml",
        str(tmp_path / "bad.xml"),
        "--instance",
        str(uuid.uuid4()),
        "--host",
        "h",
        "--service-url",
        server.url,
        "--key-file",
        str(tmp_path / "k"),
    )
    assert result.returncode == 1
    assert (
        result.stderr.startswith("tokensvc: domain XML refused")
        and "Traceback" not in result.stderr
    )


def _register_args(server, tmp_path, instance, domain=DOMAIN):
    compute = json.loads(
        server.cli("keys", "create", "--role", "compute", "--host", "compute-9", "--json").stdout
    )["key"]
    (tmp_path / "compute.key").write_text(compute + "\n")
    (tmp_path / "domain.xml").write_text(domain)
    args = ["consoles", "register", "--domain-xml", str(tmp_path / "domain.xml")]
    args += ["--instance", instance, "--host", "192.0.2.44", "--service-url", server.url]
    return [*args, "--key-file", str(tmp_path / "compute.key")]


def test_access_urls_per_type_times_in_z_and_serial_batches_said(production, tmp_path):
    server, admin, _ = production
    instance = str(uuid.uuid4())
    server.call("PUT", f"/v1/instances/{instance}", admin, {"host": "compute-9"})
    args = _register_args(server, tmp_path, instance)
    novnc = "https://console.example/vnc_lite.html?path=websockify%3Ftoken%3D{token}"
    as_json = server.cli(*args, "--access-url", f"novnc={novnc}", "--json")
    assert as_json.returncode == 0, as_json.stderr
    vnc, serial = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert vnc["access_url"] == novnc.replace("{token}", vnc["token"])
    assert serial["access_url"] is None  # no URL given for serial consoles
    assert vnc["expires_at"].endswith("Z") and "+00:00" not in as_json.stdout
    as_text = server.cli(*args).stdout.splitlines()
    assert (
        as_text[-1] == "  (the next free of ports 4555, 4556, 4557: another run hands out another)"
    )
    bad = server.cli(*args, "--access-url", "telnet=http://x")
    assert bad.returncode == 2 and "--access-url" in bad.stderr


def test_a_domain_without_consoles_is_an_error(production, tmp_path):
    server, admin, _ = production
    instance = str(uuid.uuid4())
    server.call("PUT", f"/v1/instances/{instance}", admin, {"host": "compute-9"})
    empty = "<domain type='kvm'><name>guest</name><devices/></domain>"
    result = server.cli(*_register_args(server, tmp_path, instance, empty))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        "tokensvc: the domain XML has no console to register (no graphics, no TCP serial)"
    )
