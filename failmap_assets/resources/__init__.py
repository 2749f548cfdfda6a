"""Dagster resources: where data lives (FailmapStorage), the rules (FailmapRules, SensorRules), webhooks (Webhooks),
the PostgreSQL sink (PostgresSink)."""

from __future__ import annotations

import dagster as dg

from failmap_assets.resources.postgres import PostgresSink
from failmap_assets.resources.rules import FailmapRules, SensorRules
from failmap_assets.resources.storage import FailmapStorage
from failmap_assets.resources.webhooks import Webhooks
from failmap_assets.settings import VARIABLES, Settings, is_set

__all__ = ["FailmapRules", "FailmapStorage", "PostgresSink", "SensorRules", "Webhooks", "build_resources"]

# resource -> {resource field: Settings field}
_FIELDS = {
    "storage": {
        "source_a": "source_a", "source_b": "source_b", "source_stdf": "source_stdf", "output": "output",
        "s3_endpoint_url": "s3_endpoint_url", "aws_region": "aws_region", "max_workers": "max_workers",
    },
    "failmap_rules": {"window_s": "pair_window_s", "grace_s": "pair_grace_s", "pixels_per_die": "pixels_per_die",
                      "merge_rule": "merge_rule",
                      "lease_seconds": "lease_seconds", "lease_wait_seconds": "lease_wait_seconds",
                      "memory_budget_mb": "memory_budget_mb"},
    "sensor_rules": {
        "lookback_days": "sensor_lookback_days", "max_runs_per_tick": "sensor_max_runs_per_tick",
        "max_objects_per_tick": "sensor_max_objects_per_tick", "time_budget_seconds": "sensor_time_budget_seconds",
        "tag_list_chars": "sensor_tag_list_chars", "reconcile_days": "reconcile_days",
        "reconcile_period_seconds": "reconcile_period_seconds",
    },
    "webhooks": {"urls": "webhook_urls", "secret": "webhook_secret", "timeout_seconds": "webhook_timeout_seconds",
                 "ui_url": "ui_url"},
    "postgres": {"dsn": "postgres_dsn", "pg_environment": "postgres_pg_environment"},
}
_CLASSES = {"storage": FailmapStorage, "failmap_rules": FailmapRules, "sensor_rules": SensorRules,
            "webhooks": Webhooks, "postgres": PostgresSink}
_VARIABLE = {v.field: v for v in VARIABLES}


def build_resources(settings: Settings | None = None) -> dict:
    """The resources of the code location.

    Without ``settings``: from the environment, every value a FAILMAP_* variable sets
    given as an ``EnvVar`` (read again by each run and sensor process, shown as such
    in the UI); the rest are the defaults. With ``settings`` (tests, the CLI): those
    values as they are."""
    from_env = settings is None
    s = Settings.from_env() if from_env else settings
    out = {}
    for name, mapping in _FIELDS.items():
        values = {}
        for res_field, set_field in mapping.items():
            var = _VARIABLE.get(set_field)
            value = getattr(s, set_field)
            if from_env and var is not None and is_set(var.name) and var.kind is not float:
                # Settings.from_env above has already checked the value
                value = dg.EnvVar.int(var.name) if var.kind is int else dg.EnvVar(var.name)
            values[res_field] = value
        out[name] = _CLASSES[name](**values)
    return out
