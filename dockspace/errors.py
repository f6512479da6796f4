"""Error pages in the site's layout: a clear sentence, never a traceback."""

from django.shortcuts import render


def _page(request, status, title, text):
    return render(request, "error.html", {"title": title, "text": text}, status=status)


def bad_request(request, exception=None):
    return _page(request, 400, "Bad request", "The request could not be understood. Go back and try again.")


def permission_denied(request, exception=None):
    return _page(request, 403, "Not allowed", "You are not allowed to do this.")


def page_not_found(request, exception=None):
    return _page(request, 404, "Page not found", "There is no page at this address.")


def server_error(request):
    return render(
        request,
        "error.html",
        {"title": "Something went wrong", "text": "The error was logged. Try again in a moment."},
        status=500,
    )


def csrf_failure(request, reason=""):
    return _page(
        request,
        403,
        "Form expired",
        "This form was missing its security token or it expired. Reload the page, make sure cookies "
        "are allowed for this site, and send the form again. Nothing was changed.",
    )
