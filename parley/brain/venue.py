"""A venue's booking rules from its agent-file data: hours, closed days, party size.

Pure: the caller passes the local ``now`` (its injected clock in the venue's time
zone). ``Venue.check`` says whether a request can be booked at all and, when not, why
(one ``reason``) and what would work instead (times that day, or the next open day):

    reason          when                                   suggests
    past            the time has passed (or is too soon)    later times today / the next open day
    closed_day      the venue is closed that weekday        the next open days, same time
    outside_hours   the time is outside the bookable hours  bookable times that day
    too_many        the party is over ``max_party_size``    nothing (call the venue)
    too_far         beyond ``book_ahead_days``              nothing
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from parley.brain.dates import WEEKDAYS, hhmm, minutes, say_time
from parley.config import VenueSpec

_SHORT = tuple(d[:3] for d in WEEKDAYS)


def _day_index(token: str) -> int:
    return _SHORT.index(token.strip().lower()[:3])


def parse_hours(hours: dict[str, str]) -> dict[int, list[tuple[int, int]]]:
    """``{"tue-sun": "12:00-22:00", "mon": "closed"}`` → weekday → [(open, close)]
    in minutes after midnight. Config validation has checked the format already."""
    out: dict[int, list[tuple[int, int]]] = {i: [] for i in range(7)}
    for key, value in hours.items():
        parts = [p for p in re.split(r"\s*-\s*", key.strip()) if p]
        first, last = _day_index(parts[0]), _day_index(parts[-1])
        days = [(first + i) % 7 for i in range((last - first) % 7 + 1)]
        ranges: list[tuple[int, int]] = []
        if str(value).strip().lower() != "closed":
            for span in str(value).split(","):
                start, end = (minutes(t) for t in span.split("-"))
                if start is not None and end is not None:
                    ranges.append((start, end if end > start else end + 24 * 60))
        for day in days:
            out[day] = ranges
    return out


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = "ok"
    times: tuple[str, ...] = ()  # other bookable times that day
    dates: tuple[dt.date, ...] = ()  # other days, same time
    details: dict[str, str] = field(default_factory=dict)


class Venue:
    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.hours = (
            parse_hours(spec.hours) if spec.hours else {i: [(0, 24 * 60)] for i in range(7)}
        )

    def open_days(self) -> list[int]:
        return [d for d in range(7) if self.hours[d]]

    def bookable(self, weekday: int) -> list[tuple[int, int]]:
        """Booking windows of a weekday: from opening until ``last_booking_min`` before close."""
        out = []
        for start, end in self.hours[weekday]:
            last = end - self.spec.last_booking_min
            if last >= start:
                out.append((start, last))
        return out

    def is_bookable_time(self, weekday: int, at: int) -> bool:
        return any(start <= at <= last for start, last in self.bookable(weekday))

    def open_any_day(self, at: int) -> bool:
        """Whether ``at`` (minutes) is a bookable time on some day: "9:00" vs "21:00"."""
        return any(self.is_bookable_time(d, at) for d in range(7))

    def slots(self, weekday: int, step: int = 30) -> list[int]:
        out: list[int] = []
        for start, last in self.bookable(weekday):
            t = start + (-start) % step
            while t <= last:
                out.append(t)
                t += step
        return out

    def check(self, day: dt.date, time: str, party_size: int, now: dt.datetime) -> Verdict:
        at = minutes(time)
        details = {"weekday": WEEKDAYS[day.weekday()].capitalize(), "hours": self.describe()}
        if party_size > self.spec.max_party_size:
            return Verdict(
                False, "too_many", details={**details, "max": str(self.spec.max_party_size)}
            )
        today = now.date()
        if day > today + dt.timedelta(days=self.spec.book_ahead_days):
            return Verdict(
                False, "too_far", details={**details, "days": str(self.spec.book_ahead_days)}
            )
        if at is None:
            return Verdict(False, "outside_hours", details=details)
        if not self.hours[day.weekday()]:
            return Verdict(False, "closed_day", dates=self._next_open(day, at), details=details)
        earliest = now.hour * 60 + now.minute + self.spec.min_notice_min
        if day < today or (day == today and at < earliest):
            later = tuple(
                hhmm(t) for t in self.slots(day.weekday()) if day == today and t >= earliest
            )
            if later:
                return Verdict(False, "past", times=later[:3], details=details)
            return Verdict(
                False, "past", dates=self._next_open(max(day, today), at), details=details
            )
        if not self.is_bookable_time(day.weekday(), at):
            options = self.slots(day.weekday())
            near = sorted(options, key=lambda t: abs(t - at))[:3]
            windows = self.bookable(day.weekday())
            details = {
                **details,
                "first": say_time(hhmm(windows[0][0])) if windows else "",
                "last": say_time(hhmm(windows[-1][1])) if windows else "",
            }
            return Verdict(
                False, "outside_hours", times=tuple(hhmm(t) for t in sorted(near)), details=details
            )
        return Verdict(True, details=details)

    def _next_open(self, day: dt.date, at: int) -> tuple[dt.date, ...]:
        out: list[dt.date] = []
        for ahead in range(1, 15):
            candidate = day + dt.timedelta(days=ahead)
            if self.hours[candidate.weekday()] and (
                self.is_bookable_time(candidate.weekday(), at)
                or not self.slots(candidate.weekday())
            ):
                out.append(candidate)
            if len(out) == 2:
                break
        return tuple(out)

    def describe(self) -> str:
        """ "Tuesday to Sunday from 12 pm to 10 pm; closed on Mondays"."""
        groups: list[tuple[list[int], list[tuple[int, int]]]] = []
        for day in range(7):
            if groups and groups[-1][1] == self.hours[day]:
                groups[-1][0].append(day)
            else:
                groups.append(([day], self.hours[day]))
        opened, closed = [], []
        for days, ranges in groups:
            names = WEEKDAYS[days[0]].capitalize()
            if len(days) > 1:
                names += f" to {WEEKDAYS[days[-1]].capitalize()}"
            if not ranges:
                closed += [WEEKDAYS[d].capitalize() + "s" for d in days]
                continue
            spans = " and ".join(
                f"from {say_time(hhmm(s % 1440))} to {say_time(hhmm(e % 1440))}" for s, e in ranges
            )
            opened.append(f"{names} {spans}")
        text = "; ".join(opened) if opened else "closed"
        if closed and opened:
            text += f"; closed on {' and '.join(closed)}"
        return text
