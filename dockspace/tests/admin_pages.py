"""Test helpers for admin pages, whichever app's: the errors and messages a page shows, and posting a change
page back as a browser does."""


def errors(response):
    """The form errors of an admin add or change page, {field: [message, ...]}; '__all__' for the rest."""
    assert response.status_code == 200, response.status_code
    return {field: list(messages) for field, messages in response.context["adminform"].form.errors.items()}


def shown_messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def page_values(response):
    """What a browser posts back from an admin change page when nothing is edited."""
    data = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    for form in forms:
        for bound in form:
            if bound.field.disabled:
                continue
            value = bound.value()
            if value is True:
                data[bound.html_name] = "on"
            elif value is not None and value is not False:
                data[bound.html_name] = value
    return data


def change(browser, url, **edits):
    return browser.post(url, {**page_values(browser.get(url)), **edits})
