"""PersonDays behaves exactly like a dict of the repeat-days table's keys and values, whatever
the operations, with people who crossed once kept as array rows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hito.devices import Device, DeviceRegistry
from hito.pipeline.stages.repeat import day_of, is_marker, marker_name
from hito.pipeline.state import person_days
from hito.pipeline.state.person_days import PersonDays
from hito.pipeline.state.repeat_days import pack, table_key

DEVICES = ["cl-chacalluta-ckpt-01", "pe-santarosa-ckpt-02", "dev-1"]
# The registries the worker may reload: all, one device dropped, reordered with another.
REGISTRIES = [
    DeviceRegistry(Device(d, "site-a", "checkpoint", b"k" * 16) for d in ids)
    for ids in (DEVICES, DEVICES[1:], ["dev-2", *reversed(DEVICES)])
]
PEOPLE = [f"{n:032x}" for n in (0, 1, 2, 2**64, 2**64 + 1, 2**127, 2**128 - 1, 7 << 64)]
KEYS = st.one_of(
    st.builds(
        lambda p, site, e, person: table_key(p, f"{site}|e{e}:{person}"),
        st.integers(0, 3),
        st.sampled_from(["chacalluta", "santa-rosa"]),
        st.sampled_from([20790, 20791]),
        st.sampled_from(PEOPLE),
    ),
    st.builds(
        lambda p, e: table_key(p, marker_name("chacalluta", e)),
        st.integers(0, 3),
        st.sampled_from([20790, 20791]),
    ),
    st.sampled_from(
        [
            "1|chacalluta|e20790:ABC",
            "01|x|e1:" + "0" * 32,
            "2|x|e01:" + "0" * 32,
            # keys of no day (the table holds none; the indexes must not break on them)
            "0|x|#",
            "3|a",
            "|a|e1:",
            "nobar",
        ]
    ),
)
CROSSING = st.builds(
    lambda d, dev, seq: f"{d}|{dev}|{seq}",
    st.sampled_from(["entry", "exit"]),
    st.sampled_from([*DEVICES, "unregistered-1"]),
    st.one_of(st.integers(0, 2**53), st.sampled_from(["007", "-1", "", "1e3", str(2**63)])),
)
VALUES = st.one_of(
    st.builds(lambda c, p: pack([c], p), CROSSING, st.sampled_from(["2026-12-03.1", "v2"])),
    st.builds(lambda cs, p: pack(sorted(cs), p), st.lists(CROSSING, max_size=3), st.just("v")),
    st.sampled_from(["deleting", "", "v\n", "v\na|b", "v\na|b|1|2"]),
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, VALUES),
        st.tuples(st.just("del"), KEYS, st.none()),
        st.tuples(st.just("merge"), st.none(), st.none()),
        st.tuples(st.just("keep"), st.frozensets(st.integers(0, 3)), st.none()),
        st.tuples(st.just("registry"), st.integers(0, len(REGISTRIES) - 1), st.none()),
    ),
    max_size=120,
)


@settings(max_examples=600, deadline=None)
@given(ops=OPS)
def test_it_is_a_dict(ops: list[tuple[str, object, object]]) -> None:
    registry = [REGISTRIES[0]]
    mine, model = PersonDays(lambda: registry[0]), dict[str, str]()
    for op, key, value in ops:
        if op == "set":
            assert isinstance(key, str) and isinstance(value, str)
            mine[key] = value
            model[key] = value
        elif op == "del":
            assert isinstance(key, str)
            assert (key in mine) is (key in model)
            if key in model:
                del mine[key]
                del model[key]
        elif op == "merge":
            for rows in mine.days.values():
                rows.merge()
        elif op == "registry":
            assert isinstance(key, int)
            registry[0] = REGISTRIES[key]
        else:
            assert isinstance(key, frozenset)
            mine.keep_partitions(set(key))
            model = {k: v for k, v in model.items() if _kept(k, key)}
        assert len(mine) == len(model)
    assert dict(mine.items()) == model
    assert {k: mine[k] for k in model} == model
    # A day's keys and a partition's markers without a walk: from the indexes, exactly.
    seen_days = {("chacalluta", 20790), ("santa-rosa", 20791), ("x", 1), ("a", 1)}
    for p in range(4):
        named = {k: k[len(f"{p}|") :] for k in model if k.startswith(f"{p}|")}
        days = {k: _day(name) for k, name in named.items()}
        # Every day seen so far, emptied ones too (a stale index entry would show there).
        seen_days.update(d for d in days.values() if d is not None)
        for day in seen_days:
            in_rows = set(mine.row_keys((p, *day)))
            others = set(mine.other_keys(p, day))
            assert not in_rows & others
            assert in_rows | others == {k for k, d in days.items() if d == day}
        markers = {k for k, name in named.items() if days[k] and is_marker(name)}
        assert set(mine.marker_keys(p)) == markers


def _kept(key: str, partitions: frozenset[int]) -> bool:
    """Kept by keep_partitions: a key of an owned partition, or of none (not a number)."""
    partition = key.split("|")[0]
    return not partition.isdigit() or int(partition) in partitions


def _day(name: str) -> tuple[str, int] | None:
    try:
        return day_of(name)
    except ValueError:
        return None


def test_people_who_crossed_once_are_rows_and_merge_in_order() -> None:
    days = PersonDays(lambda: REGISTRIES[0])
    n = 3 * person_days.MERGE_AT + 5
    for i in range(n):  # in no particular order of pseudonym
        person = f"{(i * 0x9E3779B97F4A7C15) % 2**128:032x}"
        days[table_key(1, f"chacalluta|e20790:{person}")] = pack([f"entry|dev-1|{i}"], "v1")
    assert not days.other and len(days) == n
    (rows,) = days.days.values()
    hi = rows.columns[0]
    assert len(hi) == 3 * person_days.MERGE_AT and len(rows.recent) == 5
    assert list(hi) == sorted(hi)
    assert days.contexts == [("entry", "v1")]
    for i in range(n):
        person = f"{(i * 0x9E3779B97F4A7C15) % 2**128:032x}"
        assert days[table_key(1, f"chacalluta|e20790:{person}")] == f"v1\nentry|dev-1|{i}"


def test_values_without_a_row_form_are_kept_exactly_as_they_are() -> None:
    days = PersonDays(lambda: REGISTRIES[0])
    key = table_key(0, f"chacalluta|e20790:{PEOPLE[3]}")
    for odd in ("007", "-1", "", "1e3", str(2**63), " 1", "1 "):
        days[key] = f"v\nentry|dev-1|{odd}"
        assert days[key] == f"v\nentry|dev-1|{odd}" and key in days.other
    days[key] = f"v\nentry|dev-1|{2**63 - 1}"  # the largest seq a row holds
    assert not days.other and days[key] == f"v\nentry|dev-1|{2**63 - 1}"
    days[key] = "v\nentry|unregistered-1|1"  # a device the registry does not list
    assert days[key] == "v\nentry|unregistered-1|1" and key in days.other
    for odd_key in ("01|x|e1:" + "0" * 32, "1|x|e1:" + "0" * 31 + "A", "1|x|e1:" + "0" * 33):
        days[odd_key] = "v\nentry|dev-1|1"
        assert days[odd_key] == "v\nentry|dev-1|1" and odd_key in days.other
