"""A test-only app that extends Dockspace the way a new app would (a DMS file, a model that triggers its sync, a
periodic task, a process, an alert kind), each declared in this app only. Installed only in test runs
(DOCKSPACE_TEST_APPS, set by dockspace.testenv)."""
