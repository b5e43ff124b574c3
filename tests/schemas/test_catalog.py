"""The catalog: each kind's names, and table columns read from the schema's fields."""

from __future__ import annotations

from schemas.catalog import BY_SCHEMA, EVENTS, KINDS, RESPONSES, columns


def test_each_kind_has_its_id_and_time_column_among_its_columns() -> None:
    for kind in KINDS:
        names = [c.name for c in columns(kind.schema)]
        assert kind.id_field == names[0]
        assert kind.time_column is None or kind.time_column in names
        assert len(set(names)) == len(names)
    assert {k.table for k in KINDS} == {
        "flow_responses",
        "flow_events",
        "webhook_changes",
        "dead_letters",
    }
    assert BY_SCHEMA["FlowResponse"] is RESPONSES


def test_nested_records_flatten_and_arrays_of_records_become_nested_columns() -> None:
    response = {c.name: c for c in columns(RESPONSES.schema)}
    assert response["raw_offset"].field == "lineage" and response["raw_offset"].sub == "raw_offset"
    assert "item_index" in response and response["responded_at"].time
    event = {c.name: c for c in columns(EVENTS.schema)}
    assert event["errors.error_type"].many and event["errors.error_type"].sub == "error_type"
    assert "item_index" not in event  # excluded: a flows change is never an item
