"""The outbox used when no SMTP server is configured: one file per message under <data dir>/outbox,
readable by Dockspace's user only (messages hold password-reset and registration links)."""

import os

from django.core.mail.backends.filebased import EmailBackend

from dockspace.private_files import PRIVATE_FILE_MODE, private_dir


class PrivateFileEmailBackend(EmailBackend):
    def __init__(self, *args, file_path=None, **kwargs):
        from django.conf import settings

        private_dir(os.path.abspath(file_path or settings.EMAIL_FILE_PATH))
        super().__init__(*args, file_path=file_path, **kwargs)

    def open(self):
        if self.stream is None:
            fd = os.open(self._get_filename(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
            self.stream = os.fdopen(fd, "ab")
            return True
        return False
