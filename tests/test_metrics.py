#!/usr/bin/python3
"""matbertd's /metrics scraped by a real Prometheus (Debian's `prometheus`, started here on
loopback with a 1 s scrape interval) during two CPU jobs (a long one, cancelled once enough
samples are in, and a 2-slot one queued behind it): through Prometheus's HTTP API
the job's loss series has many samples, each the loss rank 0 wrote for the step scraped with
it, and falls, the queue and device gauges saw the
right values, every PromQL expression of deploy/grafana/dashboards/matbert.json returns
data, so the dashboard can never name a metric that does not exist, and Prometheus' linter
(`promtool check metrics`) accepts the exposition.

Usage: test_metrics.py --daemon PATH --worker PATH --ctl PATH --proto-dir DIR --configs DIR
           --deploy DIR
"""
import argparse
import json
import os
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

from matbertd_harness import Daemon, free_port, run_tests

ARGS = None
TINY = ["--model.hidden_size", "32", "--model.num_hidden_layers", "2",
        "--model.num_attention_heads", "2", "--model.intermediate_size", "64",
        "--matrix.m", "6", "--matrix.n", "6", "--matrix.r", "2", "--training.warmup_steps", "2",
        "--training.log_every", "10", "--training.eval_every", "10", "--training.lr", "0.003",
        "--training.eval_samples", "8", "--training.threads", "1", "--checkpoint.every", "0"]


class Prometheus:
    def __init__(self, tmp, target):
        self.port = free_port()
        config = os.path.join(tmp, "prometheus.yml")
        # The shipped scrape config, pointed at the test's matbertd and sped up.
        with open(os.path.join(ARGS.deploy, "prometheus", "prometheus.yml")) as f:
            text = f.read()
        text = text.replace("localhost:9464", target).replace("scrape_interval: 5s",
                                                              "scrape_interval: 1s")
        with open(config, "w") as f:
            f.write(text)
        self.log = open(os.path.join(tmp, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp}/tsdb",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("prometheus did not start")

    def query(self, expr):
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?" +
               urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


def ctl(daemon, *args, code=0):
    env = dict(os.environ, MATBERT_ADDR=f"127.0.0.1:{daemon.port}")
    r = subprocess.run([ARGS.ctl, *args], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == code, (args, r.stdout, r.stderr)
    return r.stdout


class MetricsTest(unittest.TestCase):
    def test_prometheus_scrapes_training_and_every_dashboard_query_has_data(self):
        with tempfile.TemporaryDirectory(prefix="matbert_metrics_") as tmp:
            metrics_port = free_port()
            daemon = Daemon(os.path.join(tmp, "state"), free_port(), "--metrics-addr",
                            f"127.0.0.1:{metrics_port}", "--metrics-retention", "600").start()
            prom = Prometheus(tmp, f"127.0.0.1:{metrics_port}")
            try:
                spec = os.path.join(ARGS.configs, "bert_matcomp_cpu.toml")
                # Prometheus scrapes matbertd before the job starts, so its early steps are seen.
                deadline = time.time() + 60
                while not prom.query("matbert_devices") and time.time() < deadline:
                    time.sleep(0.2)
                # Long enough for any machine: it is cancelled once Prometheus holds enough
                # samples, so the number of scrapes does not depend on how fast it trains.
                first = ctl(daemon, "submit", spec, "-q", *TINY, "--training.steps", "100000",
                            "--name", "metrics_a").strip()
                time.sleep(3)
                # Needs both slots while the first holds one: it waits in the queue.
                second = ctl(daemon, "submit", spec, "-q", *TINY, "--training.steps", "10",
                             "--gpus", "2", "--name", "metrics_b").strip()
                sel = f'{{job_id="{first}",job_name="metrics_a"}}'
                deadline = time.time() + 180
                while time.time() < deadline:
                    counted = prom.query(f"count_over_time(matbert_train_loss{sel}[10m])")
                    step = prom.query(f"matbert_train_step{sel}")
                    # By step 400 this model's loss has fallen from about 1.1 to about 0.85.
                    if (counted and float(counted[0]["value"][1]) >= 12 and
                            float(step[0]["value"][1]) >= 400):
                        break
                    time.sleep(1)
                # Prometheus' own linter accepts the exposition, training series included.
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                    exposition = r.read()
                self.assertIn(b"matbert_train_loss{", exposition)
                lint = subprocess.run(["promtool", "check", "metrics"], input=exposition,
                                      capture_output=True)
                self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)
                ctl(daemon, "cancel", first)
                ctl(daemon, "watch", first, code=6)  # CANCELLED
                ctl(daemon, "watch", second)
                time.sleep(3)  # a few scrapes after the end

                # Each scrape's loss is the job's own loss at the step scraped with it, as
                # rank 0 wrote it to metrics.jsonl (the mean over the 10 steps up to it).
                def samples(name):
                    series = prom.query(f"{name}{sel}[10m]")
                    self.assertEqual(len(series), 1, (name, series))
                    return {t: float(v) for t, v in series[0]["values"]}
                losses, scraped_steps = samples("matbert_train_loss"), samples("matbert_train_step")
                self.assertGreaterEqual(len(losses), 10)
                self.assertEqual(sorted(losses), sorted(scraped_steps))  # the same scrapes
                written = {}
                with open(os.path.join(tmp, "state", "runs", first, "metrics.jsonl")) as f:
                    for line in f:
                        record = json.loads(line)
                        if record["kind"] == "train":
                            written[record["step"]] = record["loss"]
                for t in sorted(losses):
                    step = int(scraped_steps[t])
                    self.assertAlmostEqual(losses[t], written[step], delta=1e-9 * abs(written[step]),
                                           msg=f"step {step}")
                self.assertGreaterEqual(len(set(scraped_steps.values())), 8, scraped_steps)
                # And it falls: the first scrapes (early steps) against the last (step >= 400).
                by_step = {int(scraped_steps[t]): losses[t] for t in losses}
                series = [by_step[step] for step in sorted(by_step)]
                self.assertLess(sum(series[-3:]) / 3, 0.95 * sum(series[:2]) / 2, by_step)
                steps = prom.query(f"matbert_train_step{sel}")
                last_step = json.loads(ctl(daemon, "--json", "status", first))["step"]
                self.assertEqual(float(steps[0]["value"][1]), last_step)

                def scalar(expr):
                    result = prom.query(expr)
                    self.assertEqual(len(result), 1, (expr, result))
                    return float(result[0]["value"][1])
                self.assertEqual(scalar("matbert_devices"), 2)
                self.assertEqual(scalar("max_over_time(matbert_devices_allocated[10m])"), 2)
                self.assertEqual(scalar("matbert_devices_allocated"), 0)
                self.assertEqual(scalar("max_over_time(matbert_queue_depth[10m])"), 1)
                self.assertEqual(scalar("matbert_queue_depth"), 0)
                self.assertEqual(scalar('matbert_jobs{state="SUCCEEDED"}'), 1)
                self.assertEqual(scalar('matbert_jobs{state="CANCELLED"}'), 1)
                self.assertEqual(scalar('matbert_jobs{state="RUNNING"}'), 0)
                self.assertEqual(scalar("matbert_scheduling_latency_seconds_count"), 2)
                self.assertGreaterEqual(scalar(
                    'sum(matbert_rpc_requests_total{method="matbert.v1.JobService/SubmitJob",'
                    'code="OK"})'), 2)
                self.assertEqual(sorted(r["metric"]["baseline"] for r in prom.query(
                    f'matbert_eval_baseline_rmse{{job_id="{first}"}}')),
                    ["als", "mean", "soft_impute"])

                with open(os.path.join(ARGS.deploy, "grafana", "dashboards", "matbert.json")) as f:
                    dashboard = json.load(f)
                exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
                self.assertGreaterEqual(len(exprs), 12)
                variable = dashboard["templating"]["list"][0]
                values = prom.query(variable["definition"].replace(
                    "label_values(", "group by (job_id) (").replace(", job_id)", ")"))
                self.assertEqual({v["metric"]["job_id"] for v in values}, {first, second})
                for expr in exprs:
                    result = prom.query(expr.replace("$job_id", first))
                    self.assertTrue(result, f"dashboard query returns no data: {expr}")
            finally:
                prom.stop()
                daemon.stop()


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    for flag in ("--daemon", "--worker", "--ctl", "--proto-dir", "--configs", "--deploy"):
        parser.add_argument(flag, required=True)
    ARGS, rest = parser.parse_known_args()
    run_tests(ARGS, rest)


if __name__ == "__main__":
    main()
