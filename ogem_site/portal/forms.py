from __future__ import annotations

from typing import Any

from django import forms

from tenants.models import Team


class KeyCreateForm(forms.Form):
    name = forms.CharField(max_length=200, label="Key name", help_text="e.g. laptop, ci, notebook")
    team = forms.ModelChoiceField(queryset=Team.objects.none(), label="Team", empty_label=None)

    def __init__(self, *args: Any, teams: list[Team], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Team.objects.filter(pk__in=[t.pk for t in teams])


class RealtimeSecretForm(forms.Form):
    key_id = forms.IntegerField(min_value=1)
    model = forms.CharField(max_length=200)
