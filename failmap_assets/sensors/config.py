"""Sensor tuning from the environment (FAILMAP_SENSOR_*), with defaults.

Kept apart from the ``Settings`` object on purpose (only the env parsers are shared): these knobs only shape how
the sensors pace themselves, never where data lives. Read on every tick (cheap), so a
changed value takes effect without a code reload; only the tick interval is fixed
when the code location loads, because Dagster needs it at definition time.
"""

from __future__ import annotations

from dataclasses import dataclass

from failmap_assets.settings import env_float, env_int


@dataclass(frozen=True)
class SensorConfig:
    #: days before today (fab time) that are re-listed every tick; older days are closed
    lookback_days: int = 2
    #: at most this many run requests (= day partitions) per tick and sensor
    max_runs_per_tick: int = 5
    #: at most this many new objects taken per tick and sensor; the rest waits for the next tick
    max_objects_per_tick: int = 5000
    #: stop listing after this many seconds (Dagster kills a sensor evaluation at 60 s)
    time_budget_seconds: float = 15.0
    #: minimum_interval_seconds of the three sensors (read once, at import)
    interval_seconds: int = 30
    #: the A/B pairing window: a B written less than this after midnight also re-runs the
    #: previous day, an A written less than this before midnight also re-runs the next day
    pair_window_seconds: int = 10
    #: characters of the human-readable object list in a run's tag
    tag_list_chars: int = 500

    @classmethod
    def from_env(cls) -> "SensorConfig":
        d = cls()
        return cls(
            lookback_days=env_int("FAILMAP_SENSOR_LOOKBACK_DAYS", d.lookback_days, 0),
            max_runs_per_tick=env_int("FAILMAP_SENSOR_MAX_RUNS_PER_TICK", d.max_runs_per_tick, 1),
            max_objects_per_tick=env_int("FAILMAP_SENSOR_MAX_OBJECTS_PER_TICK", d.max_objects_per_tick, 1),
            time_budget_seconds=env_float("FAILMAP_SENSOR_TIME_BUDGET_SECONDS", d.time_budget_seconds, 0.1),
            interval_seconds=env_int("FAILMAP_SENSOR_INTERVAL_SECONDS", d.interval_seconds, 1),
            # the window the assets pair with (definitions.py reads the same variable)
            pair_window_seconds=env_int("FAILMAP_PAIR_WINDOW_S", d.pair_window_seconds, 0),
            tag_list_chars=env_int("FAILMAP_SENSOR_TAG_LIST_CHARS", d.tag_list_chars, 0),
        )
