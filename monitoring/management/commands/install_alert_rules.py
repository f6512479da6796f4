from django.core.management.base import BaseCommand

from monitoring.alert_services import alert_rules_install


class Command(BaseCommand):
    help = (
        "Create the alert rule of every alert kind the apps declare that has none yet, with the kind's defaults "
        "(on, its thresholds, 'for' and a 4-hour repeat) and the channels marked 'default for new rules'; the first "
        "run also creates a 'Staff email' channel. Safe to run at every start: rules you changed in the admin are "
        "never touched. Evaluation (every minute) does the same, so a new kind gets its rule either way."
    )

    def handle(self, *args, **options):
        result = alert_rules_install()
        self.stdout.write(f"Alert rules: {len(result.created)} created, {len(result.unchanged)} unchanged.")
        for kind in result.orphaned:
            self.stdout.write(f"Not evaluated: no installed app declares the alert kind {kind!r} any more.")
