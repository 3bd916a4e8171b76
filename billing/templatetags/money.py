"""``{% load money %}``: ``{{ value|usd }}`` shows USD as a plain decimal with every significant
digit down to 1e-8 ("0.00002706", "11.50"), where ``floatformat:4`` showed small spend as 0.0000."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

from keys.budgets import usd_str

register = template.Library()


@register.filter
def usd(value: Any) -> str:
    if value is None or value == "":
        return ""
    try:
        text = usd_str(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return str(value)
    whole, _, fraction = text.partition(".")
    # At least cents, and no trailing zeros beyond them.
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"
