#!/usr/bin/python3
"""matbertd end to end, driven by a Python client (Debian's python3-grpcio, stubs generated
from proto/ by protoc at test time): real daemon, real worker processes, real gRPC on
loopback, real SQLite. A 2-rank CPU job runs QUEUED → STARTING → RUNNING → SUCCEEDED with
metrics on WatchJob and a checkpoint whose downloaded bytes match their SHA-256; cancel ends
CANCELLED with no process left; a SIGKILLed worker fails the attempt and the retry resumes
at checkpoint step + 1; a SIGKILLed daemon is restarted, the job finishes, and every event
served before the kill is served again; ranks lost while the daemon was down are retried
from their checkpoint; a silent (SIGSTOPped) rank fails its attempt after the heartbeat
timeout; bad specs, a full queue, health and reflection.

Usage: test_matbertd.py --daemon PATH --worker PATH --proto-dir DIR --configs DIR
"""
import argparse
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

from matbertd_harness import Daemon, free_port, job_processes, run_tests, v1

ARGS = None

TINY = ["model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=2",
        "model.intermediate_size=64", "matrix.m=6", "matrix.n=6", "matrix.r=2",
        "training.warmup_steps=2", "training.log_every=1", "training.eval_every=10",
        "training.eval_samples=8", "training.threads=1", "checkpoint.every=10"]


def spec_text():
    with open(os.path.join(ARGS.configs, "bert_matcomp_cpu.toml")) as f:
        return f.read()


class MatbertdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="matbertd_test_")
        cls.daemon = Daemon(os.path.join(cls.tmp.name, "state"), free_port(),
                            "--max-queued", "3").start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.tmp.cleanup()

    def submit(self, daemon, *overrides, **kw):
        request = v1["js"].SubmitJobRequest(spec_toml=spec_text(), overrides=TINY + list(overrides),
                                            source_name="bert_matcomp_cpu.toml", **kw)
        return daemon.jobs.SubmitJob(request, timeout=10).job_id

    def watch(self, daemon, job_id, after_seq=0, until=None, timeout=300, include_logs=False):
        """Events until the stream ends (job final) or `until(event)` is true."""
        events = []
        stream = daemon.jobs.WatchJob(v1["js"].WatchJobRequest(
            job_id=job_id, after_seq=after_seq, include_logs=include_logs), timeout=timeout)
        for event in stream:
            events.append(event)
            if until and until(event):
                stream.cancel()
                break
        return events

    def cancel_quietly(self, daemon, job_id):
        try:
            daemon.jobs.CancelJob(v1["js"].CancelJobRequest(job_id=job_id, force=True), timeout=10)
        except (grpc.RpcError, ValueError):
            pass  # it has ended, or the daemon is gone (its channel closed)

    def states(self, events):
        return [v1["job"].JobState.Name(e.state_change.state) for e in events
                if e.WhichOneof("event") == "state_change"]

    def test_train_job_succeeds_with_metrics_and_checkpoint_download(self):
        d = self.daemon
        job_id = self.submit(d, "training.steps=20", "job.gpus=2", "job.name=two_ranks")
        events = self.watch(d, job_id, include_logs=True)
        # Log lines (seq 0, not stored) come from both ranks, the rest are numbered events.
        logs = [e.log for e in events if e.WhichOneof("event") == "log"]
        self.assertEqual({l.rank for l in logs}, {0, 1})
        self.assertTrue(all(e.seq == 0 for e in events if e.WhichOneof("event") == "log"))
        events = [e for e in events if e.WhichOneof("event") != "log"]
        self.assertEqual([e.seq for e in events], list(range(1, len(events) + 1)))
        self.assertEqual(self.states(events), ["JOB_STATE_QUEUED", "JOB_STATE_STARTING",
                                               "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"])
        train = [e.metrics for e in events if e.WhichOneof("event") == "metrics"
                 and e.metrics.kind == "train"]
        self.assertEqual([m.step for m in train], list(range(1, 21)))
        self.assertEqual(train[0].values["world_size"], 2)
        self.assertTrue(all(m.values["loss"] > 0 for m in train))
        evals = [e.metrics for e in events if e.WhichOneof("event") == "metrics"
                 and e.metrics.kind == "eval"]
        self.assertEqual([m.step for m in evals], [10, 20])
        ckpts = [e.checkpoint for e in events if e.WhichOneof("event") == "checkpoint"]
        self.assertEqual([(c.step, c.path) for c in ckpts],
                         [(10, "checkpoints/step-0000010"), (20, "checkpoints/step-0000020")])

        job = d.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id))
        self.assertEqual(job.state, v1["job"].JOB_STATE_SUCCEEDED)
        self.assertEqual((job.step, job.total_steps, job.name), (20, 20, "two_ranks"))
        self.assertAlmostEqual(job.loss, train[-1].values["loss"])
        self.assertEqual(len(job.attempts), 1)
        self.assertEqual(list(job.devices), [])

        listed = d.jobs.ListCheckpoints(v1["js"].ListCheckpointsRequest(job_id=job_id))
        self.assertEqual([c.step for c in listed.checkpoints], [10, 20])
        run_dir = job.run_dir
        for c in listed.checkpoints:
            path = os.path.join(run_dir, c.path)
            self.assertEqual(c.size_bytes, sum(os.path.getsize(os.path.join(path, f))
                                               for f in os.listdir(path)))
        self.assertAlmostEqual(listed.checkpoints[1].eval["eval_rmse"], evals[1].values["eval_rmse"])

        chunks = list(d.jobs.DownloadCheckpoint(v1["js"].DownloadCheckpointRequest(job_id=job_id)))
        self.assertEqual(chunks[0].step, 20)
        manifest = {f.name: f for f in chunks[0].manifest}
        self.assertIn("model.safetensors", manifest)
        received = {}
        for c in chunks[1:]:
            self.assertEqual(c.offset, len(received.get(c.file, b"")))
            received[c.file] = received.get(c.file, b"") + c.data
        ckpt_dir = os.path.join(run_dir, "checkpoints", "step-0000020")
        self.assertEqual(sorted(received), sorted(os.listdir(ckpt_dir)))
        for name, data in received.items():
            with open(os.path.join(ckpt_dir, name), "rb") as f:
                on_disk = f.read()
            self.assertEqual(data, on_disk)
            self.assertEqual(hashlib.sha256(data).hexdigest(), manifest[name].sha256)
            self.assertEqual(len(data), manifest[name].size)
        # The checkpoint's own record of its bytes, written by the trainer, agrees with hashlib.
        recorded = dict(reversed(line.split("  ", 1))
                        for line in received["SHA256SUMS"].decode().splitlines())
        self.assertEqual(recorded, {name: hashlib.sha256(data).hexdigest()
                                    for name, data in received.items() if name != "SHA256SUMS"})
        with self.assertRaises(grpc.RpcError) as e:
            list(d.jobs.DownloadCheckpoint(v1["js"].DownloadCheckpointRequest(job_id=job_id, step=7)))
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("10, 20", e.exception.details())

        logs = list(d.jobs.StreamLogs(v1["js"].StreamLogsRequest(job_id=job_id)))
        lines = [l for b in logs for l in b.lines]
        self.assertEqual({l.rank for l in lines}, {0, 1})
        self.assertTrue(any("step 20/20" in l.text for l in lines if l.rank == 0))
        tail = list(d.jobs.StreamLogs(v1["js"].StreamLogsRequest(job_id=job_id, rank=0, tail_lines=2)))
        self.assertEqual(len([l for b in tail for l in b.lines]), 2)

    def test_cancel_ends_cancelled_and_leaves_no_process(self):
        d = self.daemon
        job_id = self.submit(d, "training.steps=5000", "job.gpus=2", grace_period_seconds=15)
        self.watch(d, job_id, until=lambda e: e.WhichOneof("event") == "metrics")
        self.assertEqual(len(job_processes(job_id)), 2)
        start = time.time()
        d.jobs.CancelJob(v1["js"].CancelJobRequest(job_id=job_id))
        events = self.watch(d, job_id)
        self.assertEqual(self.states(events)[-1], "JOB_STATE_CANCELLED")
        self.assertLess(time.time() - start, 15 + 5)
        self.assertEqual(job_processes(job_id), [])
        with self.assertRaises(grpc.RpcError) as e:
            d.jobs.CancelJob(v1["js"].CancelJobRequest(job_id=job_id))
        self.assertEqual(e.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)

    def test_killed_worker_fails_attempt_and_retry_resumes_from_checkpoint(self):
        d = self.daemon
        job_id = self.submit(d, "training.steps=40", "job.gpus=2", "job.max_restarts=1")
        seen = self.watch(d, job_id, until=lambda e: e.WhichOneof("event") == "checkpoint")
        rank1 = [pid for pid, rank in job_processes(job_id, 1) if rank == 1]
        self.assertEqual(len(rank1), 1)
        os.kill(rank1[0], signal.SIGKILL)
        events = self.watch(d, job_id, after_seq=seen[-1].seq)
        self.assertEqual(self.states(events)[-1], "JOB_STATE_SUCCEEDED")
        job = d.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id))
        self.assertEqual(len(job.attempts), 2)
        self.assertEqual(job.attempts[0].state, v1["job"].JOB_STATE_FAILED)
        self.assertIn("rank 1 was killed by signal 9", job.attempts[0].reason)
        resumed = job.attempts[1].resumed_from_step
        self.assertGreaterEqual(resumed, 10)
        self.assertEqual(resumed % 10, 0)
        # After the retry's STARTING event, the first training step is the checkpoint's + 1.
        all_events = self.watch(d, job_id)
        start = next(i for i, e in enumerate(all_events) if e.WhichOneof("event") == "state_change"
                     and e.state_change.attempt == 2)
        first = next(e.metrics for e in all_events[start:]
                     if e.WhichOneof("event") == "metrics" and e.metrics.kind == "train")
        self.assertEqual(first.step, resumed + 1)
        self.assertEqual(job_processes(job_id, 1), [])

    def test_a_damaged_newest_checkpoint_is_refused_and_the_retry_resumes_from_the_one_before(self):
        d = self.daemon
        job_id = self.submit(d, "training.steps=100000", "job.max_restarts=1")
        self.addCleanup(self.cancel_quietly, d, job_id)  # whatever fails, free its slot
        checkpoints = []
        seen = self.watch(d, job_id, until=lambda e: e.WhichOneof("event") == "checkpoint" and
                          checkpoints.append(e.checkpoint.step) is None and len(checkpoints) == 2)
        (pid, _), = job_processes(job_id, 1)
        os.kill(pid, signal.SIGSTOP)  # writes nothing more while its newest checkpoint is damaged
        run_dir = d.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id)).run_dir
        steps = sorted(int(n[5:]) for n in os.listdir(os.path.join(run_dir, "checkpoints"))
                       if n.startswith("step-"))
        newest, before = steps[-1], steps[-2]
        weights = os.path.join(run_dir, "checkpoints", f"step-{newest:07d}", "model.safetensors")
        with open(weights, "r+b") as f:  # one bit, in the middle of the tensors
            f.seek(os.path.getsize(weights) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x04]))
        # Download names the damaged file instead of serving it.
        with self.assertRaises(grpc.RpcError) as e:
            list(d.jobs.DownloadCheckpoint(v1["js"].DownloadCheckpointRequest(job_id=job_id)))
        self.assertEqual(e.exception.code(), grpc.StatusCode.DATA_LOSS)
        self.assertIn(f"checkpoint step {newest} of job {job_id}: {weights} is corrupt",
                      e.exception.details())
        os.kill(pid, signal.SIGKILL)
        # The retry resumes from the checkpoint before, and its start says why.
        events = self.watch(d, job_id, after_seq=seen[-1].seq,
                            until=lambda e: e.WhichOneof("event") == "state_change" and
                            e.state_change.attempt == 2 and
                            e.state_change.state == v1["job"].JOB_STATE_RUNNING)
        events += self.watch(d, job_id, after_seq=events[-1].seq,
                             until=lambda e: e.WhichOneof("event") == "metrics" and
                             e.metrics.kind == "train")
        at = next(i for i, e in enumerate(events) if e.WhichOneof("event") == "state_change"
                  and e.state_change.attempt == 2)
        self.assertIn(f"resuming from step {before} (skipped corrupt checkpoint step {newest}: "
                      f"{weights} is corrupt: its SHA-256 is ", events[at].state_change.reason)
        first = next(e.metrics.step for e in events[at:] if e.WhichOneof("event") == "metrics"
                     and e.metrics.kind == "train")
        self.assertEqual(first, before + 1)
        job = d.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id))
        self.assertEqual(job.attempts[1].resumed_from_step, before)
        self.assertTrue(os.path.isdir(os.path.join(run_dir, "checkpoints",
                                                   f"step-{newest:07d}.corrupt")))
        d.jobs.CancelJob(v1["js"].CancelJobRequest(job_id=job_id, force=True))
        self.assertEqual(self.states(self.watch(d, job_id))[-1], "JOB_STATE_CANCELLED")

    def test_bad_specs_full_queue_health_and_reflection(self):
        d = self.daemon
        with self.assertRaises(grpc.RpcError) as e:
            self.submit(d, "training.lr=50")
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("training.lr", e.exception.details())
        with self.assertRaises(grpc.RpcError) as e:
            self.submit(d, "job.gpus=3")
        self.assertIn("job.gpus must be between 1 and 2", e.exception.details())
        with self.assertRaises(grpc.RpcError) as e:
            d.jobs.SubmitJob(v1["js"].SubmitJobRequest(
                spec_toml='[model]\narch = "../../etc/passwd"\n'), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("model.arch", e.exception.details())
        with self.assertRaises(grpc.RpcError) as e:
            d.jobs.GetJob(v1["js"].GetJobRequest(job_id="nosuch"))
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("nosuch", e.exception.details())

        # Two slots: one 2-slot job runs, the next three wait (--max-queued 3), a fifth is refused.
        blocker = self.submit(d, "training.steps=5000", "job.gpus=2")
        self.watch(d, blocker, until=lambda e: e.WhichOneof("event") == "state_change"
                   and e.state_change.state == v1["job"].JOB_STATE_RUNNING)
        queued = [self.submit(d, "training.steps=5", f"job.priority={p}") for p in (0, 5, 0)]
        with self.assertRaises(grpc.RpcError) as e:
            self.submit(d, "training.steps=5")
        self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("--max-queued 3", e.exception.details())
        cluster = v1["csg"].ClusterServiceStub(d.channel).GetCluster(v1["cs"].GetClusterRequest())
        self.assertEqual([dev.job_id for dev in cluster.devices], [blocker, blocker])
        self.assertEqual([q.job_id for q in cluster.queue], [queued[1], queued[0], queued[2]])
        self.assertEqual(d.jobs.GetJob(v1["js"].GetJobRequest(job_id=queued[0])).queue_position, 2)
        for job_id in [blocker] + queued:
            d.jobs.CancelJob(v1["js"].CancelJobRequest(job_id=job_id, force=True))
        for job_id in [blocker] + queued:
            self.assertEqual(self.states(self.watch(d, job_id))[-1], "JOB_STATE_CANCELLED")

        health = d.channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5)
        self.assertEqual(health, b"\x08\x01")  # status: SERVING
        reflection = d.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        reply = b"".join(reflection(iter([b"\x3a\x00"]), timeout=5))  # list_services: ""
        for service in (b"matbert.v1.JobService", b"matbert.v1.ClusterService",
                        b"matbert.v1.WorkerService", b"grpc.health.v1.Health"):
            self.assertIn(service, reply)


class DaemonRestartTest(unittest.TestCase):
    def test_killed_daemon_restarts_adopts_job_and_keeps_every_event(self):
        with tempfile.TemporaryDirectory(prefix="matbertd_restart_") as tmp:
            daemon = Daemon(os.path.join(tmp, "state"), free_port()).start()
            case = MatbertdTest()
            job_id = case.submit(daemon, "training.steps=60", "job.gpus=2")
            before = case.watch(daemon, job_id, until=lambda e: e.WhichOneof("event") == "metrics"
                                and e.metrics.step >= 15)
            workers = job_processes(job_id)
            self.assertEqual(len(workers), 2)
            daemon.kill()
            time.sleep(2)  # the ranks keep training and queue their reports
            self.assertEqual(sorted(job_processes(job_id)), sorted(workers))
            daemon.start()
            after = case.watch(daemon, job_id)
            self.assertEqual(case.states(after)[-1], "JOB_STATE_SUCCEEDED")
            # Every event served before the kill is served again, unchanged, in place.
            self.assertEqual(after[:len(before)], before)
            self.assertEqual([e.seq for e in after], list(range(1, len(after) + 1)))
            train = [e.metrics.step for e in after if e.WhichOneof("event") == "metrics"
                     and e.metrics.kind == "train"]
            self.assertEqual(train, list(range(1, 61)))  # reports queued while it was down
            job = daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id))
            self.assertEqual(len(job.attempts), 1, "adopted, not retried")
            daemon.stop()

    def test_ranks_that_died_while_the_daemon_was_down_are_retried_from_checkpoint(self):
        with tempfile.TemporaryDirectory(prefix="matbertd_restart_") as tmp:
            daemon = Daemon(os.path.join(tmp, "state"), free_port()).start()
            case = MatbertdTest()
            # max_restarts = 0: losing the ranks to a daemon outage is not the job's failure.
            job_id = case.submit(daemon, "training.steps=40", "job.gpus=2", "job.max_restarts=0")
            case.watch(daemon, job_id, until=lambda e: e.WhichOneof("event") == "checkpoint")
            daemon.kill()
            for pid, _ in job_processes(job_id):
                os.kill(pid, signal.SIGKILL)
            daemon.start()
            events = case.watch(daemon, job_id)
            self.assertEqual(case.states(events)[-1], "JOB_STATE_SUCCEEDED")
            self.assertIn("JOB_STATE_RETRYING", case.states(events))
            job = daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id))
            self.assertEqual(len(job.attempts), 2)
            self.assertIn("while matbertd was down", job.attempts[0].reason)
            self.assertGreaterEqual(job.attempts[1].resumed_from_step, 10)
            daemon.stop()

    def test_token_is_required_from_clients_and_reaches_the_ranks(self):
        with tempfile.TemporaryDirectory(prefix="matbertd_token_") as tmp:
            token_file = os.path.join(tmp, "token")
            with open(token_file, "w") as f:
                f.write("s3cret-token\n")
            daemon = Daemon(os.path.join(tmp, "state"), free_port(),
                            "--token-file", token_file).start()
            case = MatbertdTest()
            request = v1["js"].SubmitJobRequest(spec_toml=spec_text(), overrides=TINY + [
                "job.kind=generate", "generate.n_samples=20"])
            for metadata in ([], [("authorization", "Bearer wrong")]):
                with self.assertRaises(grpc.RpcError) as e:
                    daemon.jobs.SubmitJob(request, metadata=metadata, timeout=10)
                self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            auth = [("authorization", "Bearer s3cret-token")]
            job_id = daemon.jobs.SubmitJob(request, metadata=auth, timeout=10).job_id
            with self.assertRaises(grpc.RpcError) as e:
                list(daemon.jobs.WatchJob(v1["js"].WatchJobRequest(job_id=job_id)))
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            events = list(daemon.jobs.WatchJob(v1["js"].WatchJobRequest(job_id=job_id),
                                               metadata=auth, timeout=120))
            # The generate rank registered with the token it was given (RUNNING) and ended.
            self.assertEqual(case.states(events)[-2:], ["JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"])
            data = os.path.join(tmp, "state", "data", job_id)
            self.assertTrue(os.path.exists(os.path.join(data, "train", "dataset_info.json")), os.listdir(data))
            daemon.stop()

    def test_users_act_on_their_own_jobs_admins_on_all_ranks_on_their_own_job(self):
        with tempfile.TemporaryDirectory(prefix="matbertd_users_") as tmp:
            tokens = os.path.join(tmp, "tokens")
            with open(tokens, "w") as f:
                f.write("# token user role\n"
                        "alice-0123456789abcdef alice user\n"
                        "bob-0123456789abcdef   bob   user\n"
                        "ops-0123456789abcdef   ops   admin\n")
            daemon = Daemon(os.path.join(tmp, "state"), free_port(), "--tokens-file", tokens).start()
            as_user = {u: [("authorization", f"Bearer {u}-0123456789abcdef")]
                       for u in ("alice", "bob", "ops")}
            case = MatbertdTest()
            alice_job = daemon.jobs.SubmitJob(v1["js"].SubmitJobRequest(
                spec_toml=spec_text(), overrides=TINY + ["training.steps=100000"]),
                metadata=as_user["alice"], timeout=10).job_id
            bob_job = daemon.jobs.SubmitJob(v1["js"].SubmitJobRequest(
                spec_toml=spec_text(), overrides=TINY + ["job.kind=generate",
                                                         "generate.n_samples=20"]),
                metadata=as_user["bob"], timeout=10).job_id
            # Alice's rank registered with its own credential (RUNNING) and reports metrics.
            stream = daemon.jobs.WatchJob(v1["js"].WatchJobRequest(job_id=alice_job),
                                          metadata=as_user["alice"], timeout=120)
            for event in stream:
                if event.WhichOneof("event") == "metrics":
                    break
            stream.cancel()

            # Everyone sees every job and its owner; --mine narrows to the caller's.
            listed = daemon.jobs.ListJobs(v1["js"].ListJobsRequest(), metadata=as_user["bob"],
                                          timeout=10).jobs
            self.assertEqual({j.id: j.owner for j in listed}, {alice_job: "alice", bob_job: "bob"})
            for user, expected in (("alice", [alice_job]), ("bob", [bob_job]), ("ops", [])):
                mine = daemon.jobs.ListJobs(v1["js"].ListJobsRequest(mine=True),
                                            metadata=as_user[user], timeout=10).jobs
                self.assertEqual([j.id for j in mine], expected, user)
            self.assertEqual(daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=alice_job),
                                                metadata=as_user["bob"], timeout=10).owner, "alice")

            # Bob may not act on Alice's job, by any of the methods that act on or read a job.
            calls = {
                "CancelJob": lambda md: daemon.jobs.CancelJob(
                    v1["js"].CancelJobRequest(job_id=alice_job), metadata=md, timeout=10),
                "WatchJob": lambda md: list(daemon.jobs.WatchJob(
                    v1["js"].WatchJobRequest(job_id=alice_job), metadata=md, timeout=10)),
                "StreamLogs": lambda md: list(daemon.jobs.StreamLogs(
                    v1["js"].StreamLogsRequest(job_id=alice_job), metadata=md, timeout=10)),
                "ListCheckpoints": lambda md: daemon.jobs.ListCheckpoints(
                    v1["js"].ListCheckpointsRequest(job_id=alice_job), metadata=md, timeout=10),
                "DownloadCheckpoint": lambda md: list(daemon.jobs.DownloadCheckpoint(
                    v1["js"].DownloadCheckpointRequest(job_id=alice_job), metadata=md,
                    timeout=10)),
            }
            for name, call in calls.items():
                with self.assertRaises(grpc.RpcError, msg=name) as e:
                    call(as_user["bob"])
                self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED, name)
                self.assertEqual(e.exception.details(),
                                 f"job {alice_job} belongs to alice; user bob may act on its own "
                                 "jobs only (an admin on all)", name)
            # Alice may read her own job's logs.
            logs = list(daemon.jobs.StreamLogs(v1["js"].StreamLogsRequest(job_id=alice_job),
                                               metadata=as_user["alice"], timeout=10))
            self.assertTrue(any(batch.lines for batch in logs))

            # The rank's credential, as matbertd handed it to the rank process.
            (pid, _), = job_processes(alice_job)
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
            credential = env[b"MATBERT_TOKEN"].decode()
            self.assertTrue(credential.startswith(f"rank:{alice_job}:"), credential)
            self.assertNotIn(b"0123456789abcdef", b"".join(env.values()))  # no user token
            rank_md = [("authorization", f"Bearer {credential}")]
            attempt = int(env[b"MATBERT_ATTEMPT"])

            def heartbeat(job_id, metadata):
                return v1["wsg"].WorkerServiceStub(daemon.channel).Heartbeat(v1["ws"].HeartbeatRequest(
                    worker=v1["ws"].WorkerId(job_id=job_id, attempt=attempt, rank=0)),
                    metadata=metadata, timeout=10)

            heartbeat(alice_job, rank_md)  # good for its own job
            for what, call in (("another job", lambda: heartbeat(bob_job, rank_md)),
                               ("a user", lambda: heartbeat(alice_job, as_user["alice"])),
                               ("the client API", lambda: daemon.jobs.ListJobs(
                                   v1["js"].ListJobsRequest(), metadata=rank_md, timeout=10))):
                with self.assertRaises(grpc.RpcError, msg=what) as e:
                    call()
                self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED, what)
            forged = f"rank:{bob_job}:" + credential.rsplit(":", 1)[1]
            with self.assertRaises(grpc.RpcError) as e:
                heartbeat(bob_job, [("authorization", f"Bearer {forged}")])
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

            # The credential outlives a restart of matbertd (its secret is in the state dir).
            daemon.kill()
            daemon.start()
            heartbeat(alice_job, rank_md)
            # The admin may act on anyone's job.
            job = daemon.jobs.CancelJob(v1["js"].CancelJobRequest(job_id=alice_job),
                                        metadata=as_user["ops"], timeout=10)
            self.assertEqual(job.owner, "alice")
            events = list(daemon.jobs.WatchJob(v1["js"].WatchJobRequest(job_id=alice_job),
                                               metadata=as_user["ops"], timeout=120))
            self.assertEqual(case.states(events)[-1], "JOB_STATE_CANCELLED")
            daemon.stop()

    def test_a_network_address_needs_tls_and_a_token_or_a_flag_that_says_insecure(self):
        with tempfile.TemporaryDirectory(prefix="matbertd_listen_") as tmp:
            token_file = os.path.join(tmp, "token")
            with open(token_file, "w") as f:
                f.write("s3cret-token\n")
            base = [Daemon.binary, "--state-dir", os.path.join(tmp, "state"), "--gpus", "none",
                    "--worker", Daemon.worker, "--listen", f"0.0.0.0:{free_port()}"]
            env = {k: v for k, v in os.environ.items() if k != "MATBERT_TOKEN"}
            for extra, missing in (([], ""), (["--token-file", token_file], " (TLS is missing)")):
                r = subprocess.run(base + extra, capture_output=True, text=True, timeout=30,
                                   env=env)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("is not a loopback address, and serving the network needs TLS "
                              f"(--tls-cert, --tls-key) and tokens (--tokens-file, --token-file "
                              f"or MATBERT_TOKEN){missing}; to serve it without them anyway, add "
                              "--insecure-allow-network-without-auth", r.stderr)
            # With the flag it serves, and says at start what that gives away.
            port = free_port()
            daemon = Daemon(os.path.join(tmp, "state2"), port,
                            "--insecure-allow-network-without-auth", listen_host="0.0.0.0").start()
            try:
                self.assertEqual(
                    len(daemon.jobs.ListJobs(v1["js"].ListJobsRequest(), timeout=10).jobs), 0)
            finally:
                daemon.stop()
            with open(os.path.join(tmp, "state2", "matbertd.out")) as f:
                self.assertIn(f"INSECURE: 0.0.0.0:{port} is served without TLS or a token",
                              f.read())

    def test_silent_rank_fails_the_attempt_after_the_heartbeat_timeout(self):
        with tempfile.TemporaryDirectory(prefix="matbertd_heartbeat_") as tmp:
            daemon = Daemon(os.path.join(tmp, "state"), free_port(),
                            "--heartbeat-timeout", "3").start()
            case = MatbertdTest()
            job_id = case.submit(daemon, "training.steps=5000", "job.gpus=2", "job.max_restarts=0")
            case.watch(daemon, job_id, until=lambda e: e.WhichOneof("event") == "metrics")
            rank1 = [pid for pid, rank in job_processes(job_id) if rank == 1]
            os.kill(rank1[0], signal.SIGSTOP)  # alive, but silent
            start = time.time()
            events = case.watch(daemon, job_id, timeout=60)
            self.assertEqual(case.states(events)[-1], "JOB_STATE_FAILED")
            self.assertLess(time.time() - start, 30)
            job = daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id))
            self.assertIn("rank 1 sent no heartbeat for 3 s", job.failure)
            self.assertEqual(job_processes(job_id), [])
            daemon.stop()

    def test_streams_past_the_limit_are_resource_exhausted_and_slots_come_back(self):
        with tempfile.TemporaryDirectory(prefix="matbertd_streams_") as tmp:
            daemon = Daemon(os.path.join(tmp, "state"), free_port(), "--max-streams", "2").start()
            case = MatbertdTest()
            job_id = case.submit(daemon, "training.steps=100000")
            self.addCleanup(case.cancel_quietly, daemon, job_id)
            streams = [daemon.jobs.WatchJob(v1["js"].WatchJobRequest(job_id=job_id), timeout=60)
                       for _ in range(2)]
            for stream in streams:
                next(stream)  # each is open and being served
            with self.assertRaises(grpc.RpcError) as e:
                list(daemon.jobs.StreamLogs(v1["js"].StreamLogsRequest(job_id=job_id), timeout=10))
            self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("matbertd already serves 2 streams (its --max-streams)",
                          e.exception.details())
            streams[0].cancel()
            for _ in range(50):  # the slot comes back once the server sees the cancel
                try:
                    list(daemon.jobs.StreamLogs(v1["js"].StreamLogsRequest(job_id=job_id),
                                                timeout=10))
                    break
                except grpc.RpcError as err:
                    self.assertEqual(err.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                    time.sleep(0.2)
            else:
                self.fail("the cancelled stream's slot never came back")
            streams[1].cancel()
            case.cancel_quietly(daemon, job_id)
            case.watch(daemon, job_id)  # until CANCELLED: no rank outlives the test
            daemon.stop()

    def test_a_stopped_daemon_fails_no_healthy_job_and_loses_no_event(self):
        with tempfile.TemporaryDirectory(prefix="matbertd_sigstop_") as tmp:
            daemon = Daemon(os.path.join(tmp, "state"), free_port(),
                            "--heartbeat-timeout", "3").start()
            case = MatbertdTest()
            job_id = case.submit(daemon, "training.steps=400", "job.gpus=2", "job.max_restarts=0",
                                 "checkpoint.every=100", "training.eval_every=1000")
            before = case.watch(daemon, job_id, until=lambda e: e.WhichOneof("event") == "metrics")
            # Paused for more than twice the heartbeat timeout while the ranks keep training.
            daemon.proc.send_signal(signal.SIGSTOP)
            time.sleep(8)
            daemon.proc.send_signal(signal.SIGCONT)
            events = case.watch(daemon, job_id, timeout=300)
            self.assertEqual(case.states(events)[-1], "JOB_STATE_SUCCEEDED")
            job = daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id))
            self.assertEqual(len(job.attempts), 1, job.attempts)
            # Every event once, in order, and every training step's record among them.
            self.assertEqual([e.seq for e in events], list(range(1, len(events) + 1)))
            steps = [e.metrics.step for e in events
                     if e.WhichOneof("event") == "metrics" and e.metrics.kind == "train"]
            self.assertEqual(steps, list(range(1, 401)))
            self.assertEqual(events[:len(before)], before)  # as served before the pause
            with open(os.path.join(tmp, "state", "matbertd.out")) as f:
                self.assertIn("matbertd did not run for", f.read())
            daemon.stop()

    def test_a_full_state_disk_fails_the_job_by_name_and_corrupts_nothing(self):
        if os.geteuid() != 0:
            self.skipTest("mounting the small tmpfs needs root (CI runs as root)")
        with tempfile.TemporaryDirectory(prefix="matbertd_full_") as tmp:
            state = os.path.join(tmp, "state")
            os.makedirs(state)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", state], check=True)
            daemon = Daemon(state, free_port())
            try:
                self.fill_the_disk_under_a_running_job(daemon, state)
            finally:
                daemon.stop()
                subprocess.run(["umount", "-l", state])

    def fill_the_disk_under_a_running_job(self, daemon, state):
        daemon.start()
        case = MatbertdTest()
        job_id = case.submit(daemon, "training.steps=100000", "job.max_restarts=1",
                             "checkpoint.every=20")
        case.watch(daemon, job_id, until=lambda e: e.WhichOneof("event") == "checkpoint")
        # Fill the filesystem while the rank trains towards its next checkpoint.
        with open(os.path.join(state, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        # The rank cannot write its next checkpoint, nor the retry its config: the job fails,
        # naming the disk, and matbertd keeps answering while its database cannot grow. (The
        # first rank waits up to a minute to deliver the reports matbertd could not store.)
        for _ in range(2400):
            job = daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id), timeout=10)
            if job.state == v1["job"].JOB_STATE_FAILED:
                break
            time.sleep(0.1)
        self.assertEqual(job.state, v1["job"].JOB_STATE_FAILED)
        self.assertIn("No space left on device", job.failure)
        self.assertEqual(len(job.attempts), 2)  # the retry found the disk still full
        listed = daemon.jobs.ListJobs(v1["js"].ListJobsRequest(), timeout=10).jobs
        self.assertEqual([j.id for j in listed], [job_id])
        # Nothing half-written passes for a checkpoint: every one there is whole.
        ckpts = os.path.join(job.run_dir, "checkpoints")
        names = [n for n in os.listdir(ckpts) if not n.startswith(".")]
        self.assertTrue(names)
        for name in names:
            r = subprocess.run(["sha256sum", "--quiet", "--strict", "-c", "SHA256SUMS"],
                               cwd=os.path.join(ckpts, name), capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, (name, r.stdout, r.stderr))
        # With room again, the events that waited are stored, in order, and the watch ends.
        os.remove(os.path.join(state, "filler"))
        events = case.watch(daemon, job_id, timeout=60)
        self.assertEqual(case.states(events)[-1], "JOB_STATE_FAILED")
        self.assertEqual([e.seq for e in events], list(range(1, len(events) + 1)))
        r = subprocess.run(["sqlite3", os.path.join(state, "matbert.db"), "PRAGMA integrity_check"],
                           capture_output=True, text=True)
        self.assertEqual(r.stdout.strip(), "ok", r.stderr)
        # A restarted daemon knows every event and the ending.
        daemon.kill()
        daemon.start()
        again = daemon.jobs.GetJob(v1["js"].GetJobRequest(job_id=job_id), timeout=10)
        self.assertEqual((again.state, again.failure), (v1["job"].JOB_STATE_FAILED, job.failure))
        self.assertEqual(case.watch(daemon, job_id, timeout=30), events)
        with open(os.path.join(state, "matbertd.out")) as f:
            log = f.read()
        self.assertIn(f"the filesystem of {state} is full", log)
        self.assertIn("every waiting state and event is stored", log)

def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--daemon", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--proto-dir", required=True)
    parser.add_argument("--configs", required=True)
    ARGS, rest = parser.parse_known_args()
    run_tests(ARGS, rest)

if __name__ == "__main__":
    main()
