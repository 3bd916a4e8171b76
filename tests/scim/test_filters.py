from __future__ import annotations

import pytest

from tenants.scim.errors import ScimError
from tenants.scim.filters import (
    And,
    AttrPath,
    Compare,
    Not,
    Or,
    PatchPath,
    Present,
    ScimFilterError,
    ValuePath,
    filter_matches,
    filter_parse,
    patch_path_parse,
)

ALICE = {
    "id": "7",
    "externalId": "Ext-1",
    "userName": "Alice@Acme.io",
    "name": {"givenName": "Alice", "familyName": "Liddell"},
    "emails": [
        {"value": "alice@acme.io", "type": "work", "primary": True},
        {"value": "alice@home.example", "type": "home"},
    ],
    "active": True,
    "meta": {"lastModified": "2026-03-01T10:00:00Z"},
    "loginCount": 3,
}


def test_parse_tree_and_precedence() -> None:
    expr = filter_parse('userName eq "a" or not (active eq false) and name.familyName pr')
    assert expr == Or(
        Compare(AttrPath("username"), "eq", "a"),
        And(
            Not(Compare(AttrPath("active"), "eq", False)),
            Present(AttrPath("name", "familyname")),
        ),
    )


def test_parse_value_path_urn_and_literals() -> None:
    assert filter_parse('emails[type eq "work" and value co "@"]') == ValuePath(
        AttrPath("emails"),
        And(Compare(AttrPath("type"), "eq", "work"), Compare(AttrPath("value"), "co", "@")),
    )
    assert filter_parse('urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"') == Compare(
        AttrPath("username"), "sw", "J"
    )
    assert filter_parse("x gt 1.5") == Compare(AttrPath("x"), "gt", 1.5)
    assert filter_parse("x EQ null") == Compare(AttrPath("x"), "eq", None)
    assert filter_parse(r'x eq "a \"quoted\" word"') == Compare(
        AttrPath("x"), "eq", 'a "quoted" word'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "alice@acme.io"', True),  # userName is not case-exact
        ('USERNAME Eq "ALICE@ACME.IO"', True),  # nor are attribute names and operators
        ('userName ne "alice@acme.io"', False),
        ('userName co "acme"', True),
        ('userName sw "alice"', True),
        ('userName ew ".io"', True),
        ('userName ew ".com"', False),
        ('externalId eq "ext-1"', False),  # case-exact attribute
        ('externalId eq "Ext-1"', True),
        ("name.givenName pr", True),
        ("displayName pr", False),
        ("active eq true", True),
        ("active eq false", False),
        ("loginCount gt 2", True),
        ("loginCount le 2", False),
        ('meta.lastModified gt "2026-01-01T00:00:00Z"', True),
        ('meta.lastModified lt "2026-01-01T00:00:00+00:00"', False),
        ('emails.value eq "alice@home.example"', True),
        ('emails eq "alice@acme.io"', True),  # a complex attribute compares its value
        ('emails[type eq "home" and primary eq true]', False),
        ('emails[type eq "work" and primary eq true]', True),
        ('emails[type eq "work"] and not (userName eq "bob")', True),
        ('(userName eq "bob" or name.familyName eq "liddell") and active eq true', True),
        ('title eq "x"', False),
        ("title eq null", True),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    case_exact = frozenset({"id", "externalid"})
    assert filter_matches(filter_parse(text), ALICE, case_exact=case_exact) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty filter"),
        ("userName", "filter ends too early"),
        ('userName eq "a" and', "filter ends too early"),
        ('userName foo "a"', "unknown operator 'foo'"),
        ('(userName eq "a"', "filter ends too early"),
        ('userName eq "a")', "unexpected ')' in filter"),
        ('emails[type eq "work"', "filter ends too early"),
        ("userName eq bare", "invalid value 'bare'"),
        ('9lives eq "x"', "invalid attribute path '9lives'"),
    ],
)
def test_invalid_filters(text: str, message: str) -> None:
    with pytest.raises(ScimFilterError) as excinfo:
        filter_parse(text)
    assert excinfo.value.detail == message
    assert (excinfo.value.status, excinfo.value.scim_type) == (400, "invalidFilter")


def test_patch_paths() -> None:
    assert patch_path_parse("name.givenName") == PatchPath("name", "givenname")
    assert patch_path_parse('members[value eq "42"]') == PatchPath(
        "members", None, Compare(AttrPath("value"), "eq", "42")
    )
    assert patch_path_parse('emails[type eq "work"].value') == PatchPath(
        "emails", "value", Compare(AttrPath("type"), "eq", "work")
    )
    assert patch_path_parse("urn:ietf:params:scim:schemas:core:2.0:User:active") == PatchPath(
        "active"
    )
    with pytest.raises(ScimError) as excinfo:
        patch_path_parse('emails[type eq "work"]value')
    assert excinfo.value.scim_type == "invalidPath"
