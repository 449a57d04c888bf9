"""The web shop: the OLTP source whose changes Tidewater captures."""
