"""Store every person's address in its canonical spelling (dockspace.canonical), which sign-in, registration, reset
and the admin now look addresses up by: `bob@bücher.de` becomes `bob@xn--bcher-kva.de`, `Bob@Example.com.`
becomes `bob@example.com`.

A row whose canonical spelling another person already holds is a second account for the same address. If it is a
sign-up nobody finished (pending, never activated) it is removed: only that address's owner could ever confirm it,
and it would give them a second account. Any other such row is left as it is (no sign-in finds it any more) and
reported, for an operator to merge by hand."""

from django.db import migrations


def canonicalise(apps, schema_editor):
    from dockspace.canonical import canonical_email

    User = apps.get_model("accounts", "User")
    rows = User.objects.order_by("is_pending_registration", "date_joined", "pk").only(
        "pk", "email", "is_active", "is_pending_registration"
    )
    for user in rows:
        canonical = canonical_email(user.email)
        if canonical == user.email:
            continue
        if not User.objects.filter(email=canonical).exclude(pk=user.pk).exists():
            User.objects.filter(pk=user.pk).update(email=canonical)
        elif user.is_pending_registration and not user.is_active:
            User.objects.filter(pk=user.pk).delete()
        else:
            print(f"\n  accounts: {user.email!r} (person {user.pk}) is another spelling of an existing {canonical!r}; "
                  "left as it is: merge them by hand.")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_mail_password"),
    ]

    operations = [migrations.RunPython(canonicalise, migrations.RunPython.noop, elidable=True)]
