"""The common case of a baseline rule, decided in one step: a mention came into a group with nothing
open, its rule does not hold, and the group's timer is already early enough.

After a mention joins a group's window the engine asks whether the rule holds (`holds_now`) and
then re-times the group (`Engine._settle`: forget it, or make sure its timer comes at the first
departure that could make the rule hold, `drains.py`). For a spike or sentiment-shift rule fed
every mention of a platform or watch, the answer is almost always "no, and the timer stays".
The check compiled here asks the rule's own `holds_now` and then reads the second half of the
answer from what the group already remembers for the current history bucket (its first departure
in a later bucket, and its baseline) instead of re-timing it: when it says quiet, re-timing would
have changed nothing in the timers or the queue of draining groups. When it cannot tell (a new
bucket, a timer not yet set) it says no and the engine asks in full.
tests/test_engine_compiled.py compares the two."""

from __future__ import annotations

from typing import Callable

from listener.rules.baseline import BaselineValue, usable_mean
from listener.rules.drains import shift_departure
from listener.rules.model import RuleBase, SentimentShiftRule, SpikeRule
from listener.rules.state import GroupState

Quiet = Callable[[GroupState, float, "float | None"], bool]
Holds = Quiet  # a rule's compiled "does it hold now?" (RuleRuntime.holds_now)
BaselineOf = Callable[[GroupState, float, "float | None"], BaselineValue]


def compile_quiet(rule: RuleBase, holds_now: Holds, baseline_of: BaselineOf, width_s: float) -> Quiet | None:
    """For a spike or sentiment-shift rule: `quiet(state, now, first_ts)`, asked of a group with no
    episode, not blocked, right after a mention joined its window. True when the rule does not hold
    (asked of the rule's own `holds_now`, which also counts a mention that came in with too little
    history behind it) and re-timing the group would change nothing.

    `baseline_of` is the rule's baseline (remembered per history bucket). None for other kinds.
    """
    if not isinstance(rule, (SpikeRule, SentimentShiftRule)):
        return None
    window_s = rule.window
    min_count = rule.min_count

    def timer_stands(state: GroupState, now: float) -> bool:
        """Whether the group's timer comes no later than the first departure from its window in a
        later history bucket (False too when that departure is not remembered for this bucket yet)."""
        look = state.bucket_look
        return look is not None and look[0] == now // width_s and state.timer_due <= look[1]

    if isinstance(rule, SpikeRule):

        def spike_quiet(state: GroupState, now: float, first_ts: float | None) -> bool:
            if len(state.window) < min_count:  # cannot hold; re-timing would queue it to drain, if not queued yet
                return state.draining
            # (A spike rule is next looked at in a later bucket: departures only lower its count.)
            return timer_stands(state, now) and not holds_now(state, now, first_ts)

        return spike_quiet

    drop, min_baseline = rule.drop, rule.min_baseline_count

    def shift_quiet(state: GroupState, now: float, first_ts: float | None) -> bool:
        if len(state.window) < min_count:
            return state.draining
        if not timer_stands(state, now) or holds_now(state, now, first_ts):
            return False
        mean = usable_mean(baseline_of(state, now, first_ts), min_baseline)
        if mean is None:
            return True  # (it lacks history: it is next looked at in a later bucket)
        # Its next look: the departure that could bring the mean down far enough, or a later bucket.
        return state.timer_due <= shift_departure(state, mean, drop, window_s)

    return shift_quiet
