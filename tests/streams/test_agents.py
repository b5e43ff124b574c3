"""The Faust wiring's settings (streams/agents.py)."""

from __future__ import annotations

from typing import Any

from infra.core.settings import Settings
from streams.agents import create_app


def test_a_worker_id_makes_its_membership_static(tmp_path: Any) -> None:
    env = {"WAFLOW_DATA_DIR": str(tmp_path), "WAFLOW_APP_SECRETS": "a:s"}
    assert create_app(Settings.from_env(env)).conf.consumer_group_instance_id is None
    named = {**env, "WAFLOW_STREAMS_INSTANCE_ID": "waflow-streams-0"}
    app = create_app(Settings.from_env(named))
    assert app.conf.consumer_group_instance_id == "waflow-streams-0"
