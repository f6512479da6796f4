# Existing clients start without the waiver: until a superuser saves one that skips consent and holds "mail",
# people are asked once before it gets their mailbox.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('oidc', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='application',
            name='mail_consent_waived',
            field=models.BooleanField(default=False, editable=False, help_text='A superuser set this client up to get the mail scope without asking people (e.g. webmail). Without it, people are asked before the mail scope even when consent is otherwise skipped.'),
        ),
    ]
