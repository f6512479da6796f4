"""Pytest plugin loaded before Django starts (`-p dockspace.testenv`): test-run environment defaults.

Tests run with production-like settings (DEBUG off, secure cookies) in a throwaway data directory.
Variables already set (CI's DATABASE_URL and REDIS_URL) are kept.
"""

import os
import secrets
import tempfile

_data_dir = tempfile.mkdtemp(prefix="dockspace-test-")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DOCKSPACE_URL", "https://dockspace.test")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1,dockspace.test")
os.environ["DOCKSPACE_DATA_DIR"] = _data_dir
os.environ.setdefault("DOCKSPACE_TEST_APPS", "dockspace.tests.extension_app")
