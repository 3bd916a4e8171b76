from __future__ import annotations

from django import forms


class SsoDiscoveryForm(forms.Form):
    email = forms.EmailField(label="Work email")
