"""Docker Mailserver files: the catalog of declared files (catalog) -> rows from the database (collection) ->
lines (render, pure) -> write (writer: atomic, locked); sync, drift scan, adoption."""
