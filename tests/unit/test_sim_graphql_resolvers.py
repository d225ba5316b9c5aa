"""Every field of the simulator's GraphQL schema has a resolver on ``Root`` (most of them entries of the
``_calls``/``_upload_auth`` table), and every private field the server guards is a field of the schema."""

from __future__ import annotations

from numerflow.simulator.graphql_api import PRIVATE_FIELDS, Root, schema


def test_every_query_and_mutation_field_has_a_resolver() -> None:
    sch = schema()
    for kind in (sch.query_type, sch.mutation_type):
        assert kind is not None
        missing = sorted(name for name in kind.fields if not callable(getattr(Root, name, None)))
        assert missing == [], f"{kind.name} fields without a resolver: {missing}"


def test_private_fields_are_schema_fields() -> None:
    sch = schema()
    assert sch.query_type is not None and sch.mutation_type is not None
    known = set(sch.query_type.fields) | set(sch.mutation_type.fields)
    assert sorted(PRIVATE_FIELDS - known) == []
