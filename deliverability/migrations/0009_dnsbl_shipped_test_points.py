"""The shipped domain lists' own permanent test entries as their test points (they need not list RFC 5782's "test").
Set only on a list still at its shipped zone whose test point is empty (an operator's choice is kept); its health
goes back to untested, as the next sweep tests it with this point. The sources found (2026-12), and how strong:

- SURBL multi (multi.surbl.org): test.surbl.org. From SURBL itself: its implementation guidelines, posted by SURBL's
  Jeff Chan to discuss@lists.surbl.org, say "2.0.0.127 and test.surbl.org ... are both in all SURBL lists";
  surblhost's page shows the entry on sc.surbl.org with the TXT "sc.surbl.org permanent test point".
- Spamhaus DBL (dbl.spamhaus.org): dbltest.com (answering 127.0.1.2). Spamhaus's own page was not among the sources
  searched; named as Spamhaus's permanent test entry by independent implementations (Debiki's spam checker, a Rails
  task checking that "dbltest.com.dbl.spamhaus.org" is listed, resolver self-tests expecting 127.0.1.2).
- URIBL multi (multi.uribl.com): test.uribl.com (answering 127.0.0.14: black + grey + red). URIBL's own page was not
  among the sources searched; the same Debiki spam checker names it citing uribl.com/about.shtml, Mahara's 2010 upgrade
  asks test.uribl.com.black.uribl.com to see whether URIBL answers, and tests of other projects expect 127.0.0.14.

The IP lists keep RFC 5782's 127.0.0.2."""

from django.db import migrations

SHIPPED_TEST_POINTS = {
    "dbl.spamhaus.org": "dbltest.com",
    "multi.surbl.org": "test.surbl.org",
    "multi.uribl.com": "test.uribl.com",
}


def set_test_points(apps, schema_editor):
    Dnsbl = apps.get_model("deliverability", "Dnsbl")
    for zone, point in SHIPPED_TEST_POINTS.items():
        Dnsbl.objects.filter(zone=zone, kind="domain", test_point="").update(
            test_point=point, health="untested", health_reason=""
        )


def clear_test_points(apps, schema_editor):
    Dnsbl = apps.get_model("deliverability", "Dnsbl")
    for zone, point in SHIPPED_TEST_POINTS.items():
        Dnsbl.objects.filter(zone=zone, test_point=point).update(test_point="")


class Migration(migrations.Migration):
    dependencies = [
        ("deliverability", "0008_dnsbl_test_point"),
    ]

    operations = [migrations.RunPython(set_test_points, clear_test_points)]
