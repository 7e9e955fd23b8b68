#!/usr/bin/env python3
"""Run a real single-node Apache Kafka broker (KRaft) on 127.0.0.1 for tests, CI and benchmarks.

    python tools/kafka_broker.py fetch                 # resolve the jars (and kafka-tools) with Maven, once
    python tools/kafka_broker.py start [--port P] [--data-dir D]
    python tools/kafka_broker.py start --sasl-ssl --scram-user NAME=PASSWORD [...] [--acls]
    python tools/kafka_broker.py acls --data-dir D -- --list          # kafka-acls.sh, same arguments
    python tools/kafka_broker.py status
    python tools/kafka_broker.py stop [--keep-data] [--kill]

``fetch`` resolves ``org.apache.kafka:kafka_2.13`` and its runtime dependencies with
``mvn dependency:copy-dependencies`` (tools/kafka/pom.xml) into
``$KAFKA_CACHE_DIR/<version>/libs`` (default ``.cache/kafka/<version>/libs``), only when they are not
there yet. ``start`` fetches if needed, formats the KRaft storage of a data folder (a new temporary
one unless ``--data-dir`` is given; an already formatted one is reused as it is, so a broker can be
stopped and started again with its data), launches ``kafka.Kafka`` with a small heap, waits until
the broker answers a metadata request, records its address and pid in a state file and prints
``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:PORT`` on stdout (``eval "$(... start)"`` style, or read it).
``stop`` ends that broker (SIGTERM, then SIGKILL after a grace period; ``--kill`` at once, as a
crash) and removes a temporary data folder unless ``--keep-data``.

``--sasl-ssl`` adds a second client listener that speaks SASL_SSL with SCRAM-SHA-512 (as cloud.ru's
Managed Kafka does on 9094): a throwaway CA and a broker certificate for 127.0.0.1 and localhost are
made in the data folder (``tls/ca.pem``, the ``cryptography`` package), and the SCRAM users of
``--scram-user`` are added when the storage is formatted (``kafka-storage format --add-scram``). It
prints ``KAFKA_SASL_SSL_BOOTSTRAP=127.0.0.1:PORT`` and ``KAFKA_SSL_CA_FILE=...`` too. The plaintext
listener stays (the broker's own traffic and the readiness probe use it).

``--acls`` (``start(acls=True)``) turns authorization on (KRaft's ``StandardAuthorizer``, nothing
allowed without an ACL): the plaintext listeners' principal ``User:ANONYMOUS`` (the broker's own
traffic, the controller and the readiness probe) is the only super user, so the SCRAM users of the
SASL_SSL listener can do only what ACLs grant them. ``acls`` runs Kafka's own ``kafka-acls.sh``
tool (``org.apache.kafka.tools.AclCommand``, from the ``kafka-tools`` jar fetched once beside the
broker's) against a broker's plaintext listener: ``acl_command(broker, *args)``.

The same functions are used by the test fixtures (tests/fixtures/kafka.py) through ``Broker``.
Environment: KAFKA_VERSION (default 4.1.1), KAFKA_CACHE_DIR, KAFKA_HEAP (default 512m),
KAFKA_JVM_OPTS (extra JVM options), JAVA (the java binary), MVN (the mvn binary).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "tools" / "kafka"
DEFAULT_VERSION = os.environ.get("KAFKA_VERSION", "4.1.1")
DEFAULT_STATE_FILE = REPO / ".cache" / "kafka" / "broker.json"
MAIN_CLASS = "kafka.Kafka"
ACL_TOOL = "org.apache.kafka.tools.AclCommand"  # kafka-acls.sh's class (kafka-tools jar)
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"  # KRaft's
STORAGE_TOOL = "kafka.tools.StorageTool"  # kafka-storage.sh's class in 4.x (Scala, in kafka_2.13)


def say(*parts: object) -> None:
    print("kafka_broker:", *parts, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- fetch


def cache_root() -> Path:
    env = os.environ.get("KAFKA_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else REPO / ".cache" / "kafka"


def libs_dir(version: str = DEFAULT_VERSION) -> Path:
    return cache_root() / version / "libs"


def fetch(version: str = DEFAULT_VERSION) -> Path:
    """Resolve the broker's jars once; return the folder that holds them."""
    libs = libs_dir(version)
    done = libs / ".complete"
    if done.exists():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions starting at once fetch only once
        if done.exists():
            return libs
        tmp = libs.parent / f"libs.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        mvn = os.environ.get("MVN") or shutil.which("mvn")
        if not mvn:
            raise RuntimeError("Maven (mvn) is not on PATH: it is needed once to fetch Kafka")
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(HERE / "pom.xml"),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ]
        say(f"fetching Apache Kafka {version} with Maven into {libs}")
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
        if proc.returncode != 0 or not (tmp / f"kafka_2.13-{version}.jar").exists():
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(
                f"mvn could not resolve org.apache.kafka:kafka_2.13:{version} "
                f"(exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
        done.write_text(f"{version}\n")
        say(f"fetched {len(list(libs.glob('*.jar')))} jars in {time.monotonic() - started:.0f}s")
    return libs


def fetch_tools(version: str = DEFAULT_VERSION) -> Path:
    """Kafka's command-line tools jar (``kafka-tools``: kafka-acls.sh and the like), fetched once
    beside the broker's jars; its dependencies are the broker's own. Returns the jar."""
    libs = fetch(version)
    folder = libs.parent / "tools"
    jar = folder / f"kafka-tools-{version}.jar"
    if jar.exists():
        return jar
    with open(libs.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jar.exists():
            return jar
        mvn = os.environ.get("MVN") or shutil.which("mvn")
        if not mvn:
            raise RuntimeError("Maven (mvn) is not on PATH: it is needed once to fetch kafka-tools")
        tmp = libs.parent / f"tools.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(HERE / "pom.xml"),
            "dependency:copy",
            f"-Dartifact=org.apache.kafka:kafka-tools:{version}",
            f"-DoutputDirectory={tmp}",
        ]
        say(f"fetching kafka-tools {version} with Maven into {folder}")
        proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
        if proc.returncode != 0 or not (tmp / jar.name).exists():
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"mvn could not resolve org.apache.kafka:kafka-tools:{version}:\n{proc.stdout[-3000:]}")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return jar


# --------------------------------------------------------------------------- start / stop


def free_port(avoid: set[int] = frozenset()) -> int:  # type: ignore[assignment]
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it when it is our child (no zombie)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """Guard against a recycled pid: the process must be kafka.Kafka on this data folder."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return MAIN_CLASS.encode() in cmdline and any(str(data_dir).encode() in a for a in cmdline)


def _run_sync(make_coro) -> object:
    """Run a coroutine to completion from sync code, also when called under a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make_coro())
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when the broker answers a metadata request and lists itself as a live broker."""
    try:
        from aiokafka.admin import AIOKafkaAdminClient
    except ImportError:  # no client library: a listening socket is the best we can check
        host, port = bootstrap.rsplit(":", 1)
        return port_open(int(port), host)

    async def check() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
        try:
            await asyncio.wait_for(admin.start(), timeout)
            cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
            return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) != -1
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    return bool(_run_sync(check))


def warm_up(bootstrap: str, timeout: float = 30.0) -> bool:
    """Ask for a group coordinator until one answers: the broker creates its offsets topic on the
    first such request, so the first consumer group of a test does not wait for that."""
    try:
        from aiokafka.admin import AIOKafkaAdminClient
    except ImportError:
        return False

    async def go() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        deadline = time.monotonic() + timeout
        try:
            await admin.start()
            while time.monotonic() < deadline:
                try:
                    await admin.find_coordinator("p2p-warm-up")
                    return True
                except Exception:
                    await asyncio.sleep(0.2)
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    return bool(_run_sync(go))


@dataclass
class Broker:
    pid: int
    port: int
    controller_port: int
    data_dir: str
    version: str
    temporary: bool
    sasl_port: int | None = None  # the SASL_SSL listener, when started with one
    ca_file: str = ""  # the CA of its certificate (SASL_SSL)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        if self.sasl_port is None:
            raise RuntimeError("this broker has no SASL_SSL listener (start it with sasl_users)")
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def log_file(self) -> Path:
        return Path(self.data_dir) / "broker.log"

    def alive(self) -> bool:
        return _alive(self.pid) and _is_our_broker(self.pid, Path(self.data_dir))

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"


SCRAM_MECHANISM = "SCRAM-SHA-512"


def make_tls(folder: Path) -> tuple[Path, Path]:
    """The throwaway CA and broker certificate of the SASL_SSL listener (tools/kafka_tls.py)."""
    spec = importlib.util.spec_from_file_location("kafka_tls", REPO / "tools" / "kafka_tls.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_tls(folder)


def _write_properties(
    data_dir: Path,
    port: int,
    controller_port: int,
    sasl_port: int | None = None,
    broker_pem: Path | None = None,
    acls: bool = False,
) -> Path:
    props = data_dir / "server.properties"
    base = (HERE / "server.properties").read_text()
    listeners = f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
    advertised = f"PLAINTEXT://127.0.0.1:{port}"
    extra = ""
    if sasl_port is not None:
        assert broker_pem is not None
        listeners += f",SASL_SSL://127.0.0.1:{sasl_port}"
        advertised += f",SASL_SSL://127.0.0.1:{sasl_port}"
        extra = (
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL\n"
            f"sasl.enabled.mechanisms={SCRAM_MECHANISM}\n"
            f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
            "ssl.keystore.type=PEM\n"
            f"ssl.keystore.location={broker_pem}\n"
            "ssl.client.auth=none\n"
        )
    if acls:
        # Only the plaintext listeners' anonymous principal (the broker itself, the controller,
        # the probe and the ACL tool on 127.0.0.1) is above the ACLs; nothing else is allowed
        # without one.
        extra += (
            f"authorizer.class.name={AUTHORIZER}\nsuper.users=User:ANONYMOUS\nallow.everyone.if.no.acl.found=false\n"
        )
    props.write_text(
        base
        + "\n# ---- added by tools/kafka_broker.py for this data folder\n"
        + "node.id=1\n"
        + f"controller.quorum.voters=1@127.0.0.1:{controller_port}\n"
        + f"listeners={listeners}\n"
        + f"advertised.listeners={advertised}\n"
        + f"log.dirs={data_dir / 'logs'}\n"
        + extra
    )
    return props


def _java() -> str:
    java = os.environ.get("JAVA") or shutil.which("java")
    if not java:
        raise RuntimeError("java is not on PATH (Java 17 runs Kafka 4.x)")
    return java


def start(
    *,
    version: str = DEFAULT_VERSION,
    port: int | None = None,
    data_dir: str | Path | None = None,
    heap: str | None = None,
    timeout: float = 120.0,
    sasl_users: dict[str, str] | None = None,
    acls: bool = False,
) -> Broker:
    """Start a broker and wait until it answers. Raises RuntimeError when it does not.
    ``sasl_users`` (name: password): also a SASL_SSL listener with these SCRAM-SHA-512 users,
    added when the storage is formatted (a folder formatted before keeps the users it has).
    ``acls``: authorization on (see the module's docstring)."""
    libs = fetch(version)
    temporary = data_dir is None
    folder = Path(data_dir or tempfile.mkdtemp(prefix="p2p-kafka-")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    known = folder / "broker.json"
    previous = json.loads(known.read_text()) if known.exists() else {}
    if previous.get("pid") and _alive(previous["pid"]) and _is_our_broker(previous["pid"], folder):
        raise RuntimeError(f"a broker already runs on {folder} (pid {previous['pid']})")
    port = port or previous.get("port") or free_port()
    controller_port = previous.get("controller_port") or free_port({port})
    sasl_port = ca_file = broker_pem = None
    if sasl_users is not None or previous.get("sasl_port"):
        sasl_port = previous.get("sasl_port") or free_port({port, controller_port})
        ca_file, broker_pem = make_tls(folder / "tls")
    for p in (port, controller_port, sasl_port):
        if p is not None and port_open(p):
            raise RuntimeError(f"port {p} on 127.0.0.1 is already in use")
    props = _write_properties(folder, port, controller_port, sasl_port, broker_pem, acls)
    java = _java()
    classpath = str(libs / "*")  # java expands the wildcard itself
    log4j = f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}"
    if not (folder / "logs" / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        scram: list[str] = []
        for name, password in (sasl_users or {}).items():
            if not name.replace("-", "").replace("_", "").isalnum() or '"' in password or "]" in password:
                raise RuntimeError(f'SCRAM user {name!r}: letters, digits, - and _ only; no " or ] in passwords')
            scram += ["--add-scram", f'{SCRAM_MECHANISM}=[name={name},password="{password}"]']
        fmt = subprocess.run(
            [
                java,
                "-Xmx256m",
                log4j,
                "-cp",
                classpath,
                STORAGE_TOOL,
                "format",
                f"--cluster-id={cluster_id}",
                "-c",
                str(props),
                *scram,
            ],  # (an id may begin with "-")
            capture_output=True,
            text=True,
        )
        if fmt.returncode != 0:
            # the tool's output may echo the SCRAM arguments: never the passwords
            text = f"{fmt.stdout}\n{fmt.stderr}"
            for password in (sasl_users or {}).values():
                text = text.replace(password, "<redacted>")
            raise RuntimeError(f"formatting KRaft storage failed:\n{text}")
    heap = heap or os.environ.get("KAFKA_HEAP", "512m")
    jvm = [
        f"-Xmx{heap}",
        f"-Xms{min_heap(heap)}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        log4j,
        *os.environ.get("KAFKA_JVM_OPTS", "").split(),
    ]
    with open(folder / "broker.log", "ab") as out:
        proc = subprocess.Popen(
            [java, *jvm, "-cp", classpath, MAIN_CLASS, str(props)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
            start_new_session=True,  # outlives this script; not hit by its Ctrl-C
        )
    broker = Broker(
        proc.pid,
        port,
        controller_port,
        str(folder),
        version,
        temporary,
        sasl_port=sasl_port,
        ca_file=str(ca_file or ""),
    )
    known.write_text(json.dumps(asdict(broker)))
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the Kafka broker exited with {proc.returncode} while starting; log:\n{broker.log_tail()}"
            )
        if port_open(port) and answers(broker.bootstrap) and (sasl_port is None or port_open(sasl_port)):
            if not warm_up(broker.bootstrap):
                say("the group coordinator is not available yet (consumers will wait for it)")
            return broker
        if time.monotonic() > deadline:
            stop(broker, kill=True, keep_data=not temporary)
            raise RuntimeError(f"the Kafka broker did not answer within {timeout:.0f}s; log:\n{broker.log_tail()}")
        time.sleep(0.3)


def acl_command(broker: Broker, *args: str, timeout: float = 120.0) -> str:
    """Run Kafka's kafka-acls.sh (``AclCommand``) with ``args`` against ``broker``'s plaintext
    listener (its super user); return what it printed. Raises RuntimeError when it fails."""
    tools = fetch_tools(broker.version)
    classpath = f"{libs_dir(broker.version) / '*'}{os.pathsep}{tools}"
    log4j = f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}"
    proc = subprocess.run(
        [
            _java(),
            "-Xmx128m",
            "-XX:TieredStopAtLevel=1",
            log4j,
            "-cp",
            classpath,
            ACL_TOOL,
            "--bootstrap-server",
            broker.bootstrap,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kafka-acls {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def min_heap(heap: str) -> str:
    return "128m" if heap.lower().endswith("m") and int(heap[:-1]) > 128 else heap


def stop(broker: Broker, *, kill: bool = False, keep_data: bool = False, grace: float = 30.0) -> None:
    """Stop the broker (SIGTERM: controlled shutdown; ``kill``: SIGKILL, as a crash)."""
    if broker.alive():
        os.kill(broker.pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(broker.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(broker.pid):
            say(f"broker pid {broker.pid} ignored SIGTERM for {grace:.0f}s; killing it")
            os.kill(broker.pid, signal.SIGKILL)
            while _alive(broker.pid):
                time.sleep(0.05)
    deadline = time.monotonic() + 10  # the OS frees the port a moment after the process is gone
    while port_open(broker.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    if broker.temporary and not keep_data:
        shutil.rmtree(broker.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------- state file / CLI


def save_state(broker: Broker, state_file: Path) -> None:
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps({**asdict(broker), "bootstrap": broker.bootstrap}, indent=2))


def load_state(state_file: Path) -> Broker | None:
    try:
        raw = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    raw.pop("bootstrap", None)
    return Broker(**raw)


def _state_for(args: argparse.Namespace) -> Path:
    if getattr(args, "state_file", None):
        return Path(args.state_file)
    if getattr(args, "data_dir", None):
        return Path(args.data_dir).resolve() / "broker.json"
    return DEFAULT_STATE_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="resolve the broker's jars with Maven (once)")
    p_start = sub.add_parser("start", help="start a broker and wait until it answers")
    p_stop = sub.add_parser("stop", help="stop the broker of the state file")
    p_status = sub.add_parser("status", help="say whether the broker runs and answers")
    p_acls = sub.add_parser("acls", help="run kafka-acls.sh against the broker (arguments after --)")
    for p in (p_fetch, p_start):
        p.add_argument("--version", default=DEFAULT_VERSION, help="Kafka version (default %(default)s)")
    for p in (p_start, p_stop, p_status, p_acls):
        p.add_argument("--state-file", help=f"where the broker is recorded (default {DEFAULT_STATE_FILE})")
        p.add_argument("--data-dir", help="the broker's data folder (default: a new temporary one)")
    p_start.add_argument("--port", type=int, help="client port (default: a free one, or the folder's last)")
    p_start.add_argument("--heap", help="JVM heap, e.g. 512m (default $KAFKA_HEAP or 512m)")
    p_start.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it to answer")
    p_start.add_argument(
        "--sasl-ssl", action="store_true", help="also a SASL_SSL listener (SCRAM-SHA-512, throwaway CA)"
    )
    p_start.add_argument(
        "--scram-user",
        action="append",
        default=[],
        metavar="NAME=PASSWORD",
        help="a SCRAM-SHA-512 user of the SASL_SSL listener (repeatable)",
    )
    p_start.add_argument("--acls", action="store_true", help="authorization on: nothing without an ACL")
    p_acls.add_argument("tool_args", nargs=argparse.REMAINDER, help="kafka-acls.sh arguments, after --")
    p_stop.add_argument("--keep-data", action="store_true", help="keep a temporary data folder")
    p_stop.add_argument("--kill", action="store_true", help="SIGKILL at once (a crash)")
    args = parser.parse_args(argv)

    if args.command == "fetch":
        print(fetch(args.version))
        fetch_tools(args.version)  # kafka-acls (the ACL test), beside the broker's jars
        return 0
    state_file = _state_for(args)
    current = load_state(state_file)
    if args.command == "start":
        if current and current.alive():
            say(f"already running (pid {current.pid})")
            print(f"KAFKA_BOOTSTRAP_SERVERS={current.bootstrap}")
            return 0
        try:
            users = dict(u.split("=", 1) for u in args.scram_user) if args.sasl_ssl else None
            broker = start(
                version=args.version,
                port=args.port,
                data_dir=args.data_dir,
                heap=args.heap,
                timeout=args.timeout,
                sasl_users=users,
                acls=args.acls,
            )
        except RuntimeError as exc:
            say(str(exc))
            return 1
        save_state(broker, state_file)
        say(f"broker pid {broker.pid} on {broker.bootstrap}, data in {broker.data_dir}")
        print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}", flush=True)
        if broker.sasl_port is not None:
            print(f"KAFKA_SASL_SSL_BOOTSTRAP={broker.sasl_bootstrap}\nKAFKA_SSL_CA_FILE={broker.ca_file}", flush=True)
        return 0
    if args.command == "acls":
        if not current or not current.alive():
            say(f"no running broker recorded in {state_file}")
            return 3
        tool_args = args.tool_args[1:] if args.tool_args[:1] == ["--"] else args.tool_args
        try:
            print(acl_command(current, *tool_args), end="")
        except RuntimeError as exc:
            say(str(exc))
            return 1
        return 0
    if args.command == "stop":
        if not current:
            say(f"no broker recorded in {state_file}")
            return 0
        stop(current, kill=args.kill, keep_data=args.keep_data)
        if state_file.resolve() != (Path(current.data_dir) / "broker.json").resolve():
            state_file.unlink(missing_ok=True)
        say(f"stopped broker pid {current.pid}")
        return 0
    if args.command == "status":
        if not current or not current.alive():
            print("stopped")
            return 3
        ok = answers(current.bootstrap)
        print(f"{'running' if ok else 'not answering'} pid={current.pid} KAFKA_BOOTSTRAP_SERVERS={current.bootstrap}")
        return 0 if ok else 4
    return 2


if __name__ == "__main__":
    sys.exit(main())
