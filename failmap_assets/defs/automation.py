"""The automation conditions the assets share: when a day's derived tables follow the
runs they are computed from. Each is evaluated by an AutomationConditionSensor of its
group (off until turned on in the UI, like the bucket sensors)."""

from __future__ import annotations

from dagster import AssetSelection, AutomationCondition

# Any of its inputs materialized since the asset was last requested, none of them being
# written: compute it again. For a daily asset, the day's partition (not only the latest
# day: late files and re-runs change old days too). For an unpartitioned asset over
# daily inputs (the pattern index), once after any days changed: a backfill of 30 days
# gives one rebuild at its end, not 30.
FOLLOWS_ITS_DAY = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
)

# A day's similar wafers and anomaly scores: after that day's signatures change and the
# pattern index has been rebuilt since (so the earlier days it searches are in it; the
# index is requested by FOLLOWS_ITS_DAY on the same change). A rebuilt index alone
# requests nothing: earlier days' matches are "as of" the index they were computed
# with, and a rebuild would otherwise request every day. (``will_be_requested`` cannot
# order the two: an unpartitioned and a daily asset never share a run.)
_ITS_SIGNATURES_CHANGED = AutomationCondition.any_deps_match(AutomationCondition.newly_updated()).allow(
    AssetSelection.assets("wafer_signatures"))
_INDEX_REBUILT = AutomationCondition.any_deps_match(AutomationCondition.newly_updated()).allow(
    AssetSelection.assets("pattern_index"))
FOLLOWS_ITS_SIGNATURES = (
    _ITS_SIGNATURES_CHANGED.since_last_handled()
    & _INDEX_REBUILT.since(_ITS_SIGNATURES_CHANGED)
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
)
