#!/usr/bin/python3
"""matbertctl against a real matbertd: every command's text and JSON output and exit codes,
`logs -f` across a SIGKILL and restart of the daemon (no line lost or repeated), and a
download through a proxy that corrupts one byte (refused, nothing written).

Usage: test_matbertctl.py --ctl PATH --daemon PATH --worker PATH --proto-dir DIR --configs DIR
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

from matbertd_harness import (CorruptingDownloadProxy, Daemon, free_port, job_processes,
                              run_tests, v1)

ARGS = None
TINY = ["--model.hidden_size", "32", "--model.num_hidden_layers", "2",
        "--model.num_attention_heads", "2", "--model.intermediate_size", "64",
        "--matrix.m", "6", "--matrix.n", "6", "--matrix.r", "2", "--training.warmup_steps", "2",
        "--training.log_every", "1", "--training.eval_every", "10",
        "--training.eval_samples", "8", "--training.threads", "1", "--checkpoint.every", "10"]
EXIT = dict(ok=0, error=1, usage=2, not_found=3, unreachable=4, failed=5, cancelled=6,
            denied=7)


def ctl(daemon, *args, check=None, timeout=300, env=None):
    environment = dict(os.environ, MATBERT_ADDR=f"127.0.0.1:{daemon.port}" if daemon else "")
    environment.pop("MATBERT_TOKEN", None)
    environment.pop("MATBERT_TLS_CA", None)
    environment.update(env or {})
    r = subprocess.run([ARGS.ctl, *args], capture_output=True, text=True, timeout=timeout,
                       env=environment)
    if check is not None:
        assert r.returncode == check, (args, r.returncode, r.stdout, r.stderr)
    return r


class MatbertctlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="matbertctl_test_")
        cls.daemon = Daemon(os.path.join(cls.tmp.name, "state"), free_port()).start()
        cls.spec = os.path.join(ARGS.configs, "bert_matcomp_cpu.toml")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.tmp.cleanup()

    def submit(self, *extra):
        r = ctl(self.daemon, "submit", self.spec, "--quiet", *TINY, *extra, check=0)
        job_id = r.stdout.strip()
        self.assertRegex(job_id, r"^[a-z][a-z0-9]{5}$")
        return job_id

    def test_submit_watch_status_checkpoints_download_logs(self):
        d = self.daemon
        r = ctl(d, "submit", self.spec, *TINY, "--training.steps", "20", "--gpus", "2",
                "--name", "ctl_two", "--set", "job.priority=3", check=0)
        job_id = r.stdout.strip()
        self.assertIn(f"matbertctl watch {job_id}", r.stderr)

        w = ctl(d, "watch", job_id, check=0)  # not a terminal: plain lines
        self.assertIn("QUEUED: submitted", w.stdout)
        self.assertIn("SUCCEEDED: all ranks exited with code 0", w.stdout)
        steps = [int(m) for m in re.findall(r"^step (\d+)/20 \| loss ", w.stdout, re.M)]
        self.assertEqual(steps, list(range(1, 21)))
        self.assertRegex(w.stdout, r"eval step 20: masked RMSE \d\.\d{4} \(mean \d\.\d{4}, "
                                   r"ALS \d\.\d{4}, soft-impute \d\.\d{4}\)")
        self.assertIn(f"job {job_id} SUCCEEDED after", w.stdout)
        self.assertIn(f"download it with: matbertctl download {job_id}", w.stdout)

        events = [json.loads(l) for l in ctl(d, "--json", "watch", job_id, check=0)
                  .stdout.splitlines()]
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        self.assertEqual((events[-1]["type"], events[-1]["state"]), ("state", "SUCCEEDED"))
        train = [e for e in events if e["type"] == "metrics" and e["kind"] == "train"]
        self.assertEqual([e["step"] for e in train], list(range(1, 21)))
        self.assertEqual(set(train[0]), {"seq", "time", "type", "kind", "step", "values"})
        self.assertIn("loss", train[0]["values"])
        self.assertEqual([e["step"] for e in events if e["type"] == "checkpoint"], [10, 20])

        table = ctl(d, "status", check=0).stdout.splitlines()
        self.assertEqual(table[0].split(), ["ID", "OWNER", "NAME", "STATE", "DEVICES", "STEP/TOTAL",
                                            "LOSS", "AGE"])
        row = next(line for line in table if line.startswith(job_id))
        self.assertEqual(row.split()[1:6], ["-", "ctl_two", "SUCCEEDED", "-", "20/20"])
        self.assertTrue(all(len(line) <= 80 for line in table), table)

        listed = json.loads(ctl(d, "--json", "status", check=0).stdout)
        job = next(j for j in listed["jobs"] if j["id"] == job_id)
        self.assertEqual(sorted(job), sorted([
            "id", "name", "owner", "kind", "state", "priority", "devices_requested", "devices",
            "step", "total_steps", "loss", "submit_time", "start_time", "end_time", "failure",
            "reason", "max_restarts", "queue_position", "run_dir", "attempts", "nodes"]))
        self.assertEqual(job["reason"], "all ranks exited with code 0")
        self.assertEqual((job["state"], job["priority"], job["devices_requested"], job["step"]),
                         ("SUCCEEDED", 3, 2, 20))
        detail = json.loads(ctl(d, "status", job_id, "--json", check=0).stdout)
        self.assertIn("[training]", detail["spec_toml"])
        self.assertEqual(detail["attempts"][0]["state"], "SUCCEEDED")
        text = ctl(d, "status", job_id, check=0).stdout
        self.assertIn(f"job {job_id}  ctl_two  SUCCEEDED", text)
        self.assertIn("attempt 1   SUCCEEDED", text)

        ck = json.loads(ctl(d, "checkpoints", job_id, "--json", check=0).stdout)
        self.assertEqual([c["step"] for c in ck["checkpoints"]], [10, 20])
        self.assertIn("eval_rmse", ck["checkpoints"][1]["eval"])
        self.assertIn("checkpoints/step-0000020", ctl(d, "checkpoints", job_id, check=0).stdout)

        out = os.path.join(self.tmp.name, "dl")
        r = ctl(d, "download", job_id, "--step", "10", "-o", out, check=0)
        self.assertIn("SHA-256 verified", r.stdout)
        src = os.path.join(job["run_dir"], "checkpoints", "step-0000010")
        self.assertEqual(sorted(os.listdir(out)), sorted(os.listdir(src)))
        for name in os.listdir(src):
            with open(os.path.join(out, name), "rb") as a, open(os.path.join(src, name), "rb") as b:
                self.assertEqual(a.read(), b.read())
        r = ctl(d, "download", job_id, "-o", out, check=1)
        self.assertIn("--overwrite", r.stderr)
        r = ctl(d, "--json", "download", job_id, "--latest", "-o", out, "--overwrite", check=0)
        self.assertEqual(json.loads(r.stdout)["step"], 20)
        r = ctl(d, "download", job_id, "--step", "7", "-o", out + "7", check=3)
        self.assertIn("10, 20", r.stderr)
        self.assertFalse(os.path.exists(out + "7"))

        logs = ctl(d, "logs", job_id, check=0).stdout.splitlines()
        self.assertTrue(any(line.startswith("[rank 0] step 20/20") for line in logs), logs[-5:])
        self.assertTrue(any(line.startswith("[rank 1] ") for line in logs))
        tail = ctl(d, "logs", job_id, "--rank", "0", "--tail", "3", check=0).stdout.splitlines()
        self.assertEqual(len(tail), 3)
        self.assertTrue(tail[-1].startswith("[rank 0] checkpoint: "))
        jl = [json.loads(l) for l in ctl(d, "--json", "logs", job_id, "--rank", "1", check=0)
              .stdout.splitlines()]
        self.assertTrue(jl and all(set(l) == {"rank", "text", "offset"} and l["rank"] == 1
                                   for l in jl))

    def test_cancel_exit_codes_and_cluster(self):
        d = self.daemon
        job_id = self.submit("--training.steps", "5000", "--gpus", "2")
        waiting = self.submit("--training.steps", "5", "--priority", "4")
        cluster = json.loads(ctl(d, "--json", "cluster", check=0).stdout)
        self.assertEqual(cluster["device_kind"], "cpu")
        self.assertEqual([dev["job_id"] for dev in cluster["devices"]], [job_id, job_id])
        self.assertEqual([q["job_id"] for q in cluster["queue"]], [waiting])
        text = ctl(d, "cluster", check=0).stdout
        self.assertRegex(text, rf"cpu:0 .* {job_id}")
        self.assertRegex(text, rf"1 +{waiting} .* 4 +1")
        row = next(l for l in ctl(d, "status", check=0).stdout.splitlines() if l.startswith(waiting))
        self.assertEqual(row.split()[3:6], ["QUEUED", "wait", "1"])

        r = ctl(d, "cancel", waiting, check=0)
        self.assertIn("had not started", r.stdout)
        self.assertEqual(ctl(d, "watch", waiting).returncode, EXIT["cancelled"])
        with concurrent.futures.ThreadPoolExecutor() as pool:
            watcher = pool.submit(ctl, d, "watch", job_id)
            time.sleep(1)
            ctl(d, "cancel", job_id, check=0)
            w = watcher.result()
        self.assertEqual(w.returncode, EXIT["cancelled"], w.stderr)
        self.assertIn("CANCELLED", w.stdout)
        self.assertEqual(job_processes(job_id), [])
        r = ctl(d, "cancel", job_id, check=1)
        self.assertIn("already ended (CANCELLED)", r.stderr)

        # A job that fails: an offline dataset that does not exist.
        failing = self.submit("--training.steps", "5", "--job.max_restarts", "0",
                              "--set", "matrix.dataset=nothing-here")
        self.assertEqual(ctl(d, "watch", failing).returncode, EXIT["failed"])
        self.assertIn("reason:", ctl(d, "watch", failing).stdout)

        bad = os.path.join(self.tmp.name, "bad.toml")
        with open(bad, "w") as f:
            f.write("[job]\nname = \"bad\"\n[training]\nlr = 50\n")
        r = ctl(d, "submit", bad, check=1)
        self.assertIn(f"{bad}:4: training.lr must be a number", r.stderr)
        jobs_before = len(json.loads(ctl(d, "--json", "status", check=0).stdout)["jobs"])
        cancelled = json.loads(ctl(d, "--json", "cancel", self.submit("--priority", "-1",
                                                                      "--gpus", "2")).stdout)
        self.assertIn(cancelled["state"], ("CANCELLED", "RUNNING", "STARTING"))
        self.assertEqual(len(json.loads(ctl(d, "--json", "status", check=0).stdout)["jobs"]),
                         jobs_before + 1, "the bad spec never reached the daemon")
        for args, code, needle in [
                (["status", "zzzzzz"], "not_found", 'no job with id "zzzzzz"'),
                (["watch", "zzzzzz"], "not_found", "zzzzzz"),
                (["logs", "zzzzzz"], "not_found", "zzzzzz"),
                (["frobnicate"], "usage", "frobnicate"),
                (["watch"], "usage", "job is required"),
                (["status", "--training.steps", "3"], "usage", "belong to submit"),
                (["submit", self.spec, "--training.lr", "50"], "error",
                 "training.lr must be a number"),
                (["submit", "/nonexistent.toml"], "error", "/nonexistent.toml")]:
            r = ctl(d, *args)
            self.assertEqual(r.returncode, EXIT[code], (args, r.stderr))
            self.assertIn(needle, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        r = ctl(None, "status", env={"MATBERT_ADDR": f"127.0.0.1:{free_port()}"})
        self.assertEqual(r.returncode, EXIT["unreachable"])
        self.assertIn("(from MATBERT_ADDR)", r.stderr)
        self.assertIn("start one with", r.stderr)
        r = ctl(None, "--addr", f"127.0.0.1:{free_port()}", "cluster")
        self.assertEqual(r.returncode, EXIT["unreachable"])
        self.assertIn("(from --addr)", r.stderr)
        for command in ("submit", "status", "watch", "logs", "cancel", "checkpoints", "download",
                        "cluster"):
            h = ctl(d, command, "--help", check=0).stdout
            self.assertIn("Example", h, command)

    def test_a_libtorch_error_reaches_the_job_status(self):
        # prec 6 with n_sigma 100 is a vocabulary of 200 M tokens: the word embeddings need
        # 800 GB, which LibTorch's allocator refuses with a c10::Error. The rank turns it into
        # a Status, reports it, and the attempt's reason carries LibTorch's own words.
        d = self.daemon
        job_id = self.submit("--matrix.prec", "6", "--matrix.n_sigma", "100",
                             "--model.hidden_size", "1024", "--model.num_attention_heads", "4",
                             "--set", "job.max_restarts=0", "--training.steps", "5")
        r = ctl(d, "watch", job_id, check=EXIT["failed"])
        r = ctl(d, "status", job_id, check=0)
        self.assertIn("FAILED", r.stdout)
        self.assertIn("rank 0 exited with code 1: LibTorch error: ", r.stdout)
        self.assertIn("allocate", r.stdout)
        self.assertNotIn("see the rank's log", r.stdout)

    def test_corrupted_download_is_refused(self):
        d = self.daemon
        job_id = self.submit("--training.steps", "10")
        ctl(d, "watch", job_id, check=0)
        with CorruptingDownloadProxy(d.port, v1["js"].CheckpointChunk) as proxy:
            out = os.path.join(self.tmp.name, "corrupt")
            r = ctl(None, "--addr", f"127.0.0.1:{proxy.port}", "download", job_id, "-o", out)
            self.assertEqual(r.returncode, EXIT["error"], r.stderr)
            self.assertIn("does not match the manifest", r.stderr)
            self.assertIn("nothing was written", r.stderr)
            self.assertFalse(os.path.exists(out))
            self.assertEqual([f for f in os.listdir(self.tmp.name) if "corrupt" in f], [])
            # The same download straight from matbertd is fine.
            ctl(d, "download", job_id, "-o", out, check=0)


class TlsTest(unittest.TestCase):
    def test_clients_and_ranks_speak_tls_and_send_the_token(self):
        with tempfile.TemporaryDirectory(prefix="matbertctl_tls_") as tmp:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                            "1", "-subj", "/CN=localhost", "-addext",
                            "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out",
                            cert], check=True, capture_output=True)
            token_file = os.path.join(tmp, "token")
            with open(token_file, "w") as f:
                f.write("tls-and-token\n")
            daemon = Daemon(os.path.join(tmp, "state"), free_port(), "--tls-cert", cert,
                            "--tls-key", key, "--token-file", token_file, tls_ca=cert).start()
            spec = os.path.join(ARGS.configs, "bert_matcomp_cpu.toml")
            # The generate rank reaches RUNNING only by registering over TLS, with the token.
            r = ctl(daemon, "--tls-ca", cert, "--token", "tls-and-token", "submit", spec,
                    "--set", "job.kind=generate", "--set", "generate.n_samples=20", "--watch")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("RUNNING: the rank registered", r.stdout)
            self.assertIn("SUCCEEDED", r.stdout)
            r = ctl(daemon, "status", env={"MATBERT_TLS_CA": cert, "MATBERT_TOKEN": "tls-and-token"})
            self.assertEqual(r.returncode, 0, r.stderr)
            r = ctl(daemon, "--tls-ca", cert, "status")  # no token
            self.assertEqual(r.returncode, EXIT["unreachable"], r.stderr)
            self.assertIn("requires a token", r.stderr)
            r = ctl(daemon, "status")  # plaintext to a TLS port
            self.assertEqual(r.returncode, EXIT["unreachable"], r.stderr)
            r = ctl(daemon, "--tls-ca", os.path.join(tmp, "missing.pem"), "status")
            self.assertEqual(r.returncode, EXIT["usage"])
            self.assertIn("missing.pem", r.stderr)
            daemon.stop()

    def test_users_see_owners_and_act_on_their_own_jobs(self):
        with tempfile.TemporaryDirectory(prefix="matbertctl_users_") as tmp:
            tokens = os.path.join(tmp, "tokens")
            with open(tokens, "w") as f:
                f.write("alice-0123456789abcdef alice user\nbob-0123456789abcdef bob user\n")
            daemon = Daemon(os.path.join(tmp, "state"), free_port(), "--tokens-file",
                            tokens).start()
            spec = os.path.join(ARGS.configs, "bert_matcomp_cpu.toml")
            as_alice = ["--token", "alice-0123456789abcdef"]
            as_bob = ["--token", "bob-0123456789abcdef"]
            # Alice's job waits behind nothing but runs long enough to be acted on.
            job_id = ctl(daemon, *as_alice, "submit", spec, "-q", "--training.steps", "100000",
                         check=0).stdout.strip()
            table = ctl(daemon, *as_bob, "status", check=0).stdout.splitlines()
            row = next(line for line in table if line.startswith(job_id))
            self.assertEqual(row.split()[1], "alice")
            r = ctl(daemon, *as_bob, "status", "--mine")
            self.assertEqual((r.returncode, r.stdout.splitlines()[1:]), (0, []), r.stdout)
            self.assertIn("no jobs of yours yet", r.stderr)
            mine = ctl(daemon, *as_alice, "status", "--mine", check=0).stdout.splitlines()
            self.assertEqual([line.split()[0] for line in mine[1:]], [job_id])
            for command in (["cancel", job_id], ["logs", job_id], ["checkpoints", job_id]):
                r = ctl(daemon, *as_bob, *command)
                self.assertEqual(r.returncode, EXIT["denied"], (command, r.stderr))
                self.assertIn(f"job {job_id} belongs to alice; user bob may act on its own jobs "
                              "only", r.stderr)
            ctl(daemon, *as_alice, "cancel", job_id, "--force", check=0)
            daemon.stop()


class LogsFollowRestartTest(unittest.TestCase):
    def test_logs_follow_survives_a_daemon_restart_without_loss_or_repeats(self):
        with tempfile.TemporaryDirectory(prefix="matbertctl_logs_") as tmp:
            daemon = Daemon(os.path.join(tmp, "state"), free_port()).start()
            spec = os.path.join(ARGS.configs, "bert_matcomp_cpu.toml")
            job_id = ctl(daemon, "submit", spec, "--quiet", *TINY, "--training.steps", "120",
                         "--gpus", "2", check=0).stdout.strip()
            env = dict(os.environ, MATBERT_ADDR=f"127.0.0.1:{daemon.port}")
            follower = subprocess.Popen([ARGS.ctl, "logs", job_id, "-f"], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # Kill matbertd mid-run: once rank 0 has logged step 10 of 120.
            log0 = os.path.join(tmp, "state", "runs", job_id, "logs", "rank-0.log")
            deadline = time.time() + 300
            while time.time() < deadline:
                if os.path.exists(log0) and "step 10/120" in open(log0).read():
                    break
                time.sleep(0.1)
            daemon.kill()
            time.sleep(2)
            daemon.start()
            out, err = follower.communicate(timeout=300)
            self.assertEqual(follower.returncode, 0, err)
            self.assertIn("reconnecting", err)
            got = out.splitlines()
            for rank in (0, 1):
                with open(os.path.join(tmp, "state", "runs", job_id, "logs",
                                       f"rank-{rank}.log")) as f:
                    expected = [f"[rank {rank}] {line}" for line in f.read().splitlines()]
                # Each rank's lines exactly once and in file order, however the ranks interleave.
                self.assertEqual([l for l in got if l.startswith(f"[rank {rank}] ")], expected)
            self.assertTrue(all(l.startswith(("[rank 0] ", "[rank 1] ")) for l in got), got)
            self.assertTrue(any("step 120/120" in l for l in got))
            daemon.stop()


class QuickstartTest(unittest.TestCase):
    def test_quickstart_trains_through_the_daemon_to_success(self):
        root = os.path.dirname(os.path.abspath(ARGS.configs))
        with tempfile.TemporaryDirectory(prefix="matbert_quickstart_") as tmp:
            env = dict(os.environ, QUICKSTART_STEPS="30", QUICKSTART_STATE_DIR=tmp,
                       QUICKSTART_STOP_DAEMON="1", MATBERT_ADDR=f"127.0.0.1:{free_port()}")
            r = subprocess.run([os.path.join(root, "scripts", "quickstart.sh")], cwd=root, env=env,
                               capture_output=True, text=True, timeout=900)
            self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
            self.assertIn("starting matbertd", r.stdout)
            job_id = re.search(r"submitted job ([a-z0-9]{6})", r.stdout).group(1)
            self.assertIn(f"job {job_id} SUCCEEDED after", r.stdout)
            self.assertRegex(r.stdout, r"step 30/30 \| loss")
            self.assertIn(f"matbertctl download {job_id}", r.stdout)
            self.assertTrue(os.path.isdir(os.path.join(tmp, "runs", job_id, "checkpoints",
                                                       "step-0000030")))
            time.sleep(0.5)
            left = subprocess.run(["pgrep", "-f", f"state-dir {tmp}"], capture_output=True)
            self.assertNotEqual(left.returncode, 0, "the daemon it started was stopped")


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    for flag in ("--ctl", "--daemon", "--worker", "--proto-dir", "--configs"):
        parser.add_argument(flag, required=True)
    ARGS, rest = parser.parse_known_args()
    run_tests(ARGS, rest)

if __name__ == "__main__":
    main()
