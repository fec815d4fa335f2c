"""Monitoring: the alert rules pass promtool (syntax and unit tests), the dashboard is well
formed and queries only metrics the stack declares, and a real Prometheus scraping real asr
and llm processes with the shipped configuration finds data for every metric of theirs that
the dashboard and alerts use, and accepts every dashboard expression."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from prometheus_client import CollectorRegistry

from relay.metrics import RelayMetrics
from solami.client import sync_channel
from solami.metrics import ServiceMetrics
from solami.registry import RELAY, SERVICES
from solami.v1 import (
    asr_pb2,
    asr_pb2_grpc,
    common_pb2,
    face_pb2,
    face_pb2_grpc,
    llm_pb2,
    llm_pb2_grpc,
    motion_pb2,
    motion_pb2_grpc,
    tts_pb2,
    tts_pb2_grpc,
)
from solami_cli import simulator
from tests.support.motion_models import write_tiny_checkpoint
from tests.support.servers import free_port
from tests.support.speech import headset_clip
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
QUESTION = ROOT / "solami_cli" / "data" / "question.wav"
DASHBOARD = ROOT / "deploy" / "grafana" / "solami-dashboard.json"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "components" / "monitoring" / "prometheusrule.yaml"
# Grafana's own variables, as Grafana would substitute them for a short dashboard range.
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__interval": "15s", "$__range": "1h"}
# Metrics exported by other programs: NVIDIA's DCGM exporter and Prometheus itself.
EXTERNAL_METRICS = {"DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_UTIL", "up"}
# The only selector whose series exist only after a server-side failure.
SERVER_ERROR_CODES = 'code=~"UNKNOWN|INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED|'
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}
# The parts a demo runs: every service on its embedded default, and the relay.
RUNNING = ("asr", "llm", "tts", "motion", "face", "relay")


# ---------------------------------------------------------------- expressions


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard_exprs() -> list[str]:
    return [t["expr"] for p in _panels(_dashboard()["panels"]) for t in p.get("targets", [])]


def _rule_exprs() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_metric_names_are_read_off_expressions():
    expr = (
        "histogram_quantile(0.95, sum by (le, stage) (rate(solami_relay_turn_stage_seconds_bucket"
        '{stage!="asr"}[5m]))) > 3 or (up{job=~"asr|llm"} == 0) unless on (job) '
        "solami_asr_serving"
    )
    assert metric_names(expr) == {
        "solami_relay_turn_stage_seconds_bucket",
        "up",
        "solami_asr_serving",
    }


# ---------------------------------------------------------------- declared metrics


def _metrics_classes(module_name: str) -> list[type]:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return []
    return [
        value
        for name, value in vars(module).items()
        if inspect.isclass(value) and name.endswith("Metrics") and value.__module__ == module_name
    ]


def _series_names(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def declared_series() -> set[str]:
    """Every series name the services and the relay export (from their metrics classes)."""
    names = _series_names(RelayMetrics().registry)
    for part in SERVICES:
        runtime = ServiceMetrics(part)
        for cls in _metrics_classes(f"services.{part}.servicer"):
            extra = [p for p in inspect.signature(cls).parameters if p != "metrics"]
            cls(runtime, **dict.fromkeys(extra, "test"))
        names |= _series_names(runtime.registry)
    return names


def test_dashboard_and_alerts_query_declared_metrics():
    declared = declared_series()
    for expr in _dashboard_exprs() + _rule_exprs():
        for name in metric_names(expr):
            if name in EXTERNAL_METRICS:
                continue
            assert name in declared, f"{name} (in {expr!r}) is exported by no part of the stack"


def test_alerts_cover_every_part():
    rules = " ".join(_rule_exprs())
    for part in SERVICES:
        assert f"solami_{part}_serving" in rules
        assert f"solami_{part}_requests_total" in rules
    assert "solami_relay_redis_up" in rules
    assert "solami_relay_time_to_first_audio_seconds_bucket" in rules
    assert "solami_relay_turns_total" in rules


# ---------------------------------------------------------------- promtool


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def _run(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_rules_and_the_config(tmp_path):
    promtool = _promtool()
    result = _run(promtool, "check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    operator_rules = tmp_path / "operator-rules.yml"
    spec = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]
    operator_rules.write_text(yaml.safe_dump(spec))
    result = _run(promtool, "check", "rules", str(operator_rules))
    assert result.returncode == 0, result.stdout + result.stderr
    result = _run(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_when_they_should():
    result = _run(_promtool(), "test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_covers_every_part_on_its_port():
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules.yml"]
    jobs = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    expected = {name: [f"127.0.0.1:{info.metrics_port}"] for name, info in SERVICES.items()}
    expected[RELAY.name] = [f"127.0.0.1:{RELAY.metrics_port}"]
    assert jobs == expected


# ---------------------------------------------------------------- dashboard


def test_dashboard_is_well_formed():
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles))
    cells = set()
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] >= 0 and box["w"] > 0 and box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert target["expr"].strip()


def test_dashboard_shows_what_operators_need():
    names = set().union(*(metric_names(e) for e in _dashboard_exprs()))
    for needed in (
        "solami_relay_time_to_first_audio_seconds_bucket",
        "solami_relay_turn_stage_seconds_bucket",
        "solami_relay_active_sessions",
        "solami_relay_inflight_turns",
        "solami_relay_barge_ins_total",
        "solami_asr_real_time_factor_bucket",
        "solami_face_real_time_factor_bucket",
        "solami_llm_time_to_first_token_seconds_bucket",
        "DCGM_FI_DEV_FB_USED",
    ):
        assert needed in names, needed
    for part in SERVICES:
        for series in ("requests_total", "model_load_seconds_sum", "serving", "inflight_requests"):
            assert f"solami_{part}_{series}" in names


# ---------------------------------------------------------------- real Prometheus


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory) -> Iterator[Stack]:
    """Every service and the relay as real processes, as a demo runs them."""
    # The motion tokenizers (tiny) too, so motion's token metrics have data.
    checkpoint = write_tiny_checkpoint(tmp_path_factory.mktemp("motion"))
    running = Stack(
        redis_url, tmp_path_factory.mktemp("stack"), SOLAMI_MOTION_CHECKPOINT_DIR=str(checkpoint)
    )
    for part in RUNNING:
        running.start(part)
    try:
        running.wait_ready(list(RUNNING))
        yield running
    finally:
        running.stop_all()


@pytest.fixture(scope="module")
def services(stack) -> dict[str, tuple[str, int]]:
    """{part: (gRPC address, metrics port)} of the running stack."""
    return {
        part: (
            stack.address(part) if part in SERVICES else stack.http_url,
            int(stack.env[f"{(SERVICES.get(part) or RELAY).env_prefix}METRICS_PORT"]),
        )
        for part in RUNNING
    }


def _refused(call) -> None:
    """``call`` is a bad request: INVALID_ARGUMENT (errors by code)."""
    with pytest.raises(grpc.RpcError) as bad:
        call()
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad.value.details()


async def _not_a_wav(ws_url: str) -> None:
    """A headset message the relay skips and counts (errors by kind)."""
    from websockets.asyncio.client import connect

    async with connect(ws_url) as ws:
        await ws.send("not a WAV")


def _turn() -> common_pb2.TurnContext:
    return common_pb2.TurnContext(session_id="deploy-test", turn_id=f"t{time.monotonic_ns()}")


def _demo_turn(stack: Stack, running: dict[str, tuple[str, int]], wav: bytes, out: Path) -> None:
    """One headset turn through the relay (the demo's), plus one utterance and one bad request
    straight to asr and llm (errors by code)."""
    base = stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    args = argparse.Namespace(
        wav=QUESTION,
        motion=None,
        character="Vrmgirl",
        out=out,
        ws=stack.ws_url,
        redis=f"{base}/0",
        timeout_s=60.0,
        settle_s=1.5,
    )
    assert asyncio.run(simulator.run(args))["reply_wavs"] >= 1
    asyncio.run(_not_a_wav(stack.ws_url))
    with sync_channel(stack.address("motion")) as channel:

        def tokens():
            yield motion_pb2.DecodeMotionRequest(turn=_turn(), config=motion_pb2.MotionConfig())
            ids = motion_pb2.MotionTokens(body_ids=[1, 2, 3, 4], hand_ids=[5, 6, 7, 8])
            yield motion_pb2.DecodeMotionRequest(turn=_turn(), tokens=ids)
            yield motion_pb2.DecodeMotionRequest(turn=_turn(), end=common_pb2.StreamEnd())

        motion = motion_pb2_grpc.MotionServiceStub(channel)
        events = list(motion.DecodeMotion(tokens(), timeout=60))
        assert events[-1].WhichOneof("event") == "end"
        _refused(
            lambda: list(
                motion.TextToMotion(
                    motion_pb2.TextToMotionRequest(turn=_turn(), text=""), timeout=30
                )
            )
        )
    with sync_channel(stack.address("tts")) as channel:
        config = tts_pb2.SynthesizeRequest(
            turn=_turn(), config=tts_pb2.SpeechConfig(character="Gandalf")
        )
        tts = tts_pb2_grpc.TtsServiceStub(channel)
        _refused(lambda: list(tts.Synthesize(iter([config]), timeout=30)))
    with sync_channel(stack.address("face")) as channel:
        config = face_pb2.AnimateRequest(turn=_turn(), config=face_pb2.FaceConfig())
        face = face_pb2_grpc.FaceServiceStub(channel)
        _refused(lambda: list(face.Animate(iter([config]), timeout=30)))
    with sync_channel(running["asr"][0]) as channel:
        asr = asr_pb2_grpc.AsrServiceStub(channel)
        text = asr.Transcribe(asr_pb2.TranscribeRequest(turn=_turn(), wav=wav), timeout=60).text
        assert text.strip()
        with pytest.raises(grpc.RpcError) as bad:
            asr.Transcribe(asr_pb2.TranscribeRequest(turn=_turn(), wav=b"not a wav"), timeout=30)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with sync_channel(running["llm"][0]) as channel:
        llm = llm_pb2_grpc.LlmServiceStub(channel)
        request = llm_pb2.GenerateRequest(
            turn=_turn(),
            character="Samantha",
            method=llm_pb2.CONVERSATION_METHOD_LLM_SPEECH,
            user=llm_pb2.Message(role=llm_pb2.ROLE_USER, text=text),
            sampling=llm_pb2.SamplingParams(
                temperature=0.6, top_p=0.9, max_new_tokens=24, min_new_tokens=1, seed=7
            ),
        )
        events = list(llm.Generate(request, timeout=120))
        assert events[-1].WhichOneof("event") == "end"
        with pytest.raises(grpc.RpcError) as bad:
            list(
                llm.Generate(
                    llm_pb2.GenerateRequest(turn=_turn(), character="Samantha"), timeout=30
                )
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class Prometheus:
    """Debian's Prometheus server on a free loopback port with its own storage."""

    def __init__(self, workdir: Path, running: dict[str, tuple[str, int]]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("prometheus is not installed (apt-get install prometheus)")
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="2s", scrape_timeout="2s", evaluation_interval="1s")
        config["scrape_configs"] = [
            {**job, "static_configs": [{"targets": [f"127.0.0.1:{running[job['job_name']][1]}"]}]}
            for job in config["scrape_configs"]
            if job["job_name"] in running
        ]
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        shutil.copy(PROMETHEUS_DIR / "rules.yml", workdir / "rules.yml")
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.wait(lambda: self._get("/-/ready", raw=True) is not None, "ready")

    def _get(self, path: str, raw: bool = False, **params: str):
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                body = reply.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
        except OSError:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            return None
        return body if raw else json.loads(body)

    def query(self, expr: str) -> dict:
        return self._get("/api/v1/query", query=expr)

    def has_data(self, expr: str) -> bool:
        reply = self.query(expr)
        return reply["status"] == "success" and any(
            not math.isnan(float(r["value"][1])) for r in reply["data"]["result"]
        )

    def wait(self, ready, what: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert time.monotonic() < deadline, f"Prometheus: {what} did not happen"
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.mark.e2e
def test_real_prometheus_finds_every_queried_metric(stack, services, tmp_path):
    wav, _ = headset_clip("What a lovely day for a walk in the park.", 16_000, total_s=4.0)
    _demo_turn(stack, services, wav, tmp_path / "one")
    prometheus = Prometheus(tmp_path, services)
    try:
        jobs = "|".join(RUNNING)
        prometheus.wait(
            lambda: prometheus.has_data(f'sum(up{{job=~"{jobs}"}}) == {len(RUNNING)}'), "scrape"
        )
        # A second turn between scrapes gives every rate a non-zero increase.
        _demo_turn(stack, services, wav, tmp_path / "two")
        prometheus.wait(
            lambda: (
                prometheus.has_data("sum(rate(solami_llm_attempts_total[30s])) > 0")
                and prometheus.has_data("sum(rate(solami_asr_requests_total[30s])) > 0")
            ),
            "second scrape",
        )

        dashboard = [_substitute(e) for e in _dashboard_exprs()]
        rules = _rule_exprs()
        names = set().union(*(metric_names(e) for e in dashboard + rules))
        ours = sorted(n for n in names if n.startswith(tuple(f"solami_{p}_" for p in RUNNING)))
        assert len(ours) >= 15
        missing = [n for n in ours if not prometheus.has_data(f'count({{__name__="{n}"}})')]
        assert not missing, f"no data for {missing}"

        for expr in dashboard:
            reply = prometheus.query(expr)
            assert reply["status"] == "success", f"{expr}: {reply.get('error')}"
            parts = {n.split("_")[1] for n in metric_names(expr) if n.startswith("solami_")}
            if parts and parts <= set(RUNNING) and SERVER_ERROR_CODES not in expr:
                assert reply["data"]["result"], f"no data for dashboard query {expr}"

        def rules_evaluated() -> bool:
            groups = prometheus._get("/api/v1/rules")["data"]["groups"]
            evaluated = [r for g in groups for r in g["rules"]]
            return len(evaluated) == len(rules) and all(r["health"] == "ok" for r in evaluated)

        prometheus.wait(rules_evaluated, "rule evaluation")
        alerts = prometheus._get("/api/v1/alerts")["data"]["alerts"]
        firing = {(a["labels"]["alertname"], a["labels"].get("job")) for a in alerts}
        for part in RUNNING:
            assert ("SolamiTargetDown", part) not in firing
            assert ("SolamiServiceNotServing", part) not in firing
    finally:
        prometheus.stop()
