"""The MQTT broker's side of security: per-credential ACLs, password files, a lab CA and the
shipped production Mosquitto config (``templates/``), localised for a site or a lab."""
