"""The libvirt and static drivers turn domain XML / explicit fields into ConsoleConnections."""

from __future__ import annotations

import pytest

from tokensvc.drivers.libvirt import DomainXMLError, connections_from_domain_xml
from tokensvc.drivers.static import static_connection
from tokensvc.errors import ValidationFailed
from tokensvc.objects.console import ConsoleConnection

UUID = "4d5e6f70-8192-4a3b-9c4d-5e6f70819203"
COMPUTE = "198.51.100.7"

# A running domain as `virsh dumpxml` shows it: VNC on all interfaces, SPICE on one
# address, and a pty serial (with its <console> mirror) that no proxy can dial.
FULL_DOMAIN = f"""<?xml version='1.0' encoding='UTF-8'?>
<domain type='kvm' id='7'>
  <name>instance-0000002a</name>
  <uuid>{UUID}</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>web-1</nova:name>
    </nova:instance>
  </metadata>
  <memory unit='KiB'>2097152</memory>
  <vcpu placement='static'>2</vcpu>
  <os><type arch='x86_64' machine='pc-q35-8.2'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/nova/instances/{UUID}/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='bridge'>
      <mac address='fa:16:3e:11:22:33'/>
      <source bridge='br-int'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <source path='/dev/pts/3'/>
      <target type='isa-serial' port='0'/>
    </serial>
    <console type='pty' tty='/dev/pts/3'>
      <source path='/dev/pts/3'/>
      <target type='serial' port='0'/>
    </console>
    <input type='tablet' bus='usb'/>
    <graphics type='vnc' port='5900' autoport='yes' listen='0.0.0.0'>
      <listen type='address' address='0.0.0.0'/>
    </graphics>
    <graphics type='spice' port='5901' tlsPort='5902' autoport='yes'>
      <listen type='address' address='192.0.2.10'/>
      <channel name='main' mode='secure'/>
    </graphics>
    <graphics type='sdl' display=':0'/>
    <video><model type='virtio' heads='1' primary='yes'/></video>
  </devices>
</domain>
"""

SERIAL_DOMAIN = """<domain type='kvm'>
  <name>instance-0000002b</name>
  <devices>
    <serial type='tcp'>
      <source mode='bind' host='0.0.0.0' service='4555'/>
      <protocol type='raw'/>
      <target port='0'/>
    </serial>
    <serial type='tcp'>
      <source mode='bind' host='203.0.113.5' service='4556'/>
      <protocol type='raw'/>
      <target port='1'/>
    </serial>
    <serial type='tcp'>
      <source mode='bind' service='4557'/>
      <protocol type='telnet'/>
      <target port='2'/>
    </serial>
    <serial type='tcp'>
      <source mode='connect' host='203.0.113.9' service='7000'/>
      <protocol type='raw'/>
      <target port='3'/>
    </serial>
    <serial type='pty'>
      <target port='4'/>
    </serial>
    <console type='tcp'>
      <source mode='bind' host='0.0.0.0' service='4555'/>
      <target type='serial' port='0'/>
    </console>
  </devices>
</domain>
"""

# Defined but not started: autoport has not assigned ports yet.
AUTOPORT_DOMAIN = """<domain type='kvm'>
  <devices>
    <graphics type='vnc' port='-1' autoport='yes' listen='::'/>
    <graphics type='spice' autoport='yes'/>
    <graphics type='vnc' port='5905' autoport='no' listen='::'/>
  </devices>
</domain>
"""


def convert(xml: str | bytes, *, vnc_tls: bool = False) -> list[tuple[object, ...]]:
    found = connections_from_domain_xml(xml, instance_uuid=UUID, address=COMPUTE, vnc_tls=vnc_tls)
    assert all(isinstance(c, ConsoleConnection) and c.instance_uuid == UUID for c in found)
    return [(c.console_type, c.host, c.port, c.options) for c in found]


def test_full_domain_vnc_and_spice_in_document_order() -> None:
    assert convert(FULL_DOMAIN, vnc_tls=True) == [
        ("novnc", COMPUTE, 5900, {"usetls": True}),
        ("spice-html5", "192.0.2.10", 5901, {"tls_port": 5902}),
    ]


def test_vnc_tls_only_marks_vnc() -> None:
    assert convert(FULL_DOMAIN.encode()) == [
        ("novnc", COMPUTE, 5900, {}),
        ("spice-html5", "192.0.2.10", 5901, {"tls_port": 5902}),
    ]


def test_connections_carry_no_token_yet() -> None:
    found = connections_from_domain_xml(FULL_DOMAIN, instance_uuid=UUID, address=COMPUTE)
    assert not any(c.obj_attr_is_set("token_hash") for c in found)


def test_tcp_serial_bind_sources() -> None:
    assert convert(SERIAL_DOMAIN) == [
        ("serial", COMPUTE, 4555, {"mode": "bind"}),
        ("serial", "203.0.113.5", 4556, {"mode": "bind"}),
        ("serial", COMPUTE, 4557, {"mode": "bind"}),
    ]


def test_autoport_not_yet_assigned_is_skipped() -> None:
    assert convert(AUTOPORT_DOMAIN) == [("novnc", COMPUTE, 5905, {})]


@pytest.mark.parametrize(
    "graphics",
    [
        "<graphics type='vnc' port='5900' listen='192.0.2.20'/>",
        "<graphics type='vnc' port='5900'><listen type='address' address='192.0.2.20'/></graphics>",
        "<graphics type='vnc' port='5900'><listen type='network' address='192.0.2.20'"
        " network='default'/></graphics>",
    ],
)
def test_listen_address_sources(graphics: str) -> None:
    assert convert(f"<domain><devices>{graphics}</devices></domain>") == [
        ("novnc", "192.0.2.20", 5900, {})
    ]


@pytest.mark.parametrize(
    "graphics",
    [
        "<graphics type='vnc' port='5900' listen=''/>",
        "<graphics type='vnc' port='5900'><listen type='socket' socket='/run/vnc'/></graphics>",
    ],
)
def test_no_dialable_listen_uses_caller_address(graphics: str) -> None:
    assert convert(f"<domain><devices>{graphics}</devices></domain>") == [
        ("novnc", COMPUTE, 5900, {})
    ]


def test_spice_without_tls_port_has_no_options() -> None:
    xml = "<domain><devices><graphics type='spice' port='5930' tlsPort='-1'/></devices></domain>"
    assert convert(xml) == [("spice-html5", COMPUTE, 5930, {})]


def test_domain_without_devices_has_no_consoles() -> None:
    assert convert("<domain type='kvm'><name>x</name></domain>") == []


@pytest.mark.parametrize(
    ("device", "named"),
    [
        ("<graphics type='vnc' port='59a0'/>", "<graphics type='vnc'> port='59a0'"),
        ("<graphics type='vnc' port=' 5900'/>", "<graphics type='vnc'> port=' 5900'"),
        ("<graphics type='spice' port='5900' tlsPort='x'/>", "<graphics type='spice'> tlsPort"),
        ("<graphics type='vnc' port='70000'/>", "<graphics type='vnc'> port='70000'"),
        (
            "<serial type='tcp'><source mode='bind' host='0.0.0.0' service='telnet'/></serial>",
            "<serial type='tcp'> service='telnet'",
        ),
        ("<serial type='tcp'><source mode='bind' host='h'/></serial>", "<serial type='tcp'>"),
    ],
)
def test_bad_port_names_the_element(device: str, named: str) -> None:
    with pytest.raises(DomainXMLError, match=named):
        convert(f"<domain><devices>{device}</devices></domain>")


def test_domain_xml_error_is_a_value_error() -> None:
    assert issubclass(DomainXMLError, ValueError)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE domain [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<domain><name>&lol9;</name></domain>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE domain [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<domain><name>&xxe;</name><devices>
  <graphics type='vnc' port='5900'/>
</devices></domain>
"""

DTD_ONLY = """<?xml version="1.0"?>
<!DOCTYPE domain SYSTEM "http://198.51.100.1/domain.dtd">
<domain><devices><graphics type='vnc' port='5900'/></devices></domain>
"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY, DTD_ONLY])
def test_dtds_and_entities_are_refused(xml: str) -> None:
    with pytest.raises(DomainXMLError, match="refused"):
        convert(xml)


@pytest.mark.parametrize(
    "xml", ["", "<domain><devices>", "<domain></devices></domain>", b"\xff\xfe<domain/>"]
)
def test_malformed_xml(xml: str | bytes) -> None:
    with pytest.raises(DomainXMLError, match="not well-formed"):
        convert(xml)


def test_root_must_be_domain() -> None:
    with pytest.raises(DomainXMLError, match="<network>"):
        convert("<network><name>default</name></network>")


def test_bad_instance_uuid_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        connections_from_domain_xml(FULL_DOMAIN, instance_uuid="nope", address=COMPUTE)
    assert "instance_uuid" in caught.value.errors


def test_static_connection() -> None:
    found = static_connection(
        instance_uuid=UUID,
        host="192.0.2.30",
        port=5900,
        console_type="novnc",
        access_url="https://console.example.com/vnc_auto.html",
        options={"usetls": True},
    )
    assert isinstance(found, ConsoleConnection)
    assert (found.instance_uuid, found.host, found.port, found.console_type) == (
        UUID,
        "192.0.2.30",
        5900,
        "novnc",
    )
    assert found.access_url == "https://console.example.com/vnc_auto.html"
    assert found.options == {"usetls": True}
    assert not found.obj_attr_is_set("token_hash")


def test_static_connection_defaults() -> None:
    found = static_connection(instance_uuid=UUID, host="h", port=4555, console_type="serial")
    assert found.options == {}
    assert found.access_url is None


def test_static_connection_bad_port() -> None:
    with pytest.raises(ValidationFailed) as caught:
        static_connection(instance_uuid=UUID, host="h", port=70000, console_type="novnc")
    assert "port" in caught.value.errors
