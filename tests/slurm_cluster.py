"""A real Slurm cluster on this machine, for the Slurm executor's tests: munged, slurmctld,
and `nodes` slurmd daemons, each node in its own network namespace with its own address on
a bridge, node names in /etc/hosts. Debian's slurm-wlm and munge (scripts/setup-deps.sh).
Needs root. Use as a context manager; everything is torn down at the end.

Facts it relies on (Slurm 22.05 on Debian 12): slurmd starts under `nsenter --net=…` (not
`ip netns exec`, which remounts /sys and hides the cgroup mounts); SlurmctldHost must name
this machine's hostname; proctrack/linuxproc and task/none need no cgroup set-up;
SlurmdParameters=config_overrides lets two nodes share this machine's CPUs; without
accounting, finished jobs are read with `scontrol show job` within MinJobAge."""
import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HOSTS = "/etc/hosts"


def _run(*argv, check=True, **kw):
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


def _free_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


class SlurmCluster:
    def __init__(self, nodes=2, cpus_per_node=2):
        tag = os.getpid() % 200 + 20
        self.tag = f"mb{tag}"
        self.subnet = f"10.77.{tag}"
        self.host_addr = f"{self.subnet}.1"
        self.nodes = [f"{self.tag}n{i + 1}" for i in range(nodes)]
        self.addrs = {n: f"{self.subnet}.{11 + i}" for i, n in enumerate(self.nodes)}
        self.cpus = cpus_per_node
        self.bridge = f"{self.tag}br"
        self.dir = tempfile.mkdtemp(prefix="matbert_slurm_")
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        self.slurmd = {}
        self.procs = []
        self._hosts_marker = f"# matbert test cluster {self.tag}"
        self._down = False

    # ---- set-up ---------------------------------------------------------------------------

    def __enter__(self):
        remove_stale_clusters()
        # Taken down however the test ends: normally, by an exception, or by SIGTERM.
        atexit.register(self.__exit__, None, None, None)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            self._network()
            self._munge()
            self._config()
            self._daemons()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _network(self):
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.host_addr}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for i, node in enumerate(self.nodes):
            ns, veth = self.netns(node), f"{self.tag}v{i}"
            _run("ip", "netns", "add", ns)
            _run("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
            _run("ip", "link", "set", f"{veth}p", "netns", ns)
            _run("ip", "link", "set", veth, "master", self.bridge)
            _run("ip", "link", "set", veth, "up")
            _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.addrs[node]}/24", "dev",
                 f"{veth}p")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", f"{veth}p", "up")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        lines = [self._hosts_marker, f"{self.host_addr} {socket.gethostname()}-{self.tag}"]
        lines += [f"{addr} {node}" for node, addr in self.addrs.items()]
        with open(HOSTS) as f:
            ends_with_newline = f.read().endswith("\n")
        with open(HOSTS, "a") as f:
            f.write(("" if ends_with_newline else "\n") + "\n".join(lines) +
                    f"\n{self._hosts_marker} end\n")

    def netns(self, node):
        return f"{node}ns"

    def _munge(self):
        self.munge_socket = os.path.join(self.dir, "munge.socket")
        key = os.path.join(self.dir, "munge.key")
        _run("mungekey", "--create", "--keyfile", key)
        os.chmod(key, 0o400)
        _run("munged", "--force", "--key-file", key, "--socket", self.munge_socket,
             "--pid-file", os.path.join(self.dir, "munged.pid"),
             "--log-file", os.path.join(self.dir, "munged.log"),
             "--seed-file", os.path.join(self.dir, "munged.seed"))

    def _config(self):
        ctld_port, d_port = _free_port(), _free_port()
        d = self.dir
        for node in self.nodes:
            os.makedirs(os.path.join(d, f"spool-{node}"), exist_ok=True)
        os.makedirs(os.path.join(d, "state"), exist_ok=True)
        node_lines = "\n".join(
            f"NodeName={n} NodeAddr={a} CPUs={self.cpus} State=UNKNOWN"
            for n, a in self.addrs.items())
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName={self.tag}
SlurmctldHost={socket.gethostname()}({self.host_addr})
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool-%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd-%n.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
KillWait=5
SlurmdParameters=config_overrides
SlurmdTimeout=10
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
{node_lines}
PartitionName=debug Nodes={",".join(self.nodes)} Default=YES MaxTime=INFINITE State=UP
""")

    def _daemons(self):
        _run("slurmctld", "-f", self.conf, env=self.env)
        for node in self.nodes:
            self.start_node(node)
        self.wait_idle()

    def wait_idle(self, timeout=30):
        """Until every node is idle in sinfo (after start, or after a node's restart)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = _run("sinfo", "-h", "-o", "%n %T", env=self.env, check=False).stdout
            states = dict(line.split() for line in out.splitlines() if line.strip())
            if len(states) == len(self.nodes) and all(s == "idle" for s in states.values()):
                return
            time.sleep(0.5)
        raise RuntimeError(f"Slurm nodes did not come up: {out}\n" + self.logs())

    def start_node(self, node, hide=None):
        """Starts the node's slurmd; with `hide`, in a mount namespace of its own where that
        directory is an empty tmpfs: a node that does not share it, as on a cluster whose
        state directory is on a local disk."""
        argv = ["nsenter", f"--net=/var/run/netns/{self.netns(node)}", "slurmd", "-f", self.conf,
                "-N", node]
        if hide:
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    'mount -t tmpfs matbert-hidden "$0" && exec "$@"', hide] + argv
        _run(*argv, env=self.env)
        self.slurmd[node] = self._pid(os.path.join(self.dir, f"slurmd-{node}.pid"))

    def stop_node(self, node):
        """Stops the node's slurmd and every process of its jobs, as a node that dies."""
        pid = self.slurmd.pop(node, None)
        if pid:
            _kill_tree_in_netns(self.netns(node))
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def _pid(self, path):
        for _ in range(50):
            try:
                with open(path) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.1)
        return None

    def logs(self):
        text = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".log"):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text.append(f"--- {name}\n" + "".join(f.readlines()[-20:]))
        return "\n".join(text)

    def scontrol(self, *args):
        return _run("scontrol", *args, env=self.env, check=False).stdout

    # ---- tear-down ------------------------------------------------------------------------

    def __exit__(self, *exc):
        if self._down:
            return
        self._down = True
        for node in list(self.nodes):
            if os.path.exists(f"/var/run/netns/{self.netns(node)}"):
                _kill_tree_in_netns(self.netns(node))
        for name in ["slurmctld.pid"] + [f"slurmd-{n}.pid" for n in self.nodes] + ["munged.pid"]:
            pid = None
            try:
                with open(os.path.join(self.dir, name)) as f:
                    pid = int(f.read().strip())
                os.kill(pid, 15)
            except (OSError, ValueError):
                pass
        time.sleep(0.5)
        for i, node in enumerate(self.nodes):
            _run("ip", "netns", "del", self.netns(node), check=False)
            _run("ip", "link", "del", f"{self.tag}v{i}", check=False)
        _run("ip", "link", "del", self.bridge, check=False)
        try:
            _remove_hosts_blocks(self._hosts_marker)
        except OSError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _remove_hosts_blocks(marker):
    """Removes the /etc/hosts lines between `marker…` and `marker… end`."""
    with open(HOSTS) as f:
        lines = f.read().splitlines(keepends=True)
    keep, skipping = [], False
    for line in lines:
        if line.startswith(marker):
            skipping = not line.rstrip().endswith(" end")
            continue
        if not skipping:
            keep.append(line)
    with open(HOSTS, "w") as f:
        f.writelines(keep)


def remove_stale_clusters():
    """Takes down what an earlier run that was killed left: its daemons and ranks, network
    namespaces, links and /etc/hosts lines (test clusters run one at a time)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if b"/tmp/matbert_slurm_" in cmdline and not cmdline.startswith(b"/usr/bin/python"):
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
    for ns in _run("ip", "netns", "list", check=False).stdout.split("\n"):
        name = ns.split(" ")[0]
        if re.fullmatch(r"mb\d+n\d+ns", name):
            _kill_tree_in_netns(name)
            _run("ip", "netns", "del", name, check=False)
    for line in _run("ip", "-br", "link", check=False).stdout.splitlines():
        name = line.split()[0].split("@")[0] if line.split() else ""
        if re.fullmatch(r"mb\d+(br|v\d+)", name):
            _run("ip", "link", "del", name, check=False)
    _remove_hosts_blocks("# matbert test cluster")


def _kill_tree_in_netns(ns):
    """SIGKILL every process in network namespace `ns` (a dead node's processes)."""
    out = _run("ip", "netns", "pids", ns, check=False).stdout
    for pid in out.split():
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass
