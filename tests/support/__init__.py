"""Test helpers: fakes (a stand-in model, workers as threads), real components started for
the tests (a server, an MQTT broker, cameras, a webhook receiver, a DNS server, a browser)."""
