"""Each anomaly pattern, built by hand, and its near misses."""

from __future__ import annotations

from datetime import date, timedelta

from hub.clearing.domain.anomalies import AnomalyRule, Bill, flags_for

RULE = AnomalyRule()
DAY = date(2026, 3, 14)


def bill(sid, person="p1", treat="440100", hospital="H1", kind="INPATIENT", begin=DAY, end=DAY, fee=500_000, day=DAY):
    return Bill(sid, person, "360400", treat, hospital, kind, begin, end, fee, day)


def kinds(today, history):
    baseline: dict = {}
    for b in history:
        if b.clearing_date < DAY:
            count, total = baseline.get(b.hospital_code, (0, 0))
            baseline[b.hospital_code] = (count + 1, total + b.medfee_fen)
    return [(f.kind, f.settlement_ids) for f in flags_for(RULE, today, history, baseline)]


def test_one_person_in_two_regions_on_overlapping_days():
    a = bill("S1", begin=DAY - timedelta(3), end=DAY)
    b = bill("S2", treat="510900", hospital="H2", kind="GENERAL_OUTPATIENT", begin=DAY - timedelta(1), end=DAY - timedelta(1))
    assert ("OVERLAPPING_REGIONS", ("S1", "S2")) in kinds([a, b], [a, b])
    # near misses: the next day in the other region; the same region on the same days
    c = bill("S3", treat="510900", hospital="H2", begin=DAY + timedelta(1), end=DAY + timedelta(1))
    d = bill("S4", hospital="H9", begin=DAY - timedelta(2), end=DAY - timedelta(2), kind="GENERAL_OUTPATIENT")
    assert not [k for k, _ in kinds([a, c, d], [a, c, d]) if k == "OVERLAPPING_REGIONS"]


def test_a_readmission_within_15_days_and_one_after():
    first = bill("S1", begin=DAY - timedelta(30), end=DAY - timedelta(20), day=DAY - timedelta(20))
    again = bill("S2", begin=DAY - timedelta(5), end=DAY)  # 15 days after the first ended
    assert ("READMISSION", ("S1", "S2")) in kinds([again], [first, again])
    later = bill("S3", begin=DAY - timedelta(4), end=DAY)  # 16 days after
    assert "READMISSION" not in [k for k, _ in kinds([later], [first, later])]
    outpatient = bill("S4", kind="GENERAL_OUTPATIENT", begin=DAY - timedelta(19), end=DAY - timedelta(19))
    assert "READMISSION" not in [k for k, _ in kinds([outpatient], [first, outpatient])]


def test_bills_just_under_a_threshold_three_times():
    # 10,000 yuan: within 2% below is 9,800.00 .. 9,999.99
    under = [bill(f"S{i}", person=f"p{i}", fee=fee) for i, fee in enumerate((980_000, 999_999, 990_000))]
    assert ("JUST_UNDER_THRESHOLD", ("S0", "S1", "S2")) in kinds(under, under)
    near = [bill("T0", person="q0", fee=979_999), bill("T1", person="q1", fee=1_000_000), *under[:2]]
    assert "JUST_UNDER_THRESHOLD" not in [k for k, _ in kinds(near, near)]  # one below the band, one at the line


def test_a_hospitals_average_bill_jumping_by_half():
    past = [bill(f"B{i}", person=f"b{i}", hospital="H7", fee=400_000, kind="GENERAL_OUTPATIENT",
                 day=DAY - timedelta(i + 1)) for i in range(3)]
    now = [bill(f"N{i}", person=f"n{i}", hospital="H7", fee=600_000, kind="GENERAL_OUTPATIENT") for i in range(3)]
    assert ("HOSPITAL_JUMP", ("N0", "N1", "N2")) in kinds(now, past + now)  # 6,000 against 4,000: +50 %
    slight = [bill(f"M{i}", person=f"m{i}", hospital="H7", fee=599_999, kind="GENERAL_OUTPATIENT") for i in range(3)]
    assert "HOSPITAL_JUMP" not in [k for k, _ in kinds(slight, past + slight)]
    too_few = now[:2]
    assert "HOSPITAL_JUMP" not in [k for k, _ in kinds(too_few, past + too_few)]


def test_a_person_with_a_hundred_bills_is_flagged_once_and_not_paired():
    many = [bill(f"S{i:03d}", treat=("440100", "510900")[i % 2], hospital=f"H{i % 2}") for i in range(100)]
    found = kinds(many[:3], many)
    assert [k for k, _ in found if k != "JUST_UNDER_THRESHOLD"] == ["MANY_BILLS"]
    assert dict(found)["MANY_BILLS"] == ("S000", "S001", "S002")
