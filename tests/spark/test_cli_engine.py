"""`--engine spark` on the command line: the same JSON as the embedded engine, and clear errors."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def demo_folder(demo, spark, tmp_path_factory, make_duckdb_store):
    """A closed demo store with its events also written as the store's Parquet dataset (km.events)."""
    from keymoments.store.spark import write_events_dataset

    folder = tmp_path_factory.mktemp("cli")
    s = make_duckdb_store(folder / "km.duckdb", demo=demo)
    write_events_dataset(s, folder / "km.events")
    s.close()
    return folder



@pytest.mark.slow
def test_journey_json_on_spark_equals_duckdb(demo_folder, capsys, monkeypatch, cli):
    db = str(demo_folder / "km.duckdb")
    assert cli("journey", "--db", db, "--json") == 0
    duck = capsys.readouterr().out
    assert (
        cli("journey", "--db", db, "--json", "--engine", "spark", "--conf", "spark.sql.shuffle.partitions=2")
        == 0
    )
    spark = capsys.readouterr().out
    assert json.loads(duck)["events"] > 1000
    assert spark == duck
    monkeypatch.setenv("KM_ENGINE", "spark")  # the environment chooses the engine as well
    assert cli("segments", "--db", db, "--json") == 0
    via_env = capsys.readouterr().out
    monkeypatch.delenv("KM_ENGINE")
    assert cli("segments", "--db", db, "--json") == 0
    assert via_env == capsys.readouterr().out


@pytest.mark.slow
def test_a_spark_table_named_by_the_user_with_a_column_mapping(demo_folder, spark, capsys, cli):
    db = str(demo_folder / "km.duckdb")
    assert cli("journey", "--db", db, "--json") == 0
    duck = json.loads(capsys.readouterr().out)
    # a lakehouse table with its own column names and none of the store's derived columns
    frame = spark.read.parquet(str(demo_folder / "km.events"))
    frame = frame.drop("step", "next_touchpoint", "next_ts", "is_last", "event_date")
    frame.withColumnRenamed("ts", "event_time").withColumnRenamed(
        "touchpoint", "activity"
    ).createOrReplaceTempView("lake_events")
    code = cli("journey", "--db", db, "--json", "--engine", "spark", "--events-table", "lake_events",
               "--map", "event_time=ts", "--map", "activity=touchpoint")  # fmt: skip
    assert code == 0
    mine = json.loads(capsys.readouterr().out)
    assert mine["events"] == duck["events"] and mine["journeys"] == duck["journeys"]
    assert mine["transitions"] == duck["transitions"]  # step / next touchpoint derived by Spark windows


def test_engine_errors_say_what_to_do(demo_folder, tmp_path, capsys, cli):
    assert cli("journey", "--db", str(demo_folder / "km.duckdb"), "--engine", "sparc") == 2
    assert "Did you mean 'spark'" in capsys.readouterr().err
    assert cli("journey", "--db", str(demo_folder / "km.duckdb"), "--engine", "spark", "--events",
               str(tmp_path / "nothing")) == 2  # fmt: skip
    assert "ingest --engine spark" in capsys.readouterr().err
    assert cli("journey", "--db", str(demo_folder / "km.duckdb"), "--engine", "spark", "--conf", "oops") == 2
    assert "--conf takes key=value" in capsys.readouterr().err
