"""Docker Mailserver files: snapshot (plain values) -> render (pure) -> write (atomic, locked)."""
