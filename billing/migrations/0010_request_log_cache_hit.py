from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0009_budget_duration_label"),
    ]

    operations = [
        migrations.AddField(
            model_name="requestlog",
            name="cache_hit",
            field=models.BooleanField(default=False),
        ),
    ]
