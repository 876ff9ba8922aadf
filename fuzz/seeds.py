#!/usr/bin/env python3
"""Write the seed corpora (fuzz/corpus/<target>/) and dictionaries (fuzz/dict/) of the fuzz targets.

Seeds come from the protocol spec's examples and wire samples, config/agent.yaml and a few tiny
zips. Re-run after changing this file: `python3 fuzz/seeds.py [TARGET...]` (it rewrites only its own
files).
"""

import base64
import io
import json
import pathlib
import re
import shutil
import stat
import struct
import zipfile

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
SAMPLES = pathlib.Path("/work/shared/spec/wire-samples")
VERSION = "3.8.8"  # the version the `commands` fixture engine runs


def write(target, name, data):
    folder = FUZZ / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (folder / name).write_bytes(data)


def fresh(target):
    shutil.rmtree(FUZZ / "corpus" / target, ignore_errors=True)


# --- commands: bodies of `commands/pending` (E3) --------------------------------------------

def fake_ciphertext(modulus_bytes):
    """Base64 of modulus_bytes bytes: what the unknown-type heuristic takes for RSA ciphertext."""
    return base64.b64encode(bytes((i * 37 + 11) % 256 for i in range(modulus_bytes))).decode()


def command(cid, ctype, **fields):
    return {"id": cid, "type": ctype, "targetVersion": VERSION, **fields}


def commands_seeds():
    fresh("commands")
    wire_ciphertext = None
    sample = SAMPLES / "e5-command-status.json"
    if sample.exists():
        # The wire sample's create-south carries a real RSA-4096 OAEP ciphertext.
        for record in json.loads(sample.read_text()):
            if record["type"] == "create-south":
                wire_ciphertext = record["commandContent"]["settings"]["password"]
    secret = wire_ciphertext or fake_ciphertext(512)
    scan = {"name": "every-minute", "description": "d", "cron": "0 * * * * *"}
    south = {
        "name": "plant-db-2", "type": "mssql", "description": "", "enabled": False,
        "settings": {"host": "127.0.0.1", "port": 1433, "username": "reader", "password": secret},
        "items": [{"id": None, "name": "temp", "enabled": True, "settings": {"query": "SELECT 1"},
                   "scanModeId": None, "scanModeName": "every-second", "groupId": None,
                   "groupName": "g1"}],
        "groups": [{"id": None, "standardSettings": {"name": "g1", "scanModeName": "every-second"},
                    "historySettings": {"maxReadInterval": 3600}}],
    }
    north = {
        "name": "files-2", "type": "file-writer", "description": "", "enabled": True,
        "settings": {"outputFolder": "out", "password": ""},
        "caching": {"trigger": {"scanModeId": None, "scanModeName": "every-second",
                                "numberOfElements": 1000, "numberOfFiles": 1},
                    "throttling": {"runMinDelay": 200}},
        "transformers": [],
    }
    history = {
        "name": "backfill-2", "description": "",
        "queryTimeRange": {"startTime": "2026-01-01T00:00:00.000Z", "endTime": "2026-01-02T00:00:00.000Z"},
        "caching": {"trigger": {"scanModeId": "scan-1"}}, "northTransformers": [],
        "southType": "mssql", "southSettings": {"password": secret},
        "items": [{"id": None, "name": "pressure", "enabled": True, "settings": {}}],
        "northType": "console", "northSettings": {},
    }
    permissions = {}
    for name in re.findall(r'^\s+"(\w+)",$', (REPO / "actors/src/config/mod.rs").read_text(), re.M):
        permissions[name] = True
    seeds = {
        "restart": [command("c1", "restart-engine")],
        "scan-modes": [
            command("c1", "create-scan-mode", commandContent=scan),
            command("c2", "update-scan-mode", scanModeId="scan-1",
                    commandContent={**scan, "cron": "0,30 5-10/2 1 ? JAN-mar MON-FRI"}),
            command("c3", "delete-scan-mode", scanModeId="scan-1"),
        ],
        "ip-filters-certificates": [
            command("c1", "create-ip-filter", commandContent={"address": "10.0.0.1", "description": ""}),
            command("c2", "delete-ip-filter", ipFilterId="ip-1"),
            command("c3", "update-certificate", certificateId="cert-1",
                    commandContent={"name": "c", "description": "", "regenerateCertificate": False,
                                    "options": None}),
        ],
        "create-south": [command("c1", "create-south", retrieveSecretsFromSouth="south-1",
                                 commandContent=south)],
        "update-south-unknown-type": [command("c1", "update-south", southConnectorId="south-x",
                                              commandContent={**south, "type": "custom-thing",
                                                              "settings": {"token": fake_ciphertext(512)}})],
        "north": [
            command("c1", "create-north", retrieveSecretsFromNorth=None, commandContent=north),
            command("c2", "update-north", northConnectorId="north-1", commandContent=north),
        ],
        "history": [
            command("c1", "create-history-query", retrieveSecretsFromSouth="south-1",
                    retrieveSecretsFromNorth=None, retrieveSecretsFromHistoryQuery="history-1",
                    commandContent=history),
            command("c2", "update-history-query", historyId="history-1",
                    commandContent={"resetCache": False, "historyQuery": history}),
            command("c3", "update-history-query-status", historyId="history-1",
                    historyQueryStatus="RUNNING"),
        ],
        "engine": [
            command("c1", "update-engine-general", commandContent={"name": "gw"}),
            command("c2", "update-engine-web-server",
                    commandContent={"port": 2224, "authTokenDuration": "1h"}),
            command("c3", "update-engine-proxy",
                    commandContent={"enabled": True, "port": 8888, "username": "u", "password": "p",
                                    "forward": {"enabled": False, "url": None}}),
            command("c4", "update-engine-logger", commandContent={
                "console": {"level": "info"}, "file": {"level": "warn", "maxFileSize": 50},
                "database": {"level": "info"}, "loki": {"level": "silent", "password": ""},
                "oia": {"level": "info", "interval": 10},
                "syslog": {"level": "silent", "port": 514, "protocol": "udp4"}}),
        ],
        "registration": [command("c1", "update-registration-settings", commandContent={
            "commandRefreshInterval": 10, "commandRetryInterval": 5, "messageRetryInterval": 5,
            "commandPermissions": permissions})],
        "csv-and-unsupported": [
            command("c1", "create-or-update-south-items-from-csv", southConnectorId="south-1",
                    deleteItemsNotPresent=True, csvContent="name;enabled\nx;true", delimiter=";"),
            command("c2", "setpoint", northConnectorId="north-1",
                    commandContent=[{"reference": "r", "value": 1}]),
            command("c3", "test-south-connection", southConnectorId="south-1", commandContent=south),
        ],
        "update-version": [command("c1", "update-version", version="v3.9.0", assetId="a1",
                                   updateLauncher=False, backupFoldersPattern="cache/*")],
        "malformed": [
            "not an object", {"type": "restart-engine"}, {"id": ""},
            {"id": "t", "type": "make-coffee", "targetVersion": VERSION},
            {"id": "u", "type": 5, "targetVersion": VERSION},
            {"id": "w", "type": "restart-engine"},
            command("c1", "restart-engine"), command("c1", "restart-engine"),
            command("c2", "create-scan-mode", targetVersion="0.1", commandContent=scan),
        ],
    }
    for name, body in seeds.items():
        write("commands", f"{name}.json", json.dumps(body, indent=1))


# --- config: agent.yaml texts -----------------------------------------------------------------

def config_seeds():
    fresh("config")
    write("config", "agent.yaml", (REPO / "config/agent.yaml").read_bytes())
    write("config", "minimal.yaml", "engine: { name: gw, data_dir: /tmp/oibus }\n")
    write("config", "full.yaml", """\
engine:
  name: "gw-1"
  data_dir: /var/lib/oibus-agent
  api: { listen: "127.0.0.1:2223" }
  log: { console: debug, oia: warn }
oianalytics:
  host: https://oia.example.com:8443/path
  accept_unauthorized: true
  proxy: { url: "http://proxy:3128", username: ops, password: pw }
  api_gateway: { base_endpoint: /gw, header_key: x-gw, header_value: v }
  intervals: { command_refresh: 1h 30m, command_retry: 500ms, message_retry: 5s, registration_check: 10s }
  key_size: 2048
  permissions: { updateVersion: false, restartEngine: true }
actors:
  defaults:
    restart: { max_restarts: 5, within: 1m, backoff_initial: 500ms, backoff_max: 30s, reset_after: 1m }
  command_executor: { restart: { max_restarts: 3, within: 1m, backoff_initial: 1s, backoff_max: 10s, reset_after: 1m } }
  log_shipper: { batch_max: 500, interval: 10s, queue_max_bytes: 64MiB }
  metrics_aggregator: { flush_interval: 10s, retention: { hours: 48, days: 62, months: 24 } }
launcher:
  install_dir: /opt/oibus-agent
  health_grace: 1m
  shutdown_timeout: 30s
  restart: { max_restarts: 10, within: 10m, backoff_initial: 1s, backoff_max: 1m, reset_after: 5m }
""")
    write("config", "invalid.yaml", """\
engine:
  name: ""
  api: { listen: 127.0.0.1:0 }
oianalytics:
  host: ftp://nope
  intervals:
    command_refresh: 5 parsecs
  key_size: 1024
  permissions: { makeCoffee: true }
actors:
  log_shipper: { batch_max: 0, queue_max_bytes: 12 parsecs }
  unknown_actor: {}
""")
    write("config", "long-durations.yaml", """\
oianalytics:
  intervals: { command_refresh: 365d, command_retry: 1000000000s, message_retry: 52w, registration_check: 10y }
launcher: { health_grace: 100000h, shutdown_timeout: 1000000000000ms }
""")
    write("config", "anchors.yaml", """\
defaults: &d { max_restarts: 1, within: 1s, backoff_initial: 1s, backoff_max: 1s, reset_after: 1s }
actors:
  defaults: { restart: *d }
""")


# --- upgrade_zip: release assets ----------------------------------------------------------------

def zip_bytes(entries, compression=zipfile.ZIP_DEFLATED):
    """entries: (name, body or None for a folder, unix mode)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, body, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.compress_type = compression
            if body is None:
                info.external_attr |= 0x10  # MS-DOS folder flag
                z.writestr(info, b"")
            else:
                z.writestr(info, body)
    return out.getvalue()


def zip_seeds():
    fresh("upgrade_zip")
    binary = ("binaries/oibus-agent", b"#!/bin/sh\necho 3.9.0\n", stat.S_IFREG | 0o755)
    folder = ("binaries/", None, stat.S_IFDIR | 0o755)
    readme = ("README.md", b"release notes\n", stat.S_IFREG | 0o644)
    write("upgrade_zip", "release.zip", zip_bytes([folder, binary, readme]))
    write("upgrade_zip", "release-stored.zip", zip_bytes([binary], zipfile.ZIP_STORED))
    write("upgrade_zip", "nested.zip", zip_bytes([binary, ("a/b/c/file", b"x", stat.S_IFREG | 0o600)]))
    write("upgrade_zip", "parent-dir.zip", zip_bytes([binary, ("binaries/../../evil", b"x", stat.S_IFREG | 0o644)]))
    write("upgrade_zip", "absolute.zip", zip_bytes([binary, ("/tmp/evil", b"x", stat.S_IFREG | 0o644)]))
    write("upgrade_zip", "symlink.zip", zip_bytes([binary, ("binaries/link", b"/etc/passwd", stat.S_IFLNK | 0o777)]))
    write("upgrade_zip", "no-binary.zip", zip_bytes([readme]))
    write("upgrade_zip", "file-then-folder.zip", zip_bytes([binary, ("x", b"1", stat.S_IFREG | 0o644),
                                                            ("x/y", b"2", stat.S_IFREG | 0o644)]))
    write("upgrade_zip", "fifo.zip", zip_bytes([binary, ("pipe", b"", stat.S_IFIFO | 0o644)]))
    write("upgrade_zip", "empty.zip", zip_bytes([]))


# --- secrets: mode byte + payload (see fuzz/src/secrets.rs) -------------------------------------

def secrets_seeds():
    fresh("secrets")
    cipher = fake_ciphertext(128)  # the fuzzing vault's 1024-bit modulus: 172 characters
    wire = None
    sample = SAMPLES / "e5-command-status.json"
    if sample.exists():
        wire = json.loads(sample.read_text())[2]["commandContent"]["settings"]["password"]
    write("secrets", "rsa-wire-sample", b"\x00" + (wire or cipher).encode())
    write("secrets", "rsa-right-length", b"\x00" + cipher.encode())
    write("secrets", "rsa-empty-keeps", b"\x00")
    sealed = bytes([1]) + bytes(12) + bytes(range(40))
    write("secrets", "sealed-shape", b"\x01" + base64.b64encode(sealed))
    write("secrets", "sealed-not-base64", b"\x01" + b"%%%")
    write("secrets", "seal-roundtrip", b"\x02" + bytes([6]) + b"secret")
    write("secrets", "seal-tampered", b"\x02" + bytes([6]) + b"secret" + struct.pack("<HB", 20, 1))
    write("secrets", "rsa-roundtrip", b"\x03" + bytes([6]) + b"s3cr3t")
    write("secrets", "rsa-tampered", b"\x03" + bytes([6]) + b"s3cr3t" + struct.pack("<HB", 100, 0x80))
    settings = [
        {"host": "db", "password": cipher},
        {"authentication": {"type": "basic", "password": cipher, "token": ""}},
        {"specificSettings": {"secretKey": cipher, "clientSecret": None}},
        {"headers": [{"key": "a", "value": cipher}], "token": cipher},
        {"password": 42, "passphrase": ""},
    ]
    for i, s in enumerate(settings):
        write("secrets", f"settings-{i}.json", b"\x04" + json.dumps(s).encode())


# --- modbus: mode byte + payload (see actors/src/fuzzing/modbus.rs) ------------------------------

DATA_TYPES = ["bit", "uint16", "int16", "uint32", "int32", "float", "big-uint64", "big-int64", "double"]


def modbus_decode(name, flags, data_type, words, bit_index=0, multiplier=1.0):
    payload = bytes([flags, DATA_TYPES.index(data_type)]) + struct.pack("<qd", bit_index, multiplier)
    payload += b"".join(struct.pack(">H", w) for w in words)
    write("modbus", name, b"\x00" + payload)


def modbus_seeds():
    fresh("modbus")
    # 1.5f32 = 0x3FC00000, low word first by default; 2.5 as a double, words of each half swapped.
    modbus_decode("float-default", 0, "float", [0x0000, 0x3FC0])
    modbus_decode("float-swapped-words", 4, "float", [0x3FC0, 0x0000])
    modbus_decode("uint32-little-endian", 1, "uint32", [0x0001, 0x0002])
    modbus_decode("int16-swapped-bytes", 2, "int16", [0xFEFF])
    modbus_decode("bit-15", 0, "bit", [0x8000], bit_index=15)
    modbus_decode("bit-negative-index", 0, "bit", [0x0001], bit_index=-32)
    modbus_decode("double", 0, "double", [0x0000, 0x4004, 0x0000, 0x0000])
    modbus_decode("big-int64-all-swaps", 7, "big-int64", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE])
    modbus_decode("scaled", 0, "uint16", [123], multiplier=0.1)
    modbus_decode("short-answer", 0, "double", [0x4004])
    modbus_decode("nan-multiplier", 0, "uint32", [1, 2], multiplier=float("nan"))
    items = [
        {"modbusType": "holding-register", "address": "0x10", "data": {"dataType": "float", "multiplierCoefficient": 2}},
        {"modbusType": "holding-register", "address": "18", "data": {"dataType": "uint16"}},
        {"modbusType": "coil", "address": "5"},
        {"modbusType": "coil", "address": "6"},
        {"modbusType": "input-register", "address": "65532", "data": {"dataType": "double"}},
        {"modbusType": "discrete-input", "address": "1999"},
        {"modbusType": "holding-register", "address": "40001", "data": {"dataType": "bit", "bitIndex": 3}},
    ]
    bad = [
        {"modbusType": "register", "address": "1"},
        {"modbusType": "coil", "address": "pump-1"},
        {"modbusType": "coil", "address": "0"},
        {"modbusType": "input-register", "address": "65535", "data": {"dataType": "double"}},
        {"modbusType": "holding-register", "address": "70000"},
        {"modbusType": "holding-register", "address": "1", "data": {"dataType": "long"}},
        {"modbusType": "holding-register", "address": "1", "data": {"dataType": "float", "bitIndex": 1e300}},
    ]
    # [mode][flags: jbus, batch, layout][gap][answer seed][items]
    for name, flags, gap, seed, body in [
        ("items-batched", 0b10, 2, 0, items),
        ("items-jbus-single", 0b01, 0, 3, items),
        ("items-short-answer", 0b10, 10, 1, items),
        ("items-long-answer", 0b10, 0, 2, items),
        ("items-wrong-kind", 0b10, 0, 4, items),
        ("items-malformed", 0b11, 0, 0, bad),
        ("items-wide-gap", 0b10110, 255, 0, items),
    ]:
        write("modbus", name, bytes([1, flags, gap, seed]) + json.dumps(body).encode())
    for text in ["0x0001", "40001", "  12", "12abc", "-3", "0x", "0xZZ", "", "99999999999999999999"]:
        name = "address-" + (re.sub(r"[^A-Za-z0-9]", "_", text) or "empty")
        write("modbus", name, b"\x02" + text.encode())


# --- mqtt: mode byte + payload (see actors/src/fuzzing/mqtt.rs) ----------------------------------

def mqtt_seeds():
    fresh("mqtt")
    for name, flt, topic in [
        ("topic-plus", "plant/+/temperature", "plant/line1/temperature"),
        ("topic-hash-parent", "a/#", "a"),
        ("topic-exact", "a/b", "a/b/c"),
        ("topic-empty-levels", "+/+", "/x"),
        ("topic-dollar", "#", "$SYS/broker/load"),
    ]:
        write("mqtt", name, b"\x00" + flt.encode() + b"\x00" + topic.encode())
    sep = b"\xff"
    one = [json.dumps({"point": "temperature", "v": v}).encode() for v in range(3)]
    write("mqtt", "json-values", b"\x01\x00" + sep.join(one))
    write("mqtt", "json-one-malformed", b"\x01\x00" + sep.join([one[0], b"{not json", one[1]]))
    write("mqtt", "json-not-utf8", b"\x01\x00" + sep.join([one[0], b"\xc3\x28\xa0\xa1"]))
    write("mqtt", "json-empty-payload", b"\x01\x00")
    write("mqtt", "json-no-point", b"\x01\x00" + b'{"v": 1}')
    metrics = {"metrics": [{"name": "a", "value": 1.5, "ts": 1765144800000},
                           {"name": "b", "value": "x", "ts": "1765144800000"},
                           {"name": None, "value": [1], "ts": -1e300}]}
    write("mqtt", "json-metrics", b"\x01\x01" + json.dumps(metrics).encode())
    write("mqtt", "json-format", b"\x01\x02" + json.dumps({"time": "2026-12-07 22:00:00.123"}).encode()
          + sep + json.dumps({"time": "07/12/2026"}).encode())
    write("mqtt", "json-epoch", b"\x01\x03" + json.dumps({"id": 7, "value": True, "t": "1765144800"}).encode()
          + sep + json.dumps({"id": "p", "value": None, "t": 1e20}).encode())
    options = {"rowIteratorPath": "$[*].message[*]", "pointId": "$[*].message[*].k",
               "value": "$[*].message[*].v", "timestamp": "$[*].message[*].t"}
    write("mqtt", "json-own-options", b"\x02" + json.dumps(options).encode() + b"\x00"
          + json.dumps([{"k": "a", "v": 1, "t": "2026-12-07T22:00:00Z"}, {"k": "b"}]).encode())
    write("mqtt", "json-bad-options", b"\x02" + json.dumps({"rowIteratorPath": "$[", "pointId": 1}).encode() + b"\x00{}")
    for name, url in [("url-plain", "mqtt://broker"), ("url-tls-port", "mqtts://user:pw@10.0.0.1:8884/x"),
                      ("url-ipv6", "mqtt://[::1]:1884"), ("url-ws", "ws://broker:80"), ("url-no-host", "mqtt://:1883"),
                      ("url-bad-port", "tcp://h:99999")]:
        write("mqtt", name, b"\x03" + url.encode())


# --- dictionaries: the words the parsers compare against ----------------------------------------

# Boundaries of the integer types the parsers convert to (as AFL's "interesting values").
INTERESTING_NUMBERS = {"-1", "0", "65535", "65536", "4294967295", "4294967296",
                       "9223372036854775807", "18446744073709551615", "18446744073709551616", "1e400"}


def dictionaries():
    folder = FUZZ / "dict"
    folder.mkdir(exist_ok=True)
    catalogue = (REPO / "actors/src/commands/catalogue.rs").read_text()
    apply_rs = "".join(p.read_text() for p in sorted((REPO / "actors/src/command_executor").rglob("*.rs")))
    words = set(re.findall(r'\b[A-Z][A-Za-z]+ = "([a-z-]+)",', catalogue))
    words |= set(re.findall(r'"([a-zA-Z][a-zA-Z]+)"', catalogue + apply_rs))
    words |= {"commandContent", "targetVersion", "id", "type", "scan-1", "ip-1", "cert-1",
              "south-1", "south-2", "south-x", "scan-2", "subscription", "north-1", "history-1", "every-second", VERSION,
              "* * * * * *", "*/", "?", "JAN", "MON", "RUNNING", "PAUSED", "null", "true", "false"}
    words |= INTERESTING_NUMBERS
    (folder / "commands.dict").write_text("".join(f'"{w}"\n' for w in sorted(words)))
    yaml = (REPO / "config/agent.yaml").read_text()
    keys = set(re.findall(r"\b([a-z_]+):", yaml))
    keys |= {"&a", "*a", "<<", "---", "...", "!!str", "~", "null", "{ ", " }", "[ ", " ]",
             "1h 30m", "500ms", "64MiB", "1GiB", "https://", "http://", "127.0.0.1:2223",
             "ns", "us", "y", "w", "M"} | INTERESTING_NUMBERS
    (folder / "config.dict").write_text("".join(f'"{k}"\n' for k in sorted(keys)))
    modbus = set(DATA_TYPES) | {"modbusType", "address", "data", "dataType", "bitIndex", "multiplierCoefficient",
                                "coil", "discrete-input", "input-register", "holding-register", "0x", "0X"}
    modbus |= INTERESTING_NUMBERS
    (folder / "modbus.dict").write_text("".join(f'"{w}"\n' for w in sorted(modbus)))
    mqtt = {"rowIteratorPath", "pointId", "value", "timestamp", "datetimeSettings", "inputType", "inputTimezone",
            "inputFormat", "outputPrecision", "iso-string", "unix-epoch", "unix-epoch-ms", "string", "$[*]",
            "$[*].message", ".message", "[*]", "$", "#", "+", "/", "mqtt://", "mqtts://", "tcp://", "ws://",
            "yyyy-MM-dd HH:mm:ss", "SSS", "UTC", "\\xff"} | INTERESTING_NUMBERS
    (folder / "mqtt.dict").write_text("".join(f'"{w}"\n' for w in sorted(mqtt)))


SEEDS = {"commands": commands_seeds, "config": config_seeds, "upgrade_zip": zip_seeds,
         "secrets": secrets_seeds, "modbus": modbus_seeds, "mqtt": mqtt_seeds}

if __name__ == "__main__":
    # `python3 fuzz/seeds.py [TARGET...]`: every target's seeds by default, then the dictionaries.
    import sys
    for target in sys.argv[1:] or SEEDS:
        SEEDS[target]()
    dictionaries()
