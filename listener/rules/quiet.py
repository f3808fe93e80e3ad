"""The common case of a baseline rule, decided in one step: a mention came into a group with nothing
open, its rule does not hold, and the group's timer is already early enough.

After a mention joins a group's window the engine asks whether the rule holds (`holds_now`) and
then re-times the group (`Engine._settle`: forget it, or make sure its timer comes at the first
departure that could make the rule hold, `drains.py`). For a spike or sentiment-shift rule fed
every mention of a platform or watch, that is a dozen small calls per mention, and almost always
the answer is "no, and the timer stays". The check compiled here gives that answer directly from
what the group already holds (its baseline, computed once per history bucket, and its remembered
first departure in a later bucket), with the same values compared the same way: when it says
quiet, asking in full would have found the rule not holding, counted the same mention as lacking
history, and changed nothing in the timers or the queue of draining groups. When it cannot tell
(a new bucket, a timer not yet set, a mention that might make it hold) it says no and the engine
asks in full. tests/test_engine_compiled.py compares the two.
"""

from __future__ import annotations

from typing import Callable

from listener.rules.baseline import BaselineValue
from listener.rules.drains import shift_departure
from listener.rules.model import RuleBase, SentimentShiftRule, SpikeRule
from listener.rules.state import GroupState

Quiet = Callable[[GroupState, float, "float | None"], bool]


def compile_quiet(rule: RuleBase, baseline_of: Callable[[GroupState, float, float | None], BaselineValue],
                  lacks_history: Callable[[str], object], width_s: float) -> Quiet | None:
    """For a spike or sentiment-shift rule: `quiet(state, now, first_ts)`, asked of a group with no
    episode, not blocked, right after a mention joined its window. True when the rule does not hold
    and re-timing the group would change nothing; it then has done what asking in full does besides
    (`lacks_history(reason)` for a mention that came in with too little history behind it).

    `baseline_of` is the rule's baseline (cached per history bucket). None for other kinds.
    """
    if not isinstance(rule, (SpikeRule, SentimentShiftRule)):
        return None
    window_s = rule.window
    min_count = rule.min_count

    def timed_baseline(state: GroupState, now: float, first_ts: float | None) -> BaselineValue | None:
        """The rule's baseline now, if the group's timer comes no later than the first departure from
        its window in a later history bucket (None: that departure is not remembered for this bucket
        yet, or the timer is later or unset)."""
        look = state.bucket_look
        if look is None or look[0] != now // width_s or state.timer_due > look[1]:
            return None
        return baseline_of(state, now, first_ts)  # (remembered per bucket too)

    if isinstance(rule, SpikeRule):
        factor, min_mads = rule.factor, rule.min_mads

        def spike_quiet(state: GroupState, now: float, first_ts: float | None) -> bool:
            n = len(state.window)
            if n < min_count:  # cannot hold; re-timing would queue it to drain, if it is not queued yet
                return state.draining
            base = timed_baseline(state, now, first_ts)  # (a spike rule is next looked at in a later bucket)
            if base is None:
                return False
            if not base.ready:
                lacks_history(base.reason)
                return True
            if n < factor * base.count:
                return True
            mad = base.mad
            return not (mad is None or min_mads <= 0 or n >= base.count + min_mads * mad)

        return spike_quiet

    drop, min_baseline = rule.drop, rule.min_baseline_count

    def shift_quiet(state: GroupState, now: float, first_ts: float | None) -> bool:
        n = len(state.window)
        if n < min_count:
            return state.draining
        base = timed_baseline(state, now, first_ts)
        if base is None:
            return False
        mean = base.mean
        if not base.ready or mean is None or base.mentions < min_baseline:
            lacks_history(shift_unready_reason(base, min_baseline))
            return True  # (and it is next looked at in a later bucket)
        if round(mean - round(state.sum_e4 / (n * 10000), 4), 4) >= drop:
            return False  # it holds
        # Its next look: the departure that could bring the mean down far enough, or a later bucket.
        return state.timer_due <= shift_departure(state, mean, drop, window_s)

    return shift_quiet


def shift_unready_reason(base: BaselineValue, min_baseline: int) -> str:
    """Why a sentiment-shift rule's baseline cannot be used yet."""
    return base.reason or f"a baseline of {base.mentions} mentions, fewer than {min_baseline}"
