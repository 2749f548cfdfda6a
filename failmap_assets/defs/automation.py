"""The automation conditions the assets share: when a day's derived tables follow the
runs they are computed from. Each is evaluated by an AutomationConditionSensor of its
group (off until turned on in the UI, like the bucket sensors)."""

from __future__ import annotations

from dagster import AssetSelection, AutomationCondition

# Any day partition materialized since the asset was last requested: compute the day
# again (once its runs are over). Not limited to the latest day: late files and
# re-runs change old days too.
FOLLOWS_ITS_DAY = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
)

# An unpartitioned asset over every day (the pattern index): once after any day of its
# inputs changed, when none of them is being written (a backfill of 30 days gives one
# rebuild at its end, not 30).
FOLLOWS_ANY_DAY = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
)

# A day's similar wafers and anomaly scores: after that day's signatures change and the
# pattern index has been rebuilt since (so the earlier days it searches are in it; the
# index is requested by FOLLOWS_ANY_DAY on the same change). A rebuilt index alone
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
