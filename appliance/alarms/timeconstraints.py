"""Aodh's time constraints: an alarm is evaluated only inside one of its windows.

A window opens at each time its cron ``start`` fires (in its ``timezone``, UTC when empty)
and stays open ``duration`` seconds. No constraint means always.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from croniter import croniter


def within(constraints: list[dict[str, Any]], now: float) -> bool:
    if not constraints:
        return True
    for tc in constraints:
        tz = zoneinfo.ZoneInfo(tc["timezone"]) if tc.get("timezone") else dt.UTC
        local = dt.datetime.fromtimestamp(now, tz)
        # croniter.match covers "now is exactly a start"; get_prev would skip it.
        if croniter.match(tc["start"], local):
            return True
        latest = croniter(tc["start"], local).get_prev(dt.datetime)
        if latest <= local <= latest + dt.timedelta(seconds=tc["duration"]):
            return True
    return False
