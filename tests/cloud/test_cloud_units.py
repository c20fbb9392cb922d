"""The cloud's parts without a server: schema and migrations, URLs, records, tokens, text for terminals and CSV."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.cloud.database import DatabaseUrlError, create_cloud_engine, driver_url, shown_url, upgrade
from core.cloud.records import ExperienceIn, TaskCard
from core.cloud.tokens import new_token, parse_token, secret_matches
from core.text import csv_cell


def test_migrations_create_exactly_the_models_on_both_databases(database):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from core.cloud.schema import Base

    engine = create_cloud_engine(database)
    upgrade(engine)
    upgrade(engine)  # a second start changes nothing
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0001"
    engine.dispose()


def test_database_urls():
    assert driver_url("postgresql://u:secret@h:5/db") == "postgresql+psycopg://u:secret@h:5/db"
    assert driver_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert driver_url("sqlite:///x.db") == "sqlite:///x.db"
    assert driver_url("cloud.db").startswith("sqlite:////") and driver_url("cloud.db").endswith("/cloud.db")
    assert "secret" not in shown_url("postgresql://u:secret@h:5/db")
    with pytest.raises(DatabaseUrlError, match="scheme 'mysql' is not supported"):
        driver_url("mysql://h/db")
    with pytest.raises(DatabaseUrlError, match="in-memory"):
        create_cloud_engine("sqlite://")
    with pytest.raises(DatabaseUrlError, match="does not exist"):
        create_cloud_engine("sqlite:////no/such/folder/cloud.db")


def test_records_refuse_what_cannot_be_stored_or_makes_no_sense():
    assert TaskCard(name="x", classes={"a": 1}).classes == {"a": 1}
    for bad in ({"name": ""}, {"name": "x" * 257}, {"name": "x", "unknown": 1}, {"name": "x", "classes": {"a": -1}},
                {"name": "x", "classes": {"a": True}}, {"name": "nul\x00"}, {"name": 5}):
        with pytest.raises(ValidationError):
            TaskCard.model_validate(bad)
    good = {"scenario": "architecture", "transferred": {"architecture": "resnet18"}, "metric": "AUROC",
            "value_without": 0.8, "value_with": 0.9, "repetitions": 3}
    assert ExperienceIn.model_validate(good).value_with == 0.9
    for change in ({"scenario": "luck"}, {"transferred": {}}, {"value_with": float("nan")}, {"repetitions": 0},
                   {"value_without": "0.8"}, {"repetitions": 2.5}):
        with pytest.raises(ValidationError):
            ExperienceIn.model_validate({**good, **change})


def test_tokens_are_hashed_and_checked():
    token = new_token()
    public_id, secret = parse_token(token.token)
    assert public_id == token.public_id and secret not in token.secret_hash
    assert token.secret_hash.startswith("$argon2id$")
    assert secret_matches(public_id, secret, token.secret_hash)
    assert not secret_matches(public_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"), token.secret_hash)
    assert parse_token("tfe_short_x") is None and parse_token(token.token + "x") is None


def test_spreadsheet_formulas_are_neutralised_and_other_text_kept():
    for formula in ("=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx"):
        assert csv_cell(formula) == "'" + formula
    assert csv_cell("\rx") == "'\nx"  # a lone CR would split the row in some readers
    for text in ("plain", "<b>html</b>", "a=b", 0.5, 3):
        assert csv_cell(text) == text
