"""Edge agent: profiles, read planning, decoding, polling, outbox, MQTT publishing, health."""
