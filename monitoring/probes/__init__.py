"""Probes of a DMS mail host: fixed commands, pure parsers of their output, the TLS certificate reader and the
healthy / degraded / down assessment. No Django here: callers (mailhost check, the periodic probe) store the results."""
