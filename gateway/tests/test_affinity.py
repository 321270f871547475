"""Prefix-cache affinity: the rendezvous ring with bounded load (properties), and through a
real Kodify to two fake replicas (affinity, spill, failover)."""

from __future__ import annotations

import concurrent.futures
import math
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import affinity
from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer

pytestmark = pytest.mark.smoke


@dataclass
class Box:
    url: str
    weight: float = 1.0
    outstanding: int = 0


urls = st.lists(
    st.text("abcdefghij0123456789", min_size=1, max_size=8), min_size=1, max_size=8, unique=True
).map(lambda names: [f"http://{name}:8000" for name in names])
keys = st.binary(min_size=1, max_size=64)
epsilons = st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 3.0])


@given(urls, st.data(), keys, epsilons)
def test_the_chosen_replica_stays_within_its_capacity(
    names: list[str], data: st.DataObject, key: bytes, epsilon: float
) -> None:
    boxes = [
        Box(url, data.draw(st.sampled_from([0.5, 1.0, 2.0])), data.draw(st.integers(0, 50)))
        for url in names
    ]
    chosen = affinity.choose(key, boxes, epsilon)
    assert chosen is not None
    capacity = dict(zip(names, affinity.capacities(boxes, epsilon), strict=True))
    assert chosen.outstanding + 1 <= capacity[chosen.url]


@settings(max_examples=50)
@given(urls, st.lists(keys, min_size=1, max_size=200), epsilons)
def test_every_replica_stays_within_the_bound_as_requests_pile_up(
    names: list[str], incoming: list[bytes], epsilon: float
) -> None:
    boxes = [Box(url) for url in names]
    for placed, key in enumerate(incoming, start=1):
        chosen = affinity.choose(key, boxes, epsilon)
        assert chosen is not None
        chosen.outstanding += 1
        bound = math.ceil((1 + epsilon) * placed / len(boxes))
        assert max(box.outstanding for box in boxes) <= bound


@given(urls, keys)
def test_a_replica_leaving_moves_only_the_keys_it_had(names: list[str], key: bytes) -> None:
    boxes = [Box(url) for url in names]
    first = affinity.choose(key, boxes, 0.25)
    assert first is not None
    for leaving in boxes:
        rest = [box for box in boxes if box is not leaving]
        after = affinity.choose(key, rest, 0.25)
        if leaving is first:
            # The key goes to its next choice, as its order said.
            assert rest == [] or after is affinity.ring_order(key, boxes)[1]
        else:
            assert after is first


@given(urls, keys)
def test_a_replica_joining_takes_keys_only_for_itself(names: list[str], key: bytes) -> None:
    boxes = [Box(url) for url in names]
    before = affinity.choose(key, boxes, 0.25)
    joining = Box("http://joining:8000")
    after = affinity.choose(key, [*boxes, joining], 0.25)
    assert after is before or after is joining


def test_weights_share_the_keys_in_proportion() -> None:
    heavy, light = Box("http://heavy:8000", weight=3.0), Box("http://light:8000", weight=1.0)
    firsts = [affinity.ring_order(b"k%d" % i, [heavy, light])[0] for i in range(4000)]
    share = firsts.count(heavy) / len(firsts)
    assert 0.70 < share < 0.80  # 3/4, within what 4,000 draws allow


def test_keys_name_the_caller_and_document_or_the_prompts_start() -> None:
    assert affinity.completion_key("t1u2", "src/a.py") != affinity.completion_key("t1u2", "b.py")
    long = b"x" * 10_000
    assert affinity.prompt_key(long) == affinity.prompt_key(long + b"different tail")


# -- through a real Kodify ------------------------------------------------------------------------


@pytest.fixture
def replicas() -> Any:
    started = [FakeUpstreamServer(FakeUpstream()).start() for _ in range(2)]
    yield started
    for server in started:
        server.stop()


def tabby_body(filepath: str) -> dict[str, Any]:
    return {
        "language": "python",
        "segments": {
            # The file's name in its text too, so that the replica's record shows whose it is.
            "prefix": f"# {filepath}\ndef add(a, b):\n    return ",
            "suffix": "\n",
            "filepath": filepath,
        },
    }


def served_by(replicas: list[FakeUpstreamServer], marker: str) -> list[int]:
    """Which replica (index) saw each request whose body mentions ``marker``."""
    return [
        index
        for index, server in enumerate(replicas)
        for record in server.fake.records
        if marker in str(record.body)
    ]


def test_a_callers_completions_in_one_document_stay_on_one_replica(
    kodify_server: Any, replicas: list[FakeUpstreamServer]
) -> None:
    server = kodify_server(
        {
            "KODIFY_UPSTREAMS": ",".join(r.url for r in replicas),
            "KODIFY_PREFIX_AFFINITY": "true",
        }
    )
    documents = [f"src/{uuid.uuid4().hex}.py" for _ in range(16)]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(3):
            for document in documents:
                answer = client.post("/v1/completions", json=tabby_body(document))
                assert answer.status_code == 200, answer.text
    homes = []
    for document in documents:
        seen = served_by(replicas, document)
        assert len(seen) == 3 and len(set(seen)) == 1, (document, seen)  # one home each
        homes.append(seen[0])
    assert set(homes) == {0, 1}  # and the documents spread over both (2 ** -15 to fail)


def test_a_busy_replica_spills_its_keys_and_a_dead_one_fails_over(
    kodify_server: Any, replicas: list[FakeUpstreamServer]
) -> None:
    server = kodify_server(
        {
            "KODIFY_UPSTREAMS": ",".join(r.url for r in replicas),
            "KODIFY_PREFIX_AFFINITY": "true",
            "KODIFY_AFFINITY_EPSILON": "0",
        }
    )
    marker = uuid.uuid4().hex
    body = {
        "model": "fake-model",
        "messages": [{"role": "system", "content": marker}, {"role": "user", "content": "hi"}],
        "fake": {"first_byte_delay": 1.0},  # held open, so that they are outstanding together
    }
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30),
                range(6),
            )
        )
    assert [answer.status_code for answer in answers] == [200] * 6
    seen = served_by(replicas, marker)
    assert len(seen) == 6 and set(seen) == {0, 1}  # one prompt, yet both replicas: the bound

    replicas[served_by(replicas, marker)[0]].stop()  # the key's home goes away
    body["fake"] = {}
    for _ in range(3):
        assert httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30).is_success
