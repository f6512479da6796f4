"""The base of every admin whose form changes data through a service (dockspace.forms.ServiceForm): the
admin saves nothing itself, runs each page in one transaction and shows a refusal instead of an error page."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect

from dockspace.canonical import unicode_address
from dockspace.validation import error_summary


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows Dockspace writes itself (check results, reports, mail traffic): nobody adds, changes or deletes them in
    the admin. With `view_permission` set, that one permission shows them: Django's default lets the change
    permission stand in for view, which would show pages whose services then refuse."""

    view_permission = ""

    def has_view_permission(self, request, obj=None):
        if self.view_permission:
            return request.user.has_perm(self.view_permission)
        return super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ServiceAdmin(admin.ModelAdmin):
    """The form already made the change through a service; the admin only logs it."""

    def get_form(self, request, obj=None, **kwargs):
        # The service forms declare every field they show, and Meta.fields names the model fields
        # they edit. The admin passes the fieldset names instead, and a non-editable model field
        # among them (Mailbox.address, Alias.address) makes the form factory raise FieldError.
        # Staff who may only view get every field read-only: Django then excludes the fields it was given, which
        # must be a list (none here; the page shows the fieldsets read-only).
        can_change = obj is None or self.has_change_permission(request, obj)
        kwargs["fields"] = None if can_change else []
        form = super().get_form(request, obj, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def save_model(self, request, obj, form, change):
        pass

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        with transaction.atomic():
            response = super().changeform_view(request, object_id, form_url, extra_context)
            context = getattr(response, "context_data", None) or {}
            if request.method == "POST" and context.get("errors"):
                # The form's service already made the change, but an inline on the page was
                # refused: the page shows the errors, so nothing may stay written.
                transaction.set_rollback(True)
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The heading names the row as people read it: 'anna@bücher.de (anna@xn--bcher-kva.de)'.
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra_context = {"subtitle": unicode_address(str(obj), with_ascii=True), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        # A service may refuse a removal that the model's PROTECT rules let through; the admin's
        # own transaction has rolled back by the time the error gets here.
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as e:
            self.message_user(request, "Not deleted: " + error_summary(e), messages.ERROR)
            return HttpResponseRedirect(request.path.removesuffix("delete/") + "change/")

    def response_action(self, request, queryset):
        # Bulk actions (deleting too) run in one transaction: a refusal undoes the whole batch and
        # is shown as a message instead of a server error.
        try:
            with transaction.atomic():
                return super().response_action(request, queryset)
        except ValidationError as e:
            self.message_user(request, "Nothing was changed: " + error_summary(e), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_model(self, request, obj):
        self.remove(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.remove(request, obj)

    def remove(self, request, obj):
        raise NotImplementedError
