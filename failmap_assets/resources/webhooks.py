"""Webhooks: where the completion documents go and how they are signed."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from failmap_assets.notify.urls import parse_urls


class Webhooks(ConfigurableResource):
    """Read by the webhook sensors only. From the environment the URLs and the secret
    are ``EnvVar`` references, so the UI shows the variable's name, never its value."""

    urls: str = Field(default="", description="comma-separated http(s) URLs that get a signed JSON document per "
                      "finished day run; empty: no webhook is sent")
    secret: str = Field(default="", repr=False, description="HMAC-SHA256 key of the X-Failmap-Signature header")
    timeout_seconds: float = Field(default=3.0, description="per attempt (connect + answer)")
    retries: int = Field(default=2, description="further attempts after a connection error, timeout or 5xx")
    backoff_seconds: float = Field(default=0.5, description="pause before the first retry; doubled each retry")
    ui_url: str = Field(default="", description="the Dagster UI's base URL; documents link to their run when set")

    def url_list(self) -> list[str]:
        return parse_urls(self.urls)
