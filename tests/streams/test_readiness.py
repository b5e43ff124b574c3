"""The stream worker's /readyz answer, from the state Faust reports."""

from streams.agents import not_ready


def test_ready_only_with_partitions_and_nothing_in_progress() -> None:
    assert not_ready(assigned=True, rebalancing=False, recovering=False) == ""
    assert not_ready(assigned=False, rebalancing=False, recovering=False) == (
        "no partitions assigned"
    )
    assert not_ready(assigned=True, rebalancing=True, recovering=False) == "rebalancing"
    assert "recovering" in not_ready(assigned=True, rebalancing=False, recovering=True)
