"""gunicorn as the Procfile runs it: building the command, starting and stopping servers,
and reading the CPU and memory their processes use from /proc.

Linkdeck runs the Procfile's `web:` line exactly, in the repository root. The anchors (a
minimal Flask app and a bare WSGI app) run the same line with their own app in bench/ and
without `--config`: the config file's hooks belong to Linkdeck (its click shipper), and
gunicorn reads ./gunicorn.conf.py by default, which is why the anchors do not start in
the repository root.
"""

import http.client
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PROCFILE = ROOT / "Procfile"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")
# Binds to every interface, which the benchmark rewrites to 127.0.0.1.
_ANY_ADDRESS = ("0.0.0.0", "", "[::]")  # noqa: S104


def procfile_web_words(port: int, workers: int) -> list[str]:
    """The Procfile's `web:` command as argv, with PORT and WEB_CONCURRENCY filled in.

    The bind address becomes 127.0.0.1: the benchmark never listens beyond this machine.
    """
    for line in PROCFILE.read_text().splitlines():
        if line.startswith("web:"):
            break
    else:
        raise SystemExit(f"{PROCFILE} has no web: line")
    values = {"PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    words = [_expand(word, values) for word in shlex.split(line[len("web:") :])]
    if len(words) < 2 or Path(words[0]).name != "gunicorn" or words[1].startswith("-"):
        raise SystemExit(f"expected `web: gunicorn APP_MODULE ...` in {PROCFILE}, got {line!r}")
    return _on_loopback(words)


def anchor_words(web_words: list[str], app_module: str) -> list[str]:
    """The web command serving `app_module` instead, without Linkdeck's --config file."""
    words, skip = [web_words[0], app_module], False
    for word in web_words[2:]:
        if skip:
            skip = False
        elif word in ("-c", "--config"):
            skip = True
        elif not word.startswith("--config="):
            words.append(word)
    return words


def _expand(word: str, values: dict[str, str]) -> str:
    """Replace $NAME and ${NAME:-default} as the PaaS's shell would."""

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(3)
        found = values.get(name, os.environ.get(name))
        return found if found else (match.group(2) or "")

    return _VARIABLE.sub(value, word)


def _on_loopback(words: list[str]) -> list[str]:
    """Rewrite a bind to every interface (0.0.0.0:PORT) as 127.0.0.1:PORT."""
    result = list(words)
    for index, word in enumerate(result):
        prefix, address = None, None
        if word.startswith("--bind="):
            prefix, address = "--bind=", word[len("--bind=") :]
        elif index > 0 and result[index - 1] in ("-b", "--bind"):
            prefix, address = "", word
        if address is not None and ":" in address:
            host, port = address.rsplit(":", 1)
            if host in _ANY_ADDRESS:
                result[index] = f"{prefix}127.0.0.1:{port}"
    return result


def bound_port(words: list[str]) -> int:
    """The port a gunicorn command binds."""
    for index, word in enumerate(words):
        if word.startswith("--bind="):
            return int(word.rsplit(":", 1)[1])
        if index > 0 and words[index - 1] in ("-b", "--bind"):
            return int(word.rsplit(":", 1)[1])
    raise SystemExit(f"no --bind in {shlex.join(words)}")


def display(words: list[str]) -> str:
    """A command as a person would type it (the venv's gunicorn shown as `gunicorn`)."""
    return shlex.join(["gunicorn", *words[1:]])


@dataclass
class Server:
    """One gunicorn master started by the benchmark, and how to stop it."""

    name: str
    words: list[str]
    cwd: Path
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    # The master's descendants when it was last asked to stop: pid -> start time.
    _children: dict[int, int] = field(default_factory=dict)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return bound_port(self.words)

    @property
    def pid(self) -> int:
        """The gunicorn master's process id."""
        return self.process.pid

    def start(self, ready_path: str = "/healthz", timeout: float = 90) -> "Server":
        """Start gunicorn (the venv's) and wait until it answers HTTP on its port."""
        bin_dir = str(Path(sys.executable).parent)
        env = {**self.env, "PATH": f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"}
        executable = shutil.which(self.words[0], path=env["PATH"])
        if executable is None:
            raise SystemExit(f"{self.words[0]} not found in {bin_dir} or on PATH")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [executable, *self.words[1:]],
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so a stuck server can be killed with its children.
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._answers(ready_path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
                raise SystemExit(f"{self.name} did not start; the end of its log:\n{tail}")
            time.sleep(0.1)
        return self

    def _answers(self, path: str) -> bool:
        """Tell whether any HTTP response comes back for `path`."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", path)
            connection.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            connection.close()

    def workers(self) -> list[int]:
        """The master's direct children (sync workers, and a shipper if the hooks start one)."""
        processes = read_processes()
        return [pid for pid, proc in processes.items() if proc.ppid == self.pid]

    def usage(self) -> tuple[float, set[tuple[int, int]]]:
        """CPU used so far by the master and all its descendants (reaped ones included),
        and which descendants live now, as (pid, start time)."""
        if self.process is None:
            return 0.0, set()
        processes = read_processes()
        tree = process_tree(self.pid, processes)
        cpu = sum(processes[pid].cpu for pid in tree)
        return cpu, {(pid, processes[pid].started) for pid in tree if pid != self.pid}

    def signal_master(self, signum: int = signal.SIGTERM) -> None:
        """Send a signal to the master (a graceful stop, for SIGTERM)."""
        self._remember_children()
        self.process.send_signal(signum)

    def _remember_children(self) -> None:
        """Note the master's live descendants, to wait for those that outlive it."""
        processes = read_processes()
        self._children = {
            pid: processes[pid].started
            for pid in process_tree(self.pid, processes)
            if pid != self.pid
        }

    def wait_master(self, timeout: float) -> float:
        """Wait for the master to exit; return how long that took."""
        started = time.monotonic()
        self.process.wait(timeout)
        return time.monotonic() - started

    def stop(self, timeout: float = 60) -> None:
        """Stop gracefully (SIGTERM to the master), then wait for every process it had.

        A process still alive after `timeout` is killed by its pid.
        """
        if self.process is None:
            return
        if self.process.poll() is None:
            self.signal_master(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"  ! {self.name}: still running after {timeout:g}s, killing pid {self.pid}")
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(10)
        self._stop_leftovers(timeout)

    def _stop_leftovers(self, timeout: float) -> None:
        """Wait for processes the master started that outlive it (a draining shipper)."""
        deadline = time.monotonic() + timeout
        left = {pid: started for pid, started in self._children.items() if _alive(pid, started)}
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = {pid: started for pid, started in left.items() if _alive(pid, started)}
        for pid in left:
            print(f"  ! {self.name}: pid {pid} outlived its master, killing it")
            os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class ProcessInfo:
    """What /proc/<pid>/stat says about one process."""

    ppid: int
    name: str
    # Clock ticks after boot: with the pid, it tells a process from a later one reusing it.
    started: int
    # utime + stime + cutime + cstime in seconds: a reaped child's CPU moves to its parent.
    cpu: float


def read_processes() -> dict[int, ProcessInfo]:
    """Every process on the machine that can be read, by pid."""
    processes = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = sum(int(value) for value in fields[11:15])
        processes[int(entry.name)] = ProcessInfo(
            int(fields[1]), name, int(fields[19]), ticks / CLOCK_TICKS
        )
    return processes


def process_tree(root: int, processes: dict[int, ProcessInfo]) -> list[int]:
    """`root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, proc in processes.items():
        children.setdefault(proc.ppid, []).append(pid)
    tree, queue = [], [root] if root in processes else []
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return tree


class PostgresBackendCpu:
    """CPU used by the PostgreSQL backends of one database while a run lasts.

    Other sessions' databases on the same server are left out (they count as other work
    on the machine). Backends are sampled every 0.2 s, so one that connects and exits
    between two samples is missed; a pooled app keeps its connections, so few are.
    """

    def __init__(self, database: str, interval: float = 0.2):
        self.database = database
        self.interval = interval
        self._first: dict[tuple[int, int], float] = {}
        self._last: dict[tuple[int, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> "PostgresBackendCpu":
        self._sample(starting=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        """CPU seconds the database's backends used between enter and exit."""
        return sum(self._last[key] - self._first.get(key, 0.0) for key in self._last)

    def _poll(self) -> None:
        """Sample until stopped."""
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self, *, starting: bool = False) -> None:
        """Note each backend's CPU; a backend first seen after the start began at 0."""
        for pid, proc in read_processes().items():
            if proc.name != "postgres" or not self._serves_database(pid):
                continue
            key = (pid, proc.started)
            if starting:
                self._first[key] = proc.cpu
            self._last[key] = proc.cpu

    def _serves_database(self, pid: int) -> bool:
        """Tell whether a postgres process is a backend of this database (its title says)."""
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return False
        return self.database in title.split()


def machine_cpu_seconds() -> tuple[float, float]:
    """Busy and idle (idle + iowait) CPU seconds of the whole machine since boot."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    idle = values[3] + values[4]
    busy = sum(values[:8]) - idle
    return busy / CLOCK_TICKS, idle / CLOCK_TICKS


def resident_kib(pid: int) -> int | None:
    """A process's resident memory (VmRSS) in KiB, or None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _alive(pid: int, started: int) -> bool:
    """Tell whether the process that had this pid and start time still runs (a zombie
    waiting for its parent does not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[19]) == started
