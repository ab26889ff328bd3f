"""Upload to the municipal/provincial energy-monitoring platform (building energy-monitoring
data-transmission guideline: XML over TCP, MD5 identity check, AES payloads)."""
