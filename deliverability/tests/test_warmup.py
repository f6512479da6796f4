"""The warmup rules as tables (deliverability.warmup, no database): the reference plan's steps and caps, a plan's
problems named by field, starting again after rest or 30 idle days, and the daily gate at each threshold's edge with
its minimum sample and wider windows."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from deliverability import warmup
from deliverability.warmup import ADVANCE, DONE, HOLD, RESTART, STANDBY, STEP_BACK, Figures, Gates, Plan

NOW = datetime(2026, 12, 7, 5, 29, tzinfo=UTC)
DAY = timedelta(days=1)


def test_the_default_plan_is_the_references_then_plus_25_percent_a_day_to_the_target():
    assert warmup.schedule(warmup.DEFAULT_PLAN) == (
        *(200, 400, 700, 1_000, 1_500, 2_500, 4_000, 6_000, 9_000, 13_000, 18_000, 25_000, 35_000, 50_000),
        62_500,
        78_125,
        97_656,
        100_000,
    )
    assert warmup.total_steps(warmup.DEFAULT_PLAN) == 18


@pytest.mark.parametrize(
    "plan, step, expected",
    [
        (warmup.DEFAULT_PLAN, 1, (200, 12)),
        (warmup.DEFAULT_PLAN, 4, (1_000, 62)),
        (warmup.DEFAULT_PLAN, 14, (50_000, 3_125)),
        (warmup.DEFAULT_PLAN, 15, (62_500, 3_906)),
        (warmup.DEFAULT_PLAN, 18, (100_000, 6_250)),
        (warmup.DEFAULT_PLAN, 99, (100_000, 6_250)),  # past the end: the last step
        (warmup.DEFAULT_PLAN, 0, (200, 12)),  # below the first: the first
        (Plan(steps=(10, 20), target_daily=30), 1, (10, 1)),  # the hourly cap is at least 1
        (Plan(steps=(10, 20), target_daily=30), 3, (25, 1)),
        (Plan(steps=(10, 20), target_daily=30), 4, (30, 1)),
        (Plan(target_daily=5_500), 8, (5_500, 343)),  # listed steps over the target give way to it
    ],
)
def test_caps_of_a_step_are_its_daily_volume_and_a_16th_of_it_an_hour(plan, step, expected):
    assert warmup.caps(plan, step) == expected


@pytest.mark.parametrize(
    "plan, expected",
    [
        (Plan(target_daily=5_500), (200, 400, 700, 1_000, 1_500, 2_500, 4_000, 5_500)),
        (Plan(steps=(100,), growth_percent=50, target_daily=300), (100, 150, 225, 300)),
        (Plan(steps=(100, 200), target_daily=200), (100, 200)),
        (Plan(steps=(500,), target_daily=100), (100,)),
        (Plan(steps=(1,), growth_percent=Decimal("10"), target_daily=4), (1, 2, 3, 4)),  # at least one more a day
    ],
)
def test_the_schedule_ends_at_the_target(plan, expected):
    assert warmup.schedule(plan) == expected


@pytest.mark.parametrize(
    "values, field, words",
    [
        ({"steps": []}, "steps", "as a list of whole numbers"),
        ({"steps": "200,400"}, "steps", "as a list of whole numbers"),
        ({"steps": [200, 0]}, "steps", "at least 1"),
        ({"steps": [200, "400"]}, "steps", "whole number"),
        ({"steps": [200, True]}, "steps", "whole number"),
        ({"steps": [400, 200]}, "steps", "more than the one before"),
        ({"steps": [200, 200]}, "steps", "more than the one before"),
        ({"target_daily": 0}, "target_daily", "at least 1"),
        ({"growth_percent": 0}, "growth_percent", "more than 0"),
        ({"growth_percent": 101}, "growth_percent", "at most 100"),
        ({"growth_percent": "fast"}, "growth_percent", "a percentage"),
        ({"growth_percent": Decimal("0.01"), "target_daily": 10**9}, "target_daily", "over 400 steps"),
    ],
)
def test_a_plan_that_cannot_work_is_refused_naming_the_field(values, field, words):
    plan = {"steps": [200, 400], "growth_percent": 25, "target_daily": 1000, **values}
    problems = warmup.plan_problems(**plan)
    assert list(problems) == [field] and words in problems[field]


@pytest.mark.parametrize(
    "gates, field, words",
    [
        (Gates(advance_bounce_below=6), "advance_bounce_below", "below the rate that steps back"),
        (Gates(step_back_bounce_at=11), "step_back_bounce_at", "must not be above the rate that pulls"),
        (Gates(advance_complaint_below=Decimal("0.2")), "advance_complaint_below", "below the rate that steps back"),
        (Gates(standby_complaint_at=Decimal("0.09")), "step_back_complaint_at", "must not be above"),
        (Gates(standby_bounce_at=0), "standby_bounce_at", "more than 0 and at most 100"),
        (Gates(standby_bounce_at=101), "standby_bounce_at", "more than 0 and at most 100"),
        (Gates(min_attempts=0), "min_attempts", "at least 1"),
    ],
)
def test_thresholds_that_cannot_work_together_are_refused_naming_the_field(gates, field, words):
    problems = warmup.plan_problems(steps=[200], growth_percent=25, target_daily=1000, gates=gates)
    assert list(problems) == [field] and words in problems[field]


def test_the_reference_plan_has_no_problems():
    plan = warmup.DEFAULT_PLAN
    assert (
        warmup.plan_problems(
            steps=list(plan.steps), growth_percent=plan.growth_percent, target_daily=plan.target_daily, gates=plan.gates
        )
        == {}
    )


def one_day(attempts, bounces=0, complaints=0):
    return [(24, Figures(attempts, bounces, complaints))]


@pytest.mark.parametrize(
    "windows, action",
    [
        # hard bounces, at each edge (1000 attempts: 10 bounces = 1 %)
        (one_day(1000, 19), ADVANCE),
        (one_day(1000, 20), HOLD),  # 2 %: hold
        (one_day(1000, 49), HOLD),
        (one_day(1000, 50), STEP_BACK),  # 5 %
        (one_day(1000, 99), STEP_BACK),
        (one_day(1000, 100), STANDBY),  # 10 %
        # complaints (10000 attempts: 1 complaint = 0.01 %)
        (one_day(10_000, 0, 7), ADVANCE),
        (one_day(10_000, 0, 8), HOLD),  # 0.08 %: not below it
        (one_day(10_000, 0, 9), HOLD),
        (one_day(10_000, 0, 10), STEP_BACK),  # 0.1 %
        (one_day(10_000, 0, 29), STEP_BACK),
        (one_day(10_000, 0, 30), STANDBY),  # 0.3 %
        # the worse of the two wins
        (one_day(10_000, 600, 0), STEP_BACK),
        (one_day(10_000, 100, 30), STANDBY),
        (one_day(10_000, 500, 5), STEP_BACK),
        # the minimum sample: 500 attempts in the narrowest window that has them
        (one_day(500, 9), ADVANCE),
        (one_day(499, 0), HOLD),
        ([(24, Figures(499)), (72, Figures(600, 30))], STEP_BACK),
        ([(24, Figures(100)), (72, Figures(300)), (168, Figures(800, 1))], ADVANCE),
        ([(24, Figures(100, 99)), (72, Figures(300, 99)), (168, Figures(499, 99))], HOLD),  # too little anywhere
        ([(24, Figures(0)), (72, Figures(0)), (168, Figures(0))], HOLD),
    ],
)
def test_the_gate_with_the_reference_thresholds(windows, action):
    assert warmup.gate(Gates(), windows).action == action


@pytest.mark.parametrize(
    "gates, figures, action",
    [
        (Gates(min_attempts=100), Figures(100, 1), ADVANCE),
        (Gates(min_attempts=100, advance_bounce_below=1), Figures(100, 1), HOLD),
        (Gates(step_back_bounce_at=3), Figures(1000, 30), STEP_BACK),
        (Gates(standby_complaint_at=Decimal("0.2")), Figures(10_000, 0, 20), STANDBY),
        (Gates(min_attempts=2000), Figures(1999), HOLD),
    ],
)
def test_the_gate_uses_the_plans_own_thresholds(gates, figures, action):
    assert warmup.gate(gates, [(24, figures)]).action == action


@pytest.mark.parametrize(
    "windows, reason",
    [
        (
            one_day(1000, 19),
            "advance: hard bounces < 2 % and complaints < 0.08 % (24 h: 1000 attempts, 19 hard bounces (1.9 %), 0 "
            "complaints (0 %))",
        ),
        (
            one_day(1000, 30),
            "hold: hard bounces between 2 % and 5 % (24 h: 1000 attempts, 30 hard bounces (3 %), 0 complaints (0 %))",
        ),
        (
            one_day(10_000, 0, 9),
            "hold: complaints between 0.08 % and 0.1 % (24 h: 10000 attempts, 0 hard bounces (0 %), 9 complaints "
            "(0.09 %))",
        ),
        (
            one_day(3000, 1, 10),
            "standby: complaints >= 0.3 % (24 h: 3000 attempts, 1 hard bounces (0.033 %), 10 complaints (0.333 %))",
        ),
        (
            [(24, Figures(10)), (72, Figures(20)), (168, Figures(40, 2))],
            "hold: not enough mail to judge (7 days: 40 attempts, 2 hard bounces (5 %), 0 complaints (0 %); at "
            "least 500 needed)",
        ),
        (
            [(24, Figures(10)), (72, Figures(600, 60))],
            "standby: hard bounces >= 10 % (72 h: 600 attempts, 60 hard bounces (10 %), 0 complaints (0 %))",
        ),
    ],
)
def test_each_verdict_says_why_in_one_line_with_its_figures(windows, reason):
    verdict = warmup.gate(Gates(), windows)
    assert verdict.reason == reason and "\n" not in verdict.reason
    assert (verdict.window_hours, verdict.figures) == windows[-1]  # the one judged: each table row ends with it


def decide(step=3, started=NOW - 2 * DAY, last_sent=NOW - DAY, warming_since=NOW - 100 * DAY, windows=None, plan=None):
    return warmup.decide(
        plan or warmup.DEFAULT_PLAN,
        step=step,
        step_started_at=started,
        last_sent_at=last_sent,
        warming_since=warming_since,
        windows=windows or one_day(1000),
        now=NOW,
    )


@pytest.mark.parametrize(
    "kwargs, action, step_to, words",
    [
        ({}, ADVANCE, 4, "advance: hard bounces < 2 %"),
        ({"windows": one_day(1000, 30)}, HOLD, 3, "hold: hard bounces between 2 % and 5 %"),
        ({"windows": one_day(1000, 50)}, STEP_BACK, 2, "step back: hard bounces >= 5 %"),
        ({"step": 1, "windows": one_day(1000, 50)}, STEP_BACK, 1, "already at step 1"),
        ({"windows": one_day(1000, 100)}, STANDBY, 3, "standby: hard bounces >= 10 %"),
        ({"step": 18}, DONE, 18, "done: the plan's target 100000/day reached; advance"),
        ({"step": 40}, DONE, 18, "done"),  # a step past the end (the plan was shortened) is its last
        ({"started": NOW - timedelta(hours=19)}, HOLD, 3, "started less than 20 h ago"),
        ({"started": NOW - timedelta(hours=19), "windows": one_day(1000, 50)}, STEP_BACK, 2, "step back"),
        # idle: over 30 days since the last send (or since the step started, when it never sent)
        ({"started": NOW - 40 * DAY, "last_sent": NOW - 31 * DAY}, RESTART, 1, "idle 31 days (over 30)"),
        ({"started": NOW - 40 * DAY, "last_sent": NOW - 30 * DAY}, ADVANCE, 4, "advance"),
        ({"started": NOW - 40 * DAY, "last_sent": None}, RESTART, 1, "idle 40 days"),
        ({"step": 1, "started": NOW - 40 * DAY, "last_sent": None}, ADVANCE, 2, "advance"),  # already at step 1
        # back from rest: WARMING again since its warmup last moved
        ({"warming_since": NOW - DAY}, RESTART, 1, "WARMING again since its warmup last moved"),
        ({"step": 1, "warming_since": NOW - DAY}, RESTART, 1, "starts again at step 1"),
    ],
)
def test_the_days_decision(kwargs, action, step_to, words):
    decision = decide(**kwargs)
    assert (decision.action, decision.step_to) == (action, step_to)
    assert words in decision.reason


def test_a_decision_keeps_its_figures_for_the_history():
    decision = decide(windows=[(24, Figures(100)), (72, Figures(700, 7, 0))])
    assert decision.as_dict() == {
        "action": "advance",
        "step_from": 3,
        "step_to": 4,
        "window_hours": 72,
        "attempts": 700,
        "hard_bounces": 7,
        "complaints": 0,
        "reason": "advance: hard bounces < 2 % and complaints < 0.08 % (72 h: 700 attempts, 7 hard bounces (1 %), 0 "
        "complaints (0 %))",
    }
    restart = decide(warming_since=NOW - DAY)
    assert (restart.figures, restart.as_dict()["window_hours"]) == (None, None)
