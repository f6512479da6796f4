"""The one-time setup code that guards the first-run page: whoever reaches an empty Dockspace first
must also see its console (`make run`, the container log) or run `manage.py setup_code`.

The code lives in <data dir>/setup-code (0600) until the first administrator exists, then it is deleted."""

import hmac
import secrets

from django import forms
from django.conf import settings

from accounts.forms import NewAccountForm
from dockspace.private_files import private_dir, private_file_write

SETUP_CODE_FILE_NAME = "setup-code"
# No 0/O, 1/I/L: the code is read off a terminal and typed in. 16 characters, 80 bits.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
GROUPS, GROUP_LENGTH = 4, 4


def setup_code_path():
    return settings.DATA_DIR / SETUP_CODE_FILE_NAME


def _normalize(code):
    return "".join(code.split()).replace("-", "").upper()


def setup_code_issue(*, regenerate=False):
    """The current setup code, creating it (or a new one with REGENERATE) first."""
    path = setup_code_path()
    if not regenerate:
        try:
            existing = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            existing = ""
        if existing:
            return existing
    raw = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LENGTH))
    code = "-".join(raw[i : i + GROUP_LENGTH] for i in range(0, len(raw), GROUP_LENGTH))
    private_dir(path.parent)
    private_file_write(path, code + "\n")
    return code


def setup_code_matches(candidate):
    """Constant-time comparison with the stored code; False when there is none."""
    try:
        stored = setup_code_path().read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return False
    if not stored:
        return False
    return hmac.compare_digest(_normalize(candidate or "").encode(), _normalize(stored).encode())


def setup_code_forget():
    """Delete the code: the first administrator exists and the first-run page is gone."""
    setup_code_path().unlink(missing_ok=True)


class SetupForm(NewAccountForm):
    """The first administrator: the setup code, then email, name and password."""

    setup_code = forms.CharField(
        label="Setup code",
        max_length=64,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}),
        help_text="Printed by <code>make run</code> (or in the container's log) when Dockspace starts; "
        "<code>manage.py setup_code</code> prints it again.",
    )
    field_order = ["setup_code", "email", "full_name", "password1", "password2"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():  # the code comes first, so the cursor starts there
            field.widget.attrs.pop("autofocus", None)
        self.fields["setup_code"].widget.attrs["autofocus"] = True

    def clean_setup_code(self):
        code = self.cleaned_data["setup_code"]
        if not setup_code_matches(code):
            raise forms.ValidationError(
                "This is not the setup code. Copy it from the console where Dockspace started "
                "(make run or the container log), or run `manage.py setup_code`."
            )
        return code
