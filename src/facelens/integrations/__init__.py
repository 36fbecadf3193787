"""Other systems facelens works with (the Frigate bridge)."""
