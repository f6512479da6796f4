"""The base of every form that changes data through a service (the admin's and the pages')."""

from django import forms
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction

from dockspace.validation import add_to_form


class ServiceForm(forms.ModelForm):
    """A ModelForm whose clean() performs the change through a service, inside the admin's
    transaction, so a refused change shows field errors and writes nothing."""

    request = None
    # Service field name -> this form's field, where the form names it differently.
    service_fields = {}

    def apply(self, data):
        raise NotImplementedError

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            with transaction.atomic():
                result = self.apply(data)
        except ValidationError as e:
            add_to_form(self, e, self.service_fields)
        else:
            if result is not None:
                self.instance = result
        return data

    def _who(self):
        # Only the admin (ServiceAdmin.get_form) hands a form its request. A form built anywhere else (an
        # inline, a list_editable row, a future page) acts as nobody and is refused, never as the system.
        if self.request is None:
            return {"actor": AnonymousUser()}
        return {"request": self.request}
