"""Replicas that get traffic: the relay's clients over real service processes behind one
multi-address setting. Face calls spread over two replicas and carry on when one is killed;
an llm session's turns stay on one replica (its prompt prefix is cached there) and move to the
other when that replica dies. Each replica's own /metrics counts the calls it served."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from relay.clients import ServiceClients
from relay.clients.llm import Reply
from relay.clients.routing import LlmReplicas, rendezvous_weight
from relay.errors import TurnError
from relay.metrics import RelayMetrics
from relay.sessions import Message
from relay.settings import RelaySettings
from solami.client import parse_address
from solami.methods import DLP_RETRIEVAL
from solami.registry import SERVICES
from solami.settings import SettingsError
from solami.v1 import asr_pb2, asr_pb2_grpc, common_pb2, llm_pb2_grpc
from tests.support.servers import free_port, spawn, wait_for_health, wait_until

SAMPLE_RATE_HZ = 16_000
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Replica:
    """One ``solami serve <service>`` process on its own gRPC and metrics ports."""

    def __init__(self, service: str, logs: Path, **env: str) -> None:
        self.info = SERVICES[service]
        self.port, self.metrics_port = free_port(), free_port()
        prefix = self.info.env_prefix
        self.process = spawn(
            ["-m", "solami_cli", "serve", service],
            {
                f"{prefix}PORT": str(self.port),
                f"{prefix}METRICS_PORT": str(self.metrics_port),
                f"{prefix}HOST": "127.0.0.1",
                **env,
            },
            stderr_path=logs / f"{service}-{self.port}.log",
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        wait_for_health(self.address, self.info.full_name, "SERVING", 120)

    def served(self, method: str) -> int:
        """Calls of ``method`` this replica finished, whatever their status (0 once it is
        gone): a client that has read a stream's last response cancels the call, which the
        replica may count as CANCELLED if its handler has not returned yet."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            return 0
        name = f"solami_{self.info.name}_requests_total"
        return int(
            sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == name and sample.labels.get("method") == method
            )
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@contextlib.contextmanager
def replicas(service: str, count: int, logs: Path, **env: str):
    started = [Replica(service, logs, **env) for _ in range(count)]
    try:
        for replica in started:
            replica.wait_ready()
        yield started
    finally:
        for replica in started:
            replica.stop()


def served(pair: list[Replica], method: str, total: int) -> list[int]:
    """The calls of ``method`` each replica served, once they add up to ``total`` (a replica
    counts a call just after its last response reaches the client)."""
    wait_until(
        lambda: sum(r.served(method) for r in pair) >= total,
        f"{total} calls counted (counts {[r.served(method) for r in pair]})",
        10,
    )
    return [r.served(method) for r in pair]


def turn(session_id: str, index: int) -> common_pb2.TurnContext:
    return common_pb2.TurnContext(session_id=session_id, turn_id=f"{session_id}-{index}")


# -- address forms and the rendezvous choice ------------------------------------------------


def test_address_forms_become_one_grpc_target():
    assert parse_address("127.0.0.1:50052").target == "127.0.0.1:50052"
    listed = parse_address("127.0.0.1:50052, 127.0.0.1:50062")
    assert listed.target == "ipv4:127.0.0.1:50052,127.0.0.1:50062"
    assert listed.replicas == ("127.0.0.1:50052", "127.0.0.1:50062")
    assert parse_address("[::1]:1,[::1]:2").target == "ipv6:[::1]:1,[::1]:2"
    headless = parse_address("dns:///llm-replicas.solami.svc.cluster.local:50052")
    assert headless.target == "dns:///llm-replicas.solami.svc.cluster.local:50052"
    assert (headless.dns_name, headless.dns_port) == (
        "llm-replicas.solami.svc.cluster.local",
        50052,
    )
    for bad in ("llm-0:50052,llm-1:50052", "127.0.0.1:1,[::1]:2", "dns:///llm", "a,b"):
        with pytest.raises(SettingsError, match="SOLAMI_LLM_ADDR"):
            parse_address(bad, "SOLAMI_LLM_ADDR")


def test_a_replica_going_away_moves_only_its_own_sessions():
    sessions = [f"session-{i}" for i in range(300)]
    three = ["10.0.0.1:50052", "10.0.0.2:50052", "10.0.0.3:50052"]

    def owner(session: str, addresses: list[str]) -> str:
        return max(addresses, key=lambda a: rendezvous_weight(session, a))

    before = {s: owner(s, three) for s in sessions}
    shares = [sum(o == a for o in before.values()) / len(sessions) for a in three]
    assert all(0.25 < share < 0.42 for share in shares), shares
    after = {s: owner(s, three[:2]) for s in sessions}
    moved = [s for s in sessions if before[s] != after[s]]
    assert moved and all(before[s] == three[2] for s in moved)


class CountingAsr(asr_pb2_grpc.AsrServiceServicer):
    """A scripted asr replica (stands in for one whose health can be switched on demand):
    counts its Transcribe calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def Transcribe(self, request, context):
        self.calls += 1
        return asr_pb2.TranscribeResponse(turn=request.turn, text="hi")


async def test_a_replica_not_serving_gets_no_calls(monkeypatch):
    servers, asrs, healths = [], [], []
    for _ in range(2):
        server, asr, health_servicer = grpc.aio.server(), CountingAsr(), health.aio.HealthServicer()
        asr_pb2_grpc.add_AsrServiceServicer_to_server(asr, server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        await health_servicer.set(SERVICES["asr"].full_name, SERVING)
        servers.append((server, server.add_insecure_port("127.0.0.1:0")))
        asrs.append(asr)
        healths.append(health_servicer)
    for server, _ in servers:
        await server.start()
    monkeypatch.setenv("SOLAMI_ASR_ADDR", ",".join(f"127.0.0.1:{port}" for _, port in servers))
    clients = ServiceClients.connect(RelaySettings(), RelayMetrics())
    try:
        await healths[1].set(SERVICES["asr"].full_name, NOT_SERVING)  # loading, or draining
        await asyncio.sleep(0.2)
        for index in range(6):
            await clients.asr.transcribe(turn("s", index), b"RIFF")
        assert [asr.calls for asr in asrs] == [6, 0]
        await healths[1].set(SERVICES["asr"].full_name, SERVING)
        await asyncio.sleep(0.2)
        for index in range(6):
            await clients.asr.transcribe(turn("s", index), b"RIFF")
        assert asrs[1].calls >= 2  # back in the rotation
    finally:
        await clients.close()
        for server, _ in servers:
            await server.stop(0)


# -- real replicas ----------------------------------------------------------------------------


@pytest.mark.e2e
async def test_face_calls_spread_over_replicas_and_go_on_when_one_is_killed(tmp_path, monkeypatch):
    samples = np.sin(np.arange(SAMPLE_RATE_HZ // 5) / 8).astype(np.float32) * 0.3
    with replicas("face", 2, tmp_path) as (first, second):
        monkeypatch.setenv("SOLAMI_FACE_ADDR", f"{first.address},{second.address}")
        clients = ServiceClients.connect(RelaySettings(), RelayMetrics())
        try:
            for index in range(12):
                await clients.face.animate(turn("s", index), samples, SAMPLE_RATE_HZ)
            spread = served([first, second], "Animate", 12)
            assert sum(spread) == 12 and min(spread) >= 4, spread

            failures, done = 0, 0

            async def keep_calling() -> None:
                nonlocal failures, done
                for index in range(30):
                    try:
                        await clients.face.animate(turn("k", index), samples, SAMPLE_RATE_HZ)
                    except TurnError:
                        failures += 1
                    done += 1

            calling = asyncio.create_task(keep_calling())
            while done < 6:
                await asyncio.sleep(0.01)
            done_at_kill, second_at_kill = done, second.served("Animate")
            first.kill()
            await calling
            assert failures <= 1  # at most the call in flight on the killed replica
            # Every later call went to the survivor (but the one in flight at the kill).
            later = 30 - done_at_kill - 1 - failures
            assert second.served("Animate") - second_at_kill >= later
        finally:
            await clients.close()


@pytest.mark.e2e
async def test_an_llm_session_stays_on_its_replica_and_moves_when_it_dies(tmp_path, monkeypatch):
    with replicas("llm", 2, tmp_path, SOLAMI_LLM_CPU_THREADS="1") as pair:
        by_address = {replica.address: replica for replica in pair}
        monkeypatch.setenv("SOLAMI_LLM_ADDR", ",".join(by_address))
        clients = ServiceClients.connect(RelaySettings(), RelayMetrics())
        llm = clients.llm
        assert isinstance(llm.replicas, LlmReplicas)

        async def say(session: str, index: int) -> Reply:
            user = Message("user", text="Hi! What is your favourite colour?")
            events = [
                e
                async for e in llm.generate(
                    turn(session, index), "Samantha", DLP_RETRIEVAL, [], user
                )
            ]
            assert isinstance(events[-1], Reply)
            return events[-1]

        try:
            # Sessions spread over both replicas.
            owners = [(await llm.replicas.pick(f"spread-{i}")).address for i in range(200)]
            assert 60 < owners.count(pair[0].address) < 140
            # A session whose replica is the first, and one whose replica is the second.
            sessions = {}
            for i in range(100):
                sessions.setdefault((await llm.replicas.pick(f"s{i}")).address, f"s{i}")
            stays, other = sessions[pair[0].address], sessions[pair[1].address]

            for index in range(3):
                await say(stays, index)
            assert served(pair, "Generate", 3) == [3, 0]
            await say(other, 0)
            assert served(pair, "Generate", 4) == [3, 1]

            pair[0].kill()
            failed = 0
            for index in range(3, 5):
                try:
                    await say(stays, index)
                except TurnError as exc:  # the turn that found its replica dead apologises
                    assert "UNAVAILABLE" in exc.reason
                    failed += 1
            assert failed <= 1
            assert served(pair[1:], "Generate", 3 - failed) == [3 - failed]
        finally:
            await clients.close()


@pytest.mark.e2e
async def test_llm_turns_spread_without_affinity(tmp_path, monkeypatch):
    with replicas("llm", 2, tmp_path, SOLAMI_LLM_CPU_THREADS="1") as pair:
        monkeypatch.setenv("SOLAMI_LLM_ADDR", ",".join(r.address for r in pair))
        clients = ServiceClients.connect(RelaySettings(llm_affinity=False), RelayMetrics())
        assert clients.llm.replicas is None
        assert isinstance(clients.llm._stub, llm_pb2_grpc.LlmServiceStub)
        try:
            user = Message("user", text="Hello.")
            for index in range(6):
                async for _ in clients.llm.generate(
                    turn("one-session", index), "Samantha", DLP_RETRIEVAL, [], user
                ):
                    pass
            counts = served(pair, "Generate", 6)
            # The first turn may find only one replica connected yet; then they alternate.
            assert sum(counts) == 6 and min(counts) >= 2, counts
        finally:
            await clients.close()


async def test_a_dns_address_resolves_into_replicas(monkeypatch):
    port = free_port()
    monkeypatch.setenv("SOLAMI_LLM_ADDR", f"dns:///localhost:{port}")
    replicas = LlmReplicas(SERVICES["llm"], llm_pb2_grpc.LlmServiceStub)
    try:
        await replicas.pick("s")  # the first turn waits for the first resolution
        assert f"127.0.0.1:{port}" in replicas.replicas
        assert replicas.state() in ("CONNECTING", "IDLE", "TRANSIENT_FAILURE")
    finally:
        await replicas.close()
