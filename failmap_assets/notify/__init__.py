"""Completion webhooks, without Dagster: the document (``payload``), its signature
(``signing``), the URLs (``urls``) and their delivery (``delivery``). The run status
sensors in ``failmap_assets/sensors/webhook_sensors.py`` wire them to Dagster."""
