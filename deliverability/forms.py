"""The admin's forms for pools, sending IPs, blocklists and warmup: each change goes through deliverability's
services."""

from functools import partial

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from deliverability import dnsbl_lists, ip_lifecycle, ip_pools, ip_warmup, sending_ips, warmup_plans
from deliverability.models import Dnsbl, IpPool, IpWarmup, SendingIp, WarmupPlan
from dockspace.forms import ServiceForm


class IpPoolForm(ServiceForm):
    class Meta:
        model = IpPool
        fields = list(ip_pools.EDITABLE)

    def _post_clean(self):
        # The service normalises the name and checks that it is free, and that each domain is in one pool.
        pass

    def apply(self, data):
        if self.instance.pk is None:
            return ip_pools.pool_add(**{key: data[key] for key in ip_pools.EDITABLE}, **self._who())
        changes = {key: data[key] for key in self.changed_data if key in ip_pools.EDITABLE}
        if not changes:
            return self.instance
        return ip_pools.pool_update(pool=self.instance, **changes, **self._who())


class SendingIpAddForm(ServiceForm):
    state = forms.ChoiceField(
        choices=[(ip_lifecycle.WARMING, "WARMING: a new IP"), (ip_lifecycle.ACTIVE, "ACTIVE: it already sends today")],
        initial=ip_lifecycle.WARMING,
        help_text="A new IP has no reputation yet and starts WARMING; ACTIVE only for an IP that already sends.",
    )

    class Meta:
        model = SendingIp
        fields = ["address", "helo_name", "pool", "weight", "state", "notes"]

    def _post_clean(self):
        pass  # the service normalises the address before checking that it is new

    def apply(self, data):
        return sending_ips.ip_add(
            address=data["address"],
            helo_name=data["helo_name"],
            pool=data["pool"],
            weight=data["weight"],
            state=data["state"],
            notes=data["notes"],
            **self._who(),
        )


class SendingIpChangeForm(ServiceForm):
    class Meta:
        model = SendingIp
        fields = list(sending_ips.EDITABLE)

    def _post_clean(self):
        pass

    def apply(self, data):
        changes = {key: data[key] for key in self.changed_data if key in sending_ips.EDITABLE}
        if not changes:
            return self.instance
        return sending_ips.ip_update(ip=self.instance, **changes, **self._who())


class StateChangeForm(forms.Form):
    """The next state (one of the moves the lifecycle allows from the current one) and why."""

    state = forms.ChoiceField(label="New state")
    reason = forms.CharField(
        max_length=ip_lifecycle.REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why the IP changes state; kept in its state history and the audit log.",
    )

    def __init__(self, *args, ip, any_state=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer_moves_from(ip.state, any_state=any_state)

    def offer_moves_from(self, state, *, any_state=False):
        """Offer the moves allowed from `state` (all states while a posted form is checked: the service refuses)."""
        labels = dict(ip_lifecycle.STATE_CHOICES)
        states = ip_lifecycle.STATES if any_state else ip_lifecycle.allowed_moves(state)
        self.fields["state"].choices = [(s, f"{s}: {labels[s]}") for s in states]


class DnsblForm(ServiceForm):
    """A list's settings; the access key is write-only: typed here, stored encrypted, never shown again (the page
    says only whether one is set)."""

    new_access_key = forms.CharField(
        label="New access key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted and never shown again; leave empty to keep the stored key. A variable named "
        "below wins over it.",
    )
    clear_access_key = forms.BooleanField(label="Remove the stored access key", required=False)
    service_fields = {"access_key": "new_access_key"}

    class Meta:
        model = Dnsbl
        fields = list(dnsbl_lists.EDITABLE)
        # A removal page typed without a scheme is an https one (Django 6's default; said now, no warning).
        field_classes = {"removal_url": partial(forms.URLField, assume_scheme="https")}

    def _post_clean(self):
        pass  # the service normalises the zone and checks the codes, the action and that the name is free

    def apply(self, data):
        key = data.get("new_access_key") or ("" if data.get("clear_access_key") else None)
        if self.instance.pk is None:
            values = {name: data[name] for name in dnsbl_lists.EDITABLE if name in data}
            return dnsbl_lists.dnsbl_add(access_key=key, **values, **self._who())
        changes = {name: data[name] for name in self.changed_data if name in dnsbl_lists.EDITABLE}
        if not changes and key is None:
            return self.instance
        return dnsbl_lists.dnsbl_update(dnsbl=self.instance, access_key=key, **changes, **self._who())


class DnsblCheckForm(forms.Form):
    subject = forms.CharField(
        label="IP address or domain",
        max_length=253,
        help_text="Asked of every enabled list of its kind now; the result joins the history.",
    )


class StepsField(forms.JSONField):
    """A plan's steps as JSON. Django's field turns only a JSON syntax error into a form error: an integer past
    Python's digit limit or nesting past the recursion limit would be a 500."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except (ValueError, RecursionError):
            raise ValidationError(
                "give the daily volumes as a JSON list of whole numbers, e.g. [200, 400, 700].", code="invalid"
            ) from None

    def bound_data(self, data, initial):
        # The page shows back what was typed; Django reads it as JSON again, with the same two gaps.
        try:
            return super().bound_data(data, initial)
        except (ValueError, RecursionError):
            return InvalidJSONInput(data)


class WarmupPlanForm(ServiceForm):
    class Meta:
        model = WarmupPlan
        fields = list(warmup_plans.EDITABLE)
        field_classes = {"steps": StepsField}

    def _post_clean(self):
        pass  # the service checks the plan (WarmupPlan.clean) and that its name is free

    def apply(self, data):
        if self.instance.pk is None:
            return warmup_plans.warmup_plan_add(
                **{name: data[name] for name in warmup_plans.EDITABLE if name in data}, **self._who()
            )
        changes = {name: data[name] for name in self.changed_data if name in warmup_plans.EDITABLE}
        if not changes:
            return self.instance
        return warmup_plans.warmup_plan_update(plan=self.instance, **changes, **self._who())


class IpWarmupForm(ServiceForm):
    """An IP's plan and step (a new step starts now); adding one puts a WARMING IP on a plan before its first
    evaluation."""

    reason = forms.CharField(
        max_length=ip_lifecycle.REASON_MAX_LENGTH,
        required=False,
        help_text="Why; kept in the IP's warmup history and the audit log.",
    )

    class Meta:
        model = IpWarmup
        fields = ["ip", "plan", "step"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "ip" in self.fields:
            self.fields["ip"].queryset = SendingIp.objects.filter(warmup__isnull=True).order_by("address")
            self.fields["ip"].help_text = "A sending IP that has no warmup state yet."

    def _post_clean(self):
        pass  # the service checks the step against the plan

    def apply(self, data):
        ip = self.instance.ip if self.instance.pk else data["ip"]
        if self.instance.pk and not self.changed_data:
            return self.instance
        return ip_warmup.ip_warmup_set(
            ip=ip, plan=data["plan"], step=data["step"], reason=data.get("reason", ""), **self._who()
        )
