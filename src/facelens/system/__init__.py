"""The machine and process facelens runs in: host facts, optional parts, process lifetime,
back-off, and secrets kept out of text."""
