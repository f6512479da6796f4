"""A ModelAdmin mixin that writes an audit event for every add, change and delete done in the admin."""

from accounts.audit import audit


class AuditedAdminMixin:
    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        audit("admin.add", request=request, target=obj, description=f"Added {obj._meta.verbose_name}.")
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        text = entry.get_change_message() if hasattr(entry, "get_change_message") else ""
        audit("admin.change", request=request, target=obj, description=text or "Changed.")
        return entry

    def log_deletions(self, request, queryset):
        for obj in queryset:
            audit("admin.delete", request=request, target=obj, description=f"Deleted {obj._meta.verbose_name}.")
        return super().log_deletions(request, queryset)
