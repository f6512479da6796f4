"""Warmup plans and each sending IP's warmup state; the default plan "standard" from the reference's proposed values
(200/day rising to 50k/day in 14 steps, then +25 %/day to 100k/day; gates 2 % / 0.08 % to advance, 5 % / 0.1 % to step
back, 10 % / 0.3 % to pull the IP; 500 attempts to judge). Values are written here, not imported: the migration keeps
what it created even when the code's defaults change."""

import deliverability.models
import django.db.models.deletion
import django.utils.timezone
from decimal import Decimal
from django.db import migrations, models


STANDARD = {
    "name": "standard",
    "steps": [200, 400, 700, 1000, 1500, 2500, 4000, 6000, 9000, 13000, 18000, 25000, 35000, 50000],
    "growth_percent": Decimal("25"),
    "target_daily": 100000,
    "advance_bounce_below": Decimal("2"),
    "advance_complaint_below": Decimal("0.08"),
    "step_back_bounce_at": Decimal("5"),
    "step_back_complaint_at": Decimal("0.1"),
    "standby_bounce_at": Decimal("10"),
    "standby_complaint_at": Decimal("0.3"),
    "min_attempts": 500,
    "is_default": True,
}


def create_standard_plan(apps, schema_editor):
    WarmupPlan = apps.get_model("deliverability", "WarmupPlan")
    if not WarmupPlan.objects.filter(name=STANDARD["name"]).exists():
        WarmupPlan.objects.create(**STANDARD)


def remove_standard_plan(apps, schema_editor):
    pass  # the table goes with the reversed CreateModel


class Migration(migrations.Migration):

    dependencies = [
        ('deliverability', '0009_dnsbl_shipped_test_points'),
    ]

    operations = [
        migrations.CreateModel(
            name='WarmupPlan',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='What operators call it, e.g. standard.', max_length=63, unique=True)),
                ('steps', models.JSONField(default=deliverability.models.default_warmup_steps, help_text='Recipients a day at each step, rising, e.g. [200, 400, 700, 1000]; the hourly cap is a 16th of it.', verbose_name='daily volumes of the steps')),
                ('growth_percent', models.DecimalField(decimal_places=2, default=25, help_text='After the last listed step, each step sends this much more, up to the target.', max_digits=5, verbose_name='growth after the steps (% a day)')),
                ('target_daily', models.PositiveIntegerField(default=100000, help_text='Recipients a day the IP must reach; one day clean at the target ends the warmup (the IP becomes ACTIVE).', verbose_name='target daily volume')),
                ('advance_bounce_below', models.DecimalField(decimal_places=3, default=Decimal('2'), help_text='Advance only under this rate.', max_digits=6, verbose_name='advance: hard bounces below (%)')),
                ('advance_complaint_below', models.DecimalField(decimal_places=3, default=Decimal('0.08'), help_text='Advance only under this rate.', max_digits=6, verbose_name='advance: complaints below (%)')),
                ('step_back_bounce_at', models.DecimalField(decimal_places=3, default=Decimal('5'), help_text='At or over this rate the IP goes back one step; between the advance rate and this one it holds.', max_digits=6, verbose_name='step back: hard bounces from (%)')),
                ('step_back_complaint_at', models.DecimalField(decimal_places=3, default=Decimal('0.1'), help_text='At or over this rate: one step back.', max_digits=6, verbose_name='step back: complaints from (%)')),
                ('standby_bounce_at', models.DecimalField(decimal_places=3, default=Decimal('10'), help_text='At or over this rate the IP is pulled: RESTING, and an alert.', max_digits=6, verbose_name='standby: hard bounces from (%)')),
                ('standby_complaint_at', models.DecimalField(decimal_places=3, default=Decimal('0.3'), help_text='At or over this rate the IP is pulled: RESTING, and an alert.', max_digits=6, verbose_name='standby: complaints from (%)')),
                ('min_attempts', models.PositiveIntegerField(default=500, help_text='Attempts needed to judge: the last 24 h, else 72 h, else 7 days; with fewer the IP holds.', verbose_name='minimum sample (attempts)')),
                ('is_default', models.BooleanField(default=False, help_text='The plan a WARMING IP follows unless it is given another.', verbose_name='default plan')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'warmup plan',
                'ordering': ['name'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('is_default', True)), fields=('is_default',), name='warmup_plan_one_default')],
            },
        ),
        migrations.CreateModel(
            name='IpWarmup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('step', models.PositiveIntegerField(default=1, help_text="1 is the plan's first step.")),
                ('step_started_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='step started')),
                ('sent_in_step', models.PositiveBigIntegerField(default=0, verbose_name='sent in this step')),
                ('last_sent_at', models.DateTimeField(blank=True, null=True, verbose_name='last sent')),
                ('standby_at', models.DateTimeField(blank=True, editable=False, help_text='When its warmup gate last rested the IP.', null=True, verbose_name='pulled at')),
                ('history', models.JSONField(blank=True, default=list, editable=False)),
                ('ip', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='warmup', to='deliverability.sendingip', verbose_name='IP')),
                ('plan', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='ip_warmups', to='deliverability.warmupplan')),
            ],
            options={
                'verbose_name': 'IP warmup',
                'ordering': ['ip__address'],
                'constraints': [models.CheckConstraint(condition=models.Q(('step__gte', 1)), name='ip_warmup_step_from_1')],
            },
        ),
        migrations.RunPython(create_standard_plan, remove_standard_plan),
    ]
