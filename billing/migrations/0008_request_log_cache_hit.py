from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0007_request_log_usage_estimated"),
    ]

    operations = [
        migrations.AddField(
            model_name="requestlog",
            name="cache_hit",
            field=models.BooleanField(default=False),
        ),
    ]
