from gateway.models import StoredResponse
from gateway.stored_response_columns import STORED_RESPONSE_FIELDS, stored_response_names


def test_the_statements_name_every_column_of_the_model() -> None:
    # A field added to the model and not here would be read as missing and never written.
    assert sorted(STORED_RESPONSE_FIELDS) == sorted(
        field.attname for field in StoredResponse._meta.concrete_fields
    )


def test_the_write_names_every_column_but_the_database_id() -> None:
    names = stored_response_names()
    assert names.table == '"gateway_storedresponse"'
    assert names.response_id == '"response_id"'
    assert names.columns == '"id", ' + names.written
    assert names.written.startswith('"response_id", "organization_id", "team_id", "key_id", ')
    assert names.written_params == ", ".join(["%s"] * 14)
