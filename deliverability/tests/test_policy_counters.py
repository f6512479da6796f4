"""The policy service's counters, in the SQLite file and in Redis alike: an add that would pass one limit adds
nothing anywhere, each counter may take its own amount, a reset clears, the held list keeps its order."""

from deliverability.policy_counters import Count


def test_an_add_that_would_pass_one_limit_adds_nothing_anywhere(counters):
    assert counters.try_add([Count("a", 10), Count("b", 3)], 2) == (True, -1, 0)
    assert counters.try_add([Count("a", 10), Count("b", 3)], 2) == (False, 1, 2)
    assert counters.get(["a", "b", "c"]) == [2, 2, 0]


def test_each_counter_may_take_its_own_amount(counters):
    assert counters.try_add([Count("message", None), Count("ip", 1, 1)], 5)[0]
    assert not counters.try_add([Count("message", None), Count("ip", 1, 1)], 5)[0]
    assert counters.get(["message", "ip"]) == [5, 1]


def test_a_reset_clears_and_scan_finds_one_days_counters(counters):
    counters.try_add([Count("mbx:a@x.example:20261207", None), Count("mbx:b@x.example:20261208", None)], 4)
    assert counters.scan("mbx:", ":20261207") == {"mbx:a@x.example:20261207": 4}
    assert counters.reset(["mbx:a@x.example:20261207"]) == 1
    assert counters.get(["mbx:a@x.example:20261207"]) == [0]


def test_held_mail_is_listed_soonest_first_and_done_leaves_the_list(counters):
    counters.hold_add("BBBBBB1", 200.0, '{"ip": "192.0.2.2"}')
    counters.hold_add("AAAAAA1", 100.0, '{"ip": "192.0.2.1"}')
    assert [queue_id for queue_id, _, _ in counters.holds()] == ["AAAAAA1", "BBBBBB1"]
    assert [queue_id for queue_id, _, _ in counters.holds(150.0)] == ["AAAAAA1"]
    counters.hold_done("AAAAAA1")
    assert counters.hold_get("AAAAAA1") is None and counters.hold_get("BBBBBB1") == '{"ip": "192.0.2.2"}'
