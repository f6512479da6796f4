"""The person's own view of the apps they signed into."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from oidc import services
from oidc.models import Application


@login_required
@require_POST
def app_revoke(request, pk):
    application = get_object_or_404(Application, pk=pk)
    services.app_access_revoke(user=request.user, application=application, request=request)
    name = application.name or application.client_id
    # A first-party app skips the consent page, so promising that it will ask again would be untrue.
    again = "" if application.skip_authorization else "; it will ask for your permission again next time"
    messages.success(request, f"{name} can no longer use your account{again}.")
    return redirect("accounts:profile")
