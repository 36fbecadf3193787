"""Events: the durable log, its outbox, and delivery to webhooks and MQTT."""
