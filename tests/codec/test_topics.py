"""Topic names (shared/topics.py): a bridge's notice topic names its client id back, escaped
characters included, and nothing else is taken for one."""

from __future__ import annotations

import pytest

from shared import topics


@pytest.mark.parametrize("client_id", ["gridvend-bridge-h-1a2b3c", "a/b", "x+y#z", "100%", "%2F"])
def test_a_bridge_notice_topic_names_its_client_id(client_id: str) -> None:
    topic = topics.bridge_status(client_id)
    assert topic.count("/") == 3  # one level, whatever the id holds
    assert topics.bridge_of(topic) == client_id


@pytest.mark.parametrize(
    "topic",
    [
        "gridvend/v1/site-1/gw-1/status",
        "gridvend/v1/bridge",
        "gridvend/v1/bridge/a/b",
        "gridvend/v2/bridge/a",
        "other/v1/bridge/a",
    ],
)
def test_other_topics_are_no_bridge_notice(topic: str) -> None:
    assert topics.bridge_of(topic) is None
