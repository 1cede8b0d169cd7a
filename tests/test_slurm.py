"""matbertd --backend slurm against a real Slurm cluster of two nodes in network namespaces
(tests/slurm_cluster.py): a job's ranks on two hosts train exactly as on one, cancel leaves
nothing behind, a request Slurm can never satisfy fails at submission, a Slurm job
cancelled from outside fails its matbert job naming Slurm, and a node that does not share the
state directory is named as the cause."""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

from matbertd_harness import Daemon, free_port, job_processes, run_tests, v1
from slurm_cluster import SlurmCluster

TINY = ["model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=2",
        "model.intermediate_size=64", "matrix.m=6", "matrix.n=6", "matrix.r=2",
        "training.warmup_steps=2", "training.log_every=1", "training.eval_every=10",
        "training.eval_samples=8", "training.threads=1", "checkpoint.every=10",
        "training.seed=7"]
ARGS = None


def spec_text():
    with open(os.path.join(ARGS.configs, "bert_matcomp_cpu.toml")) as f:
        return f.read()


def state_name(job):
    return v1["job"].JobState.Name(job.state).removeprefix("JOB_STATE_")


def train_losses(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [(r["step"], r["loss"]) for r in records if r["kind"] == "train"]


class SlurmExecutorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="matbert_slurm_test_")
        cls.cluster = SlurmCluster(nodes=2).__enter__()
        try:
            cls.daemon = Daemon(os.path.join(cls.tmp.name, "state"), free_port(),
                                "--backend", "slurm", "--advertise-host", cls.cluster.host_addr,
                                "--grace-period", "10", "--heartbeat-timeout", "60",
                                "--insecure-allow-network-without-auth", listen_host="0.0.0.0",
                                env=cls.cluster.env).start()
        except BaseException:
            cls.cluster.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.cluster.__exit__(None, None, None)
        cls.tmp.cleanup()

    def setUp(self):
        # A test that hangs must still let tearDownClass take the cluster down.
        signal.signal(signal.SIGALRM, lambda *_: self.fail("timed out\n" + self.cluster.logs()))
        signal.alarm(400)

    def tearDown(self):
        signal.alarm(0)

    def submit(self, daemon, *overrides):
        request = v1["js"].SubmitJobRequest(spec_toml=spec_text(), overrides=TINY + list(overrides),
                                            source_name="bert_matcomp_cpu.toml")
        return daemon.jobs.SubmitJob(request, timeout=30).job_id

    def wait(self, daemon, job_id, states, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id), timeout=10)
            if state_name(job) in states:
                return job
            time.sleep(0.5)
        self.fail(f"job {job_id} did not reach {states}: {job}\n" + self.cluster.logs())

    def slurm_job_of(self, job_id, attempt=1):
        out = subprocess.run(["squeue", "-h", "-o", "%i", "-n", f"matbert-{job_id}-{attempt}"],
                             env=self.cluster.env, capture_output=True, text=True).stdout
        return out.strip()

    def test_two_node_job_trains_exactly_as_on_one_host(self):
        job_id = self.submit(self.daemon, "training.steps=20", "job.nodes=2", "job.gpus=1",
                             "job.name=two_nodes")
        job = self.wait(self.daemon, job_id, {"SUCCEEDED", "FAILED"})
        run_dir = os.path.join(self.daemon.state_dir, "runs", job_id)
        logs = {}
        for rank in (0, 1):
            with open(os.path.join(run_dir, "logs", f"rank-{rank}.log")) as f:
                logs[rank] = f.read()
        self.assertEqual(state_name(job), "SUCCEEDED",
                         f"{job.failure}\n{logs}\n{self.cluster.logs()}")
        # Each rank talks from its own node's address.
        addrs = list(self.cluster.addrs.values())
        for rank in (0, 1):
            self.assertIn(f"rank {rank} of 2: collectives over {addrs[rank]}", logs[rank])
        slurm_losses = train_losses(run_dir)
        self.assertEqual([s for s, _ in slurm_losses], list(range(1, 21)))
        # The same job with both ranks on one host (the local executor): data parallelism on
        # CPU is exact, so the losses are equal, not close.
        local = Daemon(os.path.join(self.tmp.name, "local_state"), free_port()).start()
        try:
            local_id = self.submit(local, "training.steps=20", "job.gpus=2", "job.name=one_host")
            self.wait(local, local_id, {"SUCCEEDED"})
            local_losses = train_losses(os.path.join(local.state_dir, "runs", local_id))
        finally:
            local.stop()
        self.assertEqual(slurm_losses, local_losses)

    def test_cluster_shows_slurms_nodes_partitions_and_queue(self):
        job_id = self.submit(self.daemon, "training.steps=100000", "job.nodes=2", "job.gpus=1",
                             "job.priority=5")
        self.wait(self.daemon, job_id, {"RUNNING"})
        self.assertIn("Nice=995", self.cluster.scontrol("show", "job", self.slurm_job_of(job_id)),
                      "job.priority maps onto Slurm's nice")
        stub = v1["csg"].ClusterServiceStub(self.daemon.channel)
        cluster = stub.GetCluster(v1["cs"].GetClusterRequest(), timeout=30)
        self.daemon.jobs.CancelJob(v1["js"].CancelJobRequest(job_id=job_id, force=True))
        self.assertEqual(cluster.backend, "slurm")
        self.assertEqual([n.name for n in cluster.nodes], self.cluster.nodes)
        for node in cluster.nodes:
            self.assertEqual(node.cpus, 2)
            self.assertEqual(node.cpus_allocated, 1, "one rank of the job on each node")
            self.assertEqual(list(node.partitions), ["debug"])
        self.assertIn(f"matbert-{job_id}-1", [e.name for e in cluster.slurm_queue])

    def test_cancel_stops_every_rank_on_every_node(self):
        job_id = self.submit(self.daemon, "training.steps=100000", "job.nodes=2", "job.gpus=1")
        self.wait(self.daemon, job_id, {"RUNNING"})
        self.assertEqual(len(job_processes(job_id)), 2, "one rank on each node")
        started = time.time()
        self.daemon.jobs.CancelJob(v1["js"].CancelJobRequest(job_id=job_id), timeout=10)
        job = self.wait(self.daemon, job_id, {"CANCELLED", "FAILED", "SUCCEEDED"}, timeout=60)
        self.assertEqual(state_name(job), "CANCELLED", job.failure)
        deadline = time.time() + 15
        while job_processes(job_id) and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(job_processes(job_id), [])
        self.assertLess(time.time() - started, 10 + 15, "within the grace period")

    def test_a_stopped_controller_delays_only_what_needs_it(self):
        # slurmctld SIGSTOPped for 60 s during a running 2-node job, as a controller that is
        # failing over or overloaded looks from outside (squeue and scontrol hang).
        running = self.submit(self.daemon, "training.steps=100000", "job.nodes=2", "job.gpus=1",
                              "training.log_every=10", "checkpoint.every=100000")
        job = self.wait(self.daemon, running, {"RUNNING"})
        # Its places are Slurm's nodes, as squeue names them; no rank slots as devices.
        deadline = time.time() + 10
        while not job.nodes and time.time() < deadline:
            time.sleep(0.2)
            job = self.daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=running), timeout=10)
        squeue = subprocess.run(["squeue", "-h", "-j", self.slurm_job_of(running), "-o", "%N"],
                                env=self.cluster.env, capture_output=True, text=True).stdout
        self.assertEqual(job.nodes, squeue.strip())
        self.assertEqual(list(job.devices), [])
        stub = v1["csg"].ClusterServiceStub(self.daemon.channel)
        self.assertEqual(stub.GetCluster(v1["cs"].GetClusterRequest(), timeout=30)
                         .executor_trouble, "")  # and matbertd keeps this answer
        slurmctld = self.cluster._pid(os.path.join(self.cluster.dir, "slurmctld.pid"))
        os.kill(slurmctld, signal.SIGSTOP)
        try:
            stopped, seconds, second = time.time(), [], None
            step_at_stop = self.daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=running)).step
            while time.time() - stopped < 60:
                for call in (lambda: self.daemon.jobs.GetJob(
                                 v1["js"].GetJobRequest(job_id=running), timeout=10),
                             lambda: self.daemon.jobs.ListJobs(v1["js"].ListJobsRequest(),
                                                               timeout=10)):
                    t0 = time.time()
                    call()
                    seconds.append(time.time() - t0)
                if second is None and time.time() - stopped > 15:
                    t0 = time.time()
                    second = self.submit(self.daemon, "training.steps=20", "job.nodes=1",
                                         "job.gpus=1")
                    self.assertLess(time.time() - t0, 5, "the submission waited for Slurm")
                    queued = self.daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=second))
                    self.assertEqual(state_name(queued), "QUEUED")
                    self.assertIn("waits for Slurm's controller, which has not answered for",
                                  queued.reason)
                    t0 = time.time()
                    cluster = stub.GetCluster(v1["cs"].GetClusterRequest(), timeout=10)
                    seconds.append(time.time() - t0)
                    self.assertIn("Slurm's controller", cluster.executor_trouble)
                    self.assertEqual([n.name for n in cluster.nodes], self.cluster.nodes,
                                     "Slurm's last answer")
                    self.assertGreaterEqual(cluster.executor_age_s, 15)
                time.sleep(0.2)
            # p99 (a loaded 2-core machine may delay any one call), and none near a Slurm call.
            seconds.sort()
            self.assertLess(seconds[int(len(seconds) * 0.99)], 0.1,
                            f"p99 of status, list and cluster within 100 ms: {seconds[-5:]}")
            self.assertLess(seconds[-1], 2, "none waited for Slurm (its calls time out at 3 s)")
            job = self.daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=running))
            self.assertGreater(job.step, step_at_stop, "the ranks' reports were heard")
            self.assertEqual(state_name(job), "RUNNING")
        finally:
            os.kill(slurmctld, signal.SIGCONT)
        # Once the controller answers, the waiting job runs; the running one kept its attempt.
        done = self.wait(self.daemon, second, {"SUCCEEDED", "FAILED"}, timeout=240)
        self.assertEqual(state_name(done), "SUCCEEDED", done.failure)
        self.assertEqual(len(done.attempts), 1)
        job = self.daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=running))
        self.assertEqual(state_name(job), "RUNNING", job.failure)
        self.assertEqual(len(job.attempts), 1)
        self.daemon.jobs.CancelJob(v1["js"].CancelJobRequest(job_id=running, force=True))
        self.wait(self.daemon, running, {"CANCELLED", "FAILED", "SUCCEEDED"}, timeout=60)
        with open(os.path.join(self.daemon.state_dir, "matbertd.out")) as f:
            self.assertNotIn("did not run for", f.read())

    def test_a_request_slurm_can_never_run_fails_at_submission(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.submit(self.daemon, "job.nodes=3", "job.gpus=1")
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("job.nodes = 3, job.gpus = 1: Slurm would never run it", e.exception.details())
        self.assertIn("Requested node configuration is not available", e.exception.details())

    def test_a_rank_killed_on_node_two_is_named_and_the_retry_resumes(self):
        job_id = self.submit(self.daemon, "training.steps=400", "job.nodes=2", "job.gpus=1",
                             "job.max_restarts=1", "checkpoint.every=10")
        self.wait(self.daemon, job_id, {"RUNNING"})
        run_dir = os.path.join(self.daemon.state_dir, "runs", job_id)
        deadline = time.time() + 120
        while not os.path.isdir(os.path.join(run_dir, "checkpoints", "step-0000020")):
            self.assertLess(time.time(), deadline, "no checkpoint at step 20")
            time.sleep(0.2)
        node2 = self.cluster.nodes[1]
        pids = subprocess.run(["ip", "netns", "pids", self.cluster.netns(node2)],
                              capture_output=True, text=True).stdout.split()
        ranks = [pid for pid, _ in job_processes(job_id) if str(pid) in pids]
        self.assertEqual(len(ranks), 1, "one rank on node 2")
        os.kill(ranks[0], signal.SIGKILL)
        job = self.wait(self.daemon, job_id, {"SUCCEEDED", "FAILED"}, timeout=400)
        self.assertEqual(state_name(job), "SUCCEEDED", job.failure)
        self.assertEqual(len(job.attempts), 2)
        self.assertIn(f"rank 1 on node {node2} was killed by signal 9", job.attempts[0].reason)
        self.assertGreaterEqual(job.attempts[1].resumed_from_step, 20)

    def test_a_restarted_matbertd_adopts_a_running_slurm_job(self):
        # Its own daemon: this one is killed.
        daemon = Daemon(os.path.join(self.tmp.name, "adopt_state"), free_port(),
                        "--backend", "slurm", "--advertise-host", self.cluster.host_addr,
                        "--insecure-allow-network-without-auth", listen_host="0.0.0.0",
                        env=self.cluster.env).start()
        try:
            job_id = self.submit(daemon, "training.steps=300", "job.nodes=2", "job.gpus=1",
                                 "job.max_restarts=0")
            self.wait(daemon, job_id, {"RUNNING"})
            slurm_id = self.slurm_job_of(job_id)
            time.sleep(2)
            daemon.kill()
            time.sleep(3)  # the ranks go on, their reports wait and retry
            daemon.start()
            job = self.wait(daemon, job_id, {"SUCCEEDED", "FAILED"}, timeout=400)
            self.assertEqual(state_name(job), "SUCCEEDED", job.failure)
            self.assertEqual(len(job.attempts), 1, "adopted, not retried")
            self.assertEqual(self.slurm_job_of(job_id), "", "the Slurm job has ended")
            self.assertTrue(slurm_id)
            # Every train record rank 0 wrote reached the event log: nothing lost.
            events = list(daemon.jobs.WatchJob(v1["js"].WatchJobRequest(job_id=job_id),
                                               timeout=30))
            steps = [e.metrics.step for e in events
                     if e.WhichOneof("event") == "metrics" and e.metrics.kind == "train"]
            run_dir = os.path.join(daemon.state_dir, "runs", job_id)
            self.assertEqual(steps, [s for s, _ in train_losses(run_dir)])
        finally:
            daemon.stop()

    def test_a_lost_node_fails_the_attempt_with_slurms_reason_and_the_retry_waits_for_it(self):
        job_id = self.submit(self.daemon, "training.steps=300", "job.nodes=2", "job.gpus=1",
                             "job.max_restarts=1")
        self.wait(self.daemon, job_id, {"RUNNING"})
        node2 = self.cluster.nodes[1]
        self.cluster.stop_node(node2)  # slurmd and the rank on it die, as with a lost host
        try:
            deadline = time.time() + 120
            job = None
            while (job is None or len(job.attempts) < 2) and time.time() < deadline:
                time.sleep(0.5)
                job = self.daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id), timeout=10)
            self.assertRegex(job.attempts[0].reason, r"^rank \d ended with Slurm job \d+: NODE_FAIL")
            # The retry waits in Slurm's queue while the node is down …
            time.sleep(3)
            job = self.daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id), timeout=10)
            # … a state of its own, with Slurm's reason on the job, and on no node yet.
            self.assertEqual(state_name(job), "PENDING")
            self.assertRegex(job.reason, r"^attempt 2 waits: Slurm job \d+ is PENDING")
            self.assertEqual(list(job.devices), [])
        finally:
            self.cluster.start_node(node2)
        # … and runs once it is back.
        job = self.wait(self.daemon, job_id, {"SUCCEEDED", "FAILED"}, timeout=300)
        self.assertEqual(state_name(job), "SUCCEEDED", job.failure)

    def test_a_node_without_the_state_directory_is_named_as_the_cause(self):
        # Each node in turn restarts in a mount namespace where matbertd's state directory is
        # an empty tmpfs, as a node whose disk holds a local copy of the path.
        expected = {self.cluster.nodes[1]: r"^rank 1 could not be launched by srun: .*"
                                           r"rank-1\.log: matbertd's state directory must be on "
                                           r"a filesystem every node shares",
                    self.cluster.nodes[0]: r"^rank 0 ended with Slurm job \d+: FAILED.*; its "
                                           r"output .*sbatch-1\.log never appeared here: the "
                                           r"nodes of the job .* do not all see matbertd's state "
                                           r"directory at the same path"}
        for node, failure in expected.items():
            self.cluster.stop_node(node)
            try:
                self.cluster.start_node(node, hide=self.daemon.state_dir)
                self.cluster.wait_idle()
                job_id = self.submit(self.daemon, "training.steps=20", "job.nodes=2",
                                     "job.gpus=1", "job.max_restarts=0")
                job = self.wait(self.daemon, job_id, {"FAILED", "SUCCEEDED"}, timeout=60)
            finally:
                self.cluster.stop_node(node)
                self.cluster.start_node(node)
                self.cluster.wait_idle()
            self.assertEqual(state_name(job), "FAILED")
            self.assertRegex(job.failure, failure)


        job_id = self.submit(self.daemon, "training.steps=100000", "job.nodes=2", "job.gpus=1",
                             "job.max_restarts=0")
        self.wait(self.daemon, job_id, {"RUNNING"})
        slurm_id = self.slurm_job_of(job_id)
        self.assertTrue(slurm_id)
        subprocess.run(["scancel", slurm_id], env=self.cluster.env, check=True)
        job = self.wait(self.daemon, job_id, {"FAILED", "SUCCEEDED", "CANCELLED"}, timeout=60)
        self.assertEqual(state_name(job), "FAILED")
        self.assertIn(f"ended with Slurm job {slurm_id}: CANCELLED", job.failure)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for flag in ("--daemon", "--worker", "--proto-dir", "--configs"):
        parser.add_argument(flag, required=True)
    ARGS, rest = parser.parse_known_args()
    run_tests(ARGS, rest)
