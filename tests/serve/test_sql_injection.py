"""Names from data never run as SQL (issue 15, item 2): the issue's payload, posted as an attribute and as an
outcome by an admin, makes an analyst's analyses write no file, and the names come back as plain names."""

from __future__ import annotations

import shutil

import pytest

PAYLOAD = ('a" FROM attributes GROUP BY key; COPY (SELECT key_id, role, key_hash FROM api_keys) TO \'{path}\'; '
           'SELECT key AS "b')  # fmt: skip


@pytest.fixture(scope="module")
def hostile_api(small_demo_db, tmp_path_factory, api_class):
    db = tmp_path_factory.mktemp("inject") / "inject.duckdb"
    shutil.copyfile(small_demo_db, db)
    a = api_class(db)
    yield a
    a.close()


def test_the_issues_payload_writes_no_file(hostile_api, tmp_path):
    api = hostile_api
    as_attribute = PAYLOAD.format(path=tmp_path / "from-attribute.csv")
    as_outcome = PAYLOAD.format(path=tmp_path / "from-outcome.csv")
    ids = api.store.query("SELECT DISTINCT customer_id FROM events ORDER BY 1")["customer_id"].tolist()
    rows = [{"customer_id": c, as_attribute: "gold" if i % 2 else "silver", as_outcome: float(i % 3)}
            for i, c in enumerate(ids)]  # fmt: skip
    r = api.post("/api/v1/outcomes", json=rows)
    assert r.status_code == 200, r.text
    assert r.json()["attributes"] == [as_attribute] and r.json()["outcomes"] == [as_outcome]

    # an analyst's analyses read every attribute and outcome name (before the fix, the first wrote the file)
    answers = {}
    for path, params in [
        ("moments", {"outcome": "retained", "n_boot": 50}),
        ("moments", {"outcome": as_outcome, "n_boot": 50}),
        ("segments", {}),
        ("peak-end", {"outcome": as_outcome}),
    ]:
        r = api.get(f"/api/v1/analyses/{path}", role="analyst", params=params)
        answers[(path, params.get("outcome"))] = (r.status_code, r.text[:300])
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the COPY never ran
    assert all(code == 200 for code, _ in answers.values()), [
        (k[0], v) for k, v in answers.items() if v[0] != 200
    ]

    wide = api.store.attributes_wide()
    assert as_attribute in wide.columns
    got = wide.set_index("customer_id")[as_attribute].reindex(ids).tolist()
    assert got == ["gold" if i % 2 else "silver" for i in range(len(ids))]
    out = api.store.outcomes_wide([as_outcome]).set_index("customer_id")[as_outcome].reindex(ids).tolist()
    assert out == [float(i % 3) for i in range(len(ids))]
    assert list(tmp_path.iterdir()) == []


def test_the_servers_sql_cannot_touch_files(tmp_path):
    """Defence in depth: the store `keymoments serve` opens (and every read-only open) refuses COPY, ATTACH and
    file reads, whatever SQL reaches it."""
    import duckdb

    from keymoments.store.store import Store

    for kwargs in ({"external_access": False}, {"read_only": True}):
        path = tmp_path / "x.duckdb"
        if not path.exists():
            Store(path).close()
        with Store(path, **kwargs) as store:
            for sql in (f"COPY (SELECT 1) TO '{tmp_path / 'leak.csv'}'", f"ATTACH '{tmp_path / 'other.duckdb'}' AS o",
                        "SELECT * FROM read_csv('/etc/hostname')"):  # fmt: skip
                with pytest.raises(duckdb.Error, match="disabled by config|Permission"):
                    store.query(sql)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["x.duckdb"]
